//! The encoders' bitrates while they run: the one place that sets a running
//! rung's encoder to a new bitrate (the property or V4L2 control its board
//! profile names, in its unit). Two callers: a live `configure` (new
//! targets) and adaptive bitrate (one factor over the whole ladder). Each
//! encoder runs at `target x factor`; the target is what the channel is
//! told (`onMetaData`), the factor never changes it.

use super::build::{BuildError, set_from_str};
use crate::board::EncoderSettings;
use gstreamer as gst;
use gstreamer::prelude::*;
use std::sync::Mutex;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum LiveBitrateError {
    /// The board profile does not say the encoder takes a bitrate while playing.
    #[error("the `{element}` encoder cannot change its bitrate while playing (board profile: encoder.bitrate.live)")]
    NotLive { element: String },
    #[error("no running encoder for rung `{0}`")]
    NoRung(String),
    #[error(transparent)]
    Set(#[from] BuildError),
}

/// One rung's running encoder.
struct RungEncoder {
    rung: String,
    element: gst::Element,
    settings: EncoderSettings,
    target_bps: u64,
    /// What the encoder is set to now.
    current_bps: u64,
}

/// A rung's bitrates, for status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RungRate {
    pub rung: String,
    pub target_bps: u64,
    pub current_bps: u64,
}

struct State {
    rungs: Vec<RungEncoder>,
    factor: f64,
}

/// Every rung's encoder of one running pipeline. Setting a property takes
/// the element's object lock only: quick, callable from any thread.
pub struct LiveBitrates {
    state: Mutex<State>,
    live: bool,
}

impl LiveBitrates {
    pub(super) fn new(rungs: Vec<(String, gst::Element, EncoderSettings, u64)>) -> LiveBitrates {
        let live = rungs.iter().all(|(_, _, s, _)| s.bitrate.live);
        let rungs = rungs
            .into_iter()
            .map(|(rung, element, settings, bps)| RungEncoder { rung, element, settings, target_bps: bps, current_bps: bps })
            .collect();
        LiveBitrates { state: Mutex::new(State { rungs, factor: 1.0 }), live }
    }

    /// Whether every encoder takes a new bitrate while playing.
    pub fn live(&self) -> bool {
        self.live
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while setting a property leaves nothing half-done here.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// New targets (a live `configure`): each named rung's encoder goes to
    /// `target x factor` at once.
    pub fn set_targets(&self, targets: &[(String, u64)]) -> Result<(), LiveBitrateError> {
        let mut state = self.lock();
        let factor = state.factor;
        for (rung, bps) in targets {
            let r = state.rungs.iter_mut().find(|r| &r.rung == rung).ok_or_else(|| LiveBitrateError::NoRung(rung.clone()))?;
            r.target_bps = *bps;
            apply(r, scaled(*bps, factor))?;
        }
        Ok(())
    }

    /// One factor for the whole ladder (adaptive bitrate): every encoder at
    /// `target x factor`.
    pub fn set_factor(&self, factor: f64) -> Result<(), LiveBitrateError> {
        let mut state = self.lock();
        state.factor = factor;
        for r in &mut state.rungs {
            let bps = scaled(r.target_bps, factor);
            if bps != r.current_bps {
                apply(r, bps)?;
            }
        }
        Ok(())
    }

    pub fn factor(&self) -> f64 {
        self.lock().factor
    }

    pub fn rates(&self) -> Vec<RungRate> {
        self.lock()
            .rungs
            .iter()
            .map(|r| RungRate { rung: r.rung.clone(), target_bps: r.target_bps, current_bps: r.current_bps })
            .collect()
    }
}

fn scaled(bps: u64, factor: f64) -> u64 {
    ((bps as f64) * factor).round().max(1000.0) as u64
}

/// Sets one running encoder to `bps`, through the property or the V4L2
/// control its profile names.
fn apply(r: &mut RungEncoder, bps: u64) -> Result<(), LiveBitrateError> {
    let spec = &r.settings.bitrate;
    if !spec.live {
        return Err(LiveBitrateError::NotLive { element: r.settings.element.clone() });
    }
    let value = spec.value(bps);
    if let Some(p) = &spec.property {
        set_from_str(&r.element, p, &value.to_string())?;
    }
    if let Some(c) = &spec.control {
        // The whole structure again, with the new bitrate in it: the element
        // applies `extra-controls` to the open device when it is set.
        let mut b = gst::Structure::builder("controls");
        for (k, v) in &r.settings.controls {
            let v = if k == c { value as i64 } else { *v };
            b = b.field(k.as_str(), v as i32);
        }
        r.element.set_property("extra-controls", b.build());
    }
    r.current_bps = bps;
    Ok(())
}

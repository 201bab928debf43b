//! A streaming session: one running pipeline plus one output actor per
//! planned output (a publish per destination and rung, whatever its
//! protocol) and per recorded rung. Starting a session resolves the
//! source format, plans, builds and spawns; stopping ends the pipeline
//! first, then lets every output drain and close (publishes end, the last
//! recording files get their trailers), all at once and bounded.

use crate::board::BoardProfile;
use crate::config::Config;
use crate::backoff::Backoff;
use crate::egress::output::OUTPUT_CHANNEL;
use crate::egress::{self, EgressState, MediaSender, OutputHandle};
use crate::egress::record::{self, RecordStatus, RecordTarget};
use crate::pipeline::actor::{self, PipelineEvent, PipelineHandle};
use crate::pipeline::bitrate::LiveBitrateError;

/// Why a change could not be applied to the running session (it restarts instead).
#[derive(Debug, thiserror::Error)]
pub enum LiveChangeError {
    #[error(transparent)]
    Bitrate(#[from] LiveBitrateError),
    #[error("the new slate could not be built: {0}")]
    Slate(#[from] crate::pipeline::build::BuildError),
}
use crate::pipeline::build::{self, BuildError, Taps};
use crate::pipeline::diff::BitrateChange;
use crate::pipeline::plan::{self, Plan, PlanError};
use crate::pipeline::probe::{self, ProbeError};
use std::time::Duration;
use thiserror::Error;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tracing::{info, warn};

/// A stop waits this long for the pipeline (EOS drained, then NULL: the
/// actor's own bounds are 4 s + 2 s)...
pub const PIPELINE_STOP: Duration = Duration::from_secs(7);
/// ...then, all at once, this long for each output (publish) to close...
const PUBLISH_CLOSE: Duration = Duration::from_secs(3);
/// ...and this long for each recording to write its last file's trailer.
const RECORDING_CLOSE: Duration = Duration::from_secs(4);

#[derive(Debug, Error)]
pub enum SessionError {
    /// The configuration cannot work with this source or board: not transient.
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error(transparent)]
    Probe(#[from] ProbeError),
    #[error(transparent)]
    Build(#[from] BuildError),
    #[error(transparent)]
    Start(#[from] actor::ActorError),
    #[error("destination: nothing to send the stream to (no destination, and recording is disabled)")]
    NoOutput,
}

impl SessionError {
    /// True when retrying cannot help until the config changes.
    pub fn is_config(&self) -> bool {
        matches!(self, SessionError::Plan(_) | SessionError::NoOutput | SessionError::Build(BuildError::NoProperty { .. } | BuildError::BadValue { .. } | BuildError::BadCaps(_)))
    }
}

/// One recorded rung: its actor, fed like a publish.
pub struct Recorder {
    pub rung: String,
    pub status: watch::Receiver<RecordStatus>,
    pub sender: MediaSender,
    task: JoinHandle<()>,
}

pub struct Session {
    pub started: std::time::Instant,
    pub plan: Plan,
    pub pipeline: PipelineHandle,
    pub events: mpsc::Receiver<PipelineEvent>,
    /// One per planned output, in plan order.
    pub egress: Vec<OutputHandle>,
    pub recorders: Vec<Recorder>,
    /// This session's recording folder, `<dir>/<UTC start>`, if recording.
    pub recording_dir: Option<std::path::PathBuf>,
    /// Adaptive bitrate's sampler (holds the outputs' senders: ended first at stop).
    adaptive: Option<JoinHandle<()>>,
}

/// Resolves the input format and plans the ladder (no GStreamer pipeline yet).
pub fn make_plan(config: &Config, board: &BoardProfile) -> Result<Plan, SessionError> {
    let format = probe::resolve_format(&config.source)?;
    Ok(plan::plan(config, board, format)?)
}

/// Plans without needing the input: a device that is absent right now is
/// planned at the configured (or top rung's) size. For checking a config
/// before accepting it; the real format is resolved at start.
///
/// `capturing`: the format the running session captures, when the config
/// keeps its source. The device is then not probed again: it is busy, a
/// probe could take seconds (no signal) and, on a pipe, would steal the
/// running capture's data.
pub fn preflight(config: &Config, board: &BoardProfile, capturing: Option<plan::SourceFormat>) -> Result<Plan, PlanError> {
    let format = match capturing {
        Some(f) => f,
        None => probe::resolve_format(&config.source).unwrap_or_else(|_| assumed_format(config)),
    };
    plan::plan(config, board, format)
}

/// The format to plan against when the device cannot be asked.
pub fn assumed_format(config: &Config) -> plan::SourceFormat {
    let top = &config.ladder.rungs[0];
    let fps = match &config.source {
        crate::config::Source::V4l2 { fps: Some(f), .. } => *f,
        _ => crate::config::Fps { num: 30, den: 1 },
    };
    plan::SourceFormat { width: top.width, height: top.height, fps }
}

/// Adaptive bitrate for the session's outputs, when the config wants it
/// and the board's encoder can follow (else it says so, once).
fn spawn_adaptive(config: &Config, plan: &Plan, pipeline: &PipelineHandle, egress: &[OutputHandle]) -> Option<JoinHandle<()>> {
    let min_ratio = config.egress.adaptive?;
    if egress.is_empty() {
        return None;
    }
    if !pipeline.bitrates.live() {
        warn!(board = %plan.board, "adaptive bitrate is off: this board's encoder cannot change its bitrate while playing (board profile: encoder.bitrate.live)");
        return None;
    }
    let outputs = egress
        .iter()
        .map(|e| egress::adaptive::Watched { label: e.label.clone(), rung: e.rung.clone(), status: e.status.clone(), sender: e.sender.clone() })
        .collect();
    let items_per_s = plan.format.fps.as_f64() + f64::from(plan.audio.sample_rate) / 1024.0;
    Some(egress::adaptive::spawn(outputs, pipeline.bitrates.clone(), min_ratio, u64::from(plan.audio.bitrate_bps), items_per_s))
}

/// How long the pipeline waits for the channel before starting anyway.
const PUBLISH_WAIT: Duration = Duration::from_secs(3);

/// Holds the pipeline back until every publish is up (bounded): egress
/// starts on a keyframe, so frames made before the channel accepted the
/// publish would cost a whole GOP (2 s) before the first picture arrives.
fn wait_for_publishes(egress: &[OutputHandle]) {
    let deadline = std::time::Instant::now() + PUBLISH_WAIT;
    let up = || egress.iter().all(|e| e.status.borrow().state != EgressState::Connecting);
    while !up() {
        if std::time::Instant::now() >= deadline {
            warn!("not every publish is up after {PUBLISH_WAIT:?}; starting the pipeline anyway");
            return;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// One recorder actor per recorded rung, each tapped like a publish. The
/// folder is only named here; the actor makes it, so a folder that cannot
/// be made fails the recording alone, never the session.
fn spawn_recorders(config: &Config, plan: &Plan, taps: &mut Taps) -> (Vec<Recorder>, Option<std::path::PathBuf>) {
    let Some(rec) = &plan.recording else { return (Vec::new(), None) };
    let dir = rec.dir.join(crate::timefmt::utc_compact(std::time::SystemTime::now()));
    let mut recorders = Vec::new();
    for rung in plan.rungs.iter().filter(|r| rec.rungs.contains(&r.name)) {
        let (sender, rx) = MediaSender::channel(OUTPUT_CHANNEL);
        let target = RecordTarget {
            rung: rung.name.clone(),
            dir: dir.clone(),
            format: rec.format,
            segment: rec.segment,
            tracks: crate::egress::sources::TrackFormat {
                width: rung.width,
                height: rung.height,
                fps: rung.fps,
                audio_rate: plan.audio.sample_rate,
                audio_channels: plan.audio.channels,
            },
            bitrate_bps: rung.bitrate_bps + u64::from(plan.audio.bitrate_bps),
            guard: record::DiskGuard { root: rec.dir.clone(), min_free_bytes: rec.min_free_bytes, rotate: rec.rotate },
            backoff: Backoff { initial: config.egress.reconnect_initial, max: config.egress.reconnect_max },
        };
        let (task, status) = record::spawn(target, rx);
        taps.video.entry(rung.name.clone()).or_default().push(sender.clone());
        taps.audio.push(sender.clone());
        recorders.push(Recorder { rung: rung.name.clone(), status, sender, task });
    }
    (recorders, Some(dir))
}

impl Session {
    pub fn start(config: &Config, board: &BoardProfile) -> Result<Session, SessionError> {
        if !config.has_output() {
            return Err(SessionError::NoOutput);
        }
        let plan = make_plan(config, board)?;
        let mut taps = Taps::default();
        let mut gates = egress::resume::ResumeGates::default();
        let mut books = egress::smooth::manifest::Books::default();
        let failovers: std::collections::HashMap<&str, egress::failover::Failover> = config
            .destinations
            .iter()
            .filter_map(|d| match d.backup.as_ref()?.redundancy {
                crate::config::Redundancy::Failover { after } => Some((d.name.as_str(), egress::failover::Failover::new(after))),
                crate::config::Redundancy::Both => None,
            })
            .collect();
        let egress: Vec<OutputHandle> =
            plan.outputs.iter().map(|p| egress::spawn(p, &mut gates, &mut books, &taps.epoch, failovers.get(p.destination()))).collect();
        for e in &egress {
            taps.video.entry(e.rung.clone()).or_default().push(e.sender.clone());
            taps.audio.push(e.sender.clone());
        }
        let (recorders, recording_dir) = spawn_recorders(config, &plan, &mut taps);
        let built = match build::build(&plan, &taps) {
            Ok(b) => b,
            Err(e) => {
                egress.iter().for_each(OutputHandle::abort);
                recorders.iter().for_each(|r| r.task.abort());
                return Err(e.into());
            }
        };
        drop(taps);
        wait_for_publishes(&egress);
        let (pipeline, events) = match actor::spawn(built) {
            Ok(x) => x,
            Err(e) => {
                egress.iter().for_each(OutputHandle::abort);
                recorders.iter().for_each(|r| r.task.abort());
                return Err(e.into());
            }
        };
        let adaptive = spawn_adaptive(config, &plan, &pipeline, &egress);
        info!(
            board = %plan.board,
            rungs = plan.rungs.len(),
            outputs = plan.outputs.len(),
            recording = ?recording_dir,
            adaptive = adaptive.is_some(),
            "session started"
        );
        Ok(Session { started: std::time::Instant::now(), plan, pipeline, events, egress, recorders, recording_dir, adaptive })
    }

    /// Applies a live change to the running session (a live `configure`,
    /// see `pipeline::diff`): every changed rung's encoder is set at once
    /// and its publishes declare the new target; new input-loss handling
    /// goes to the frame clock; `next` becomes the session's plan. Nothing
    /// reconnects, nothing is renamed.
    pub fn retarget(&mut self, changes: &[BitrateChange], next: Plan) -> Result<(), LiveChangeError> {
        if self.pipeline.input_loss.set(&next)? {
            info!(
                input_loss_ms = next.input_loss.after.as_millis() as u64,
                repeat_frame_ms = next.input_loss.repeat.as_millis() as u64,
                slate_image = next.input_loss.slate_image.is_some(),
                "input-loss handling set live"
            );
        }
        let targets: Vec<(String, u64)> = changes.iter().map(|c| (c.rung.clone(), c.to_bps)).collect();
        self.pipeline.bitrates.set_targets(&targets)?;
        for c in changes {
            for e in self.egress.iter().filter(|e| e.rung == c.rung) {
                if let Some(d) = &e.declared {
                    d.send_replace((c.to_bps / 1000) as u32);
                }
            }
            info!(rung = %c.rung, from_kbps = c.from_bps / 1000, to_kbps = c.to_bps / 1000, "bitrate changed live");
        }
        self.plan = next;
        Ok(())
    }

    /// Stops the pipeline, then waits (bounded) for every output to close:
    /// at most [`PIPELINE_STOP`] + [`RECORDING_CLOSE`] (11 s) in all.
    pub async fn stop(self) {
        let Session { pipeline, egress, recorders, adaptive, .. } = self;
        if let Some(a) = adaptive {
            a.abort();
            let _ = a.await;
        }
        // Bounded: a wedged GStreamer element must not keep the box from stopping.
        if tokio::time::timeout(PIPELINE_STOP, pipeline.stop()).await.is_err() {
            warn!(bound_s = PIPELINE_STOP.as_secs(), "the pipeline did not stop in time; continuing without it");
        }
        drop(pipeline);
        // Every output closes at once: the whole stop stays bounded by the
        // slowest one, not their sum.
        let mut spawned: Vec<JoinHandle<()>> = egress.into_iter().map(|e| tokio::spawn(e.close(PUBLISH_CLOSE))).collect();
        for Recorder { rung, sender, task, .. } in recorders {
            drop(sender);
            spawned.push(tokio::spawn(async move {
                if tokio::time::timeout(RECORDING_CLOSE, task).await.is_err() {
                    warn!(label = %format!("recording/{rung}"), "output did not close in time");
                }
            }));
        }
        // Spawned so they run concurrently, then all awaited.
        for s in spawned {
            let _ = s.await;
        }
        info!("session stopped");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preflight_plans_against_the_running_capture_instead_of_probing_the_source_again() {
        let mut t = toml::Table::new();
        t.insert("source".into(), toml::Value::Table(toml::toml! { kind = "file" path = "/nonexistent/camera.y4m" }));
        let config = crate::config::from_value(t, "test").unwrap();
        let board = crate::board::builtin("generic");
        // Unprobed, the absent file is assumed to be the top rung's size: fine.
        assert!(preflight(&config, &board, None).is_ok());
        // The running capture is 640x360: the 1080p rung cannot be made from it.
        let small = plan::SourceFormat { width: 640, height: 360, fps: crate::config::Fps { num: 30, den: 1 } };
        assert!(matches!(preflight(&config, &board, Some(small)), Err(PlanError::LargerThanSource { .. })));
    }
}

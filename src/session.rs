//! A streaming session: one running pipeline plus one RTMP egress actor per
//! publish. Starting a session resolves the source format, plans, builds and
//! spawns; stopping ends the pipeline first (so recordings are finalised),
//! then lets every egress drain and close its publish.

use crate::board::BoardProfile;
use crate::config::Config;
use crate::egress::rtmp::{self, Backoff, EgressStatus, PublishMetadata, RtmpTarget};
use crate::egress::MediaSender;
use crate::pipeline::actor::{self, PipelineEvent, PipelineHandle};
use crate::pipeline::build::{self, BuildError, Taps};
use crate::pipeline::plan::{self, Plan, PlanError};
use crate::pipeline::probe::{self, ProbeError};
use std::time::Duration;
use thiserror::Error;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tracing::{info, warn};

/// Items an egress channel holds: about two seconds of video and audio.
const EGRESS_CHANNEL: usize = 256;

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

pub struct Egress {
    pub label: String,
    pub destination: String,
    pub rung: String,
    pub status: watch::Receiver<EgressStatus>,
    pub sender: MediaSender,
    task: JoinHandle<()>,
}

pub struct Session {
    pub started: std::time::Instant,
    pub plan: Plan,
    pub pipeline: PipelineHandle,
    pub events: mpsc::Receiver<PipelineEvent>,
    pub egress: Vec<Egress>,
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

/// How long the pipeline waits for the channel before starting anyway.
const PUBLISH_WAIT: Duration = Duration::from_secs(3);

/// Holds the pipeline back until every publish is up (bounded): egress
/// starts on a keyframe, so frames made before the channel accepted the
/// publish would cost a whole GOP (2 s) before the first picture arrives.
fn wait_for_publishes(egress: &[Egress]) {
    let deadline = std::time::Instant::now() + PUBLISH_WAIT;
    let up = || egress.iter().all(|e| e.status.borrow().state != rtmp::EgressState::Connecting);
    while !up() {
        if std::time::Instant::now() >= deadline {
            warn!("not every publish is up after {PUBLISH_WAIT:?}; starting the pipeline anyway");
            return;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

impl Session {
    pub fn start(config: &Config, board: &BoardProfile) -> Result<Session, SessionError> {
        if !config.has_output() {
            return Err(SessionError::NoOutput);
        }
        let plan = make_plan(config, board)?;
        let mut taps = Taps::default();
        let mut egress = Vec::new();
        for p in &plan.publishes {
            let rung = plan.rungs.iter().find(|r| r.name == p.rung).expect("publishes name planned rungs");
            let (sender, rx) = MediaSender::channel(EGRESS_CHANNEL);
            let label = format!("{}/{}", p.destination, p.rung);
            let target = RtmpTarget {
                label: label.clone(),
                url: p.url.clone(),
                stream_name: p.stream_name.expose().to_string(),
                metadata: PublishMetadata {
                    width: rung.width,
                    height: rung.height,
                    framerate: rung.fps.as_f64(),
                    video_kbps: (rung.bitrate_bps / 1000) as u32,
                    audio_kbps: plan.audio.bitrate_bps / 1000,
                    audio_sample_rate: plan.audio.sample_rate,
                    audio_channels: plan.audio.channels,
                },
                backoff: Backoff { initial: config.egress.reconnect_initial, max: config.egress.reconnect_max },
                connect_timeout: config.egress.connect_timeout,
                ca_file: p.ca_file.clone(),
            };
            let (task, status) = rtmp::spawn(target, rx);
            taps.video.entry(p.rung.clone()).or_default().push(sender.clone());
            taps.audio.push(sender.clone());
            egress.push(Egress { label, destination: p.destination.clone(), rung: p.rung.clone(), status, sender, task });
        }
        let built = build::build(&plan, &taps)?;
        drop(taps);
        wait_for_publishes(&egress);
        let (pipeline, events) = match actor::spawn(built) {
            Ok(x) => x,
            Err(e) => {
                egress.iter().for_each(|e| e.task.abort());
                return Err(e.into());
            }
        };
        info!(
            board = %plan.board,
            rungs = plan.rungs.len(),
            publishes = plan.publishes.len(),
            recording = ?pipeline.recording_dir,
            "session started"
        );
        Ok(Session { started: std::time::Instant::now(), plan, pipeline, events, egress })
    }

    /// Stops the pipeline, then waits (bounded) for each publish to close.
    pub async fn stop(self) {
        let Session { pipeline, egress, .. } = self;
        // Bounded: a wedged GStreamer element must not keep the box from stopping.
        if tokio::time::timeout(Duration::from_secs(15), pipeline.stop()).await.is_err() {
            warn!("the pipeline did not stop within 15 s; continuing without it");
        }
        drop(pipeline);
        for e in egress {
            let Egress { label, sender, task, .. } = e;
            drop(sender);
            if tokio::time::timeout(Duration::from_secs(3), task).await.is_err() {
                warn!(%label, "egress did not close in time");
            }
        }
        crate::memory::release_free_memory();
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

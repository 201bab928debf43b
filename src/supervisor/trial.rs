//! A remote config change on trial. Before it is applied, what would take
//! a live stream off the air is checked (a new source file that is not
//! media, a recording folder that cannot be made); what slips past the
//! checks (a device node that is no capture device, say) is caught after:
//! if the session fails before it has been live for [`TRIAL`], the box goes
//! back to the last config that was live, by itself, and says so (event
//! `config` `rolled_back`, `config/reported` status `rolled_back`).

use super::{Action, Event, Reason, State, Supervisor};
use crate::config::{Config, Source};
use crate::control::error::{CommandError, ErrorCode};
use crate::persist::Saved;
use crate::pipeline::plan::SourceFormat;
use crate::status::wire::{ConfigEvent, SyncStatus};
use serde_json::{Map, Value};
use std::time::{Duration, Instant};
use tracing::{info, warn};

/// How long a new config must stay live to be kept.
pub const TRIAL: Duration = Duration::from_secs(10);

/// The config that was live before the change, to go back to.
pub struct Trial {
    config: Config,
    overlay: Map<String, Value>,
    /// When the new config went live; `None` while it has not yet.
    live_since: Option<Instant>,
}

impl Trial {
    pub fn new(config: Config, overlay: Map<String, Value>) -> Trial {
        Trial { config, overlay, live_since: None }
    }
}

/// A live switch to a file source: it must be media (a FIFO is not probed:
/// that would take its feeder's data). Returns its format, so it is not
/// probed twice.
pub(super) fn probe_new_file(source: &Source) -> Result<Option<SourceFormat>, CommandError> {
    let Source::File { path, .. } = source else { return Ok(None) };
    if crate::pipeline::fifo::is_fifo(path) {
        return Ok(None);
    }
    crate::pipeline::probe::resolve_format(source).map(Some).map_err(|e| {
        let why = e.to_string();
        let why = why.strip_prefix("source.path: ").unwrap_or(&why).to_string();
        CommandError::field(ErrorCode::InvalidConfig, "config.source.path", format!("{why}: a live box keeps its current source"))
    })
}

/// A live change that records into a new folder (or starts recording) needs one it can write.
pub(super) fn check_recording(next: &Config, current: &Config) -> Result<(), CommandError> {
    let Some(rec) = &next.recording else { return Ok(()) };
    if current.recording.as_ref().is_some_and(|r| r.dir == rec.dir) {
        return Ok(());
    }
    crate::egress::record::check_dir(&rec.dir).map_err(|why| {
        CommandError::field(ErrorCode::InvalidConfig, "config.recording.dir", format!("{why}: the recording would fail"))
    })
}

impl Supervisor {
    /// Called after every batch of actions: confirms a trial that has been
    /// live long enough, or rolls a failed one back (returning the restart).
    pub(super) fn check_trial(&mut self) -> Vec<Action> {
        // A config change being checked or saved is judged once it is done.
        if self.jobs.busy() {
            return Vec::new();
        }
        let Some(trial) = &mut self.trial else { return Vec::new() };
        match &self.machine.state {
            State::Live | State::Degraded { .. } => {
                let since = *trial.live_since.get_or_insert_with(Instant::now);
                if since.elapsed() >= TRIAL {
                    info!("the new config has been live for {TRIAL:?}: kept");
                    self.trial = None;
                }
                Vec::new()
            }
            // It was live long enough before failing: the config is not to blame.
            State::Error { .. } if trial.live_since.is_some_and(|t| t.elapsed() >= TRIAL) => {
                self.trial = None;
                Vec::new()
            }
            State::Error { reason } if *reason != Reason::InputEnded => {
                let reason = reason.to_string();
                self.roll_back(&reason)
            }
            // Stopped on purpose: nothing to judge.
            State::Idle => {
                self.trial = None;
                Vec::new()
            }
            _ => Vec::new(),
        }
    }

    fn roll_back(&mut self, reason: &str) -> Vec<Action> {
        let Some(trial) = self.trial.take() else { return Vec::new() };
        let Some(r) = self.remote.as_mut() else { return Vec::new() };
        warn!(%reason, "the new config took the stream off the air: rolling back to the last config that was live");
        // Current at once; saved beside the loop (a failed save is logged:
        // the rolled-back config then applies until the next restart).
        r.saved = Saved { overlay: trial.overlay, config_version: r.saved.config_version + 1, ..r.saved.clone() };
        let (store, saved) = (r.store.clone(), r.saved.clone());
        self.jobs.save_later(&store, saved);
        let r = self.remote.as_mut().expect("remote");
        self.config = trial.config;
        let error = CommandError::new(ErrorCode::StartFailed, format!("the new config failed ({reason}); back to the last config that was live"));
        r.report_config((SyncStatus::RolledBack, Some(&error)));
        r.config_event(ConfigEvent::RolledBack { config_version: r.saved.config_version, error });
        self.machine.step(Event::RestartRequested)
    }
}

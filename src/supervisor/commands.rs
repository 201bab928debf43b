//! The supervisor's side of fleet control: commands become machine events
//! (refused with a typed error when they make no sense now); config changes,
//! by `configure` or `config/desired`, are validated whole, saved
//! atomically, then applied. Replies wait for the actions they started.
//! What blocks (probes, saves, a snapshot's encoding) runs as a [`jobs`]
//! job; the command goes on when it is done.
//!
//! [`jobs`]: super::jobs

use super::jobs::{Checked, JobDone, LiveChange, Origin};
use super::remote::{now_rfc3339, Awaiting, ReplyTo};
use super::{Action, Event, Inbox, State, Supervisor};
use crate::control::local::LocalCommand;
use crate::control::command::{self, Command, Kind};
use crate::control::error::{CommandError, ErrorCode};
use crate::control::{desired, patch};
use crate::mqtt::{Inbound, Incoming, Outgoing, Protocol};
use std::hash::{Hash, Hasher};
use crate::persist::{RunState, Saved};
use bytes::Bytes;
use crate::config::Config;
use crate::pipeline::snapshot::Jpeg;
use crate::status::wire::{self, ConfigEvent, Event as WireEvent, SyncStatus};
use serde_json::{Map, Value};
use std::time::SystemTime;
use tracing::{debug, info, warn};

impl Supervisor {
    /// A message from the MQTT actor or the HTTP API; it waits its turn while a job runs.
    pub(super) fn on_inbound(&mut self, msg: Inbox) -> Vec<Action> {
        if self.jobs.busy() {
            self.jobs.queued.push_back(msg);
            return Vec::new();
        }
        self.handle_inbound(msg)
    }

    fn handle_inbound(&mut self, msg: Inbox) -> Vec<Action> {
        let msg = match msg {
            Inbox::Mqtt(m) => m,
            // Nothing to acknowledge to a broker.
            Inbox::Local(c) => return self.on_local(c),
        };
        let message = matches!(msg, Inbound::Message(_));
        let actions = self.on_inbound_item(msg);
        // Acknowledged now unless a job it started will (a save no one
        // waits for, `save_later`, does not: the message is handled).
        if message && !self.jobs.holds_ack() {
            self.acknowledge();
        }
        actions
    }

    /// The message's replies are queued: the broker may have it
    /// acknowledged (and send the next).
    fn acknowledge(&self) {
        if let Some(r) = &self.remote {
            r.handled();
        }
    }

    /// A job finished: its command goes on, then the messages that waited.
    pub(super) fn on_job(&mut self, done: JobDone, acks: bool) -> Vec<Action> {
        let mut actions = match done {
            JobDone::Run { cmd, to, saved } => self.finish_run(&cmd, &to, saved),
            JobDone::Config { origin, result } => self.finish_config(origin, result),
            JobDone::Snapshot { cmd, to, result } => self.finish_snapshot(&cmd, &to, result),
            JobDone::Saved | JobDone::Lost => Vec::new(),
        };
        if acks {
            self.acknowledge();
        }
        while !self.jobs.busy() {
            let Some(msg) = self.jobs.queued.pop_front() else { break };
            actions.extend(self.handle_inbound(msg));
        }
        actions
    }

    fn on_inbound_item(&mut self, msg: Inbound) -> Vec<Action> {
        let Some(r) = &mut self.remote else { return Vec::new() };
        match msg {
            Inbound::Up { protocol, outage, dropped, resumed } => {
                r.protocol = Some(protocol);
                r.publish_status(&self.machine.state);
                if let Some(reported) = &r.reported {
                    r.publish(Outgoing::json(r.topics.reported(), reported, true, true));
                }
                if let Some(outage) = outage {
                    r.event(WireEvent::MqttReconnected {
                        outage_s: (outage.as_secs_f64() * 1000.0).round() / 1000.0,
                        messages_dropped: dropped,
                        session_resumed: resumed,
                        state: self.machine.state.kind(),
                    });
                }
                Vec::new()
            }
            Inbound::Down { .. } => Vec::new(),
            Inbound::Message(m) if m.topic == r.topics.desired() => self.on_desired(&m.payload),
            Inbound::Message(m) => match r.topics.command_name(&m.topic).map(str::to_string) {
                Some(name) => self.on_command(&name, m),
                None => Vec::new(),
            },
        }
    }

    fn on_command(&mut self, name: &str, m: Incoming) -> Vec<Action> {
        let r = self.remote.as_mut().expect("remote");
        if m.payload.is_empty() && (m.retain || r.clearing.remove(&m.topic)) {
            // A retained command being removed (by the dashboard, or the
            // echo of the box's own removal under 3.1.1): nothing to answer.
            return Vec::new();
        }
        let parsed = command::parse(name, &m.payload, SystemTime::now());
        let id = match &parsed {
            Ok(c) => Some(c.id.clone()),
            Err(e) => e.id.clone(),
        };
        let to = ReplyTo::Mqtt { topic: r.topics.reply_to(m.response_topic.as_deref(), id.as_deref()), correlation: m.correlation.clone() };
        if m.retain {
            self.refuse_retained(name, &m, id.as_deref(), &to);
            return Vec::new();
        }
        self.run_parsed(name, parsed, &to)
    }

    /// A command from the local HTTP API: the same parsing, checks and
    /// replies as one from MQTT.
    fn on_local(&mut self, c: LocalCommand) -> Vec<Action> {
        let parsed = command::parse(&c.name, &c.payload, SystemTime::now());
        self.run_parsed(&c.name, parsed, &ReplyTo::Local(c.reply))
    }

    /// Runs a parsed command (or answers why it could not be parsed).
    fn run_parsed(&mut self, name: &str, parsed: Result<Command, CommandError>, to: &ReplyTo) -> Vec<Action> {
        let r = self.remote.as_mut().expect("remote");
        let id = match &parsed {
            Ok(c) => Some(c.id.clone()),
            Err(e) => e.id.clone(),
        };
        let cmd = match parsed {
            Ok(c) => c,
            Err(e) => {
                warn!(command = name, code = e.code.as_str(), field = e.field.as_deref(), "command refused");
                r.event(command_event(name, id.as_deref(), Some(&e)));
                r.reply(id.as_deref(), to, &wire::Failure::new(id.as_deref(), self.machine.state.kind(), &e), false);
                return Vec::new();
            }
        };
        if let Some(first) = r.replies.get(&cmd.id) {
            info!(command = name, id = %cmd.id, "repeated command id: sending the first reply again");
            let first = Bytes::copy_from_slice(first);
            r.send_reply(to, first);
            return Vec::new();
        }
        if to.is_quiet() {
            debug!(command = name, id = %cmd.id, via = "http", "routine command");
        } else {
            info!(command = name, id = %cmd.id, via = if to.is_mqtt() { "mqtt" } else { "http" }, "command");
        }
        match self.execute_command(&cmd, to) {
            Ok(Some(outcome)) => self.finish_command(&cmd, to, Ok(outcome)),
            // Goes on in `on_job`.
            Ok(None) => Vec::new(),
            Err(e) => self.finish_command(&cmd, to, Err(e)),
        }
    }

    /// Answers a command: a failure now; a success once the actions it
    /// started are done (or now, for commands with none).
    fn finish_command(&mut self, cmd: &Command, to: &ReplyTo, outcome: Result<(Vec<Action>, Value), CommandError>) -> Vec<Action> {
        let name = cmd.kind.name();
        let r = self.remote.as_mut().expect("remote");
        match outcome {
            Ok((actions, result)) => {
                if !to.is_quiet() {
                    r.event(command_event(name, Some(&cmd.id), None));
                }
                let a = Awaiting { id: cmd.id.clone(), name, to: to.clone(), result };
                if actions.is_empty() {
                    // Nothing to wait for (also while a start or stop runs for someone else).
                    r.answer(a, &self.machine.state);
                } else {
                    r.awaiting.push(a);
                }
                actions
            }
            Err(e) if to.is_quiet() => {
                debug!(command = name, id = %cmd.id, code = e.code.as_str(), error = %e, "routine command failed");
                r.reply(Some(&cmd.id), to, &wire::Failure::new(Some(&cmd.id), self.machine.state.kind(), &e), false);
                Vec::new()
            }
            Err(e) => {
                warn!(command = name, id = %cmd.id, code = e.code.as_str(), error = %e, "command failed");
                r.event(command_event(name, Some(&cmd.id), Some(&e)));
                r.reply(Some(&cmd.id), to, &wire::Failure::new(Some(&cmd.id), self.machine.state.kind(), &e), true);
                Vec::new()
            }
        }
    }

    /// A retained command is never run: the broker would deliver it again
    /// at every connect (a retained `stop` would stop the box after every
    /// boot). It is refused once (`retained_command`) and removed from the
    /// broker (an empty retained message on its topic), so it does not come
    /// back. One whose id already ran was also delivered live (3.1.1 cannot
    /// tell a retained publish then): removed, not answered again.
    fn refuse_retained(&mut self, name: &str, m: &Incoming, id: Option<&str>, to: &ReplyTo) {
        let state = self.machine.state.clone();
        let r = self.remote.as_mut().expect("remote");
        r.publish(Outgoing { topic: m.topic.clone(), payload: Bytes::new(), qos1: true, retain: true, correlation: None, content_type: "application/json" });
        if r.protocol == Some(Protocol::V311) {
            r.clearing.insert(m.topic.clone());
        }
        let mut h = std::collections::hash_map::DefaultHasher::new();
        (&m.topic, &m.payload[..]).hash(&mut h);
        let ran = id.is_some_and(|id| r.replies.get(id).is_some());
        if ran || !r.retained_refused.insert(h.finish()) {
            return;
        }
        warn!(command = name, id, "retained command refused");
        let e = CommandError::new(
            ErrorCode::RetainedCommand,
            "a command published with the retain flag is never run (it would run again at every connect): publish commands without it",
        );
        r.event(command_event(name, id, Some(&e)));
        r.reply(id, to, &wire::Failure::new(id, state.kind(), &e), false);
    }

    /// Runs a parsed command: `Ok(Some(..))` when it is done (its actions
    /// and result), `Ok(None)` when it goes on in a job.
    fn execute_command(&mut self, cmd: &Command, to: &ReplyTo) -> Result<Option<(Vec<Action>, Value)>, CommandError> {
        let run = match &cmd.kind {
            Kind::Status => return Ok(Some((Vec::new(), self.status_result()))),
            Kind::Start | Kind::Restart => RunState::Live,
            Kind::Stop => RunState::Idle,
            Kind::Configure { patch: p } => {
                patch::check_sections(p)?;
                let mut overlay = self.remote.as_ref().expect("remote").saved.overlay.clone();
                patch::merge_patch(&mut overlay, p);
                self.check_overlay(overlay, Origin::Command { cmd: cmd.clone(), to: to.clone() })?;
                return Ok(None);
            }
            Kind::Snapshot { width } => {
                self.snapshot(cmd, to, *width)?;
                return Ok(None);
            }
        };
        self.machine.accepts(&run_event(&cmd.kind)).map_err(refused)?;
        let r = self.remote.as_mut().expect("remote");
        if r.saved.run == run {
            return self.run_command(cmd).map(Some);
        }
        // Saved before it is done: a reboot then comes back to it.
        let (store, next, cmd, to) = (r.store.clone(), Saved { run, ..r.saved.clone() }, cmd.clone(), to.clone());
        self.jobs.spawn_blocking(to.is_mqtt(), move || {
            let saved = store.save(&next).map(|()| next).map_err(save_error);
            JobDone::Run { cmd, to, saved }
        });
        Ok(None)
    }

    /// `start`, `stop` or `restart` once the run state is saved.
    fn finish_run(&mut self, cmd: &Command, to: &ReplyTo, saved: Result<Saved, CommandError>) -> Vec<Action> {
        let outcome = saved.and_then(|saved| {
            self.remote.as_mut().expect("remote").saved = saved;
            self.run_command(cmd)
        });
        self.finish_command(cmd, to, outcome)
    }

    fn run_command(&mut self, cmd: &Command) -> Result<(Vec<Action>, Value), CommandError> {
        let event = run_event(&cmd.kind);
        // Checked again: the state may have moved while the save ran.
        self.machine.accepts(&event).map_err(refused)?;
        // Already streaming: nothing to do but say how it is going.
        let result = if cmd.kind == Kind::Start && self.session.is_some() { self.status_result() } else { Value::Null };
        Ok((self.machine.step(event), result))
    }

    fn status_result(&self) -> Value {
        let r = self.remote.as_ref().expect("remote");
        let result = wire::StatusResult {
            status: r.status_doc(&self.machine.state),
            extra: wire::StatusExtra {
                live_for_s: self.session.as_ref().map(|s| (s.started.elapsed().as_secs_f64() * 1000.0).round() / 1000.0),
                destinations: self.config.destinations.iter().map(|d| wire::NamedUrl { name: d.name.clone(), url: d.url.to_string() }).collect(),
            },
        };
        serde_json::to_value(result).expect("json")
    }

    /// Checks `overlay` over the file's config, whole (config rules and the
    /// board's limits; a new source or recording folder while live), then
    /// saves it, in a job: [`Self::finish_config`] makes it current. Nothing
    /// changes when any step before the save fails.
    fn check_overlay(&mut self, overlay: Map<String, Value>, origin: Origin) -> Result<(), CommandError> {
        let r = self.remote.as_mut().expect("remote");
        let config = patch::effective(&r.base, &overlay)?;
        let same_source = config.source == self.config.source;
        // Streaming now, or meant to be (autostarted boxes never saved a `start`).
        let live = r.saved.run == RunState::Live || self.machine.state.running();
        // The source the running session captures is not probed again (busy,
        // and a probe of a pipe would steal its data); nor is one a start is opening.
        let capturing = match &self.session {
            Some(s) if same_source => Some(s.plan.format),
            None if same_source && self.work.starting() => Some(crate::session::assumed_format(&config)),
            _ => None,
        };
        // What the running session does now, to decide whether the change can be set live.
        let running = self.session.as_ref().filter(|_| same_source).map(|s| (s.plan.clone(), s.started));
        let (desired, acks) = match &origin {
            Origin::Desired { version } => (Some(*version), true),
            Origin::Command { to, .. } => (None, to.is_mqtt()),
        };
        let (current, board, store, saved) = (self.config.clone(), self.board.clone(), r.store.clone(), r.saved.clone());
        self.jobs.spawn_blocking(acks, move || {
            let result = check_config(config, &current, &board, Check { same_source, live, capturing, running }).and_then(|(config, live)| {
                let changed = config != current;
                let next = Saved {
                    overlay,
                    config_version: saved.config_version + u64::from(changed),
                    desired_version: desired.or(saved.desired_version),
                    ..saved
                };
                store.save(&next).map_err(save_error)?;
                Ok(Box::new(Checked { config, saved: next, changed, live: live.filter(|_| changed) }))
            });
            JobDone::Config { origin, result }
        });
        Ok(())
    }

    /// A checked and saved config change: made current; a running session
    /// takes new bitrates live, and restarts on anything else.
    fn finish_config(&mut self, origin: Origin, result: Result<Box<Checked>, CommandError>) -> Vec<Action> {
        let Checked { config, saved, changed, live } = match result {
            Ok(c) => *c,
            Err(e) => {
                return match origin {
                    Origin::Command { cmd, to } => self.finish_command(&cmd, &to, Err(e)),
                    Origin::Desired { version } => {
                        self.reject_desired(version, &e);
                        Vec::new()
                    }
                };
            }
        };
        // New bitrates only: set on the running encoders, nothing restarts
        // (and there is nothing to roll back to).
        let applied_live = changed && self.machine.state.running() && live.is_some_and(|l| self.apply_live(l));
        let r = self.remote.as_mut().expect("remote");
        if changed && self.machine.state.running() && !applied_live {
            // On trial until it has been live a while: if it fails, the box
            // goes back to the config that was live, by itself.
            self.trial = Some(super::trial::Trial::new(self.config.clone(), r.saved.overlay.clone()));
        }
        r.saved = saved;
        self.config = config;
        // Restart a running stream on it; and a box stuck in `error` (say, on
        // a config this board could not run) tries again if it should be live.
        let retry = matches!(self.machine.state, State::Error { .. }) && r.saved.run == RunState::Live;
        let restart = changed && !applied_live && (self.machine.state.running() || retry);
        let applied = match (applied_live, restart) {
            (true, _) => wire::Applied::Live,
            (false, true) => wire::Applied::Restart,
            (false, false) => wire::Applied::None,
        };
        if changed {
            info!(config_version = r.saved.config_version, applied = ?applied, "remote config applied");
            r.config_event(ConfigEvent::Applied { config_version: r.saved.config_version, applied });
        }
        let actions = if restart { self.machine.step(Event::RestartRequested) } else { Vec::new() };
        match origin {
            Origin::Command { cmd, to } => {
                r.report_config((SyncStatus::Synced, None));
                let result = serde_json::to_value(wire::ConfigureResult { config_version: r.saved.config_version, applied }).expect("json");
                self.finish_command(&cmd, &to, Ok((actions, result)))
            }
            Origin::Desired { version } if actions.is_empty() => {
                r.synced(version);
                actions
            }
            Origin::Desired { version } => {
                r.syncing = Some(version);
                actions
            }
        }
    }

    /// Sets a live change (bitrates, input-loss handling) on the session it was planned against;
    /// false (the caller restarts instead) when that session is gone or an
    /// encoder refused.
    fn apply_live(&mut self, l: LiveChange) -> bool {
        let Some(s) = self.session.as_mut().filter(|s| s.started == l.session) else { return false };
        match s.retarget(&l.changes, l.plan) {
            Ok(()) => true,
            Err(e) => {
                warn!(error = %e, "the change could not be applied live; restarting on it instead");
                false
            }
        }
    }

    /// A `config/desired` version that cannot be applied: remembered (so it
    /// is not retried at every connect) and reported.
    fn reject_desired(&mut self, version: u64, e: &CommandError) {
        let r = self.remote.as_mut().expect("remote");
        warn!(version, code = e.code.as_str(), error = %e, "config/desired rejected");
        r.saved.desired_version = Some(version);
        let (store, saved) = (r.store.clone(), r.saved.clone());
        r.report_config((SyncStatus::Rejected, Some(e)));
        r.config_event(ConfigEvent::Rejected { version: Some(version), error: e.clone() });
        self.jobs.save_later(&store, saved);
    }

    /// `config/desired`: `{"version": N, "config": {...}}`, the whole overlay.
    fn on_desired(&mut self, payload: &[u8]) -> Vec<Action> {
        let r = self.remote.as_mut().expect("remote");
        if payload.is_empty() {
            return Vec::new();
        }
        let parsed = desired::parse(payload);
        let (version, digest) = match &parsed {
            Ok(d) => (Some(d.version), desired::overlay_digest(&d.overlay)),
            Err((v, _)) => (*v, desired::digest(payload)),
        };
        if let Some(v) = version {
            // Shadow semantics: versions only move forward, and a version names one content.
            let last = r.saved.desired_version.map(|l| (l, r.saved.desired_digest.as_deref()));
            match desired::order(last, v, &digest) {
                desired::Order::New => {}
                // The broker redelivers the retained document at every connect.
                desired::Order::Same => return Vec::new(),
                desired::Order::Refused(e) => {
                    warn!(version = v, code = e.code.as_str(), "config/desired refused: not newer than the last one handled");
                    r.report_config((SyncStatus::Rejected, Some(&e)));
                    r.config_event(ConfigEvent::Rejected { version: Some(v), error: e });
                    return Vec::new();
                }
            }
        }
        let desired::Desired { version, overlay } = match parsed {
            Ok(x) => x,
            Err((version, e)) => {
                warn!(code = e.code.as_str(), error = %e, "config/desired refused");
                if version.is_some() {
                    r.saved.desired_version = version;
                    r.saved.desired_digest = Some(digest);
                    let (store, saved) = (r.store.clone(), r.saved.clone());
                    self.jobs.save_later(&store, saved);
                }
                let r = self.remote.as_mut().expect("remote");
                r.report_config((SyncStatus::Rejected, Some(&e)));
                r.config_event(ConfigEvent::Rejected { version, error: e });
                return Vec::new();
            }
        };
        // Saved with the version, whether it is applied or rejected below.
        r.saved.desired_digest = Some(digest);
        info!(version, "config/desired received");
        r.report_config((SyncStatus::Syncing, None));
        // Goes on in `finish_config`.
        if let Err(e) = self.check_overlay(overlay, Origin::Desired { version }) {
            self.reject_desired(version, &e);
        }
        Vec::new()
    }

    /// Encodes the newest frame as JPEG in a job (bounded), publishes it, then replies.
    fn snapshot(&mut self, cmd: &Command, to: &ReplyTo, width: u32) -> Result<(), CommandError> {
        let Some(s) = &self.session else {
            return Err(CommandError::new(ErrorCode::Unavailable, format!("no input while {}", self.machine.state.name())));
        };
        let frame = s.pipeline.last_frame();
        let (cmd, to) = (cmd.clone(), to.clone());
        self.jobs.spawn(to.is_mqtt(), async move {
            let job = tokio::task::spawn_blocking(move || crate::pipeline::snapshot::jpeg(frame, width));
            let result = match tokio::time::timeout(crate::pipeline::snapshot::TIMEOUT, job).await {
                Ok(Ok(Ok(jpeg))) => Ok((jpeg, now_rfc3339())),
                Ok(Ok(Err(e))) => Err(CommandError::new(ErrorCode::Unavailable, e.to_string())),
                _ => Err(CommandError::new(ErrorCode::Unavailable, "the snapshot took too long")),
            };
            JobDone::Snapshot { cmd, to, result }
        });
        Ok(())
    }

    /// Publishes the snapshot's image, then answers with where it went;
    /// over HTTP the image itself is the answer.
    fn finish_snapshot(&mut self, cmd: &Command, to: &ReplyTo, result: Result<(Jpeg, String), CommandError>) -> Vec<Action> {
        let result = match (to, result) {
            (ReplyTo::Local(reply), Ok((jpeg, _))) => {
                let r = self.remote.as_ref().expect("remote");
                if !reply.quiet() {
                    r.event(command_event(cmd.kind.name(), Some(&cmd.id), None));
                }
                reply.send("image/jpeg", Bytes::from(jpeg.bytes));
                return Vec::new();
            }
            (_, result) => result,
        };
        let outcome = result.map(|(jpeg, taken_at)| {
            let r = self.remote.as_ref().expect("remote");
            let topic = r.topics.snapshot();
            let (bytes, width, height) = (jpeg.bytes.len(), jpeg.width, jpeg.height);
            r.publish(Outgoing { topic: topic.clone(), payload: Bytes::from(jpeg.bytes), qos1: false, retain: false, correlation: None, content_type: "image/jpeg" });
            let result = wire::SnapshotResult { topic, bytes, width, height, taken_at };
            (Vec::new(), serde_json::to_value(result).expect("json"))
        });
        self.finish_command(cmd, to, outcome)
    }
}

/// The machine event a run command asks for.
fn run_event(kind: &Kind) -> Event {
    match kind {
        Kind::Stop => Event::StopRequested,
        Kind::Restart => Event::RestartRequested,
        _ => Event::StartRequested,
    }
}

fn refused(e: super::Refusal) -> CommandError {
    CommandError::new(ErrorCode::NotAllowed, e.to_string())
}

fn save_error(e: crate::persist::PersistError) -> CommandError {
    tracing::error!(error = %e, "cannot save remote state");
    CommandError::new(ErrorCode::Internal, format!("cannot save the state: {e}"))
}

/// What a config check needs to know about the box now.
struct Check {
    same_source: bool,
    /// Streaming, or meant to be.
    live: bool,
    /// The format to plan against instead of probing the source.
    capturing: Option<crate::pipeline::plan::SourceFormat>,
    /// The running session's plan and start, when it keeps its source.
    running: Option<(crate::pipeline::plan::Plan, std::time::Instant)>,
}

/// The checks of a config change that may block (device and file probes,
/// the recording folder): on a blocking thread.
fn check_config(config: Config, current: &Config, board: &crate::board::BoardProfile, c: Check) -> Result<(Config, Option<LiveChange>), CommandError> {
    let Check { same_source, live, mut capturing, running } = c;
    if let Some((field, why)) = crate::pipeline::probe::source_missing(&config.source).filter(|_| !same_source && live) {
        // Idle, a device may be plugged in later; live, switching to a
        // missing one would take the stream off the air.
        return Err(CommandError::field(
            ErrorCode::InvalidConfig,
            format!("config.{field}"),
            format!("{why}: a live box keeps its current source (plug it in, or stop the box first)"),
        ));
    }
    if live {
        // What would take the stream off the air is found now, not after
        // the restart: a new file that is not media, a recording folder
        // that cannot be made.
        if !same_source {
            capturing = super::trial::probe_new_file(&config.source)?;
        }
        super::trial::check_recording(&config, current)?;
    }
    let next = crate::session::preflight(&config, board, capturing).map_err(|e| CommandError::field(ErrorCode::InvalidConfig, "config.ladder", e.to_string()))?;
    if !config.has_output() && live {
        // Idle, a box may be configured piece by piece; live, this would
        // take the stream off the air.
        return Err(CommandError::field(
            ErrorCode::InvalidConfig,
            "config.destination",
            "no destination is left and recording is disabled: the live stream would go nowhere (stop it first)",
        ));
    }
    let live_change = running.and_then(|(plan, session)| live_change(&config, current, &plan, next, session));
    Ok((config, live_change))
}

/// A change the running session can take live: the config differs from the
/// current one in rung bitrates and input-loss handling only (what the plan
/// does not hold, such as failover timing, restarts too), and the plans say
/// the running pipeline can take it.
fn live_change(config: &Config, current: &Config, running: &crate::pipeline::plan::Plan, next: crate::pipeline::plan::Plan, session: std::time::Instant) -> Option<LiveChange> {
    use crate::pipeline::diff::{PlanChange, diff};
    let mut aside = config.clone();
    if aside.ladder.rungs.len() == current.ladder.rungs.len() {
        for (r, c) in aside.ladder.rungs.iter_mut().zip(&current.ladder.rungs) {
            r.bitrate_bps = c.bitrate_bps;
        }
    }
    aside.input_loss = current.input_loss.clone();
    if aside != *current {
        return None;
    }
    match diff(running, &next) {
        PlanChange::Live { bitrates, .. } => Some(LiveChange { changes: bitrates, plan: next, session }),
        PlanChange::Restart(why) => {
            info!(%why, "the config change needs a restart");
            None
        }
        PlanChange::Same => None,
    }
}

/// The `command` event: its outcome, with the code when it failed.
fn command_event(name: &str, id: Option<&str>, error: Option<&CommandError>) -> WireEvent {
    WireEvent::Command { name: name.to_string(), id: id.map(str::to_string), ok: error.is_none(), code: error.map(|e| e.code) }
}

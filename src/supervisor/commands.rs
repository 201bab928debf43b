//! The supervisor's side of fleet control: commands become machine events
//! (refused with a typed error when they make no sense now); config changes,
//! by `configure` or `config/desired`, are validated whole, saved
//! atomically, then applied. Replies wait for the actions they started.

use super::remote::{error_json, failure, now_rfc3339, Awaiting, ReplyTo};
use super::{Action, Event, State, Supervisor};
use crate::control::command::{self, Command, Kind};
use crate::control::error::{CommandError, ErrorCode};
use crate::control::{desired, patch};
use crate::mqtt::{Inbound, Incoming, Outgoing, Protocol};
use std::hash::{Hash, Hasher};
use crate::persist::{RunState, Saved};
use bytes::Bytes;
use serde_json::{json, Map, Value};
use std::time::SystemTime;
use tracing::{info, warn};

impl Supervisor {
    pub(super) async fn on_inbound(&mut self, msg: Inbound) -> Vec<Action> {
        let message = matches!(msg, Inbound::Message(_));
        let actions = self.on_inbound_item(msg).await;
        if message && let Some(r) = &self.remote {
            // Its replies are queued: the broker may have it acknowledged (and send the next).
            r.mqtt.handled();
        }
        actions
    }

    async fn on_inbound_item(&mut self, msg: Inbound) -> Vec<Action> {
        let Some(r) = &mut self.remote else { return Vec::new() };
        match msg {
            Inbound::Up { protocol, outage, dropped, resumed } => {
                r.protocol = Some(protocol);
                r.publish(Outgoing::json(r.topics.status(), &r.status_doc(&self.machine.state), true, true));
                r.publish(Outgoing::json(r.topics.reported(), &r.reported, true, true));
                if let Some(outage) = outage {
                    r.event("mqtt_reconnected", json!({"outage_s": (outage.as_secs_f64() * 1000.0).round() / 1000.0, "messages_dropped": dropped, "session_resumed": resumed, "state": self.machine.state.name()}));
                }
                Vec::new()
            }
            Inbound::Down { .. } => Vec::new(),
            Inbound::Message(m) if m.topic == r.topics.desired() => self.on_desired(&m.payload),
            Inbound::Message(m) => match r.topics.command_name(&m.topic).map(str::to_string) {
                Some(name) => self.on_command(&name, m).await,
                None => Vec::new(),
            },
        }
    }

    async fn on_command(&mut self, name: &str, m: Incoming) -> Vec<Action> {
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
        let to = ReplyTo { topic: r.topics.reply_to(m.response_topic.as_deref(), id.as_deref()), correlation: m.correlation.clone() };
        if m.retain {
            self.refuse_retained(name, &m, id.as_deref(), &to);
            return Vec::new();
        }
        let cmd = match parsed {
            Ok(c) => c,
            Err(e) => {
                warn!(command = name, code = e.code.as_str(), field = e.field.as_deref(), "command refused");
                r.event("command", json!({"name": name, "id": id, "ok": false, "code": e.code}));
                r.reply(id.as_deref(), &to, failure_with_id(id.as_deref(), &self.machine.state, &e), false);
                return Vec::new();
            }
        };
        if let Some(first) = r.replies.get(&cmd.id) {
            info!(command = name, id = %cmd.id, "repeated command id: sending the first reply again");
            let first = Bytes::copy_from_slice(first);
            r.send_reply(&to, first);
            return Vec::new();
        }
        info!(command = name, id = %cmd.id, "command");
        match self.execute_command(&cmd, &to).await {
            Ok(actions) => actions,
            Err(e) => {
                let r = self.remote.as_mut().expect("remote");
                warn!(command = name, id = %cmd.id, code = e.code.as_str(), error = %e, "command failed");
                r.event("command", json!({"name": name, "id": cmd.id, "ok": false, "code": e.code}));
                let body = failure(&cmd.id, &self.machine.state, &e);
                r.reply(Some(&cmd.id), &to, body, true);
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
        r.event("command", json!({"name": name, "id": id, "ok": false, "code": e.code}));
        r.reply(id, to, failure_with_id(id, &state, &e), false);
    }

    /// Runs a parsed command. `Ok(actions)`: the reply is sent when they are
    /// done (or now, for commands with none).
    async fn execute_command(&mut self, cmd: &Command, to: &ReplyTo) -> Result<Vec<Action>, CommandError> {
        let refused = |e: super::Refusal| CommandError::new(ErrorCode::NotAllowed, e.to_string());
        let (actions, result) = match &cmd.kind {
            Kind::Status => (Vec::new(), self.status_result()),
            Kind::Start => {
                self.machine.accepts(&Event::StartRequested).map_err(refused)?;
                self.set_desired_run(RunState::Live)?;
                // Already streaming: nothing to do but say how it is going.
                let result = if self.session.is_some() { self.status_result() } else { Value::Null };
                (self.machine.step(Event::StartRequested), result)
            }
            Kind::Stop => {
                self.machine.accepts(&Event::StopRequested).map_err(refused)?;
                self.set_desired_run(RunState::Idle)?;
                (self.machine.step(Event::StopRequested), Value::Null)
            }
            Kind::Restart => {
                self.machine.accepts(&Event::RestartRequested).map_err(refused)?;
                self.set_desired_run(RunState::Live)?;
                (self.machine.step(Event::RestartRequested), Value::Null)
            }
            Kind::Configure { patch: p } => {
                patch::check_sections(p)?;
                let mut overlay = self.remote.as_ref().expect("remote").saved.overlay.clone();
                patch::merge_patch(&mut overlay, p);
                let actions = self.apply_overlay(overlay, None)?;
                let r = self.remote.as_mut().expect("remote");
                r.report_config(("synced", None));
                (actions, json!({"config_version": r.saved.config_version}))
            }
            Kind::Snapshot { width } => (Vec::new(), self.snapshot(*width).await?),
        };
        let r = self.remote.as_mut().expect("remote");
        r.event("command", json!({"name": cmd.kind.name(), "id": cmd.id, "ok": true}));
        r.awaiting.push(Awaiting { id: cmd.id.clone(), name: cmd.kind.name(), to: to.clone(), result });
        if actions.is_empty() {
            r.settle(&self.machine.state);
        }
        Ok(actions)
    }

    fn status_result(&self) -> Value {
        let r = self.remote.as_ref().expect("remote");
        let mut v = r.status_doc(&self.machine.state);
        v["live_for_s"] = json!(self.session.as_ref().map(|s| (s.started.elapsed().as_secs_f64() * 1000.0).round() / 1000.0));
        v["destinations"] = json!(self.config.destinations.iter().map(|d| json!({"name": d.name, "url": d.url.to_string()})).collect::<Vec<_>>());
        v
    }

    fn set_desired_run(&mut self, run: RunState) -> Result<(), CommandError> {
        let r = self.remote.as_mut().expect("remote");
        if r.saved.run == run {
            return Ok(());
        }
        let next = Saved { run, ..r.saved.clone() };
        r.save(next)
    }

    /// Validates `overlay` over the file's config, whole (config rules and the
    /// board's limits), saves it, makes it current and restarts a running
    /// session on it. Nothing changes when any step before the save fails.
    fn apply_overlay(&mut self, overlay: Map<String, Value>, desired: Option<u64>) -> Result<Vec<Action>, CommandError> {
        let r = self.remote.as_mut().expect("remote");
        let config = patch::effective(&r.base, &overlay)?;
        let same_source = config.source == self.config.source;
        // Streaming now, or meant to be (autostarted boxes never saved a `start`).
        let live = r.saved.run == RunState::Live || self.machine.state.running();
        if let Some((field, why)) = crate::pipeline::probe::source_missing(&config.source).filter(|_| !same_source && live) {
            // Idle, a device may be plugged in later; live, switching to a
            // missing one would take the stream off the air.
            return Err(CommandError::field(
                ErrorCode::InvalidConfig,
                format!("config.{field}"),
                format!("{why}: a live box keeps its current source (plug it in, or stop the box first)"),
            ));
        }
        let mut capturing = self.session.as_ref().filter(|_| same_source).map(|s| s.plan.format);
        if live {
            // What would take the stream off the air is found now, not after
            // the restart: a new file that is not media, a recording folder
            // that cannot be made.
            if !same_source {
                capturing = super::trial::probe_new_file(&config.source)?;
            }
            super::trial::check_recording(&config, &self.config)?;
        }
        crate::session::preflight(&config, &self.board, capturing).map_err(|e| CommandError::field(ErrorCode::InvalidConfig, "config.ladder", e.to_string()))?;
        if !config.has_output() && live {
            // Idle, a box may be configured piece by piece; live, this would
            // take the stream off the air.
            return Err(CommandError::field(
                ErrorCode::InvalidConfig,
                "config.destination",
                "no destination is left and recording is disabled: the live stream would go nowhere (stop it first)",
            ));
        }
        let changed = config != self.config;
        if changed && self.machine.state.running() {
            // On trial until it has been live a while: if it fails, the box
            // goes back to the config that was live, by itself.
            self.trial = Some(super::trial::Trial::new(self.config.clone(), r.saved.overlay.clone()));
        }
        let next = Saved {
            overlay,
            config_version: r.saved.config_version + u64::from(changed),
            desired_version: desired.or(r.saved.desired_version),
            ..r.saved.clone()
        };
        r.save(next)?;
        r.recording_dir = config.recording.as_ref().map(|x| x.dir.clone());
        self.config = config;
        if changed {
            info!(config_version = r.saved.config_version, "remote config applied");
            r.event("config", json!({"status": "applied", "config_version": r.saved.config_version}));
        }
        // Restart a running stream on it; and a box stuck in `error` (say, on
        // a config this board could not run) tries again if it should be live.
        let retry = matches!(self.machine.state, State::Error { .. }) && r.saved.run == RunState::Live;
        Ok(if changed && (self.machine.state.running() || retry) { self.machine.step(Event::RestartRequested) } else { Vec::new() })
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
                    r.report_config(("rejected", Some(&e)));
                    r.event("config", json!({"status": "rejected", "version": v, "error": error_json(&e)}));
                    return Vec::new();
                }
            }
        }
        let desired::Desired { version, overlay } = match parsed {
            Ok(x) => x,
            Err((version, e)) => {
                warn!(code = e.code.as_str(), error = %e, "config/desired refused");
                if let Some(v) = version {
                    let next = Saved { desired_version: Some(v), desired_digest: Some(digest), ..r.saved.clone() };
                    let _ = r.save(next);
                }
                r.report_config(("rejected", Some(&e)));
                r.event("config", json!({"status": "rejected", "version": version, "error": error_json(&e)}));
                return Vec::new();
            }
        };
        // Saved with the version, whether it is applied or rejected below.
        r.saved.desired_digest = Some(digest);
        info!(version, "config/desired received");
        r.report_config(("syncing", None));
        match self.apply_overlay(overlay, Some(version)) {
            Ok(actions) => {
                let r = self.remote.as_mut().expect("remote");
                r.syncing = Some(version);
                if actions.is_empty() {
                    r.settle(&self.machine.state);
                }
                actions
            }
            Err(e) => {
                let r = self.remote.as_mut().expect("remote");
                warn!(version, code = e.code.as_str(), error = %e, "config/desired rejected");
                let next = Saved { desired_version: Some(version), ..r.saved.clone() };
                let _ = r.save(next);
                r.report_config(("rejected", Some(&e)));
                r.event("config", json!({"status": "rejected", "version": version, "error": error_json(&e)}));
                Vec::new()
            }
        }
    }

    async fn snapshot(&mut self, width: u32) -> Result<Value, CommandError> {
        let Some(s) = &self.session else {
            return Err(CommandError::new(ErrorCode::Unavailable, format!("no input while {}", self.machine.state.name())));
        };
        let frame = s.pipeline.last_frame();
        let job = tokio::task::spawn_blocking(move || crate::pipeline::snapshot::jpeg(frame, width));
        let jpeg = match tokio::time::timeout(crate::pipeline::snapshot::TIMEOUT, job).await {
            Ok(Ok(Ok(j))) => j,
            Ok(Ok(Err(e))) => return Err(CommandError::new(ErrorCode::Unavailable, e.to_string())),
            _ => return Err(CommandError::new(ErrorCode::Unavailable, "the snapshot took too long")),
        };
        let r = self.remote.as_ref().expect("remote");
        let topic = r.topics.snapshot();
        let bytes = jpeg.bytes.len();
        r.publish(Outgoing { topic: topic.clone(), payload: Bytes::from(jpeg.bytes), qos1: false, retain: false, correlation: None, content_type: "image/jpeg" });
        Ok(json!({"topic": topic, "bytes": bytes, "width": jpeg.width, "height": jpeg.height, "taken_at": now_rfc3339()}))
    }

    pub(super) fn publish_telemetry(&mut self) {
        let Some(r) = &mut self.remote else { return };
        let disk = r.recording_dir.clone().unwrap_or_else(|| self.config.state_dir.clone());
        let report = r.reporter.report(&self.machine.state, self.session.as_ref(), Some(&disk));
        r.publish(Outgoing::json(r.topics.telemetry(), &report, false, false));
    }
}

fn failure_with_id(id: Option<&str>, state: &State, e: &CommandError) -> Value {
    json!({"id": id, "ok": false, "state": state.name(), "error": error_json(e)})
}

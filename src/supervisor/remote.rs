//! Fleet control: the supervisor's MQTT side. Commands become machine events
//! (refused with a typed error when they make no sense now), config changes
//! are validated whole, saved atomically, then applied; replies, status,
//! events, `config/reported` and telemetry go out through the MQTT actor.

use super::{Action, Event, State, Supervisor};
use crate::board::BoardProfile;
use crate::config::Config;
use crate::control::command::{self, Command, Kind};
use crate::control::dedup::Replies;
use crate::control::error::{CommandError, ErrorCode};
use crate::control::{desired, patch};
use crate::control::topics::Topics;
use crate::exit;
use crate::mqtt::{self, Inbound, Incoming, MqttHandle, Outgoing, Protocol};
use crate::persist::{RunState, Saved, Store};
use crate::telemetry::report::Reporter;
use bytes::Bytes;
use serde_json::{json, Map, Value};
use std::time::{Duration, SystemTime};
use tokio::sync::mpsc;
use tracing::{error, info, warn};

/// Where a reply goes: the MQTT 5 response topic, else `reply/<id>`.
#[derive(Clone, Debug)]
struct ReplyTo {
    topic: String,
    correlation: Option<Bytes>,
}

/// A command accepted whose reply waits for the actions it started.
struct Awaiting {
    id: String,
    name: &'static str,
    to: ReplyTo,
    result: Value,
}

pub(super) struct Remote {
    mqtt: MqttHandle,
    inbound: mpsc::Receiver<Inbound>,
    topics: Topics,
    store: Store,
    saved: Saved,
    base: toml::Table,
    replies: Replies,
    reporter: Reporter,
    every: Duration,
    device_id: String,
    board: String,
    started_at: String,
    protocol: Option<Protocol>,
    awaiting: Vec<Awaiting>,
    /// A `config/desired` version being applied: reported `synced` once settled.
    syncing: Option<u64>,
    /// The last `config/reported` document (re-sent after a reconnect).
    reported: Value,
    recording_dir: Option<std::path::PathBuf>,
}

const REPLY_MEMORY: usize = 256;

impl Remote {
    /// Loads what the dashboard last asked for, lays it over the file's
    /// config and connects. Returns the config to run and whether to start.
    pub(super) fn open(base: toml::Table, file_config: Config, board: &BoardProfile) -> Result<(Remote, Config, bool), i32> {
        let m = file_config.mqtt.clone().expect("remote needs [mqtt]");
        let store = Store::new(&file_config.state_dir);
        let (saved, known) = match store.load() {
            Ok(Some(s)) => (s, true),
            Ok(None) => (Saved::default(), false),
            Err(e) => {
                error!(error = %e, "saved remote state unusable; starting from the config file");
                (Saved::default(), false)
            }
        };
        let mut reported_error = None;
        let config = if saved.overlay.is_empty() {
            file_config.clone()
        } else {
            match patch::effective(&base, &saved.overlay) {
                Ok(c) => c,
                Err(e) => {
                    error!(error = %e, "the saved remote config no longer validates over the config file; running the file's");
                    reported_error = Some(e);
                    file_config.clone()
                }
            }
        };
        let start = if known { saved.run == RunState::Live } else { m.autostart };
        let topics = Topics::new(&m.prefix);
        let started_at = humantime::format_rfc3339_seconds(SystemTime::now()).to_string();
        let will = json!({
            "online": false, "state": "offline", "device_id": file_config.device_id,
            "firmware": env!("CARGO_PKG_VERSION"), "board": board.name, "started_at": started_at,
        });
        let (tx, inbound) = mpsc::channel(mqtt::INBOUND_QUEUE);
        let handle = match mqtt::spawn(&m, &topics, serde_json::to_vec(&will).expect("json"), tx) {
            Ok(h) => h,
            Err(e) => {
                eprintln!("config error: {e}");
                error!(error = %e, "cannot set up MQTT");
                return Err(exit::CONFIG);
            }
        };
        let mut remote = Remote {
            mqtt: handle,
            inbound,
            topics,
            store,
            saved,
            base,
            replies: Replies::new(REPLY_MEMORY),
            reporter: Reporter::default(),
            every: m.telemetry,
            device_id: file_config.device_id.clone(),
            board: board.name.clone(),
            started_at,
            protocol: None,
            awaiting: Vec::new(),
            syncing: None,
            reported: Value::Null,
            recording_dir: config.recording.as_ref().map(|r| r.dir.clone()),
        };
        remote.report_config(match &reported_error {
            Some(e) => ("rejected", Some(e)),
            None => ("synced", None),
        });
        Ok((remote, config, start))
    }

    pub(super) fn telemetry_every(&self) -> Duration {
        self.every
    }

    /// Graceful goodbye: `status` offline (retained), then disconnect.
    pub(super) async fn close(self, state: &State) {
        let mut status = self.status_doc(state);
        status["online"] = json!(false);
        status["state"] = json!("offline");
        let last = vec![Outgoing::json(self.topics.status(), &status, true, true)];
        self.mqtt.close(last).await;
    }

    fn publish(&self, m: Outgoing) {
        if !self.mqtt.publish(m) {
            warn!("MQTT queue full: a message was dropped");
        }
    }

    fn status_doc(&self, state: &State) -> Value {
        json!({
            "online": true,
            "state": state.name(),
            "reason": state.reason(),
            "device_id": self.device_id,
            "firmware": env!("CARGO_PKG_VERSION"),
            "board": self.board,
            "started_at": self.started_at,
            "desired": self.saved.run,
            "config_version": self.saved.config_version,
            "mqtt_protocol": self.protocol.map(Protocol::as_str),
        })
    }

    fn event(&self, kind: &str, mut body: Value) {
        body["type"] = json!(kind);
        body["ts"] = json!(now_rfc3339());
        self.publish(Outgoing::json(self.topics.events(), &body, true, false));
    }

    pub(super) fn state_changed(&mut self, previous: &State, state: &State) {
        self.event("state", json!({"state": state.name(), "previous": previous.name(), "reason": state.reason()}));
        self.publish(Outgoing::json(self.topics.status(), &self.status_doc(state), true, true));
    }

    fn report_config(&mut self, (status, error): (&str, Option<&CommandError>)) {
        self.reported = json!({
            "version": self.saved.desired_version,
            "config_version": self.saved.config_version,
            "status": status,
            "config": Value::Object(patch::redacted(&self.saved.overlay)),
            "error": error.map(error_json),
            "updated_at": now_rfc3339(),
        });
        self.publish(Outgoing::json(self.topics.reported(), &self.reported, true, true));
    }

    fn reply(&mut self, id: Option<&str>, to: &ReplyTo, body: Value, remember: bool) {
        let bytes = serde_json::to_vec(&body).expect("json");
        if let (true, Some(id)) = (remember, id) {
            self.replies.insert(id, bytes.clone());
        }
        self.send_reply(to, Bytes::from(bytes));
    }

    fn send_reply(&self, to: &ReplyTo, payload: Bytes) {
        self.publish(Outgoing { topic: to.topic.clone(), payload, qos1: true, retain: false, correlation: to.correlation.clone(), content_type: "application/json" });
    }

    /// Called when the actions are done: answers the commands that waited.
    pub(super) fn settle(&mut self, state: &State) {
        for a in std::mem::take(&mut self.awaiting) {
            let body = match state {
                State::Error { reason } if a.name != "stop" && a.name != "configure" => failure(
                    &a.id,
                    state,
                    &CommandError::new(ErrorCode::StartFailed, reason.clone()),
                ),
                _ => success(&a.id, state, a.result),
            };
            self.reply(Some(&a.id), &a.to, body, true);
        }
        if let Some(v) = self.syncing.take() {
            info!(version = v, "desired config applied");
            self.report_config(("synced", None));
            self.event("config", json!({"status": "synced", "version": v, "config_version": self.saved.config_version}));
        }
    }

    fn save(&mut self, next: Saved) -> Result<(), CommandError> {
        self.store.save(&next).map_err(|e| {
            error!(error = %e, "cannot save remote state");
            CommandError::new(ErrorCode::Internal, format!("cannot save the state: {e}"))
        })?;
        self.saved = next;
        Ok(())
    }
}

pub(super) async fn next_inbound(remote: &mut Option<Remote>) -> Inbound {
    match remote {
        Some(r) => match r.inbound.recv().await {
            Some(m) => m,
            None => std::future::pending().await,
        },
        None => std::future::pending().await,
    }
}

fn now_rfc3339() -> String {
    humantime::format_rfc3339_millis(SystemTime::now()).to_string()
}

fn error_json(e: &CommandError) -> Value {
    serde_json::to_value(e).expect("json")
}

fn success(id: &str, state: &State, result: Value) -> Value {
    json!({"id": id, "ok": true, "state": state.name(), "result": result})
}

fn failure(id: &str, state: &State, e: &CommandError) -> Value {
    json!({"id": id, "ok": false, "state": state.name(), "error": error_json(e)})
}

impl Supervisor {
    pub(super) async fn on_inbound(&mut self, msg: Inbound) -> Vec<Action> {
        let Some(r) = &mut self.remote else { return Vec::new() };
        match msg {
            Inbound::Up { protocol, outage, dropped } => {
                r.protocol = Some(protocol);
                r.publish(Outgoing::json(r.topics.status(), &r.status_doc(&self.machine.state), true, true));
                r.publish(Outgoing::json(r.topics.reported(), &r.reported, true, true));
                if let Some(outage) = outage {
                    r.event("mqtt_reconnected", json!({"outage_s": outage.as_secs_f64(), "messages_dropped": dropped, "state": self.machine.state.name()}));
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
        let parsed = command::parse(name, &m.payload, SystemTime::now());
        let id = match &parsed {
            Ok(c) => Some(c.id.clone()),
            Err(e) => e.id.clone(),
        };
        let to = ReplyTo {
            topic: m.response_topic.clone().unwrap_or_else(|| r.topics.reply(id.as_deref())),
            correlation: m.correlation.clone(),
        };
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

    /// Runs a parsed command. `Ok(actions)`: the reply is sent when they are
    /// done (or now, for commands with none).
    async fn execute_command(&mut self, cmd: &Command, to: &ReplyTo) -> Result<Vec<Action>, CommandError> {
        let refused = |e: super::Refusal| CommandError::new(ErrorCode::NotAllowed, e.to_string());
        let (actions, result) = match &cmd.kind {
            Kind::Status => (Vec::new(), self.status_result()),
            Kind::Start => {
                self.machine.accepts(&Event::StartRequested).map_err(refused)?;
                self.set_desired_run(RunState::Live)?;
                (self.machine.step(Event::StartRequested), Value::Null)
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
        v["live_for_s"] = json!(self.session.as_ref().map(|s| s.started.elapsed().as_secs_f64()));
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
        crate::session::preflight(&config, &self.board).map_err(|e| CommandError::field(ErrorCode::InvalidConfig, "config.ladder", e.to_string()))?;
        let changed = config != self.config;
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
        let desired::Desired { version, overlay } = match desired::parse(payload) {
            Ok(x) => x,
            Err((version, e)) => {
                warn!(code = e.code.as_str(), error = %e, "config/desired refused");
                if let Some(v) = version {
                    let next = Saved { desired_version: Some(v), ..r.saved.clone() };
                    let _ = r.save(next);
                }
                r.report_config(("rejected", Some(&e)));
                r.event("config", json!({"status": "rejected", "version": version, "error": error_json(&e)}));
                return Vec::new();
            }
        };
        if r.saved.desired_version == Some(version) {
            return Vec::new();
        }
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

//! Fleet control, the device's voice: the MQTT actor's handle and what goes
//! out through it (status and its Last Will, events, `config/reported`,
//! replies remembered by id), plus the saved remote state. Commands are
//! executed in `commands.rs`.

use super::State;
use crate::board::BoardProfile;
use crate::config::Config;
use crate::control::dedup::Replies;
use crate::control::error::{CommandError, ErrorCode};
use crate::control::patch;
use crate::control::topics::Topics;
use crate::exit;
use crate::mqtt::{self, Inbound, MqttHandle, Outgoing, Protocol};
use crate::persist::{RunState, Saved, Store};
use crate::telemetry::report::Reporter;
use bytes::Bytes;
use serde_json::{json, Value};
use std::collections::HashSet;
use std::time::{Duration, SystemTime};
use tokio::sync::mpsc;
use tracing::{error, info, warn};

/// Where a reply goes: the MQTT 5 response topic, else `reply/<id>`.
#[derive(Clone, Debug)]
pub(super) struct ReplyTo {
    pub(super) topic: String,
    pub(super) correlation: Option<Bytes>,
}

/// A command accepted whose reply waits for the actions it started.
pub(super) struct Awaiting {
    pub(super) id: String,
    pub(super) name: &'static str,
    pub(super) to: ReplyTo,
    pub(super) result: Value,
}

pub(super) struct Remote {
    pub(super) mqtt: MqttHandle,
    pub(super) inbound: mpsc::Receiver<Inbound>,
    pub(super) topics: Topics,
    pub(super) store: Store,
    pub(super) saved: Saved,
    pub(super) base: toml::Table,
    pub(super) replies: Replies,
    pub(super) reporter: Reporter,
    pub(super) every: Duration,
    pub(super) device_id: String,
    pub(super) board: String,
    pub(super) started_at: String,
    pub(super) protocol: Option<Protocol>,
    pub(super) awaiting: Vec<Awaiting>,
    /// A `config/desired` version being applied: reported `synced` once settled.
    pub(super) syncing: Option<u64>,
    /// The last `config/reported` document (re-sent after a reconnect).
    pub(super) reported: Value,
    pub(super) recording_dir: Option<std::path::PathBuf>,
    /// `cmd/...` topics whose retained command the box removed from the
    /// broker: under 3.1.1 (no No Local) the empty message comes back.
    pub(super) clearing: HashSet<String>,
    /// Retained commands already refused (topic and payload, hashed), so
    /// one that the broker keeps delivering is answered once.
    pub(super) retained_refused: HashSet<u64>,
    /// The input as the status shows it (`None` without a session).
    pub(super) input: Option<crate::pipeline::stats::InputSignal>,
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
            clearing: HashSet::new(),
            retained_refused: HashSet::new(),
            input: None,
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

    pub(super) fn publish(&self, m: Outgoing) {
        if !self.mqtt.publish(m) {
            warn!("MQTT queue full: a message was dropped");
        }
    }

    pub(super) fn status_doc(&self, state: &State) -> Value {
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
            "input": self.input.as_ref().map(super::input_health::input_json),
        })
    }

    /// The input was lost or came back, or the slate went on: an event
    /// (`input_lost`, `input_back`) and the status again.
    pub(super) fn input_changed(&mut self, state: &State, input: Option<crate::pipeline::stats::InputSignal>) {
        let was = std::mem::replace(&mut self.input, input);
        match (was.map(|i| i.signal), input) {
            (Some(true), Some(i)) if !i.signal => self.event("input_lost", super::input_health::input_json(&i)),
            (Some(false), Some(i)) if i.signal => self.event("input_back", json!({"lost_since": was.and_then(|w| w.since).map(|t| humantime::format_rfc3339_millis(t).to_string())})),
            _ => {}
        }
        self.publish(Outgoing::json(self.topics.status(), &self.status_doc(state), true, true));
    }

    pub(super) fn event(&self, kind: &str, mut body: Value) {
        body["type"] = json!(kind);
        body["ts"] = json!(now_rfc3339());
        self.publish(Outgoing::json(self.topics.events(), &body, true, false));
    }

    pub(super) fn state_changed(&mut self, previous: &State, state: &State) {
        self.event("state", json!({"state": state.name(), "previous": previous.name(), "reason": state.reason()}));
        self.publish(Outgoing::json(self.topics.status(), &self.status_doc(state), true, true));
    }

    pub(super) fn report_config(&mut self, (status, error): (&str, Option<&CommandError>)) {
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

    pub(super) fn reply(&mut self, id: Option<&str>, to: &ReplyTo, body: Value, remember: bool) {
        let bytes = serde_json::to_vec(&body).expect("json");
        if let (true, Some(id)) = (remember, id) {
            self.replies.insert(id, bytes.clone());
        }
        self.send_reply(to, Bytes::from(bytes));
    }

    pub(super) fn send_reply(&self, to: &ReplyTo, payload: Bytes) {
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

    pub(super) fn save(&mut self, next: Saved) -> Result<(), CommandError> {
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

pub(super) fn now_rfc3339() -> String {
    humantime::format_rfc3339_millis(SystemTime::now()).to_string()
}

pub(super) fn error_json(e: &CommandError) -> Value {
    serde_json::to_value(e).expect("json")
}

pub(super) fn success(id: &str, state: &State, result: Value) -> Value {
    json!({"id": id, "ok": true, "state": state.name(), "result": result})
}

pub(super) fn failure(id: &str, state: &State, e: &CommandError) -> Value {
    json!({"id": id, "ok": false, "state": state.name(), "error": error_json(e)})
}


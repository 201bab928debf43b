//! Remote control, the device's voice: the MQTT actor's handle (under
//! `[mqtt]`) and what goes out through it (status and its Last Will, events,
//! `config/reported`, replies remembered by id), the local HTTP API's
//! command channel and its replies, plus the saved remote state. Commands
//! are executed in `commands.rs`, whichever way they came.

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
use crate::status::wire::{self, ConfigEvent, Event, SyncStatus};
use crate::status::{Latest, StateName};
use bytes::Bytes;
use serde::Serialize;
use serde_json::Value;
use std::collections::HashSet;
use std::time::{Duration, SystemTime};
use crate::control::local::{LocalCommand, LocalReply};
use std::sync::Arc;
use tokio::sync::{mpsc, watch};
use tracing::{error, info, warn};

/// Where a reply goes: the MQTT 5 response topic, else `reply/<id>`; or
/// back to the HTTP request that brought the command.
#[derive(Clone, Debug)]
pub(super) enum ReplyTo {
    Mqtt { topic: String, correlation: Option<Bytes> },
    Local(LocalReply),
}

impl ReplyTo {
    /// The command came over MQTT: its message is acknowledged to the broker once handled.
    pub(super) fn is_mqtt(&self) -> bool {
        matches!(self, ReplyTo::Mqtt { .. })
    }

    /// A routine local request (the page's thumbnail): no `command` event, no info log line.
    pub(super) fn is_quiet(&self) -> bool {
        matches!(self, ReplyTo::Local(r) if r.quiet())
    }
}

/// A command accepted whose reply waits for the actions it started.
pub(super) struct Awaiting {
    pub(super) id: String,
    pub(super) name: &'static str,
    pub(super) to: ReplyTo,
    pub(super) result: Value,
}

pub(super) struct Remote {
    /// `None` without `[mqtt]`: what would be published is dropped.
    pub(super) mqtt: Option<MqttHandle>,
    /// From the MQTT actor (closed without `[mqtt]`).
    pub(super) inbound: mpsc::Receiver<Inbound>,
    /// From the local HTTP API (closed without `[http]`).
    pub(super) local: mpsc::Receiver<LocalCommand>,
    /// The `status` document as last published, for the HTTP API.
    pub(super) status_out: watch::Sender<Option<Arc<wire::Status>>>,
    pub(super) topics: Topics,
    pub(super) store: Store,
    pub(super) saved: Saved,
    pub(super) base: toml::Table,
    pub(super) replies: Replies,
    /// How often telemetry goes out (and the status snapshot is taken).
    pub(super) every: Duration,
    pub(super) device_id: String,
    pub(super) board: String,
    pub(super) started_at: String,
    pub(super) protocol: Option<Protocol>,
    pub(super) awaiting: Vec<Awaiting>,
    /// A `config/desired` version being applied: reported `synced` once settled.
    pub(super) syncing: Option<u64>,
    /// The last `config/reported` document (re-sent after a reconnect).
    pub(super) reported: Option<wire::Reported>,
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
    /// Loads what the dashboard (or the local API) last asked for, lays it
    /// over the file's config and, under `[mqtt]`, connects. Returns the
    /// config to run and whether to start.
    pub(super) fn open(base: toml::Table, file_config: Config, board: &BoardProfile, local: mpsc::Receiver<LocalCommand>) -> Result<(Remote, Config, bool), i32> {
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
        let m = file_config.mqtt.as_ref();
        // Standalone, a box streams from boot unless it was stopped (over HTTP) and told to stay so.
        let start = if known { saved.run == RunState::Live } else { m.is_none_or(|m| m.autostart) };
        let topics = Topics::new(&m.map_or_else(|| format!("fieldcast/{}", file_config.device_id), |m| m.prefix.clone()));
        let started_at = humantime::format_rfc3339_seconds(SystemTime::now()).to_string();
        let will = offline(&file_config.device_id, &board.name, &started_at);
        let (tx, inbound) = mpsc::channel(mqtt::INBOUND_QUEUE);
        let handle = match m.map(|m| mqtt::spawn(m, &topics, serde_json::to_vec(&will).expect("json"), tx)) {
            None => None,
            Some(Ok(h)) => Some(h),
            Some(Err(e)) => {
                eprintln!("config error: {e}");
                error!(error = %e, "cannot set up MQTT");
                return Err(exit::CONFIG);
            }
        };
        let mut remote = Remote {
            mqtt: handle,
            inbound,
            local,
            status_out: watch::channel(None).0,
            topics,
            store,
            saved,
            base,
            replies: Replies::new(REPLY_MEMORY),
            every: m.map_or(super::STATUS_EVERY, |m| m.telemetry),
            device_id: file_config.device_id.clone(),
            board: board.name.clone(),
            started_at,
            protocol: None,
            awaiting: Vec::new(),
            syncing: None,
            reported: None,
            clearing: HashSet::new(),
            retained_refused: HashSet::new(),
            input: None,
        };
        // Published over MQTT once connected; the HTTP API has it at once.
        remote.status_out.send_replace(Some(Arc::new(remote.status_doc(&State::Idle))));
        remote.report_config(match &reported_error {
            Some(e) => (SyncStatus::Rejected, Some(e)),
            None => (SyncStatus::Synced, None),
        });
        Ok((remote, config, start))
    }

    pub(super) fn telemetry_every(&self) -> Duration {
        self.every
    }

    /// Graceful goodbye: `status` offline (retained, as the Last Will
    /// says it), then disconnect.
    pub(super) async fn close(self) {
        let status = offline(&self.device_id, &self.board, &self.started_at);
        let last = vec![Outgoing::json(self.topics.status(), &status, true, true)];
        if let Some(m) = self.mqtt {
            m.close(last).await;
        }
    }

    /// The `status` document as the HTTP API serves it (the one MQTT publishes).
    pub(super) fn status_watch(&self) -> watch::Receiver<Option<Arc<wire::Status>>> {
        self.status_out.subscribe()
    }

    /// Publishes `status` (retained) and hands it to the HTTP API.
    pub(super) fn publish_status(&self, state: &State) {
        let doc = self.status_doc(state);
        self.publish(Outgoing::json(self.topics.status(), &doc, true, true));
        self.status_out.send_replace(Some(Arc::new(doc)));
    }

    /// Under `[mqtt]`: says the oldest MQTT message has been handled.
    pub(super) fn handled(&self) {
        if let Some(m) = &self.mqtt {
            m.handled();
        }
    }

    /// Publishes every new status snapshot as `telemetry`, beside the loop.
    pub(super) fn spawn_telemetry(&self, mut latest: Latest) {
        let Some(mqtt) = &self.mqtt else { return };
        let (publisher, topic) = (mqtt.publisher(), self.topics.telemetry());
        tokio::spawn(async move {
            while latest.changed().await.is_ok() {
                let Some(snapshot) = latest.borrow_and_update().clone() else { continue };
                if !publisher.publish(Outgoing::json(topic.clone(), &snapshot.telemetry(), false, false)) {
                    return;
                }
            }
        });
    }

    pub(super) fn publish(&self, m: Outgoing) {
        let Some(mqtt) = &self.mqtt else { return };
        if !mqtt.publish(m) {
            warn!("MQTT queue full: a message was dropped");
        }
    }

    pub(super) fn status_doc(&self, state: &State) -> wire::Status {
        wire::Status {
            online: true,
            state: state.kind(),
            reason: state.reason().map(ToString::to_string),
            device_id: self.device_id.clone(),
            firmware: env!("CARGO_PKG_VERSION").to_string(),
            board: self.board.clone(),
            started_at: self.started_at.clone(),
            desired: self.saved.run,
            config_version: self.saved.config_version,
            mqtt_protocol: self.protocol.map(|p| p.as_str().to_string()),
            input: self.input.as_ref().map(super::input_health::input_signal),
        }
    }

    /// The input was lost or came back, or the slate went on: an event
    /// (`input_lost`, `input_back`) and the status again.
    pub(super) fn input_changed(&mut self, state: &State, input: Option<crate::pipeline::stats::InputSignal>) {
        let was = std::mem::replace(&mut self.input, input);
        match (was.map(|i| i.signal), input) {
            (Some(true), Some(i)) if !i.signal => self.event(Event::InputLost(super::input_health::input_signal(&i))),
            (Some(false), Some(i)) if i.signal => {
                let lost_since = was.and_then(|w| w.since).map(|t| humantime::format_rfc3339_millis(t).to_string());
                self.event(Event::InputBack { lost_since });
            }
            _ => {}
        }
        self.publish_status(state);
    }

    pub(super) fn event(&self, event: Event) {
        let stamped = wire::Stamped { event, ts: now_rfc3339() };
        self.publish(Outgoing::json(self.topics.events(), &stamped, true, false));
    }

    pub(super) fn config_event(&self, event: ConfigEvent) {
        self.event(Event::Config(event));
    }

    pub(super) fn state_changed(&mut self, previous: &State, state: &State) {
        self.event(Event::State { state: state.kind(), previous: previous.kind(), reason: state.reason().map(ToString::to_string) });
        self.publish_status(state);
    }

    pub(super) fn report_config(&mut self, (status, error): (SyncStatus, Option<&CommandError>)) {
        let reported = wire::Reported {
            version: self.saved.desired_version,
            config_version: self.saved.config_version,
            status,
            config: patch::redacted(&self.saved.overlay),
            error: error.cloned(),
            updated_at: now_rfc3339(),
        };
        self.publish(Outgoing::json(self.topics.reported(), &reported, true, true));
        self.reported = Some(reported);
    }

    pub(super) fn reply(&mut self, id: Option<&str>, to: &ReplyTo, body: &impl Serialize, remember: bool) {
        let bytes = serde_json::to_vec(body).expect("json");
        if let (true, Some(id)) = (remember, id) {
            self.replies.insert(id, bytes.clone());
        }
        self.send_reply(to, Bytes::from(bytes));
    }

    pub(super) fn send_reply(&self, to: &ReplyTo, payload: Bytes) {
        match to {
            ReplyTo::Mqtt { topic, correlation } => {
                self.publish(Outgoing { topic: topic.clone(), payload, qos1: true, retain: false, correlation: correlation.clone(), content_type: "application/json" });
            }
            ReplyTo::Local(reply) => reply.send("application/json", payload),
        }
    }

    /// Called when the actions are done (no start or stop in flight):
    /// answers the commands that waited.
    pub(super) fn settle(&mut self, state: &State) {
        for a in std::mem::take(&mut self.awaiting) {
            self.answer(a, state);
        }
        if let Some(v) = self.syncing.take() {
            self.synced(v);
        }
    }

    /// Answers a command whose actions are done, in the state they left.
    pub(super) fn answer(&mut self, a: Awaiting, state: &State) {
        match state {
            State::Error { reason } if a.name != "stop" && a.name != "configure" => {
                let e = CommandError::new(ErrorCode::StartFailed, reason.to_string());
                self.reply(Some(&a.id), &a.to, &wire::Failure::new(Some(&a.id), state.kind(), &e), true);
            }
            _ => self.reply(Some(&a.id), &a.to, &wire::Success::new(&a.id, state.kind(), a.result), true),
        }
    }

    /// A `config/desired` version is applied (and live, if it restarted the stream).
    pub(super) fn synced(&mut self, version: u64) {
        info!(version, "desired config applied");
        self.report_config((SyncStatus::Synced, None));
        self.config_event(ConfigEvent::Synced { version, config_version: self.saved.config_version });
    }
}

/// The next message from the MQTT actor or command from the local HTTP API
/// (whichever comes first). Cancel safe.
pub(super) async fn next_inbox(remote: &mut Option<Remote>) -> super::Inbox {
    let Some(r) = remote else { return std::future::pending().await };
    tokio::select! {
        Some(m) = r.inbound.recv() => super::Inbox::Mqtt(m),
        Some(c) = r.local.recv() => super::Inbox::Local(c),
        // Neither is open (no [mqtt], no [http]).
        else => std::future::pending().await,
    }
}

pub(super) fn now_rfc3339() -> String {
    humantime::format_rfc3339_millis(SystemTime::now()).to_string()
}

/// `status` as the Last Will and a clean shutdown say it.
fn offline(device_id: &str, board: &str, started_at: &str) -> wire::Offline {
    wire::Offline {
        online: false,
        state: StateName::Offline,
        device_id: device_id.to_string(),
        firmware: env!("CARGO_PKG_VERSION").to_string(),
        board: board.to_string(),
        started_at: started_at.to_string(),
    }
}

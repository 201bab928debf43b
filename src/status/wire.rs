//! Every document of the MQTT API as a type: `status` and its Last Will,
//! replies and their results, `telemetry`, `events`, `config/reported`.
//! Field names and shapes are the contract of docs/mqtt-api.md (a test
//! parses every example there into these types and back). Deserialize is
//! for that test and for readers such as `fieldcast ctl`; unknown fields
//! are refused, so a field added here and not there (or the other way
//! round) fails the test.

use super::StateName;
use crate::control::error::{CommandError, ErrorCode};
use crate::persist::RunState;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// `status` (retained): the birth message, and on every state change.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Status {
    pub online: bool,
    pub state: StateName,
    pub reason: Option<String>,
    pub device_id: String,
    pub firmware: String,
    pub board: String,
    /// When this process started.
    pub started_at: String,
    /// The run state the dashboard last asked for.
    pub desired: RunState,
    pub config_version: u64,
    /// `5` or `3.1.1`.
    pub mqtt_protocol: Option<String>,
    /// `null` without a session.
    pub input: Option<InputSignal>,
}

/// Whether the real input arrives, and whether the slate is on the air.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputSignal {
    pub signal: bool,
    /// When the input was lost (while it is).
    pub since: Option<String>,
    pub slate: bool,
}

/// `status` as the broker's Last Will, and as a clean shutdown says it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Offline {
    pub online: bool,
    pub state: StateName,
    pub device_id: String,
    pub firmware: String,
    pub board: String,
    pub started_at: String,
}

/// What the `status` command's result adds to the status document.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatusExtra {
    /// Seconds since the session started; `null` without one.
    pub live_for_s: Option<f64>,
    pub destinations: Vec<NamedUrl>,
}

/// A destination as a reply shows it: the URL without its key.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NamedUrl {
    pub name: String,
    pub url: String,
}

/// The `status` command's result.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StatusResult {
    #[serde(flatten)]
    pub status: Status,
    #[serde(flatten)]
    pub extra: StatusExtra,
}

/// The `configure` command's result.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigureResult {
    pub config_version: u64,
    pub applied: Applied,
}

/// How a config change reached the running stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Applied {
    /// Set on the running encoders (new bitrates only): no reconnect, no restart.
    Live,
    /// The session restarted on it.
    Restart,
    /// No stream was touched (none running, or nothing changed for it).
    None,
}

/// The `snapshot` command's result: where the JPEG went.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnapshotResult {
    pub topic: String,
    pub bytes: usize,
    pub width: u32,
    pub height: u32,
    pub taken_at: String,
}

/// A reply to a command that took effect. `result` depends on the
/// command (`null`, [`StatusResult`], [`ConfigureResult`], [`SnapshotResult`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Success {
    pub id: String,
    /// Always `true`.
    pub ok: bool,
    pub state: StateName,
    pub result: Value,
}

/// A reply to a command that was refused or failed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Failure {
    /// `null` when the payload was too broken to hold one.
    pub id: Option<String>,
    /// Always `false`.
    pub ok: bool,
    pub state: StateName,
    pub error: CommandError,
}

impl Success {
    pub fn new(id: &str, state: StateName, result: Value) -> Success {
        Success { id: id.to_string(), ok: true, state, result }
    }
}

impl Failure {
    pub fn new(id: Option<&str>, state: StateName, error: &CommandError) -> Failure {
        Failure { id: id.map(str::to_string), ok: false, state, error: error.clone() }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SyncStatus {
    Syncing,
    Synced,
    Rejected,
    RolledBack,
}

/// `config/reported` (retained).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reported {
    /// The last `config/desired` version handled.
    pub version: Option<u64>,
    pub config_version: u64,
    pub status: SyncStatus,
    /// The applied overlay, secrets as `***`.
    pub config: Map<String, Value>,
    pub error: Option<CommandError>,
    pub updated_at: String,
}

/// One message on `events` ([`Stamped`] adds the time).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Event {
    State { state: StateName, previous: StateName, reason: Option<String> },
    Command {
        name: String,
        id: Option<String>,
        ok: bool,
        /// Only when refused or failed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        code: Option<ErrorCode>,
    },
    Config(ConfigEvent),
    /// The input was lost: the repeated last frame, then the slate, go out.
    InputLost(InputSignal),
    /// Frames from the input again.
    InputBack { lost_since: Option<String> },
    MqttReconnected { outage_s: f64, messages_dropped: u64, session_resumed: bool, state: StateName },
}

/// What happened to a config change.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case", deny_unknown_fields)]
pub enum ConfigEvent {
    Applied { config_version: u64, applied: Applied },
    Synced { version: u64, config_version: u64 },
    /// `version` is `null` when the document was too broken to hold one.
    Rejected { version: Option<u64>, error: CommandError },
    RolledBack { config_version: u64, error: CommandError },
}

/// An event with when it happened.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Stamped {
    #[serde(flatten)]
    pub event: Event,
    pub ts: String,
}

/// `telemetry`, every `telemetry_seconds`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Telemetry {
    pub ts: String,
    pub uptime_s: f64,
    pub state: StateName,
    pub reason: Option<String>,
    /// `null` while idle.
    pub input: Option<Input>,
    /// Adaptive bitrate: every encoder runs at this fraction of its rung's
    /// target (1.0: at the targets); `null` while idle.
    pub ladder_factor: Option<f64>,
    pub rungs: Vec<Rung>,
    pub destinations: Vec<Destination>,
    pub recording: Vec<Recording>,
    pub system: SystemSample,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Input {
    /// As in `status`: the real input arrives...
    pub signal: bool,
    /// ...or has been lost since then...
    pub since: Option<String>,
    /// ...and the slate is on the air.
    pub slate: bool,
    pub kind: String,
    pub width: u32,
    pub height: u32,
    pub configured_fps: f64,
    /// Measured over the tick.
    pub fps: f64,
    pub frames_captured: u64,
    /// Frames a live source should have delivered by now but did not.
    pub frames_missing: u64,
    /// Output frames that repeated the previous one (the capture had none in time).
    pub frames_repeated: u64,
    /// Captured frames never sent (the capture ran ahead of the frame clock).
    pub frames_skipped: u64,
    /// Output frames that were the slate.
    pub slate_frames: u64,
    /// The audio on the air, per channel, over the last second (empty before the first measurement).
    pub audio: Vec<AudioLevel>,
}

/// One audio channel's level over the last second, in dBFS (-100: silence or quieter).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AudioLevel {
    pub channel: u32,
    /// The loudest sample.
    pub peak_dbfs: f64,
    /// The mean power.
    pub rms_dbfs: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rung {
    pub name: String,
    pub width: u32,
    pub height: u32,
    pub target_kbps: u64,
    /// What the encoder is set to now: the target x `ladder_factor`.
    pub current_kbps: u64,
    /// Measured out of the encoder over the tick.
    pub bitrate_kbps: f64,
    pub fps: f64,
    pub frames: u64,
    pub bytes: u64,
    pub keyframes: u64,
    /// Discarded by this rung's outputs (backlog or reconnect).
    pub frames_dropped: u64,
    /// Frames waiting in front of the encoder.
    pub encoder_queue: Option<u32>,
}

/// The dashboard's words for an output's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OutputState {
    Connecting,
    Connected,
    Reconnecting,
    /// Stopped after a failure.
    Error,
    Stopped,
    /// Failover: waiting while the destination's other endpoint is the active one.
    Standby,
}

/// A warning on an output: the output itself works (or waits) as it should.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutputWarning {
    /// Failover: this standby endpoint failed its last probe (TCP connect
    /// and RTMP handshake), so switching to it now would fail. The session
    /// is not `degraded` by it: the active endpoint carries the stream.
    StandbyDown,
}

/// One output (a publish of one rung to one destination).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Destination {
    pub name: String,
    pub rung: String,
    /// `primary`, or `backup` for an output to the destination's `backup_url`.
    pub endpoint: String,
    pub state: OutputState,
    pub bytes_sent: u64,
    pub video_frames_sent: u64,
    pub reconnects: u32,
    pub frames_dropped: u64,
    /// Media written and not sent yet (RTMP: the TCP socket's unsent
    /// queue); a level that grows means a congested uplink.
    pub send_queue_bytes: u64,
    /// Redacted.
    pub last_error: Option<String>,
    /// Something to look at that is not a failure of this output (absent when none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warning: Option<OutputWarning>,
    /// SRT outputs only (absent for RTMP).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub srt: Option<SrtStats>,
    /// CMAF outputs only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cmaf: Option<CmafStats>,
}

/// A CMAF output's tracks: its rung's video, plus the shared audio on the
/// destination's first rung.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CmafStats {
    pub tracks: Vec<CmafTrack>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CmafTrackState {
    Connecting,
    Sending,
    Reconnecting,
    /// The stream ended (its last segment carried `lmsg`).
    Stopped,
    /// Refused for good (403 after the retries, 404, 415): this track only.
    Failed,
}

/// One CMAF track's poster.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CmafTrack {
    /// `video-<rung>` or `audio`.
    pub track: String,
    pub state: CmafTrackState,
    pub segments_sent: u64,
    pub bytes_sent: u64,
    pub last_http_status: Option<u16>,
    pub reconnects: u32,
    /// Segments posted again after a failed attempt.
    pub retransmitted_segments: u64,
    /// Segments given up (an outage of 3 segments or more resumes at the live edge).
    pub segments_skipped: u64,
    /// Redacted.
    pub last_error: Option<String>,
}

/// An SRT sender's statistics (libsrt's, for the current connection;
/// `reconnects` counts over the session).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SrtStats {
    pub rtt_ms: f64,
    /// Sent but not yet acknowledged, as time and as bytes.
    pub send_buffer_ms: u32,
    pub send_buffer_bytes: u64,
    pub send_rate_kbps: u64,
    pub packets_sent: u64,
    pub packets_retransmitted: u64,
    /// Reported lost by the receiver (then retransmitted, if in time).
    pub packets_lost: u64,
    /// Too late to send: dropped by the sender.
    pub packets_dropped: u64,
    pub reconnects: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RecordingState {
    Starting,
    Recording,
    /// Retrying once the disk has room.
    Failed,
    Stopped,
}

/// One recorded rung.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Recording {
    pub rung: String,
    pub state: RecordingState,
    pub files: u32,
    pub failures: u32,
    pub frames_dropped: u64,
    /// Never a path.
    pub last_error: Option<String>,
}

/// Machine health. Every field is `None` when the machine does not offer
/// it (no thermal zones in a VM).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SystemSample {
    /// This process since the previous sample, percent of one core.
    pub process_cpu_percent: Option<f64>,
    /// The whole machine since the previous sample, 0..100 over all cores.
    pub cpu_percent: Option<f64>,
    pub cores: usize,
    pub rss_bytes: Option<u64>,
    pub mem_total_bytes: Option<u64>,
    pub mem_available_bytes: Option<u64>,
    /// The hottest thermal zone, °C.
    pub temperature_c: Option<f64>,
    pub temperature_zone: Option<String>,
    /// On the filesystem holding the recordings.
    pub disk_free_bytes: Option<u64>,
    pub disk_total_bytes: Option<u64>,
    pub system_uptime_s: Option<f64>,
    pub load_1m: Option<f64>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::de::DeserializeOwned;

    const API: &str = include_str!("../../docs/mqtt-api.md");

    /// The ```json blocks of docs/mqtt-api.md.
    fn examples() -> Vec<String> {
        let mut out = Vec::new();
        let mut rest = API;
        while let Some(i) = rest.find("```json\n") {
            let body = &rest[i + 8..];
            let end = body.find("```").expect("closed block");
            out.push(body[..end].to_string());
            rest = &body[end + 3..];
        }
        out
    }

    /// Parses `v` as `T` and writes it back: the same document.
    fn round_trip<T: DeserializeOwned + Serialize>(v: &Value) -> T {
        let t: T = serde_json::from_value(v.clone()).unwrap_or_else(|e| panic!("{e}: {v}"));
        assert_eq!(&serde_json::to_value(&t).unwrap(), v, "written back differently");
        t
    }

    #[test]
    fn every_example_in_the_api_document_parses_into_its_type_and_back() {
        let mut seen = std::collections::BTreeMap::<&str, usize>::new();
        for block in examples() {
            let docs: Vec<Value> = match serde_json::from_str::<Value>(&block) {
                Ok(v) => vec![v],
                // The `events` block: one document a line.
                Err(_) => block.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"))).collect(),
            };
            for v in docs {
                let has = |k: &str| v.get(k).is_some();
                let kind = if has("uptime_s") {
                    round_trip::<Telemetry>(&v);
                    "telemetry"
                } else if v.get("online") == Some(&Value::Bool(true)) {
                    round_trip::<Status>(&v);
                    "status"
                } else if v.get("online") == Some(&Value::Bool(false)) {
                    round_trip::<Offline>(&v);
                    "offline"
                } else if has("type") {
                    round_trip::<Stamped>(&v);
                    "event"
                } else if v.get("ok") == Some(&Value::Bool(true)) {
                    let s = round_trip::<Success>(&v);
                    if s.result.get("taken_at").is_some() {
                        round_trip::<SnapshotResult>(&s.result);
                    } else if s.result.get("config_version").is_some() {
                        round_trip::<ConfigureResult>(&s.result);
                    }
                    "success"
                } else if v.get("ok") == Some(&Value::Bool(false)) {
                    round_trip::<Failure>(&v);
                    "failure"
                } else if has("live_for_s") {
                    round_trip::<StatusExtra>(&v);
                    "status result"
                } else if has("updated_at") {
                    round_trip::<Reported>(&v);
                    "reported"
                } else if has("version") {
                    let text = serde_json::to_vec(&v).unwrap();
                    crate::control::desired::parse(&text).unwrap_or_else(|(_, e)| panic!("{e}: {v}"));
                    "desired"
                } else if has("id") {
                    // A command's payload, read by `control::command`.
                    "command"
                } else {
                    panic!("an example of no known document: {v}")
                };
                *seen.entry(kind).or_default() += 1;
            }
        }
        for kind in ["telemetry", "status", "offline", "event", "success", "failure", "status result", "reported", "desired"] {
            assert!(seen.contains_key(kind), "no {kind} example was checked: {seen:?}");
        }
        assert_eq!(seen["event"], 10, "every event type is shown: {seen:?}");
    }

    #[test]
    fn a_field_the_document_does_not_have_is_refused() {
        let v = serde_json::json!({"config_version": 2, "applied": "live", "extra": true});
        assert!(serde_json::from_value::<ConfigureResult>(v).is_err());
        let v = serde_json::json!({"type": "state", "state": "live", "previous": "idle", "reason": null, "why": 1, "ts": "x"});
        assert!(serde_json::from_value::<Stamped>(v).is_err());
    }
}

//! The config file as written: serde structs with every field optional,
//! unknown fields refused. Nothing here is trusted; `validate` turns it into
//! a `Config`.

use serde::Deserialize;
use std::path::PathBuf;

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    pub device_id: Option<String>,
    pub board: Option<String>,
    pub board_dir: Option<PathBuf>,
    pub state_dir: Option<PathBuf>,
    pub source: Option<RawSource>,
    pub audio: Option<RawAudio>,
    pub ladder: Option<RawLadder>,
    #[serde(default)]
    pub destination: Vec<RawDestination>,
    pub recording: Option<RawRecording>,
    pub egress: Option<RawEgress>,
    pub input_loss: Option<RawInputLoss>,
    pub mqtt: Option<RawMqtt>,
    pub http: Option<RawHttp>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSource {
    /// `test`, `v4l2`, `decklink` or `file`.
    pub kind: Option<String>,
    pub width: Option<u32>,
    pub height: Option<u32>,
    /// 30, 29.97, 59.94 or "30000/1001".
    #[serde(default, deserialize_with = "super::de::fps_value")]
    pub fps: Option<toml::Value>,
    pub pattern: Option<String>,
    pub device: Option<String>,
    pub format: Option<String>,
    pub device_number: Option<u32>,
    pub mode: Option<String>,
    pub connection: Option<String>,
    pub path: Option<PathBuf>,
    /// `file`: `reopen` (default) or `stop` (a one-shot file).
    pub at_end: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAudio {
    /// `auto`, `test`, `silence`, `alsa`, `decklink` or `file`.
    pub source: Option<String>,
    pub device: Option<String>,
    pub bitrate_kbps: Option<u32>,
    pub sample_rate: Option<u32>,
    pub channels: Option<u32>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLadder {
    /// `standard`, `basic` or `single` (ingest.md section 6).
    pub profile: Option<String>,
    pub rungs: Option<Vec<RawRung>>,
    pub gop_seconds: Option<f64>,
    pub h264_profile: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRung {
    pub name: Option<String>,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub bitrate_kbps: Option<u32>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDestination {
    pub name: Option<String>,
    pub url: Option<String>,
    /// Template per rung: `{rung}`, `{kbps}`, `{width}`, `{height}`, `{key}`.
    pub stream: Option<String>,
    /// Stream key / access token, substituted for `{key}`. Secret.
    pub key: Option<String>,
    pub rungs: Option<Vec<String>>,
    /// The channel's caps: `any`, `standard`, `basic`, `single`.
    pub target: Option<String>,
    pub ca_file: Option<PathBuf>,
    pub enabled: Option<bool>,
    /// SRT: template per rung like `stream` (`{rung}` by default). Secret
    /// when it holds `{key}` or literal text.
    pub streamid: Option<String>,
    /// SRT: AES passphrase, 10..79 characters. Secret.
    pub passphrase: Option<String>,
    /// SRT: AES key length in bytes, 16, 24 or 32 (default 16).
    pub pbkeylen: Option<u32>,
    /// SRT: receiver latency in ms (default 2000).
    pub latency_ms: Option<u32>,
    /// SRT: `caller` (default: the box dials the receiver) or `listener`.
    pub mode: Option<String>,
    /// The channel's backup ingest (same protocol as `url`; same stream names).
    pub backup_url: Option<String>,
    /// With a backup: `failover` (default: push to the active one, switch
    /// after it failed for `failover_after_ms`) or `both` (push to both).
    pub redundancy: Option<String>,
    pub failover_after_ms: Option<u64>,
    /// `rtmp`, `srt` or `cmaf` (default: the URL's scheme; http(s) needs `cmaf`).
    pub protocol: Option<String>,
    /// CMAF: each track's path after the URL's, `{rung}`, `{kbps}`, `{track}`.
    pub track_path: Option<String>,
    /// CMAF: how often a track retries after `403 Forbidden` before it stops.
    pub forbidden_retries: Option<u32>,
    /// CMAF or Smooth: segment boundaries and timestamps counted from the
    /// Unix epoch (redundant encoders cut the same segments).
    pub epoch_aligned: Option<bool>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRecording {
    pub enabled: Option<bool>,
    pub dir: Option<PathBuf>,
    /// `mp4` (fragmented, survives power loss) or `mkv`.
    pub format: Option<String>,
    pub segment_seconds: Option<u32>,
    pub rungs: Option<Vec<String>>,
    /// Stop (or rotate) before the disk has less than this left (MB). Default 500; 0: off.
    pub min_free_mb: Option<u64>,
    /// Delete the oldest segments to stay above `min_free_mb` instead of stopping.
    pub rotate: Option<bool>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEgress {
    pub reconnect_initial_ms: Option<u64>,
    pub reconnect_max_ms: Option<u64>,
    pub connect_timeout_ms: Option<u64>,
    /// Adaptive bitrate: the whole ladder steps down when an output's send queue grows.
    pub adaptive: Option<bool>,
    /// The lowest fraction of each rung's target the ladder steps down to.
    pub min_ratio: Option<f64>,
}

/// What goes out while the capture delivers nothing.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawInputLoss {
    /// No frame for this long is input loss (default 500).
    pub input_loss_ms: Option<u64>,
    /// The last frame is repeated this long before the slate (default 1000).
    pub repeat_frame_ms: Option<u64>,
    /// A PNG or JPEG shown on input loss; default: a built-in card.
    pub slate_image: Option<PathBuf>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMqtt {
    /// `mqtt://host[:1883]` or `mqtts://host[:8883]`.
    pub broker: Option<String>,
    pub client_id: Option<String>,
    pub username: Option<String>,
    /// Secret.
    pub password: Option<String>,
    pub ca_file: Option<PathBuf>,
    pub client_cert: Option<PathBuf>,
    pub client_key: Option<PathBuf>,
    /// Topic prefix; default `fieldcast/<device_id>`.
    pub prefix: Option<String>,
    pub telemetry_seconds: Option<u64>,
    /// `auto` (MQTT 5, falling back to 3.1.1), `5` or `3.1.1`.
    pub protocol: Option<String>,
    pub keepalive_seconds: Option<u64>,
    /// How long the broker keeps the session (subscriptions and QoS 1
    /// commands sent meanwhile) while the box is away; 0 = clean session.
    pub session_expiry_seconds: Option<u64>,
    /// With no saved run state (first boot): start streaming, or wait for `start`.
    pub autostart: Option<bool>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHttp {
    /// Default true.
    pub enabled: Option<bool>,
    /// `address:port`; default `0.0.0.0:8080`.
    pub listen: Option<String>,
    /// Bearer token of API clients. Secret.
    pub token: Option<String>,
    /// Read-only documents (status, telemetry, metrics) without the token.
    pub public_status: Option<bool>,
    /// The page's login: an argon2 hash (`fieldcast passwd`). Secret.
    pub password_hash: Option<String>,
    /// A page login lasts this long.
    pub session_seconds: Option<u64>,
}

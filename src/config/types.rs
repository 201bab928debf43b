//! The validated configuration: types that cannot hold an invalid value.
//! Built only by `validate`; fields are read-only to the rest of fieldcast.

use crate::board::H264Profile;
use super::url::DestinationUrl;
use serde::Serialize;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// A frame rate as an exact fraction (30000/1001 for 29.97).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Fps {
    pub num: u32,
    pub den: u32,
}

impl Fps {
    pub fn as_f64(self) -> f64 {
        f64::from(self.num) / f64::from(self.den)
    }
    /// Nanoseconds per frame, rounded down.
    pub fn frame_ns(self) -> u64 {
        1_000_000_000u64 * u64::from(self.den) / u64::from(self.num)
    }
}

impl fmt::Display for Fps {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.den == 1 { write!(f, "{}", self.num) } else { write!(f, "{}/{}", self.num, self.den) }
    }
}

/// A string that must not be shown: Debug and Display print `***`.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Secret {
        Secret(s.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}
impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}
impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum Source {
    /// A live test pattern (bars, with a running clock).
    Test { width: u32, height: u32, fps: Fps, pattern: String },
    /// A V4L2 capture device; unset size/fps are negotiated from what it offers.
    V4l2 { device: PathBuf, width: Option<u32>, height: Option<u32>, fps: Option<Fps>, format: Option<String> },
    DeckLink { device_number: u32, mode: String, connection: String },
    /// A media file or a FIFO, decoded and paced in real time; what follows
    /// its end is `at_end`.
    File { path: PathBuf, at_end: AtEnd },
}

/// What a file or FIFO source's end means.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AtEnd {
    /// The input ended but will come back (a FIFO's feeder restarts, a file
    /// is replaced): state `error` (reason `input ended`), reopened with backoff.
    Reopen,
    /// A one-shot file: standalone, the run ends (exit 0); under fleet
    /// control the box goes `idle` and stays connected.
    Stop,
}

impl Source {
    pub fn kind(&self) -> &'static str {
        match self {
            Source::Test { .. } => "test",
            Source::V4l2 { .. } => "v4l2",
            Source::DeckLink { .. } => "decklink",
            Source::File { .. } => "file",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum AudioSource {
    Test,
    Silence,
    Alsa { device: String },
    DeckLink,
    /// The audio track of a `file` source.
    File,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Audio {
    pub source: AudioSource,
    pub bitrate_bps: u32,
    pub sample_rate: u32,
    pub channels: u32,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RungSpec {
    pub name: String,
    pub width: u32,
    pub height: u32,
    pub bitrate_bps: u64,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Ladder {
    /// Largest first, bitrates unique.
    pub rungs: Vec<RungSpec>,
    pub gop_seconds: f64,
    pub h264_profile: H264Profile,
}

/// What a channel accepts (ingest.md section 6).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Target {
    Any,
    Standard,
    Basic,
    Single,
}

impl Target {
    /// (total bit/s including audio, per-rung bit/s, rung count)
    pub fn caps(self) -> (Option<u64>, Option<u64>, Option<usize>) {
        match self {
            Target::Any => (None, None, None),
            Target::Standard => (Some(60_000_000), None, None),
            Target::Basic => (Some(5_000_000), Some(4_000_000), None),
            Target::Single => (Some(51_000_000), None, Some(1)),
        }
    }
}

/// Who dials whom on an SRT link.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SrtMode {
    /// The box dials the receiver (the usual contribution set-up).
    Caller,
    /// The box waits on its port for a receiver to pull the stream.
    Listener,
}

/// The settings of an SRT destination (from its fields or its URL's query).
#[derive(Clone, Debug, PartialEq)]
pub struct SrtSettings {
    pub mode: SrtMode,
    /// `None`: unencrypted.
    pub passphrase: Option<Secret>,
    /// AES key length in bytes: 16, 24 or 32.
    pub pbkeylen: u32,
    pub latency_ms: u32,
    /// The per-rung `streamid` template; `None` sends no stream id.
    pub streamid_template: Option<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Destination {
    pub name: String,
    pub url: DestinationUrl,
    /// The RTMP stream name template (unused by SRT, see [`SrtSettings`]).
    pub stream_template: String,
    pub key: Option<Secret>,
    /// Rung names this destination carries (all rungs when the config named none).
    pub rungs: Vec<String>,
    pub target: Target,
    pub ca_file: Option<PathBuf>,
    /// Set exactly when `url` is an SRT URL.
    pub srt: Option<SrtSettings>,
    /// The channel's backup ingest and how it is used.
    pub backup: Option<Backup>,
    /// Set exactly when `url` is an http(s) URL (`protocol = "cmaf"` or `"smooth"`).
    pub cmaf: Option<CmafSettings>,
}

/// The settings of a CMAF or Smooth Streaming ingest destination.
#[derive(Clone, Debug, PartialEq)]
pub struct CmafSettings {
    /// `protocol = "cmaf"` or `protocol = "smooth"`.
    pub flavor: crate::egress::cmaf::fragment::Flavor,
    /// Each track's path after the URL's (`{rung}`, `{kbps}`, `{track}`).
    pub track_path: String,
    /// `403 Forbidden` answers a track takes before it stops.
    pub forbidden_retries: u32,
    /// Segments start at K x their duration since 1970-01-01T00:00:00Z and
    /// carry that time (DASH-IF ingest: redundant encoders, same segments).
    pub epoch_aligned: bool,
}

/// A destination's second ingest endpoint (AMS live events, YouTube, MediaLive).
#[derive(Clone, Debug, PartialEq)]
pub struct Backup {
    /// Same protocol as the primary URL (checked), same stream names.
    pub url: DestinationUrl,
    pub redundancy: Redundancy,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Redundancy {
    /// Push to both at once: identical timestamps and IDRs on both.
    Both,
    /// Push to the active one; after it has failed for this long, switch to
    /// the other; switch back only when that one fails the same way.
    Failover { after: std::time::Duration },
}

impl Destination {
    /// The stream name of one rung (secret when it holds `{key}`).
    pub fn stream_name(&self, rung: &RungSpec) -> Secret {
        let s = expand_template(&self.stream_template, rung, self.key.as_ref().map(|k| k.expose()).unwrap_or(""));
        Secret::new(s)
    }
    /// The stream name as shown in `check-config`, the plan and logs: the
    /// rule of [`redact_template`], then the rung's placeholders expanded.
    pub fn stream_name_redacted(&self, rung: &RungSpec) -> String {
        expand_template(&redact_template(&self.stream_template), rung, "***")
    }
    /// An SRT destination's stream id for one rung (secret), if it sends one.
    pub fn streamid(&self, rung: &RungSpec) -> Option<Secret> {
        let t = self.srt.as_ref()?.streamid_template.as_deref()?;
        Some(Secret::new(expand_template(t, rung, self.key.as_ref().map(|k| k.expose()).unwrap_or(""))))
    }
    /// The stream id as shown, by the rule of [`redact_template`].
    pub fn streamid_redacted(&self, rung: &RungSpec) -> Option<String> {
        let t = self.srt.as_ref()?.streamid_template.as_deref()?;
        Some(expand_template(&redact_template(t), rung, "***"))
    }
}

/// The one rule for showing a stream template (and, expanded, a stream
/// name): every literal run other than ASCII punctuation becomes `***`,
/// because a key may be written into the template itself; placeholders and
/// separators stay (`{key}` expands to `***` in a shown name).
/// `{rung}_{key}` stays, `live_{rung}` -> `***_{rung}`, `sk-4f9a` -> `***-***`.
pub fn redact_template(t: &str) -> String {
    const PLACEHOLDERS: &[&str] = &["{rung}", "{kbps}", "{width}", "{height}", "{key}", "{track}"];
    let mut out = String::new();
    let mut rest = t;
    while let Some(c) = rest.chars().next() {
        if let Some(p) = PLACEHOLDERS.iter().find(|p| rest.starts_with(**p)) {
            out.push_str(p);
            rest = &rest[p.len()..];
            continue;
        }
        if c.is_ascii_punctuation() {
            out.push(c);
        } else if !out.ends_with("***") {
            out.push_str("***");
        }
        rest = &rest[c.len_utf8()..];
    }
    out
}

pub(crate) fn expand_template(t: &str, rung: &RungSpec, key: &str) -> String {
    t.replace("{rung}", &rung.name)
        .replace("{kbps}", &(rung.bitrate_bps / 1000).to_string())
        .replace("{width}", &rung.width.to_string())
        .replace("{height}", &rung.height.to_string())
        .replace("{key}", key)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RecordFormat {
    Mp4,
    Mkv,
}

impl RecordFormat {
    pub fn extension(self) -> &'static str {
        match self {
            RecordFormat::Mp4 => "mp4",
            RecordFormat::Mkv => "mkv",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Recording {
    pub dir: PathBuf,
    pub format: RecordFormat,
    pub segment: Duration,
    pub rungs: Vec<String>,
    /// The disk guard: never let the recording leave less than this free.
    pub min_free_bytes: u64,
    /// At the guard, delete the oldest segments instead of stopping.
    pub rotate: bool,
}

#[derive(Clone, Debug, PartialEq)]
pub struct EgressOptions {
    pub reconnect_initial: Duration,
    pub reconnect_max: Duration,
    pub connect_timeout: Duration,
    /// Adaptive bitrate on: `min_ratio` of each rung's target at the lowest.
    pub adaptive: Option<f64>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    pub device_id: String,
    /// `None` = auto-detect.
    pub board: Option<String>,
    pub board_dir: Option<PathBuf>,
    pub state_dir: PathBuf,
    pub source: Source,
    pub audio: Audio,
    pub ladder: Ladder,
    pub destinations: Vec<Destination>,
    pub recording: Option<Recording>,
    pub egress: EgressOptions,
    pub input_loss: InputLoss,
    /// Fleet control; `None` = standalone (streams from boot, no remote control).
    pub mqtt: Option<Mqtt>,
    /// The local HTTP API; `None` = `[http] enabled = false`.
    pub http: Option<Http>,
}

impl Config {
    /// Something receives the stream: a destination or the local recording.
    pub fn has_output(&self) -> bool {
        !self.destinations.is_empty() || self.recording.is_some()
    }
}

/// What the outputs carry while the capture delivers nothing: the last
/// frame for `repeat`, then the slate (the image, or a built-in card).
#[derive(Clone, Debug, PartialEq)]
pub struct InputLoss {
    /// No frame for this long is input loss.
    pub after: Duration,
    pub repeat: Duration,
    /// A PNG or JPEG (checked to be one); scaled to the picture size.
    pub slate_image: Option<PathBuf>,
}

impl Default for InputLoss {
    fn default() -> Self {
        InputLoss { after: Duration::from_millis(500), repeat: Duration::from_millis(1000), slate_image: None }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum MqttProtocol {
    /// MQTT 5, falling back to 3.1.1 when the broker refuses or does not
    /// answer 5 (see `mqtt::negotiate`).
    Auto,
    V5,
    V311,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Mqtt {
    pub tls: bool,
    pub host: String,
    pub port: u16,
    pub client_id: String,
    pub username: Option<String>,
    pub password: Option<Secret>,
    pub ca_file: Option<PathBuf>,
    /// Client certificate and key (PEM) for mutual TLS.
    pub client_auth: Option<(PathBuf, PathBuf)>,
    /// Without a trailing `/`.
    pub prefix: String,
    pub telemetry: Duration,
    pub protocol: MqttProtocol,
    pub keepalive: Duration,
    /// Zero: a clean session on every connect.
    pub session_expiry: Duration,
    pub autostart: bool,
}

impl Mqtt {
    /// `mqtt(s)://host:port` (never credentials).
    pub fn broker_display(&self) -> String {
        format!("{}://{}:{}", if self.tls { "mqtts" } else { "mqtt" }, self.host, self.port)
    }
}

/// The local HTTP API (`[http]`).
#[derive(Clone, Debug, PartialEq)]
pub struct Http {
    pub listen: std::net::SocketAddr,
    /// Bearer token of API clients; without one only public documents are served.
    pub token: Option<Secret>,
    /// Status, telemetry and metrics without the token.
    pub public_status: bool,
    /// The page's password as an argon2 PHC string; `None`: a one-time setup code.
    pub password_hash: Option<Secret>,
    /// How long a page login lasts.
    pub session: std::time::Duration,
}

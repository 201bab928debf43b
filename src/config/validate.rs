//! Raw config -> validated `Config`. Every refusal names the field and why;
//! all problems are reported at once, so one edit fixes a file.

use super::raw::*;
use super::types::*;
use super::FieldError;
use crate::board::H264Profile;
use super::url::DestinationUrl;
use std::collections::HashSet;
use std::path::PathBuf;
use std::time::Duration;

/// One rung of a built-in profile: (name, width, height, kbit/s).
pub type ProfileRung = (&'static str, u32, u32, u64);

/// The ladder profiles of ingest.md section 6.
pub const PROFILES: &[(&str, &[ProfileRung])] = &[
    ("standard", &[("1080p", 1920, 1080, 5500), ("720p", 1280, 720, 3000), ("540p", 960, 540, 1600), ("360p", 640, 360, 800)]),
    ("basic", &[("720p", 1280, 720, 2000), ("540p", 960, 540, 1100), ("360p", 640, 360, 600)]),
    ("single", &[("1080p", 1920, 1080, 6000)]),
];

pub const GOP_RANGE: (f64, f64) = (0.5, 10.0);
const MIN_RUNG_KBPS: u32 = 100;
const MAX_RUNG_KBPS: u32 = 50_000;

pub(crate) struct Errors(pub(super) Vec<FieldError>);
impl Errors {
    pub(super) fn add(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0.push(FieldError { field: field.into(), message: message.into(), kind: Default::default() });
    }
}

/// Why a config with neither a destination nor a recording cannot go live.
const NO_OUTPUT: &str = "no [[destination]] and [recording] is disabled: the stream would go nowhere \
(add a destination, enable recording, or add [mqtt] to configure one remotely)";

pub fn validate(raw: RawConfig, default_state_dir: PathBuf) -> Result<Config, Vec<FieldError>> {
    let mut e = Errors(Vec::new());
    let device_id = match raw.device_id {
        Some(id) if valid_id(&id) => id,
        Some(_) => {
            e.add("device_id", "must be 1-64 characters of a-z, A-Z, 0-9, '-' or '_' (it is used in MQTT topics)");
            String::new()
        }
        None => default_device_id(),
    };
    let source = source(raw.source.unwrap_or_default(), &mut e);
    let audio = audio(raw.audio.unwrap_or_default(), &source, &mut e);
    let ladder = ladder(raw.ladder.unwrap_or_default(), &source, &mut e);
    let rung_names: Vec<String> = ladder.as_ref().map(|l| l.rungs.iter().map(|r| r.name.clone()).collect()).unwrap_or_default();
    let mut destinations = Vec::new();
    let mut names = HashSet::new();
    let destinations_given = !raw.destination.is_empty();
    for (i, d) in raw.destination.into_iter().enumerate() {
        if let Some(d) = destination(d, i, ladder.as_ref(), &audio, &mut e) {
            if !names.insert(d.name.clone()) {
                e.add(format!("destination[{i}].name"), "is used by another destination");
            }
            destinations.push(d);
        }
    }
    let state_dir = raw.state_dir.unwrap_or(default_state_dir);
    let recording = recording(raw.recording, &state_dir, &rung_names, &mut e);
    let egress = egress(raw.egress.unwrap_or_default(), &mut e);
    let input_loss = input_loss(raw.input_loss.unwrap_or_default(), &mut e);
    let http = super::http::http(raw.http.unwrap_or_default(), &mut e);
    let mqtt_given = raw.mqtt.is_some();
    let mqtt = raw.mqtt.and_then(|m| super::mqtt::mqtt(m, &device_id, &mut e));
    // Under fleet control a box may wait for its destination to be configured
    // remotely (a `start` without one fails with the reason); standalone it
    // would only burn its CPU on a stream nobody receives.
    if !destinations_given && recording.is_none() && !mqtt_given {
        e.add("destination", NO_OUTPUT);
    }
    if !e.0.is_empty() {
        return Err(e.0);
    }
    Ok(Config {
        device_id,
        board: raw.board.filter(|b| b != "auto"),
        board_dir: raw.board_dir,
        state_dir,
        source,
        audio,
        ladder: ladder.expect("no errors means a ladder"),
        destinations,
        recording,
        egress,
        input_loss,
        mqtt,
        http,
    })
}

pub(super) fn valid_id(s: &str) -> bool {
    !s.is_empty() && s.len() <= 64 && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

fn default_device_id() -> String {
    let host = nix::unistd::gethostname().ok().and_then(|h| h.into_string().ok()).unwrap_or_default();
    let id: String = host.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_').take(64).collect();
    if id.is_empty() { "fieldcast".into() } else { id }
}

pub fn parse_fps(v: &toml::Value) -> Result<Fps, String> {
    let known = |f: f64| -> Option<Fps> {
        [(24000, 1001), (30000, 1001), (60000, 1001)]
            .into_iter()
            .find(|(n, d)| (f - *n as f64 / *d as f64).abs() < 0.005)
            .map(|(num, den)| Fps { num, den })
    };
    let fps = match v {
        toml::Value::Integer(i) => u32::try_from(*i).ok().map(|num| Fps { num, den: 1 }),
        toml::Value::Float(f) if f.fract() == 0.0 => Some(Fps { num: *f as u32, den: 1 }),
        toml::Value::Float(f) => known(*f),
        toml::Value::String(s) => match s.split_once('/') {
            Some((n, d)) => n.trim().parse().ok().zip(d.trim().parse().ok()).map(|(num, den)| Fps { num, den }),
            None => s.trim().parse::<f64>().ok().and_then(|f| if f.fract() == 0.0 { Some(Fps { num: f as u32, den: 1 }) } else { known(f) }),
        },
        _ => None,
    };
    match fps {
        Some(f) if f.den > 0 && f.as_f64() >= 1.0 && f.as_f64() <= 120.0 => Ok(f),
        Some(_) => Err("must be between 1 and 120 frames per second".into()),
        None => Err("must be a frame rate such as 30, 29.97 or \"30000/1001\"".into()),
    }
}

fn even_size(e: &mut Errors, field: &str, v: u32, max: u32) {
    if v < 64 || v > max || !v.is_multiple_of(2) {
        e.add(field, format!("is not an even number of pixels between 64 and {max}"));
    }
}

fn source(s: RawSource, e: &mut Errors) -> Source {
    let kind = s.kind.as_deref().unwrap_or("test");
    let fps = s.fps.as_ref().map(|v| parse_fps(v).map_err(|m| e.add("source.fps", m)).ok()).unwrap_or(None);
    if let Some(w) = s.width {
        even_size(e, "source.width", w, 7680);
    }
    if let Some(h) = s.height {
        even_size(e, "source.height", h, 4320);
    }
    match kind {
        "test" => Source::Test {
            width: s.width.unwrap_or(1920),
            height: s.height.unwrap_or(1080),
            fps: fps.unwrap_or(Fps { num: 30, den: 1 }),
            pattern: match s.pattern.as_deref().unwrap_or("smpte") {
                p @ ("smpte" | "bars" | "ball" | "snow" | "black" | "smpte100" | "colors" | "gradient") => p.to_string(),
                _ => {
                    e.add("source.pattern", "expected one of: smpte, bars, ball, snow, black, colors, gradient, smpte100");
                    String::new()
                }
            },
        },
        "v4l2" => {
            let device = s.device.unwrap_or_else(|| "/dev/video0".into());
            if !device.starts_with("/dev/") {
                e.add("source.device", "is not a device path under /dev");
            }
            Source::V4l2 { device: device.into(), width: s.width, height: s.height, fps, format: s.format }
        }
        "decklink" => Source::DeckLink {
            device_number: s.device_number.unwrap_or(0),
            mode: s.mode.unwrap_or_else(|| "auto".into()),
            connection: s.connection.unwrap_or_else(|| "auto".into()),
        },
        "file" => {
            let at_end = match s.at_end.as_deref() {
                None | Some("reopen") => AtEnd::Reopen,
                Some("stop") => AtEnd::Stop,
                Some(_) => {
                    e.add("source.at_end", "expected one of: reopen, stop");
                    AtEnd::Reopen
                }
            };
            match s.path {
                Some(path) => Source::File { path, at_end },
                None => {
                    e.add("source.path", "is required when source.kind = \"file\"");
                    Source::File { path: PathBuf::new(), at_end }
                }
            }
        }
        _ => {
            e.add("source.kind", "expected one of: test, v4l2, decklink, file");
            Source::Test { width: 1920, height: 1080, fps: Fps { num: 30, den: 1 }, pattern: "smpte".into() }
        }
    }
}

fn audio(a: RawAudio, src: &Source, e: &mut Errors) -> Audio {
    let source = match a.source.as_deref().unwrap_or("auto") {
        "auto" => match src {
            Source::Test { .. } => AudioSource::Test,
            Source::File { .. } => AudioSource::File,
            Source::DeckLink { .. } => AudioSource::DeckLink,
            Source::V4l2 { .. } => AudioSource::Silence,
        },
        "test" => AudioSource::Test,
        "silence" => AudioSource::Silence,
        "decklink" => AudioSource::DeckLink,
        "file" => AudioSource::File,
        "alsa" => AudioSource::Alsa { device: a.device.unwrap_or_else(|| "default".into()) },
        _ => {
            e.add("audio.source", "expected one of: auto, test, silence, alsa, decklink, file");
            AudioSource::Silence
        }
    };
    if source == AudioSource::File && !matches!(src, Source::File { .. }) {
        e.add("audio.source", "`file` needs source.kind = \"file\"");
    }
    let kbps = a.bitrate_kbps.unwrap_or(128);
    if !(32..=320).contains(&kbps) {
        e.add("audio.bitrate_kbps", "is outside 32..320");
    }
    let sample_rate = a.sample_rate.unwrap_or(48000);
    if sample_rate != 48000 && sample_rate != 44100 {
        e.add("audio.sample_rate", "expected one of: 48000, 44100");
    }
    let channels = a.channels.unwrap_or(2);
    if channels != 1 && channels != 2 {
        e.add("audio.channels", "expected one of: 1, 2");
    }
    Audio { source, bitrate_bps: kbps.saturating_mul(1000), sample_rate, channels }
}

fn source_size(src: &Source) -> Option<(u32, u32)> {
    match src {
        Source::Test { width, height, .. } => Some((*width, *height)),
        Source::V4l2 { width: Some(w), height: Some(h), .. } => Some((*w, *h)),
        _ => None,
    }
}

fn ladder(l: RawLadder, src: &Source, e: &mut Errors) -> Option<Ladder> {
    let before = e.0.len();
    let rungs: Vec<RungSpec> = match (l.profile.as_deref(), l.rungs) {
        (Some(_), Some(_)) => {
            e.add("ladder", "set either `profile` or `rungs`, not both");
            return None;
        }
        (_, Some(raw)) => raw.into_iter().enumerate().filter_map(|(i, r)| rung(r, i, e)).collect(),
        (p, None) => {
            let p = p.unwrap_or("standard");
            match PROFILES.iter().find(|(n, _)| *n == p) {
                Some((_, rs)) => rs
                    .iter()
                    .map(|(n, w, h, k)| RungSpec { name: n.to_string(), width: *w, height: *h, bitrate_bps: k * 1000 })
                    .collect(),
                None => {
                    e.add("ladder.profile", "expected one of: standard, basic, single");
                    return None;
                }
            }
        }
    };
    if rungs.is_empty() && e.0.len() == before {
        e.add("ladder.rungs", "needs at least one rung");
    }
    let mut seen_names = HashSet::new();
    let mut seen_rates = HashSet::new();
    for (i, r) in rungs.iter().enumerate() {
        if !seen_names.insert(r.name.clone()) {
            e.add(format!("ladder.rungs[{i}].name"), "is used by another rung");
        }
        if !seen_rates.insert(r.bitrate_bps) {
            e.add(
                format!("ladder.rungs[{i}].bitrate_kbps"),
                "is used by another rung; channels name tracks by bitrate, so each must differ",
            );
        }
        if let Some((sw, sh)) = source_size(src)
            && (r.width > sw || r.height > sh)
        {
            e.add(format!("ladder.rungs[{i}]"), "is larger than the source picture (source.width x source.height); fieldcast never upscales");
        }
    }
    let gop_seconds = l.gop_seconds.unwrap_or(2.0);
    if !(GOP_RANGE.0..=GOP_RANGE.1).contains(&gop_seconds) {
        e.add("ladder.gop_seconds", format!("is outside {}..{} seconds", GOP_RANGE.0, GOP_RANGE.1));
    }
    let h264_profile = match l.h264_profile.as_deref().unwrap_or("high") {
        "high" => H264Profile::High,
        "main" => H264Profile::Main,
        "baseline" => H264Profile::Baseline,
        _ => {
            e.add("ladder.h264_profile", "expected one of: high, main, baseline");
            H264Profile::High
        }
    };
    let mut rungs = rungs;
    rungs.sort_by_key(|r| std::cmp::Reverse((u64::from(r.width) * u64::from(r.height), r.bitrate_bps)));
    (e.0.len() == before).then_some(Ladder { rungs, gop_seconds, h264_profile })
}

fn rung(r: RawRung, i: usize, e: &mut Errors) -> Option<RungSpec> {
    let f = |k: &str| format!("ladder.rungs[{i}].{k}");
    let (Some(width), Some(height), Some(kbps)) = (r.width, r.height, r.bitrate_kbps) else {
        e.add(format!("ladder.rungs[{i}]"), "needs width, height and bitrate_kbps");
        return None;
    };
    even_size(e, &f("width"), width, 4096);
    even_size(e, &f("height"), height, 2304);
    if !(MIN_RUNG_KBPS..=MAX_RUNG_KBPS).contains(&kbps) {
        e.add(f("bitrate_kbps"), format!("is outside {MIN_RUNG_KBPS}..{MAX_RUNG_KBPS}"));
    }
    let name = r.name.unwrap_or_else(|| format!("{height}p"));
    if !valid_id(&name) {
        e.add(f("name"), "must be 1-64 characters of a-z, A-Z, 0-9, '-' or '_'");
    }
    Some(RungSpec { name, width, height, bitrate_bps: u64::from(kbps) * 1000 })
}

fn destination(d: RawDestination, i: usize, ladder: Option<&Ladder>, audio: &Audio, e: &mut Errors) -> Option<Destination> {
    let f = |k: &str| format!("destination[{i}].{k}");
    if d.enabled == Some(false) {
        return None;
    }
    let name = d.name.clone().unwrap_or_else(|| format!("destination{i}"));
    if !valid_id(&name) {
        e.add(f("name"), "must be 1-64 characters of a-z, A-Z, 0-9, '-' or '_'");
    }
    let url = match d.url.as_deref().map(DestinationUrl::parse) {
        None => {
            e.add(f("url"), "is required (rtmp://HOST[:PORT]/APP[/TOKEN], rtmps://..., srt://HOST:PORT, or http(s)://HOST/PATH with protocol = \"cmaf\" or \"smooth\")");
            None
        }
        Some(Err(err)) => {
            e.add(f("url"), err.to_string());
            None
        }
        Some(Ok(u)) => Some(u),
    };
    let target = match d.target.as_deref().unwrap_or("any") {
        "any" => Target::Any,
        "standard" => Target::Standard,
        "basic" => Target::Basic,
        "single" => Target::Single,
        _ => {
            e.add(f("target"), "expected one of: any, standard, basic, single");
            Target::Any
        }
    };
    let template = d.stream.clone().unwrap_or_else(|| "{rung}".into());
    let ladder = ladder?;
    let rungs: Vec<String> = match d.rungs.clone() {
        Some(rs) => {
            for (j, r) in rs.iter().enumerate() {
                if !ladder.rungs.iter().any(|x| &x.name == r) {
                    e.add(f(&format!("rungs[{j}]")), "is not the name of a rung of the ladder");
                }
            }
            rs
        }
        None => ladder.rungs.iter().map(|r| r.name.clone()).collect(),
    };
    let carried: Vec<&RungSpec> = ladder.rungs.iter().filter(|r| rungs.contains(&r.name)).collect();
    let url = url.and_then(|u| protocol_matches(&d, u, i, e));
    let mut cmaf = None;
    if let Some(DestinationUrl::Http(u)) = &url {
        super::srt::refuse_on_rtmp(&d, i, e);
        cmaf = Some(super::cmaf::settings(&d, u, i, &carried, audio.bitrate_bps / 1000, e));
    } else {
        super::cmaf::refuse_elsewhere(&d, i, e);
    }
    let srt = match &url {
        Some(DestinationUrl::Srt(u)) => {
            let s = super::srt::settings(&d, u, i, carried.len(), e);
            if let Some(t) = &s.streamid_template {
                check_template(t, &carried, d.key.is_some(), &f("streamid"), e);
                if carried.iter().any(|r| expand_template(t, r, d.key.as_deref().unwrap_or("")).len() > super::srt::STREAMID_MAX) {
                    e.add(f("streamid"), format!("is longer than the {} bytes SRT carries", super::srt::STREAMID_MAX));
                }
            }
            Some(s)
        }
        Some(DestinationUrl::Http(_)) => None,
        Some(DestinationUrl::Rtmp(_)) => {
            super::srt::refuse_on_rtmp(&d, i, e);
            check_template(&template, &carried, d.key.is_some(), &f("stream"), e);
            None
        }
        None => None,
    };
    let (cap_total, cap_rung, cap_count) = target.caps();
    let total: u64 = carried.iter().map(|r| r.bitrate_bps).sum::<u64>() + u64::from(audio.bitrate_bps);
    if let Some(cap) = cap_total
        && total > cap
    {
        e.add(f("target"), format!("the ladder needs {} kbit/s with audio, over the {} kbit/s cap of a `{}` channel", total / 1000, cap / 1000, d.target.as_deref().unwrap_or("")));
    }
    if let Some(cap) = cap_rung {
        let over = carried.iter().filter(|r| r.bitrate_bps > cap).count();
        if over > 0 {
            e.add(f("target"), format!("{over} of the rungs carried are over the {} kbit/s per-rendition cap of this channel", cap / 1000));
        }
    }
    if let Some(n) = cap_count
        && carried.len() > n
    {
        e.add(f("rungs"), format!("a `single` channel takes {n} rendition, this destination carries {}", carried.len()));
    }
    let backup = if cmaf.is_some() { None } else { backup(&d, url.as_ref(), i, e) };
    Some(Destination { name, url: url?, stream_template: template, key: d.key.map(Secret::new), rungs, target, ca_file: d.ca_file, srt, backup, cmaf })
}

/// `protocol` against the URL's scheme: http(s) needs `cmaf` or `smooth`,
/// which need http(s); the URL when they agree.
fn protocol_matches(d: &RawDestination, url: DestinationUrl, i: usize, e: &mut Errors) -> Option<DestinationUrl> {
    let f = |k: &str| format!("destination[{i}].{k}");
    let by_scheme = match &url {
        DestinationUrl::Rtmp(_) => "rtmp",
        DestinationUrl::Srt(_) => "srt",
        DestinationUrl::Http(_) => "cmaf",
    };
    match d.protocol.as_deref() {
        None if by_scheme == "cmaf" => {
            e.add(f("protocol"), "is required with an http:// or https:// URL (protocol = \"cmaf\" or \"smooth\")");
            None
        }
        None => Some(url),
        Some(p) if p == by_scheme => Some(url),
        Some("smooth") if by_scheme == "cmaf" => Some(url),
        Some(p @ ("cmaf" | "smooth")) => {
            e.add(f("url"), format!("must be an http:// or https:// URL for protocol = \"{p}\""));
            None
        }
        Some("rtmp" | "srt") => {
            e.add(f("url"), "does not match `protocol` (rtmp:// or rtmps:// for rtmp, srt:// for srt)");
            None
        }
        Some(_) => {
            e.add(f("protocol"), "expected one of: rtmp, srt, cmaf, smooth");
            None
        }
    }
}

/// `backup_url`, `redundancy`, `failover_after_ms`.
fn backup(d: &RawDestination, primary: Option<&DestinationUrl>, i: usize, e: &mut Errors) -> Option<Backup> {
    let f = |k: &str| format!("destination[{i}].{k}");
    let after = d.failover_after_ms.unwrap_or(3000);
    if !(500..=60_000).contains(&after) {
        e.add(f("failover_after_ms"), "is outside 500..60000");
    }
    let redundancy = match d.redundancy.as_deref() {
        None | Some("failover") => Redundancy::Failover { after: Duration::from_millis(after) },
        Some("both") => Redundancy::Both,
        Some(_) => {
            e.add(f("redundancy"), "expected one of: failover, both");
            Redundancy::Failover { after: Duration::from_millis(after) }
        }
    };
    let Some(raw) = d.backup_url.as_deref() else {
        if d.redundancy.is_some() || d.failover_after_ms.is_some() {
            e.add(f("backup_url"), "is required with `redundancy` or `failover_after_ms`");
        }
        return None;
    };
    let url = match DestinationUrl::parse(raw) {
        Ok(u) => u,
        Err(err) => {
            e.add(f("backup_url"), err.to_string());
            return None;
        }
    };
    let same = matches!((primary, &url), (Some(DestinationUrl::Rtmp(_)), DestinationUrl::Rtmp(_)) | (Some(DestinationUrl::Srt(_)), DestinationUrl::Srt(_)));
    if primary.is_some() && !same {
        e.add(f("backup_url"), "must use the same protocol as `url` (rtmp/rtmps, or srt)");
        return None;
    }
    if d.url.as_deref().map(str::trim) == Some(raw.trim()) {
        e.add(f("backup_url"), "is the same endpoint as `url`");
    }
    Some(Backup { url, redundancy })
}

fn check_template(t: &str, rungs: &[&RungSpec], has_key: bool, field: &str, e: &mut Errors) {
    let mut rest = t;
    while let Some(start) = rest.find('{') {
        let Some(len) = rest[start..].find('}') else {
            e.add(field, "has an unclosed `{`");
            return;
        };
        let p = &rest[start + 1..start + len];
        if !["rung", "kbps", "width", "height", "key"].contains(&p) {
            e.add(field, "holds a `{...}` that is not a placeholder (use {rung}, {kbps}, {width}, {height}, {key})");
        }
        if p == "key" && !has_key {
            e.add(field, "uses {key} but the destination has no `key`");
        }
        rest = &rest[start + len + 1..];
    }
    let names: HashSet<String> = rungs.iter().map(|r| expand_template(t, r, "k")).collect();
    if names.len() < rungs.len() {
        e.add(field, "gives two rungs the same stream name: add {rung} or {kbps}");
    }
    if t.trim().is_empty() {
        e.add(field, "is empty");
    }
}

fn recording(r: Option<RawRecording>, state_dir: &std::path::Path, rung_names: &[String], e: &mut Errors) -> Option<Recording> {
    let r = r.unwrap_or_default();
    if r.enabled == Some(false) {
        return None;
    }
    let format = match r.format.as_deref().unwrap_or("mp4") {
        "mp4" => RecordFormat::Mp4,
        "mkv" => RecordFormat::Mkv,
        _ => {
            e.add("recording.format", "expected one of: mp4, mkv");
            RecordFormat::Mp4
        }
    };
    let seconds = r.segment_seconds.unwrap_or(60);
    if !(2..=3600).contains(&seconds) {
        e.add("recording.segment_seconds", "is outside 2..3600");
    }
    let rungs = r.rungs.unwrap_or_else(|| rung_names.to_vec());
    for (j, name) in rungs.iter().enumerate() {
        if !rung_names.is_empty() && !rung_names.contains(name) {
            e.add(format!("recording.rungs[{j}]"), "is not the name of a rung of the ladder");
        }
    }
    let min_free_mb = r.min_free_mb.unwrap_or(500);
    if min_free_mb > 1_000_000 {
        e.add("recording.min_free_mb", "is outside 0..1000000");
    }
    Some(Recording {
        dir: r.dir.unwrap_or_else(|| state_dir.join("recordings")),
        format,
        segment: Duration::from_secs(seconds.into()),
        rungs,
        min_free_bytes: min_free_mb.saturating_mul(1_000_000),
        rotate: r.rotate.unwrap_or(false),
    })
}

fn egress(g: RawEgress, e: &mut Errors) -> EgressOptions {
    let initial = g.reconnect_initial_ms.unwrap_or(250);
    let max = g.reconnect_max_ms.unwrap_or(5000);
    let timeout = g.connect_timeout_ms.unwrap_or(10_000);
    if !(50..=10_000).contains(&initial) {
        e.add("egress.reconnect_initial_ms", "is outside 50..10000");
    }
    if max < initial || max > 300_000 {
        e.add("egress.reconnect_max_ms", "must be at least egress.reconnect_initial_ms and at most 300000");
    }
    if !(500..=60_000).contains(&timeout) {
        e.add("egress.connect_timeout_ms", "is outside 500..60000");
    }
    let min_ratio = g.min_ratio.unwrap_or(MIN_RATIO_DEFAULT);
    if !(MIN_RATIO_RANGE.0..=MIN_RATIO_RANGE.1).contains(&min_ratio) {
        e.add("egress.min_ratio", format!("is outside {}..{} (a fraction of each rung's bitrate)", MIN_RATIO_RANGE.0, MIN_RATIO_RANGE.1));
    }
    EgressOptions {
        reconnect_initial: Duration::from_millis(initial),
        reconnect_max: Duration::from_millis(max),
        connect_timeout: Duration::from_millis(timeout),
        adaptive: g.adaptive.unwrap_or(true).then_some(min_ratio),
    }
}

pub const MIN_RATIO_DEFAULT: f64 = 0.25;
pub const MIN_RATIO_RANGE: (f64, f64) = (0.05, 1.0);

pub const INPUT_LOSS_MS_RANGE: (u64, u64) = (100, 10_000);
pub const REPEAT_FRAME_MS_MAX: u64 = 60_000;

fn input_loss(l: RawInputLoss, e: &mut Errors) -> InputLoss {
    let d = InputLoss::default();
    let after = l.input_loss_ms.unwrap_or(d.after.as_millis() as u64);
    let repeat = l.repeat_frame_ms.unwrap_or(d.repeat.as_millis() as u64);
    let (lo, hi) = INPUT_LOSS_MS_RANGE;
    if !(lo..=hi).contains(&after) {
        e.add("input_loss.input_loss_ms", format!("is outside {lo}..{hi}"));
    }
    if repeat > REPEAT_FRAME_MS_MAX {
        e.add("input_loss.repeat_frame_ms", format!("is outside 0..{REPEAT_FRAME_MS_MAX}"));
    }
    if let Some(path) = &l.slate_image
        && let Err(why) = check_image(path)
    {
        e.add("input_loss.slate_image", why);
    }
    InputLoss { after: Duration::from_millis(after), repeat: Duration::from_millis(repeat), slate_image: l.slate_image }
}

/// Whether `path` is a PNG or JPEG fieldcast can read (by its signature);
/// the reason (never the path) when not.
fn check_image(path: &std::path::Path) -> Result<(), &'static str> {
    use std::io::Read;
    let mut f = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Err("does not exist"),
        Err(_) => return Err("cannot be read"),
    };
    if f.metadata().is_ok_and(|m| m.is_dir()) {
        return Err("is a directory, not a PNG or JPEG image");
    }
    let mut head = [0u8; 8];
    let n = f.read(&mut head).map_err(|_| "cannot be read")?;
    let png = n == 8 && head == *b"\x89PNG\r\n\x1a\n";
    let jpeg = n >= 3 && head[..3] == [0xFF, 0xD8, 0xFF];
    if png || jpeg { Ok(()) } else { Err("is not a PNG or JPEG image") }
}

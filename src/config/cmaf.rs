//! Validation of a CMAF or Smooth Streaming ingest destination (`protocol =
//! "cmaf"` or `"smooth"`, an http(s) URL): the track path template and the
//! 403 retry count (CMAF), the `ingest.isml` URL and the `Streams(...)`
//! track path (Smooth). Errors name the field and the rule, never the value.

use super::raw::RawDestination;
use super::url::HttpUrl;
use crate::egress::cmaf::fragment::Flavor;
use super::types::{CmafSettings, RungSpec};
use super::validate::Errors;
use std::collections::HashSet;

/// Placeholders a `track_path` may hold.
pub const TRACK_PLACEHOLDERS: &[&str] = &["rung", "kbps", "track"];
pub const DEFAULT_TRACK_PATH: &str = "{track}";
/// A Smooth destination's default (and required form of) `track_path`.
pub const DEFAULT_SMOOTH_TRACK_PATH: &str = "Streams({track})";
/// What a Smooth ingest URL's path ends in.
pub const SMOOTH_URL_END: &str = "/ingest.isml";
pub const DEFAULT_FORBIDDEN_RETRIES: u32 = 3;
const MAX_FORBIDDEN_RETRIES: u32 = 100;

/// The settings of CMAF or Smooth destination `d` (index `i`, URL `url`)
/// carrying `rungs`, with the shared audio track at `audio_kbps`.
pub(super) fn settings(d: &RawDestination, url: &HttpUrl, i: usize, rungs: &[&RungSpec], audio_kbps: u32, e: &mut Errors) -> CmafSettings {
    let f = |k: &str| format!("destination[{i}].{k}");
    let flavor = if d.protocol.as_deref() == Some("smooth") { Flavor::Smooth } else { Flavor::Cmaf };
    if flavor == Flavor::Smooth {
        if !url.path().ends_with(SMOOTH_URL_END) {
            e.add(f("url"), format!("must end in `{SMOOTH_URL_END}` for protocol = \"smooth\" (its path, before any query)"));
        }
        if d.forbidden_retries.is_some() {
            e.add(f("forbidden_retries"), "is for CMAF destinations: a Smooth track retries without a cap");
        }
        if let Some(t) = &d.track_path
            && !(t.starts_with("Streams(") && t.ends_with(')'))
        {
            e.add(f("track_path"), "must be of the form `Streams(...)` for protocol = \"smooth\"");
        }
    }
    for (name, set) in [("stream", d.stream.is_some()), ("key", d.key.is_some()), ("backup_url", d.backup_url.is_some())] {
        if set {
            let why = match name {
                "backup_url" => "is not supported for CMAF or Smooth destinations yet",
                _ => "is for RTMP destinations; a CMAF or Smooth destination names each track's path with `track_path`",
            };
            e.add(f(name), why);
        }
    }
    let default = if flavor == Flavor::Smooth { DEFAULT_SMOOTH_TRACK_PATH } else { DEFAULT_TRACK_PATH };
    let track_path = d.track_path.clone().unwrap_or_else(|| default.to_owned());
    check_track_path(&track_path, rungs, audio_kbps, &f("track_path"), e);
    let forbidden_retries = d.forbidden_retries.unwrap_or(DEFAULT_FORBIDDEN_RETRIES);
    if forbidden_retries > MAX_FORBIDDEN_RETRIES {
        e.add(f("forbidden_retries"), format!("is over {MAX_FORBIDDEN_RETRIES}"));
    }
    CmafSettings { flavor, track_path, forbidden_retries, epoch_aligned: d.epoch_aligned.unwrap_or(false) }
}

/// The CMAF-only fields set on a destination that is not CMAF.
pub(super) fn refuse_elsewhere(d: &RawDestination, i: usize, e: &mut Errors) {
    let set = [("track_path", d.track_path.is_some()), ("forbidden_retries", d.forbidden_retries.is_some()), ("epoch_aligned", d.epoch_aligned.is_some())];
    for (name, set) in set {
        if set {
            e.add(format!("destination[{i}].{name}"), "is for CMAF and Smooth destinations (protocol = \"cmaf\" or \"smooth\")");
        }
    }
}

fn check_track_path(t: &str, rungs: &[&RungSpec], audio_kbps: u32, field: &str, e: &mut Errors) {
    let mut rest = t;
    while let Some(start) = rest.find('{') {
        let Some(len) = rest[start..].find('}') else {
            e.add(field, "has an unclosed `{`");
            return;
        };
        if !TRACK_PLACEHOLDERS.contains(&&rest[start + 1..start + len]) {
            e.add(field, "holds a `{...}` that is not a placeholder (use {rung}, {kbps}, {track})");
        }
        rest = &rest[start + len + 1..];
    }
    if t.trim().is_empty() {
        e.add(field, "is empty");
        return;
    }
    if t.chars().any(|c| c.is_whitespace() || c.is_control() || c == '?' || c == '#') {
        e.add(field, "may not hold spaces, control characters, `?` or `#` (it is a URL path)");
    }
    let mut paths: HashSet<String> = rungs.iter().map(|r| expand_video(t, r)).collect();
    let distinct = paths.len() == rungs.len() && paths.insert(expand_audio(t, audio_kbps));
    if !distinct {
        e.add(field, "gives two tracks the same path: add {track}");
    }
}

/// A video track's name: `video-<rung>`.
pub fn video_track_name(rung: &str) -> String {
    format!("video-{rung}")
}
pub const AUDIO_TRACK_NAME: &str = "audio";

/// A rung's video track path.
pub fn expand_video(t: &str, rung: &RungSpec) -> String {
    t.replace("{rung}", &rung.name).replace("{kbps}", &(rung.bitrate_bps / 1000).to_string()).replace("{track}", &video_track_name(&rung.name))
}

/// The shared audio track's path (`{rung}` is `audio` there).
pub fn expand_audio(t: &str, audio_kbps: u32) -> String {
    t.replace("{rung}", AUDIO_TRACK_NAME).replace("{kbps}", &audio_kbps.to_string()).replace("{track}", AUDIO_TRACK_NAME)
}

//! Validation of a CMAF ingest destination (`protocol = "cmaf"`, an
//! http(s) URL): the track path template and the 403 retry count. Errors
//! name the field and the rule, never the value.

use super::raw::RawDestination;
use super::types::{CmafSettings, RungSpec};
use super::validate::Errors;
use std::collections::HashSet;

/// Placeholders a `track_path` may hold.
pub const TRACK_PLACEHOLDERS: &[&str] = &["rung", "kbps", "track"];
pub const DEFAULT_TRACK_PATH: &str = "{track}";
pub const DEFAULT_FORBIDDEN_RETRIES: u32 = 3;
const MAX_FORBIDDEN_RETRIES: u32 = 100;

/// The settings of CMAF destination `d` (index `i`) carrying `rungs`, with
/// the shared audio track at `audio_kbps`.
pub(super) fn settings(d: &RawDestination, i: usize, rungs: &[&RungSpec], audio_kbps: u32, e: &mut Errors) -> CmafSettings {
    let f = |k: &str| format!("destination[{i}].{k}");
    for (name, set) in [("stream", d.stream.is_some()), ("key", d.key.is_some()), ("backup_url", d.backup_url.is_some())] {
        if set {
            let why = match name {
                "backup_url" => "is not supported for CMAF destinations yet",
                _ => "is for RTMP destinations; a CMAF destination names each track's path with `track_path`",
            };
            e.add(f(name), why);
        }
    }
    let track_path = d.track_path.clone().unwrap_or_else(|| DEFAULT_TRACK_PATH.to_owned());
    check_track_path(&track_path, rungs, audio_kbps, &f("track_path"), e);
    let forbidden_retries = d.forbidden_retries.unwrap_or(DEFAULT_FORBIDDEN_RETRIES);
    if forbidden_retries > MAX_FORBIDDEN_RETRIES {
        e.add(f("forbidden_retries"), format!("is over {MAX_FORBIDDEN_RETRIES}"));
    }
    CmafSettings { track_path, forbidden_retries }
}

/// The CMAF-only fields set on a destination that is not CMAF.
pub(super) fn refuse_elsewhere(d: &RawDestination, i: usize, e: &mut Errors) {
    for (name, set) in [("track_path", d.track_path.is_some()), ("forbidden_retries", d.forbidden_retries.is_some())] {
        if set {
            e.add(format!("destination[{i}].{name}"), "is for CMAF destinations (protocol = \"cmaf\")");
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

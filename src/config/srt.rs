//! Validation of an SRT destination's settings. Each may be a field of the
//! `[[destination]]` or a query parameter of its `srt://` URL (channels hand
//! out one URL to paste), never both. Errors name the field (or `url` for a
//! query value) and the rule, never the value.

use super::raw::RawDestination;
use super::types::{SrtMode, SrtSettings};
use super::url::SrtUrl;
use super::validate::Errors;

pub const PASSPHRASE_LEN: (usize, usize) = (10, 79);
pub const LATENCY_MS: (u32, u32) = (20, 10_000);
pub const DEFAULT_LATENCY_MS: u32 = 2000;
/// libsrt's limit on a stream id.
pub const STREAMID_MAX: usize = 512;

/// Where a setting came from, for naming it in an error.
enum Origin {
    Field(&'static str),
    Query(&'static str),
}

/// Adds an error about a setting, named where it was written.
fn refuse(e: &mut Errors, i: usize, from: &Origin, message: impl std::fmt::Display) {
    match from {
        Origin::Field(name) => e.add(format!("destination[{i}].{name}"), message.to_string()),
        Origin::Query(key) => e.add(format!("destination[{i}].url"), format!("the query's `{key}`: {message}")),
    }
}

/// One setting from its field or the query; both set is an error.
fn pick<T>(field: Option<T>, name: &'static str, query: Option<&str>, query_key: &'static str, i: usize, e: &mut Errors) -> Option<(T, Origin)>
where
    T: QueryValue,
{
    let f = |k: &str| format!("destination[{i}].{k}");
    match (field, query) {
        (Some(_), Some(_)) => {
            e.add(f(name), format!("is set both here and as `{query_key}` in the URL's query; keep one"));
            None
        }
        (Some(v), None) => Some((v, Origin::Field(name))),
        (None, Some(q)) => match T::from_query(q) {
            Some(v) => Some((v, Origin::Query(query_key))),
            None => {
                e.add(f("url"), format!("the query's `{query_key}`: {}", T::EXPECTED));
                None
            }
        },
        (None, None) => None,
    }
}

/// A value that can also come from a URL query string.
trait QueryValue: Sized {
    const EXPECTED: &'static str;
    fn from_query(q: &str) -> Option<Self>;
}
impl QueryValue for String {
    const EXPECTED: &'static str = "is not text";
    fn from_query(q: &str) -> Option<Self> {
        Some(q.to_owned())
    }
}
impl QueryValue for u32 {
    const EXPECTED: &'static str = "is not a whole number";
    fn from_query(q: &str) -> Option<Self> {
        q.parse().ok()
    }
}

/// The settings of an SRT destination `d` (index `i`) carrying `rungs` rungs.
pub(super) fn settings(d: &RawDestination, url: &SrtUrl, i: usize, rungs: usize, e: &mut Errors) -> SrtSettings {
    let f = |k: &str| format!("destination[{i}].{k}");
    if d.stream.is_some() {
        e.add(f("stream"), "is for RTMP destinations; an SRT destination names each rung's stream with `streamid`");
    }
    if d.ca_file.is_some() {
        e.add(f("ca_file"), "is for RTMPS destinations; SRT encrypts with `passphrase`");
    }
    let mode = match pick(d.mode.clone(), "mode", url.query("mode"), "mode", i, e) {
        None => SrtMode::Caller,
        Some((m, from)) => match m.as_str() {
            "caller" => SrtMode::Caller,
            "listener" => SrtMode::Listener,
            _ => {
                refuse(e, i, &from, "expected one of: caller, listener");
                SrtMode::Caller
            }
        },
    };
    if mode == SrtMode::Caller && url.host().is_empty() {
        e.add(f("url"), "has no host (a caller dials srt://HOST:PORT; only a listener may leave the host out)");
    }
    if mode == SrtMode::Listener && rungs > 1 {
        e.add(f("rungs"), "a listener serves one rung on its port: give each rung its own destination and port (set `rungs`)");
    }
    let passphrase = pick(d.passphrase.clone(), "passphrase", url.query("passphrase"), "passphrase", i, e).and_then(|(p, from)| {
        let n = p.chars().count();
        if n < PASSPHRASE_LEN.0 || n > PASSPHRASE_LEN.1 {
            refuse(e, i, &from, format!("must be {} to {} characters (SRT's rule)", PASSPHRASE_LEN.0, PASSPHRASE_LEN.1));
            return None;
        }
        Some(super::Secret::new(p))
    });
    let had_passphrase = d.passphrase.is_some() || url.query("passphrase").is_some();
    let pbkeylen = match pick(d.pbkeylen, "pbkeylen", url.query("pbkeylen"), "pbkeylen", i, e) {
        None => 16,
        Some((n, from)) => {
            if ![16, 24, 32].contains(&n) {
                refuse(e, i, &from, "expected one of: 16, 24, 32 (bytes: AES-128, AES-192, AES-256)");
            } else if !had_passphrase {
                refuse(e, i, &from, "needs a `passphrase` (it is the key length of the encryption)");
            }
            n
        }
    };
    let latency_ms = match pick(d.latency_ms, "latency_ms", url.query("latency"), "latency", i, e) {
        None => DEFAULT_LATENCY_MS,
        Some((ms, from)) => {
            if !(LATENCY_MS.0..=LATENCY_MS.1).contains(&ms) {
                refuse(e, i, &from, format!("is outside {}..{} ms", LATENCY_MS.0, LATENCY_MS.1));
            }
            ms
        }
    };
    let streamid_template = match pick(d.streamid.clone(), "streamid", url.query("streamid"), "streamid", i, e) {
        None => Some("{rung}".to_owned()),
        Some((t, _)) if t.is_empty() => None,
        Some((t, _)) => Some(t),
    };
    SrtSettings { mode, passphrase, pbkeylen, latency_ms, streamid_template }
}

/// The SRT-only fields set on a destination that is not SRT.
pub(super) fn refuse_on_rtmp(d: &RawDestination, i: usize, e: &mut Errors) {
    let set = [
        ("streamid", d.streamid.is_some()),
        ("passphrase", d.passphrase.is_some()),
        ("pbkeylen", d.pbkeylen.is_some()),
        ("latency_ms", d.latency_ms.is_some()),
        ("mode", d.mode.is_some()),
    ];
    for (name, _) in set.iter().filter(|(_, s)| *s) {
        e.add(format!("destination[{i}].{name}"), "is for SRT destinations (srt://...)");
    }
}

//! `config/desired`: `{"version": N, "config": {...}}`, the whole remote
//! overlay a dashboard wants (device-shadow style). Pure parsing; the
//! overlay itself is validated by [`super::patch::effective`].

use super::command::MAX_PAYLOAD;
use super::error::{CommandError, ErrorCode};
use serde_json::{Map, Value};

#[derive(Debug, PartialEq)]
pub struct Desired {
    pub version: u64,
    pub overlay: Map<String, Value>,
}

/// Why a document was refused, with its version when that could be read
/// (so the refusal is recorded against it and not retried).
pub type Refused = (Option<u64>, CommandError);

/// `{"version": N, "config": {...}}` -> (version, overlay). On error, the
/// version when it could be read.
pub fn parse(payload: &[u8]) -> Result<Desired, Refused> {
    if payload.len() > MAX_PAYLOAD {
        return Err((None, CommandError::new(ErrorCode::PayloadTooLarge, format!("the limit is {} bytes", MAX_PAYLOAD))));
    }
    let v: Value = serde_json::from_slice(payload)
        .map_err(|e| (None, CommandError::new(ErrorCode::MalformedJson, format!("line {} column {}", e.line(), e.column()))))?;
    let Value::Object(mut o) = v else {
        return Err((None, CommandError::new(ErrorCode::NotAnObject, "config/desired must be {\"version\": N, \"config\": {...}}")));
    };
    let version = match o.remove("version") {
        Some(Value::Number(n)) if n.is_u64() => n.as_u64().expect("u64"),
        Some(_) => return Err((None, CommandError::field(ErrorCode::WrongType, "version", "must be a whole number"))),
        None => return Err((None, CommandError::field(ErrorCode::MissingField, "version", "config/desired needs a version"))),
    };
    let overlay = match o.remove("config") {
        Some(Value::Object(c)) => c,
        Some(_) => return Err((Some(version), CommandError::field(ErrorCode::WrongType, "config", "must be an object"))),
        None => return Err((Some(version), CommandError::field(ErrorCode::MissingField, "config", "config/desired needs a config object"))),
    };
    if let Some(k) = o.keys().next() {
        return Err((Some(version), CommandError::field(ErrorCode::UnknownField, k.as_str(), "config/desired holds only version and config")));
    }
    Ok(Desired { version, overlay })
}

/// How a received document's version relates to the last one handled
/// (device-shadow semantics: versions only move forward).
#[derive(Debug, PartialEq)]
pub enum Order {
    /// Newer (or the first): handle it.
    New,
    /// The last one again (the broker redelivers it at every connect): nothing to do.
    Same,
    /// Older, or the same version with other content: refused.
    Refused(CommandError),
}

/// Judges `version` (content `digest`) against the last one handled. A
/// last one saved without a digest (by an older build) counts as the same.
pub fn order(last: Option<(u64, Option<&str>)>, version: u64, digest: &str) -> Order {
    match last {
        None => Order::New,
        Some((l, _)) if version > l => Order::New,
        Some((l, d)) if version == l => match d {
            Some(d) if d != digest => Order::Refused(CommandError::field(
                ErrorCode::VersionConflict,
                "version",
                format!("version {version} was already handled with other content: publish changes with a higher version"),
            )),
            _ => Order::Same,
        },
        Some((l, _)) => Order::Refused(CommandError::field(
            ErrorCode::StaleVersion,
            "version",
            format!("version {version} is older than {l}, the last one handled: versions only move forward"),
        )),
    }
}

/// A stable digest of a document's content (FNV-1a 64 over bytes; for a
/// parsed overlay, its canonical JSON: serde_json orders keys), saved with
/// the version to tell a redelivery from a conflicting document.
pub fn digest(bytes: &[u8]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{h:016x}")
}

/// [`digest`] of an overlay, independent of key order and whitespace.
pub fn overlay_digest(overlay: &Map<String, Value>) -> String {
    digest(&serde_json::to_vec(overlay).expect("JSON serialises"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(p: &str) -> (Option<u64>, ErrorCode, Option<String>) {
        let (v, e) = parse(p.as_bytes()).unwrap_err();
        (v, e.code, e.field)
    }

    #[test]
    fn documents_parse_or_name_what_is_wrong() {
        let d = parse(br#"{"version": 3, "config": {"ladder": {"profile": "basic"}}}"#).unwrap();
        assert_eq!((d.version, d.overlay["ladder"]["profile"].as_str()), (3, Some("basic")));
        assert_eq!(refused("{"), (None, ErrorCode::MalformedJson, None));
        assert_eq!(refused("[]"), (None, ErrorCode::NotAnObject, None));
        assert_eq!(refused(r#"{"config": {}}"#), (None, ErrorCode::MissingField, Some("version".into())));
        assert_eq!(refused(r#"{"version": -1, "config": {}}"#), (None, ErrorCode::WrongType, Some("version".into())));
        assert_eq!(refused(r#"{"version": 4}"#), (Some(4), ErrorCode::MissingField, Some("config".into())));
        assert_eq!(refused(r#"{"version": 4, "config": []}"#), (Some(4), ErrorCode::WrongType, Some("config".into())));
        assert_eq!(refused(r#"{"version": 4, "config": {}, "state": "live"}"#), (Some(4), ErrorCode::UnknownField, Some("state".into())));
    }

    #[test]
    fn versions_only_move_forward_and_a_version_names_one_content() {
        let d = |s: &str| overlay_digest(&parse(s.as_bytes()).unwrap().overlay);
        let a = d(r#"{"version": 7, "config": {"ladder": {"profile": "basic", "gop_seconds": 2}}}"#);
        let same = d(r#"{"config": {"ladder": {"gop_seconds": 2,   "profile": "basic"}}, "version": 7}"#);
        let other = d(r#"{"version": 7, "config": {"ladder": {"profile": "single"}}}"#);
        assert_eq!(a, same, "key order and whitespace do not matter");
        assert_ne!(a, other);
        assert_eq!(digest(b""), "cbf29ce484222325", "FNV-1a 64: stable across builds (it is saved)");
        let code = |o: Order| match o {
            Order::Refused(e) => Some((e.code, e.field)),
            _ => None,
        };
        assert_eq!(order(None, 0, &a), Order::New);
        assert_eq!(order(Some((6, Some(&other))), 7, &a), Order::New);
        assert_eq!(order(Some((7, Some(&a))), 7, &same), Order::Same);
        assert_eq!(order(Some((7, None)), 7, &other), Order::Same, "saved by an older build");
        assert_eq!(code(order(Some((7, Some(&a))), 7, &other)), Some((ErrorCode::VersionConflict, Some("version".into()))));
        assert_eq!(code(order(Some((7, Some(&a))), 6, &a)), Some((ErrorCode::StaleVersion, Some("version".into()))));
        assert_eq!(code(order(Some((7, Some(&a))), 0, &other)), Some((ErrorCode::StaleVersion, Some("version".into()))));
    }
}

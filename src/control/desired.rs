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
}

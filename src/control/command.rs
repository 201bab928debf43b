//! Commands as they arrive on `cmd/<name>`: bytes -> a typed [`Command`], or
//! a [`CommandError`] with a stable code and the field at fault. Pure; the
//! message never quotes a value (it could be a key in the wrong place).

use super::error::{CommandError, ErrorCode};
use serde_json::{Map, Value};
use std::time::{Duration, SystemTime};

/// Payloads larger than this are refused unread.
pub const MAX_PAYLOAD: usize = 64 * 1024;
pub const MAX_ID_LEN: usize = 128;
pub const NAMES: &[&str] = &["start", "stop", "restart", "status", "configure", "snapshot"];

#[derive(Clone, Debug, PartialEq)]
pub struct Command {
    pub id: String,
    pub kind: Kind,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Kind {
    Start,
    Stop,
    Restart,
    Status,
    /// A partial config (JSON merge patch over the remote overlay).
    Configure { patch: Map<String, Value> },
    /// A JPEG of the input, at most `width` pixels wide.
    Snapshot { width: u32 },
}

impl Kind {
    pub fn name(&self) -> &'static str {
        match self {
            Kind::Start => "start",
            Kind::Stop => "stop",
            Kind::Restart => "restart",
            Kind::Status => "status",
            Kind::Configure { .. } => "configure",
            Kind::Snapshot { .. } => "snapshot",
        }
    }
}

pub const SNAPSHOT_WIDTH: (u32, u32, u32) = (64, 640, 1920);

/// Parses the payload of `cmd/<name>` received at `now`.
pub fn parse(name: &str, payload: &[u8], now: SystemTime) -> Result<Command, CommandError> {
    if payload.len() > MAX_PAYLOAD {
        return Err(too_large(Some(payload.len())));
    }
    let text = std::str::from_utf8(payload)
        .map_err(|e| CommandError::new(ErrorCode::BadEncoding, format!("payload is not UTF-8 (byte {})", e.valid_up_to())))?;
    let value: Value = serde_json::from_str(text).map_err(|e| {
        CommandError::new(ErrorCode::MalformedJson, format!("line {} column {}: {}", e.line(), e.column(), json_reason(&e)))
    })?;
    let Value::Object(mut obj) = value else {
        return Err(CommandError::new(ErrorCode::NotAnObject, "payload must be a JSON object like {\"id\": \"...\"}"));
    };
    let id = match obj.remove("id") {
        None => return Err(CommandError::field(ErrorCode::MissingId, "id", "every command needs an `id` string")),
        Some(Value::String(s)) if valid_id(&s) => s,
        Some(Value::String(_)) => {
            return Err(CommandError::field(
                ErrorCode::InvalidId,
                "id",
                format!("must be 1-{MAX_ID_LEN} characters of a-z, A-Z, 0-9, '-', '_', '.' or ':'"),
            ));
        }
        Some(v) => return Err(CommandError::field(ErrorCode::WrongType, "id", format!("must be a string, not {}", type_name(&v)))),
    };
    let with_id = |e: CommandError| e.with_id(&id);
    check_name(name).map_err(with_id)?;
    if let Some(v) = obj.remove("expires_at") {
        let at = expires_at(&v).map_err(with_id)?;
        // A board without a real-time clock boots in 1970 until NTP syncs:
        // then nothing can be judged stale, and nothing is refused as stale.
        if at <= now && clock_is_set(now) {
            return Err(with_id(CommandError::field(ErrorCode::Stale, "expires_at", "the command expired before it arrived")));
        }
    }
    let kind = match name {
        "start" => Kind::Start,
        "stop" => Kind::Stop,
        "restart" => Kind::Restart,
        "status" => Kind::Status,
        "configure" => match obj.remove("config") {
            Some(Value::Object(patch)) => Kind::Configure { patch },
            Some(v) => return Err(with_id(CommandError::field(ErrorCode::WrongType, "config", format!("must be an object, not {}", type_name(&v))))),
            None => return Err(with_id(CommandError::field(ErrorCode::MissingField, "config", "configure needs a `config` object"))),
        },
        "snapshot" => Kind::Snapshot { width: snapshot_width(obj.remove("width")).map_err(with_id)? },
        _ => unreachable!("checked against NAMES"),
    };
    if !obj.is_empty() {
        // The key is not repeated: it may be a value typed as a key.
        let takes = match name {
            "configure" => "id, expires_at, config",
            "snapshot" => "id, expires_at, width",
            _ => "id, expires_at",
        };
        return Err(with_id(CommandError::new(ErrorCode::UnknownField, format!("unknown field; `{name}` takes only: {takes}"))));
    }
    Ok(Command { id, kind })
}

/// `unknown_command` unless `name` is one of [`NAMES`] (the name is not repeated).
pub fn check_name(name: &str) -> Result<(), CommandError> {
    if NAMES.contains(&name) {
        return Ok(());
    }
    Err(CommandError::new(ErrorCode::UnknownCommand, format!("unknown command; known: {}", NAMES.join(", "))))
}

/// `payload_too_large`, with the size when it is known.
pub fn too_large(len: Option<usize>) -> CommandError {
    let size = len.map_or_else(|| "over the limit".to_string(), |n| format!("{n} bytes"));
    CommandError::new(ErrorCode::PayloadTooLarge, format!("payload is {size}; the limit is {MAX_PAYLOAD}"))
}

/// Whether `now` looks like a synchronised clock (after 2025-01-01).
pub fn clock_is_set(now: SystemTime) -> bool {
    now > SystemTime::UNIX_EPOCH + Duration::from_secs(1_735_689_600)
}

pub fn valid_id(s: &str) -> bool {
    !s.is_empty() && s.len() <= MAX_ID_LEN && s.chars().all(|c| c.is_ascii_alphanumeric() || "-_.:".contains(c))
}

/// RFC 3339 (`2026-11-24T10:00:00Z`) or Unix seconds.
fn expires_at(v: &Value) -> Result<SystemTime, CommandError> {
    let bad = |m: &str| CommandError::field(ErrorCode::InvalidValue, "expires_at", m.to_string());
    match v {
        Value::String(s) => humantime::parse_rfc3339_weak(s).map_err(|_| bad("must be an RFC 3339 time like 2026-11-24T10:00:00Z")),
        Value::Number(n) => match n.as_f64() {
            Some(secs) if (0.0..1e11).contains(&secs) => Ok(SystemTime::UNIX_EPOCH + Duration::from_secs_f64(secs)),
            _ => Err(bad("must be Unix seconds between 0 and 1e11")),
        },
        v => Err(CommandError::field(ErrorCode::WrongType, "expires_at", format!("must be a string or a number, not {}", type_name(v)))),
    }
}

fn snapshot_width(v: Option<Value>) -> Result<u32, CommandError> {
    let (min, default, max) = SNAPSHOT_WIDTH;
    match v {
        None => Ok(default),
        Some(Value::Number(n)) => match n.as_u64() {
            Some(w) if (u64::from(min)..=u64::from(max)).contains(&w) => Ok(w as u32 & !1),
            _ => Err(CommandError::field(ErrorCode::InvalidValue, "width", format!("must be a whole number of pixels in {min}..{max}"))),
        },
        Some(v) => Err(CommandError::field(ErrorCode::WrongType, "width", format!("must be a number, not {}", type_name(&v)))),
    }
}

pub fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// serde_json's reason without any quoted input.
fn json_reason(e: &serde_json::Error) -> String {
    let full = e.to_string();
    let reason = full.split(" at line ").next().unwrap_or(&full);
    if reason.contains('"') || reason.contains('`') { format!("{:?} error", e.classify()).to_lowercase() } else { reason.to_string() }
}

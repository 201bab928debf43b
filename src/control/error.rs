//! The error half of a reply: a stable machine code, the field at fault and
//! a message for people. Codes are API: never rename one.

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    PayloadTooLarge,
    BadEncoding,
    MalformedJson,
    NotAnObject,
    MissingId,
    InvalidId,
    UnknownCommand,
    UnknownField,
    MissingField,
    WrongType,
    InvalidValue,
    Stale,
    ForbiddenField,
    InvalidConfig,
    /// The command makes no sense in the current state (`stop` while idle).
    NotAllowed,
    /// The command cannot be served right now (no input for a snapshot).
    Unavailable,
    /// Accepted, but the stream could not start (the reason says why).
    StartFailed,
    /// Applying failed on this box (e.g. the state could not be saved).
    Internal,
    /// The command was published retained: never run (it would run again
    /// at every connect).
    RetainedCommand,
    /// `config/desired` older than the last one handled (versions only move forward).
    StaleVersion,
    /// `config/desired` with the version of the last one handled but other content.
    VersionConflict,
    /// HTTP only: no bearer token, or not this box's; a wrong page password; an expired session.
    Unauthorized,
    /// HTTP only: a page session's request without its CSRF token.
    Forbidden,
    /// HTTP only: too many failed page logins from one address.
    RateLimited,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        ALL.iter().find(|(c, _)| *c == self).map(|(_, n)| *n).expect("every code is listed")
    }
}

/// Every code with its wire name (also checked against serde in the tests).
pub const ALL: &[(ErrorCode, &str)] = &[
    (ErrorCode::PayloadTooLarge, "payload_too_large"),
    (ErrorCode::BadEncoding, "bad_encoding"),
    (ErrorCode::MalformedJson, "malformed_json"),
    (ErrorCode::NotAnObject, "not_an_object"),
    (ErrorCode::MissingId, "missing_id"),
    (ErrorCode::InvalidId, "invalid_id"),
    (ErrorCode::UnknownCommand, "unknown_command"),
    (ErrorCode::UnknownField, "unknown_field"),
    (ErrorCode::MissingField, "missing_field"),
    (ErrorCode::WrongType, "wrong_type"),
    (ErrorCode::InvalidValue, "invalid_value"),
    (ErrorCode::Stale, "stale"),
    (ErrorCode::ForbiddenField, "forbidden_field"),
    (ErrorCode::InvalidConfig, "invalid_config"),
    (ErrorCode::NotAllowed, "not_allowed"),
    (ErrorCode::Unavailable, "unavailable"),
    (ErrorCode::StartFailed, "start_failed"),
    (ErrorCode::Internal, "internal"),
    (ErrorCode::RetainedCommand, "retained_command"),
    (ErrorCode::StaleVersion, "stale_version"),
    (ErrorCode::VersionConflict, "version_conflict"),
    (ErrorCode::Unauthorized, "unauthorized"),
    (ErrorCode::Forbidden, "forbidden"),
    (ErrorCode::RateLimited, "rate_limited"),
];

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldProblem {
    pub field: String,
    pub message: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, thiserror::Error)]
#[serde(deny_unknown_fields)]
#[error("{}{}: {message}", code.as_str(), field.as_ref().map(|f| format!(" ({f})")).unwrap_or_default())]
pub struct CommandError {
    /// The command id, when the payload got far enough to carry one.
    #[serde(skip)]
    pub id: Option<String>,
    pub code: ErrorCode,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    pub message: String,
    /// Every problem, for `invalid_config` (the first is also in `field`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<FieldProblem>,
}

impl CommandError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        CommandError { id: None, code, field: None, message: message.into(), fields: Vec::new() }
    }
    pub fn field(code: ErrorCode, field: impl Into<String>, message: impl Into<String>) -> Self {
        CommandError { field: Some(field.into()), ..CommandError::new(code, message) }
    }
    pub fn with_id(mut self, id: &str) -> Self {
        self.id = Some(id.to_string());
        self
    }
}

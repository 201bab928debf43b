//! HTTP responses in the MQTT API's shapes: a command's reply with the
//! status its error code calls for, and the API's own refusals (no token,
//! unknown route) as the same `{"id", "ok": false, "state", "error"}` body.

use crate::control::error::{CommandError, ErrorCode};
use crate::status::{wire, StateName};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;

/// The HTTP status for a reply whose error has `code`.
pub fn status_for(code: ErrorCode) -> StatusCode {
    match code {
        ErrorCode::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        ErrorCode::UnknownCommand => StatusCode::NOT_FOUND,
        ErrorCode::Unauthorized => StatusCode::UNAUTHORIZED,
        ErrorCode::Forbidden => StatusCode::FORBIDDEN,
        ErrorCode::RateLimited => StatusCode::TOO_MANY_REQUESTS,
        ErrorCode::NotAllowed => StatusCode::CONFLICT,
        ErrorCode::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        ErrorCode::StartFailed | ErrorCode::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        _ => StatusCode::BAD_REQUEST,
    }
}

/// A refusal of the API itself, before any command ran.
pub fn refusal(state: StateName, e: CommandError) -> Response {
    let status = status_for(e.code);
    let body = serde_json::to_vec(&wire::Failure::new(None, state, &e)).expect("json");
    let mut r = json(status, Bytes::from(body));
    if status == StatusCode::UNAUTHORIZED {
        r.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    r
}

/// A command's reply from the supervisor: the status follows its `ok` and error code.
pub fn command(content_type: &'static str, body: Bytes) -> Response {
    if content_type != "application/json" {
        let mut r = (StatusCode::OK, body).into_response();
        r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        return r;
    }
    let code = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v.get("error")?.get("code").cloned())
        .and_then(|c| serde_json::from_value::<ErrorCode>(c).ok());
    json(code.map_or(StatusCode::OK, status_for), body)
}

pub fn json(status: StatusCode, body: Bytes) -> Response {
    let mut r = (status, body).into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

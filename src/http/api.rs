//! The REST routes: `GET /api/v1/status`, `GET /api/v1/telemetry` (the MQTT
//! `status` and `telemetry` documents) and `POST /api/v1/cmd/<name>` (the
//! MQTT commands, bodies and replies alike). Every error is a JSON body with
//! the MQTT API's error code; no response quotes what was sent.

use super::{auth, reply, Sources};
use crate::config::{Http, Secret};
use crate::control::command::{self, MAX_PAYLOAD};
use crate::control::error::{CommandError, ErrorCode};
use crate::control::local::LocalError;
use crate::status::StateName;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use bytes::Bytes;
use std::sync::Arc;
use std::time::Duration;

/// How long a command may take to answer (a start waits for the stream to
/// be up, bounded by the supervisor's own start timeout).
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(90);

#[derive(Clone)]
pub struct AppState {
    sources: Sources,
    token: Option<Arc<Secret>>,
    public_status: bool,
}

impl AppState {
    pub fn new(config: &Http, sources: Sources) -> AppState {
        AppState { sources, token: config.token.clone().map(Arc::new), public_status: config.public_status }
    }

    fn state(&self) -> StateName {
        self.sources.status.borrow().as_ref().map_or(StateName::Starting, |s| s.state)
    }

    fn authorised(&self, headers: &HeaderMap) -> bool {
        auth::bearer_ok(headers, self.token.as_deref())
    }

    /// `None` when the caller may read the status documents; else the refusal.
    fn may_read(&self, headers: &HeaderMap) -> Option<Response> {
        (!self.public_status && !self.authorised(headers)).then(|| self.unauthorised(headers))
    }

    fn unauthorised(&self, headers: &HeaderMap) -> Response {
        let why = match (&self.token, headers.contains_key(header::AUTHORIZATION)) {
            (None, _) => "this box has no [http] token: the API takes no commands",
            (Some(_), false) => "send Authorization: Bearer <the [http] token>",
            (Some(_), true) => "the bearer token is not this box's",
        };
        reply::refusal(self.state(), CommandError::new(ErrorCode::Unauthorized, why))
    }
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/api/v1/status", get(status))
        .route("/api/v1/telemetry", get(telemetry))
        .route("/api/v1/cmd/{name}", post(cmd))
        .route("/metrics", get(metrics))
        .fallback(not_found)
        .with_state(state)
}

async fn status(State(app): State<AppState>, headers: HeaderMap) -> Response {
    if let Some(r) = app.may_read(&headers) {
        return r;
    }
    let doc = app.sources.status.borrow().clone();
    match doc {
        Some(doc) => reply::json(StatusCode::OK, Bytes::from(serde_json::to_vec(&*doc).expect("json"))),
        None => reply::refusal(app.state(), CommandError::new(ErrorCode::Unavailable, "no status yet")),
    }
}

async fn telemetry(State(app): State<AppState>, headers: HeaderMap) -> Response {
    if let Some(r) = app.may_read(&headers) {
        return r;
    }
    let snapshot = app.sources.latest.borrow().clone();
    match snapshot {
        Some(s) => reply::json(StatusCode::OK, Bytes::from(serde_json::to_vec(&s.telemetry()).expect("json"))),
        None => reply::refusal(app.state(), CommandError::new(ErrorCode::Unavailable, "no telemetry yet: the first snapshot is taken a few seconds after start")),
    }
}

/// Prometheus scrapes: the latest snapshot in the OpenMetrics text format.
async fn metrics(State(app): State<AppState>, headers: HeaderMap) -> Response {
    if let Some(r) = app.may_read(&headers) {
        return r;
    }
    let snapshot = app.sources.latest.borrow().clone();
    let body = super::metrics::render(snapshot.as_deref());
    let mut r = Response::new(Body::from(body));
    r.headers_mut().insert(header::CONTENT_TYPE, header::HeaderValue::from_static(super::metrics::CONTENT_TYPE));
    r
}

async fn cmd(State(app): State<AppState>, Path(name): Path<String>, headers: HeaderMap, body: Body) -> Response {
    if !app.authorised(&headers) {
        return app.unauthorised(&headers);
    }
    if let Err(e) = command::check_name(&name) {
        return reply::refusal(app.state(), e);
    }
    let declared = headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    let too_large = || reply::refusal(app.state(), command::too_large(None));
    if declared.is_some_and(|n| n > MAX_PAYLOAD as u64) {
        return too_large();
    }
    let payload = match axum::body::to_bytes(body, MAX_PAYLOAD).await {
        Ok(b) => b,
        Err(_) => return too_large(),
    };
    match app.sources.commands.call(&name, payload, REPLY_TIMEOUT).await {
        Ok(r) => reply::command(r.content_type, r.body),
        Err(LocalError::Timeout) => {
            let e = CommandError::new(ErrorCode::Unavailable, "no reply in time; the command may still be running (see /api/v1/status)");
            let mut r = reply::refusal(app.state(), e);
            *r.status_mut() = StatusCode::GATEWAY_TIMEOUT;
            r
        }
        Err(e) => reply::refusal(app.state(), CommandError::new(ErrorCode::Unavailable, e.to_string())),
    }
}

async fn not_found(State(app): State<AppState>) -> Response {
    let mut r = reply::refusal(app.state(), CommandError::new(ErrorCode::UnknownCommand, "no such route; see docs/http-api.md"));
    *r.status_mut() = StatusCode::NOT_FOUND;
    r
}

//! The REST routes: `GET /api/v1/status`, `GET /api/v1/telemetry` (the MQTT
//! `status` and `telemetry` documents) and `POST /api/v1/cmd/<name>` (the
//! MQTT commands, bodies and replies alike). Every error is a JSON body with
//! the MQTT API's error code; no response quotes what was sent.

use super::session::{self, Sessions};
use super::{auth, page, reply, Sources};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;
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

/// The header a page session's POSTs carry its CSRF token in (a cross-site
/// form cannot set it; a cross-origin script would need CORS, never granted).
pub const CSRF_HEADER: &str = "x-csrf-token";

#[derive(Clone)]
pub struct AppState {
    sources: Sources,
    token: Option<Arc<Secret>>,
    public_status: bool,
    sessions: Arc<Sessions>,
    seq: Arc<AtomicU64>,
}

impl AppState {
    pub fn new(config: &Http, sources: Sources, sessions: Arc<Sessions>) -> AppState {
        AppState { sources, token: config.token.clone().map(Arc::new), public_status: config.public_status, sessions, seq: Arc::default() }
    }

    pub fn state_name(&self) -> StateName {
        self.sources.status.borrow().as_ref().map_or(StateName::Starting, |s| s.state)
    }

    fn state(&self) -> StateName {
        self.state_name()
    }

    pub fn sources(&self) -> &Sources {
        &self.sources
    }

    pub fn sessions(&self) -> &Sessions {
        &self.sessions
    }

    pub fn sessions_arc(&self) -> Arc<Sessions> {
        self.sessions.clone()
    }

    pub fn public_status(&self) -> bool {
        self.public_status
    }

    pub fn next_seq(&self) -> u64 {
        self.seq.fetch_add(1, Ordering::Relaxed)
    }

    /// The page session's id from the cookie, if any (live or not).
    pub fn session_id(&self, headers: &HeaderMap) -> Option<String> {
        let cookie = headers.get(header::COOKIE)?.to_str().ok()?;
        session::from_cookie(cookie).map(str::to_string)
    }

    /// The CSRF token of the request's live page session.
    pub fn session_csrf(&self, headers: &HeaderMap) -> Option<String> {
        self.sessions.csrf(&self.session_id(headers)?, Instant::now())
    }

    /// The request carries its live session's CSRF token.
    pub fn csrf_ok(&self, headers: &HeaderMap) -> bool {
        let given = headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok());
        matches!((self.session_csrf(headers), given), (Some(want), Some(given)) if auth::same_str(&want, given))
    }

    fn authorised(&self, headers: &HeaderMap) -> bool {
        auth::bearer_ok(headers, self.token.as_deref())
    }

    /// `None` when the caller may read the status documents; else the refusal.
    pub fn may_read(&self, headers: &HeaderMap) -> Option<Response> {
        let ok = self.public_status || self.authorised(headers) || self.session_csrf(headers).is_some();
        (!ok).then(|| self.unauthorised(headers))
    }

    /// `None` when the caller may send commands: the bearer token, or a page session with its CSRF token.
    fn may_command(&self, headers: &HeaderMap) -> Option<Response> {
        if self.authorised(headers) || self.csrf_ok(headers) {
            return None;
        }
        if self.session_csrf(headers).is_some() {
            return Some(reply::refusal(self.state(), CommandError::new(ErrorCode::Forbidden, format!("a page session's POST needs its {CSRF_HEADER} header"))));
        }
        Some(self.unauthorised(headers))
    }

    fn unauthorised(&self, headers: &HeaderMap) -> Response {
        let why = if self.session_id(headers).is_some() && !headers.contains_key(header::AUTHORIZATION) {
            "the session has expired or ended: log in again"
        } else {
            match (&self.token, headers.contains_key(header::AUTHORIZATION)) {
                (None, _) => "log in on the page, or set an [http] token for API clients",
                (Some(_), false) => "log in on the page, or send Authorization: Bearer <the [http] token>",
                (Some(_), true) => "the bearer token is not this box's",
            }
        };
        reply::refusal(self.state(), CommandError::new(ErrorCode::Unauthorized, why))
    }
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(page::index))
        .route("/ui/app.js", get(page::script))
        .route("/ui/style.css", get(page::style))
        .route("/ui/session", get(page::session))
        .route("/ui/login", post(page::login))
        .route("/ui/logout", post(page::logout))
        .route("/ui/events", get(page::events))
        .route("/ui/thumb.jpg", get(page::thumb))
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
    if let Some(r) = app.may_command(&headers) {
        return r;
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

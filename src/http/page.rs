//! The crew's page: the assets (embedded in the binary, no build step),
//! login and logout, the session's CSRF token, live updates by SSE from the
//! status watches, and the input's thumbnail from the snapshot tap. Its
//! controls use the REST routes (`/api/v1/cmd/<name>`) with the session
//! cookie and the CSRF token instead of a bearer token.

use super::api::AppState;
use super::session::{LoginError, COOKIE};
use crate::control::error::{CommandError, ErrorCode};
use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tracing::{info, warn};

const INDEX: &str = include_str!("page/index.html");

/// The page with the ladder form's choices: the built-in profiles, named
/// with their rungs (from [`crate::config::PROFILES`], the one list).
static INDEX_PAGE: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    let options: String = crate::config::PROFILES
        .iter()
        .map(|(name, rungs)| {
            let rungs: Vec<String> = rungs.iter().map(|(r, _, _, kbps)| format!("{r} {kbps}")).collect();
            format!("          <option value=\"{name}\">{name}: {} kbit/s</option>\n", rungs.join(", "))
        })
        .collect();
    INDEX.replace("<!--LADDER-PROFILES-->\n", &options)
});
const SCRIPT: &str = include_str!("page/app.js");
const STYLE: &str = include_str!("page/style.css");

/// A thumbnail is encoded at most this wide.
const THUMB_WIDTH: u32 = 480;

fn asset(content_type: &'static str, body: &'static str) -> Response {
    let mut r = (StatusCode::OK, body).into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    // Nothing but this box: no inline script, no framing, no other origin.
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'self'; img-src 'self' blob:; frame-ancestors 'none'; form-action 'self'"),
    );
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    r
}

pub async fn index() -> Response {
    asset("text/html; charset=utf-8", &INDEX_PAGE)
}
pub async fn script() -> Response {
    asset("text/javascript; charset=utf-8", SCRIPT)
}
pub async fn style() -> Response {
    asset("text/css; charset=utf-8", STYLE)
}

/// `GET /ui/session`: whether this browser is logged in, its CSRF token, and how to log in.
pub async fn session(State(app): State<AppState>, headers: HeaderMap) -> Response {
    let csrf = app.session_csrf(&headers);
    let body = serde_json::json!({
        "logged_in": csrf.is_some(),
        "csrf": csrf,
        "public_status": app.public_status(),
        "setup_code": app.sessions().uses_setup_code(),
    });
    super::reply::json(StatusCode::OK, Bytes::from(body.to_string()))
}

#[derive(serde::Deserialize)]
pub struct LoginBody {
    password: String,
}

/// `POST /ui/login` `{"password": "..."}`: a session cookie, or 401 / 429.
pub async fn login(State(app): State<AppState>, ConnectInfo(peer): ConnectInfo<SocketAddr>, body: Bytes) -> Response {
    let state = app.state_name();
    let Ok(LoginBody { password }) = serde_json::from_slice::<LoginBody>(&body) else {
        return super::reply::refusal(state, CommandError::field(ErrorCode::MalformedJson, "password", "send {\"password\": \"...\"}"));
    };
    let sessions = app.sessions_arc();
    let now = Instant::now();
    if let Err(LoginError::RateLimited(wait)) = sessions.may_try(peer.ip(), now) {
        warn!(from = %peer.ip(), "page login refused: too many failed attempts");
        let mut r = super::reply::refusal(state, CommandError::new(ErrorCode::RateLimited, format!("too many failed logins; try again in {wait} s")));
        r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(wait));
        return r;
    }
    let ok = match sessions.expected() {
        Some(expected) => tokio::task::spawn_blocking(move || expected.check(&password)).await.unwrap_or(false),
        None => false,
    };
    match sessions.finish(peer.ip(), ok, now) {
        Ok(l) => {
            info!(from = %peer.ip(), "page login");
            let cookie = format!("{COOKIE}={}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}", l.id, sessions.lifetime().as_secs());
            let mut r = super::reply::json(StatusCode::OK, Bytes::from(serde_json::json!({"ok": true, "csrf": l.csrf}).to_string()));
            r.headers_mut().insert(header::SET_COOKIE, HeaderValue::from_str(&cookie).expect("ascii"));
            r
        }
        Err(_) => {
            warn!(from = %peer.ip(), "page login failed");
            super::reply::refusal(state, CommandError::new(ErrorCode::Unauthorized, "wrong password"))
        }
    }
}

/// `POST /ui/logout`: the session ends (needs its CSRF token).
pub async fn logout(State(app): State<AppState>, headers: HeaderMap) -> Response {
    if let Some(id) = app.session_id(&headers)
        && app.csrf_ok(&headers)
    {
        app.sessions().logout(&id);
    }
    let mut r = super::reply::json(StatusCode::OK, Bytes::from_static(b"{\"ok\":true}"));
    r.headers_mut().insert(header::SET_COOKIE, HeaderValue::from_str(&format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0")).expect("ascii"));
    r
}

/// `GET /ui/events`: `status` and `telemetry` documents pushed as they change (SSE).
pub async fn events(State(app): State<AppState>, headers: HeaderMap) -> Response {
    if let Some(r) = app.may_read(&headers) {
        return r;
    }
    let (status, latest) = (app.sources().status.clone(), app.sources().latest.clone());
    let first = VecDeque::from([status_event(&status), telemetry_event(&latest)].into_iter().flatten().collect::<Vec<_>>());
    let stream = futures_util::stream::unfold((status, latest, first), |(mut status, mut latest, mut queue)| async move {
        loop {
            if let Some(e) = queue.pop_front() {
                return Some((Ok::<Event, Infallible>(e), (status, latest, queue)));
            }
            tokio::select! {
                r = status.changed() => {
                    r.ok()?;
                    queue.extend(status_event(&status));
                }
                r = latest.changed() => {
                    r.ok()?;
                    queue.extend(telemetry_event(&latest));
                }
            }
        }
    });
    let mut r = Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))).into_response();
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

fn status_event(rx: &tokio::sync::watch::Receiver<Option<std::sync::Arc<crate::status::wire::Status>>>) -> Option<Event> {
    let doc = rx.borrow().clone()?;
    Some(Event::default().event("status").data(serde_json::to_string(&*doc).expect("json")))
}

fn telemetry_event(rx: &crate::status::Latest) -> Option<Event> {
    let snap = rx.borrow().clone()?;
    Some(Event::default().event("telemetry").data(serde_json::to_string(&snap.telemetry()).expect("json")))
}

/// `GET /ui/thumb.jpg`: the input now, through the `snapshot` command (quietly: no event, no log line).
pub async fn thumb(State(app): State<AppState>, headers: HeaderMap) -> Response {
    if let Some(r) = app.may_read(&headers) {
        return r;
    }
    let id = format!("page-thumb-{}", app.next_seq());
    let body = Bytes::from(serde_json::json!({"id": id, "width": THUMB_WIDTH}).to_string());
    match app.sources().commands.call_quiet("snapshot", body, Duration::from_secs(10)).await {
        Ok(r) => super::reply::command(r.content_type, r.body),
        Err(e) => super::reply::refusal(app.state_name(), CommandError::new(ErrorCode::Unavailable, e.to_string())),
    }
}

//! The `[http]` section: the local HTTP API's address and who may use it.

use super::raw::RawHttp;
use super::types::{Http, Secret};
use super::validate::Errors;
use std::net::SocketAddr;

/// Where the server listens when `listen` is not given.
pub const DEFAULT_LISTEN: &str = "0.0.0.0:8080";
/// A page login lasts 12 hours unless `session_seconds` says otherwise (at most 30 days).
const DEFAULT_SESSION_S: u64 = 12 * 3600;
const MAX_SESSION_S: u64 = 30 * 24 * 3600;
/// A bearer token shorter than this is guessable.
pub const MIN_TOKEN: usize = 16;

/// `None`: `enabled = false`.
pub(super) fn http(h: RawHttp, e: &mut Errors) -> Option<Http> {
    let n = e.0.len();
    let listen = match h.listen.as_deref().unwrap_or(DEFAULT_LISTEN).parse::<SocketAddr>() {
        Ok(a) => a,
        Err(_) => {
            e.add("http.listen", "must be an IP address and port, like \"0.0.0.0:8080\" or \"[::1]:8080\"");
            DEFAULT_LISTEN.parse().expect("default address")
        }
    };
    if let Some(t) = &h.token
        && (t.len() < MIN_TOKEN || t.len() > 256 || !t.chars().all(|c| c.is_ascii_graphic()))
    {
        e.add("http.token", format!("must be {MIN_TOKEN}-256 printable ASCII characters without spaces"));
    }
    if h.password_hash.as_deref().is_some_and(|p| !crate::http::password::is_hash(p)) {
        e.add("http.password_hash", "must be an argon2 hash as `fieldcast passwd` prints it ($argon2id$...)");
    }
    let session = h.session_seconds.unwrap_or(DEFAULT_SESSION_S);
    if !(5..=MAX_SESSION_S).contains(&session) {
        e.add("http.session_seconds", format!("is outside 5..{MAX_SESSION_S}"));
    }
    if e.0.len() > n || !h.enabled.unwrap_or(true) {
        return None;
    }
    Some(Http {
        listen,
        token: h.token.map(Secret::new),
        public_status: h.public_status.unwrap_or(false),
        password_hash: h.password_hash.map(Secret::new),
        session: std::time::Duration::from_secs(session),
    })
}

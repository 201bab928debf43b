//! The page's logins: sessions (random ids in an HttpOnly, SameSite=Strict
//! cookie, each with its own CSRF token and a fixed lifetime), the login
//! check (the configured argon2 hash, else a one-time setup code) and its
//! rate limit per client address. Small and in memory: a restart logs
//! everyone out.

use super::password;
use crate::config::Secret;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The cookie's name.
pub const COOKIE: &str = "fieldcast_session";
/// Failed logins from one address within [`WINDOW`] beyond which it must wait.
pub const MAX_FAILURES: usize = 5;
pub const WINDOW: Duration = Duration::from_secs(60);
/// Sessions kept at once; the oldest goes first beyond this.
const MAX_SESSIONS: usize = 64;

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum LoginError {
    #[error("wrong password")]
    Wrong,
    #[error("too many failed logins from this address; try again in {0} s")]
    RateLimited(u64),
}

struct Session {
    csrf: String,
    expires: Instant,
}

/// How the page logs in.
enum LoginSecret {
    Hash(Secret),
    /// Valid for one login, then gone (until the next start).
    SetupCode(Option<Secret>),
}

struct Inner {
    sessions: HashMap<String, Session>,
    secret: LoginSecret,
    failures: HashMap<IpAddr, Vec<Instant>>,
}

pub struct Sessions {
    inner: Mutex<Inner>,
    lifetime: Duration,
}

/// A logged-in session: its id (the cookie) and CSRF token.
pub struct Login {
    pub id: String,
    pub csrf: String,
}

impl Sessions {
    /// With no hash, a setup code is made (and returned, for the journal).
    pub fn new(hash: Option<Secret>, lifetime: Duration) -> (Sessions, Option<String>) {
        let (secret, code) = match hash {
            Some(h) => (LoginSecret::Hash(h), None),
            None => {
                let code = password::setup_code();
                (LoginSecret::SetupCode(Some(Secret::new(code.clone()))), Some(code))
            }
        };
        (Sessions { inner: Mutex::new(Inner { sessions: HashMap::new(), secret, failures: HashMap::new() }), lifetime }, code)
    }

    pub fn lifetime(&self) -> Duration {
        self.lifetime
    }

    /// Whether logins use the one-time setup code.
    pub fn uses_setup_code(&self) -> bool {
        matches!(self.lock().secret, LoginSecret::SetupCode(_))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding it cannot leave the maps half-changed in a way that matters.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Checks the rate limit for `from` (before the costly hash check).
    pub fn may_try(&self, from: IpAddr, now: Instant) -> Result<(), LoginError> {
        let mut inner = self.lock();
        let tries = inner.failures.entry(from).or_default();
        tries.retain(|t| now.duration_since(*t) < WINDOW);
        if tries.len() >= MAX_FAILURES {
            let wait = WINDOW.saturating_sub(now.duration_since(tries[0]));
            return Err(LoginError::RateLimited(wait.as_secs().max(1)));
        }
        Ok(())
    }

    /// The secret to check a password against (the hash, or the setup code).
    pub fn expected(&self) -> Option<Expected> {
        match &self.lock().secret {
            LoginSecret::Hash(h) => Some(Expected::Hash(h.expose().to_string())),
            LoginSecret::SetupCode(Some(c)) => Some(Expected::Code(c.expose().to_string())),
            LoginSecret::SetupCode(None) => None,
        }
    }

    /// After the check: a failure counts against `from`; a success makes a session.
    pub fn finish(&self, from: IpAddr, ok: bool, now: Instant) -> Result<Login, LoginError> {
        let mut inner = self.lock();
        if !ok {
            inner.failures.entry(from).or_default().push(now);
            return Err(LoginError::Wrong);
        }
        inner.failures.remove(&from);
        if let LoginSecret::SetupCode(code) = &mut inner.secret {
            // One time only.
            *code = None;
        }
        inner.sessions.retain(|_, s| s.expires > now);
        while inner.sessions.len() >= MAX_SESSIONS {
            let oldest = inner.sessions.iter().min_by_key(|(_, s)| s.expires).map(|(k, _)| k.clone()).expect("not empty");
            inner.sessions.remove(&oldest);
        }
        let login = Login { id: random_token(), csrf: random_token() };
        inner.sessions.insert(login.id.clone(), Session { csrf: login.csrf.clone(), expires: now + self.lifetime });
        Ok(login)
    }

    /// The CSRF token of a live session `id` (`None`: unknown or expired).
    pub fn csrf(&self, id: &str, now: Instant) -> Option<String> {
        let mut inner = self.lock();
        match inner.sessions.get(id) {
            Some(s) if s.expires > now => Some(s.csrf.clone()),
            Some(_) => {
                inner.sessions.remove(id);
                None
            }
            None => None,
        }
    }

    pub fn logout(&self, id: &str) {
        self.lock().sessions.remove(id);
    }
}

/// What a login password is compared with.
pub enum Expected {
    Hash(String),
    Code(String),
}

impl Expected {
    /// Costly for a hash (argon2): call on a blocking thread.
    pub fn check(&self, given: &str) -> bool {
        match self {
            Expected::Hash(h) => password::verify(given, h),
            Expected::Code(c) => c.len() == given.len() && c.bytes().zip(given.bytes()).fold(0u8, |a, (x, y)| a | (x ^ y)) == 0,
        }
    }
}

/// 32 random bytes, hex.
fn random_token() -> String {
    use rand::RngCore;
    let mut b = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The session id in a `Cookie` header.
pub fn from_cookie(header: &str) -> Option<&str> {
    header.split(';').map(str::trim).find_map(|kv| kv.strip_prefix(COOKIE)?.strip_prefix('='))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_setup_code_logs_in_once_failures_are_rate_limited_and_sessions_expire() {
        let (s, code) = Sessions::new(None, Duration::from_secs(10));
        let code = code.unwrap();
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let other: IpAddr = "192.0.2.2".parse().unwrap();
        let t0 = Instant::now();
        for _ in 0..MAX_FAILURES {
            s.may_try(ip, t0).unwrap();
            assert!(!s.expected().unwrap().check("wrong"));
            assert_eq!(s.finish(ip, false, t0).err(), Some(LoginError::Wrong));
        }
        assert!(matches!(s.may_try(ip, t0), Err(LoginError::RateLimited(60))));
        // Another address is not held up; and the window passes.
        s.may_try(other, t0).unwrap();
        s.may_try(ip, t0 + WINDOW).unwrap();
        assert!(s.expected().unwrap().check(&code));
        let login = s.finish(other, true, t0).unwrap();
        assert!(s.expected().is_none(), "the setup code is one-time");
        assert_eq!(s.csrf(&login.id, t0 + Duration::from_secs(9)), Some(login.csrf.clone()));
        assert_eq!(s.csrf(&login.id, t0 + Duration::from_secs(10)), None, "expired");
        assert_eq!(from_cookie(&format!("a=b; {COOKIE}={}", login.id)), Some(login.id.as_str()));
    }
}

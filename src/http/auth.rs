//! Who may call the API: a bearer token from `[http] token`, compared in
//! constant time. Without a configured token no request is authorised (only
//! the public documents are served, when `public_status` says so).

use crate::config::Secret;
use axum::http::{header, HeaderMap};

/// Whether the request carries `Authorization: Bearer <token>` with the configured token.
pub fn bearer_ok(headers: &HeaderMap, token: Option<&Secret>) -> bool {
    let Some(token) = token else { return false };
    let Some(given) = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) else { return false };
    let Some(given) = given.strip_prefix("Bearer ") else { return false };
    same(given.trim().as_bytes(), token.expose().as_bytes())
}

/// Constant-time string equality (the length is not a secret worth hiding).
pub fn same_str(a: &str, b: &str) -> bool {
    same(a.as_bytes(), b.as_bytes())
}

/// Constant time in the content (the length is not a secret worth hiding).
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn with(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, HeaderValue::from_str(v).unwrap());
        h
    }

    #[test]
    fn only_the_configured_bearer_token_passes() {
        let t = Secret::new("0123456789abcdef");
        assert!(bearer_ok(&with("Bearer 0123456789abcdef"), Some(&t)));
        for bad in ["Bearer 0123456789abcdeF", "Bearer 0123456789abcde", "Basic 0123456789abcdef", "0123456789abcdef", "Bearer "] {
            assert!(!bearer_ok(&with(bad), Some(&t)), "{bad}");
        }
        assert!(!bearer_ok(&HeaderMap::new(), Some(&t)));
        // No token configured: nobody is authorised.
        assert!(!bearer_ok(&with("Bearer 0123456789abcdef"), None));
    }
}

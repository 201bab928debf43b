//! HTTP/HTTPS ingest URLs (CMAF ingest): `http[s]://[user:password@]HOST[:PORT]/PATH[?QUERY]`.
//! Each track's path is appended to `PATH`. Like an RTMP URL, everything
//! after the first path segment (an access token), the query and the
//! credentials are secret: `Display`/`Debug` show `https://host:443/live/***`
//! (and `***@` for credentials, which are sent as HTTP basic auth).

use super::UrlError;
use crate::config::Secret;
use std::fmt;

/// A validated http(s) ingest URL.
#[derive(Clone, PartialEq, Eq)]
pub struct HttpUrl {
    tls: bool,
    host: String,
    port: u16,
    /// Without a trailing `/`; may be empty.
    path: String,
    query: Option<Secret>,
    /// `user:password` for basic auth.
    credentials: Option<(Secret, Secret)>,
}

impl HttpUrl {
    pub fn parse(raw: &str) -> Result<HttpUrl, UrlError> {
        let url = url::Url::parse(raw.trim()).map_err(UrlError::Syntax)?;
        let tls = match url.scheme() {
            "http" => false,
            "https" => true,
            _ => return Err(UrlError::Scheme),
        };
        let host = match url.host_str() {
            Some(h) if !h.is_empty() => h.trim_start_matches('[').trim_end_matches(']').to_string(),
            _ => return Err(UrlError::NoHost),
        };
        if url.fragment().is_some() {
            return Err(UrlError::Fragment);
        }
        let port = url.port_or_known_default().unwrap_or(if tls { 443 } else { 80 });
        let credentials = (!url.username().is_empty() || url.password().is_some()).then(|| {
            (Secret::new(percent_decode(url.username())), Secret::new(percent_decode(url.password().unwrap_or(""))))
        });
        Ok(HttpUrl {
            tls,
            host,
            port,
            path: url.path().trim_end_matches('/').to_string(),
            query: url.query().map(Secret::new),
            credentials,
        })
    }

    pub fn tls(&self) -> bool {
        self.tls
    }
    pub fn host(&self) -> &str {
        &self.host
    }
    pub fn port(&self) -> u16 {
        self.port
    }
    /// `user:password`, for an `Authorization: Basic` header (secret).
    pub fn credentials(&self) -> Option<(&str, &str)> {
        self.credentials.as_ref().map(|(u, p)| (u.expose(), p.expose()))
    }

    /// The request target of one track: the URL's path, `/`, the track's
    /// path, then the query (secret: may hold a token).
    pub fn request_target(&self, track_path: &str) -> String {
        let mut t = format!("{}/{}", self.path, track_path.trim_start_matches('/'));
        if let Some(q) = &self.query {
            t.push('?');
            t.push_str(q.expose());
        }
        t
    }

    /// The URL's path, without a trailing `/` (secret past its first segment: never show it).
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The `Host` header's value.
    pub fn authority(&self) -> String {
        let host = if self.host.contains(':') { format!("[{}]", self.host) } else { self.host.clone() };
        let default = if self.tls { 443 } else { 80 };
        if self.port == default { host } else { format!("{host}:{}", self.port) }
    }
}

/// `%XX` escapes of a URL's userinfo, decoded (bytes that are not UTF-8 are replaced).
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        match (b[i], b.get(i + 1).copied().and_then(hex), b.get(i + 2).copied().and_then(hex)) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (c, _, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl fmt::Display for HttpUrl {
    /// The redacted form, safe for logs, telemetry and errors.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let host = if self.host.contains(':') { format!("[{}]", self.host) } else { self.host.clone() };
        let creds = if self.credentials.is_some() { "***@" } else { "" };
        write!(f, "{}://{creds}{host}:{}", if self.tls { "https" } else { "http" }, self.port)?;
        let mut segments = self.path.trim_start_matches('/').splitn(2, '/');
        if let Some(first) = segments.next().filter(|s| !s.is_empty()) {
            write!(f, "/{first}")?;
        }
        if segments.next().is_some() || self.query.is_some() {
            write!(f, "/***")?;
        }
        Ok(())
    }
}

impl fmt::Debug for HttpUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HttpUrl({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_builds_each_tracks_request_target() {
        let u = HttpUrl::parse("https://origin.example.com/live/ch1.isml").unwrap();
        assert!(u.tls());
        assert_eq!((u.host(), u.port(), u.authority()), ("origin.example.com", 443, "origin.example.com".to_string()));
        assert_eq!(u.request_target("Streams(video-720p)"), "/live/ch1.isml/Streams(video-720p)");
        let p = HttpUrl::parse("http://127.0.0.1:8080/?t=1").unwrap();
        assert_eq!((p.port(), p.authority()), (8080, "127.0.0.1:8080".to_string()));
        assert_eq!(p.request_target("/audio"), "/audio?t=1");
        let c = HttpUrl::parse("http://us%40r:p%3Ass@h/x").unwrap();
        assert_eq!(c.credentials(), Some(("us@r", "p:ss")));
    }

    #[test]
    fn display_hides_tokens_queries_and_credentials() {
        for (raw, shown) in [
            ("https://h/live/sk4live/ch", "https://h:443/live/***"),
            ("http://h:81/live?token=sk4live", "http://h:81/live/***"),
            ("http://user:sk4live@h/live", "http://***@h:80/live"),
            ("http://h", "http://h:80"),
        ] {
            let u = HttpUrl::parse(raw).unwrap();
            assert_eq!(u.to_string(), shown);
            assert!(!format!("{u:?}").contains("sk4live"));
        }
    }

    #[test]
    fn refuses_what_is_not_an_http_url_without_echo() {
        assert_eq!(HttpUrl::parse("rtmp://sk4live/x").unwrap_err(), UrlError::Scheme);
        assert_eq!(HttpUrl::parse("http://h/x#sk4live").unwrap_err(), UrlError::Fragment);
        assert!(matches!(HttpUrl::parse("http://"), Err(UrlError::Syntax(_) | UrlError::NoHost)));
    }
}

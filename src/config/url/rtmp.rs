//! RTMP/RTMPS ingest URLs: parsed once, validated, and never printed with
//! their secrets.
//!
//! An RTMP ingest URL is `rtmp[s]://HOST[:PORT]/APP[/TOKEN...]`; the stream
//! name is appended per rung. Everything after the first path segment (AMS
//! access tokens), the query and the stream key are secret, so
//! `Display`/`Debug` show `rtmp://host:1935/live/***`. Userinfo
//! (`user:password@`) is refused: RTMP has no place to send it.

use super::UrlError;
use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scheme {
    Rtmp,
    Rtmps,
}

impl Scheme {
    pub fn default_port(self) -> u16 {
        match self {
            Scheme::Rtmp => 1935,
            Scheme::Rtmps => 443,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Rtmp => "rtmp",
            Scheme::Rtmps => "rtmps",
        }
    }
}

/// A validated RTMP/RTMPS ingest URL.
#[derive(Clone, PartialEq, Eq)]
pub struct RtmpUrl {
    scheme: Scheme,
    host: String,
    port: u16,
    /// The application path sent in `connect` (may hold an access token and a query).
    app: String,
    /// Whether anything after the first path segment or a query exists (secret).
    has_secret_tail: bool,
}

impl RtmpUrl {
    pub fn parse(raw: &str) -> Result<RtmpUrl, UrlError> {
        let url = url::Url::parse(raw.trim()).map_err(UrlError::Syntax)?;
        let scheme = match url.scheme() {
            "rtmp" => Scheme::Rtmp,
            "rtmps" => Scheme::Rtmps,
            _ => return Err(UrlError::Scheme),
        };
        if !url.username().is_empty() || url.password().is_some() {
            return Err(UrlError::Credentials);
        }
        let host = match url.host_str() {
            Some(h) if !h.is_empty() => h.trim_start_matches('[').trim_end_matches(']').to_string(),
            _ => return Err(UrlError::NoHost),
        };
        if url.fragment().is_some() {
            return Err(UrlError::Fragment);
        }
        let port = url.port().unwrap_or(scheme.default_port());
        let path = url.path().trim_matches('/');
        if path.is_empty() {
            return Err(UrlError::NoApp);
        }
        let mut app = path.to_string();
        if let Some(q) = url.query() {
            app.push('?');
            app.push_str(q);
        }
        let has_secret_tail = path.contains('/') || url.query().is_some();
        Ok(RtmpUrl { scheme, host, port, app, has_secret_tail })
    }

    pub fn scheme(&self) -> Scheme {
        self.scheme
    }
    pub fn host(&self) -> &str {
        &self.host
    }
    pub fn port(&self) -> u16 {
        self.port
    }
    /// The application name for RTMP `connect` (secret: may hold a token).
    pub fn app(&self) -> &str {
        &self.app
    }
    /// The tcUrl for RTMP `connect` (secret).
    pub fn tc_url(&self) -> String {
        format!("{}://{}:{}/{}", self.scheme.as_str(), self.host_for_url(), self.port, self.app)
    }

    fn host_for_url(&self) -> String {
        if self.host.contains(':') { format!("[{}]", self.host) } else { self.host.clone() }
    }
}

impl fmt::Display for RtmpUrl {
    /// The redacted form, safe for logs, telemetry and errors.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let first = self.app.split(['/', '?']).next().unwrap_or("");
        write!(f, "{}://{}:{}/{}", self.scheme.as_str(), self.host_for_url(), self.port, first)?;
        if self.has_secret_tail {
            write!(f, "/***")?;
        }
        Ok(())
    }
}

impl fmt::Debug for RtmpUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RtmpUrl({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_host_port_and_app_with_token() {
        let u = RtmpUrl::parse("rtmp://ingest.example.com:1935/live/s3cr3t-token").unwrap();
        assert_eq!(u.scheme(), Scheme::Rtmp);
        assert_eq!(u.host(), "ingest.example.com");
        assert_eq!(u.port(), 1935);
        assert_eq!(u.app(), "live/s3cr3t-token");
        assert_eq!(u.tc_url(), "rtmp://ingest.example.com:1935/live/s3cr3t-token");
    }

    #[test]
    fn default_ports_follow_the_scheme() {
        assert_eq!(RtmpUrl::parse("rtmp://h/live").unwrap().port(), 1935);
        assert_eq!(RtmpUrl::parse("rtmps://h/live").unwrap().port(), 443);
    }

    #[test]
    fn display_and_debug_never_show_the_token_or_query() {
        let u = RtmpUrl::parse("rtmps://h:2935/live/s3cr3t?auth=p4ss").unwrap();
        let shown = format!("{u} {u:?}");
        assert!(!shown.contains("s3cr3t") && !shown.contains("p4ss"), "{shown}");
        assert_eq!(u.to_string(), "rtmps://h:2935/live/***");
        assert_eq!(RtmpUrl::parse("rtmp://h/live").unwrap().to_string(), "rtmp://h:1935/live");
    }

    #[test]
    fn refuses_what_is_not_an_rtmp_ingest() {
        assert_eq!(RtmpUrl::parse("http://h/live"), Err(UrlError::Scheme));
        assert_eq!(RtmpUrl::parse("rtmp://h"), Err(UrlError::NoApp));
        assert_eq!(RtmpUrl::parse("rtmp://h/"), Err(UrlError::NoApp));
        assert!(matches!(RtmpUrl::parse("not a url"), Err(UrlError::Syntax(_))));
        assert_eq!(RtmpUrl::parse("rtmp://h/live#x"), Err(UrlError::Fragment));
    }

    #[test]
    fn credentials_in_the_userinfo_are_refused_without_echoing_them() {
        for raw in ["rtmp://alice9:pa55@h/live", "rtmps://alice9@h/live/t", "rtmp://:pa55@h/live"] {
            let e = RtmpUrl::parse(raw).unwrap_err();
            assert_eq!(e, UrlError::Credentials, "{raw}");
            let shown = e.to_string();
            assert!(!shown.contains("alice9") && !shown.contains("pa55"), "{shown}");
        }
    }

    #[test]
    fn no_refusal_quotes_any_part_of_the_url() {
        for raw in ["sk4live:x9q2", "sk4live://h/live", "rtmp://sk4live", "rtmp://[sk4live/live", "rtmp://h:sk4live/live", "rtmp://h/live#sk4live"] {
            let e = RtmpUrl::parse(raw).unwrap_err().to_string();
            assert!(!e.contains("sk4live"), "{raw}: {e}");
        }
    }
}

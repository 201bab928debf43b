//! Destination URLs, parsed by scheme into a typed URL: `rtmp`/`rtmps`
//! ([`RtmpUrl`]), `srt` ([`SrtUrl`]) and `http`/`https` ([`HttpUrl`], CMAF ingest). Each kind knows its own secrets: `Display` and `Debug`
//! never show a token, key or passphrase, so a URL can go to logs, status
//! and `check-config` as it is.

mod http;
mod rtmp;
mod srt;

pub use http::HttpUrl;
pub use rtmp::{RtmpUrl, Scheme as RtmpScheme};
pub use srt::{QUERY_KEYS as SRT_QUERY_KEYS, SrtUrl};

use std::fmt;
use thiserror::Error;

/// Why a destination URL was refused. Messages never quote the URL or any
/// part of it (a key pasted into `url` must not come back in an error).
#[derive(Debug, Error, PartialEq, Eq)]
pub enum UrlError {
    /// The `url` crate's reason: a fixed text, never a part of the input.
    #[error("is not a URL ({0})")]
    Syntax(url::ParseError),
    #[error("has a scheme that is not supported (use rtmp://, rtmps://, srt://, or http:// / https:// with protocol = \"cmaf\" or \"smooth\")")]
    Scheme,
    /// `user:password@` has no place in RTMP; refused rather than dropped.
    #[error("credentials in the URL (user:password@) are not supported; put an access token in the path (rtmp://HOST/APP/TOKEN) or use `key` with {{key}} in `stream`")]
    Credentials,
    #[error("has no host")]
    NoHost,
    #[error("has no application path (expected rtmp://HOST[:PORT]/APP[/TOKEN])")]
    NoApp,
    #[error("has a fragment (`#...`), which the protocol cannot carry")]
    Fragment,
    #[error("has no port (SRT has no default: srt://HOST:PORT, 1..65535)")]
    NoPort,
    #[error("has a path, which SRT cannot carry (srt://HOST:PORT; name the stream with `streamid`)")]
    SrtPath,
    #[error("credentials in the URL (user:password@) are not supported; use `passphrase` (and `streamid`)")]
    SrtCredentials,
    /// The key is not quoted: it may be a value typed in the wrong place.
    #[error("has a query parameter fieldcast does not know (known: mode, latency, pbkeylen, passphrase, streamid)")]
    SrtQueryKey,
    #[error("has a query parameter twice")]
    SrtQueryTwice,
}

/// Where a destination sends the stream, by protocol.
#[derive(Clone, PartialEq, Eq)]
pub enum DestinationUrl {
    Rtmp(RtmpUrl),
    Srt(SrtUrl),
    /// CMAF ingest over HTTP POST (`protocol = "cmaf"`).
    Http(HttpUrl),
}

impl DestinationUrl {
    pub fn parse(raw: &str) -> Result<DestinationUrl, UrlError> {
        let scheme = raw.trim().split_once("://").map(|(s, _)| s.to_ascii_lowercase());
        match scheme.as_deref() {
            Some("rtmp" | "rtmps") => RtmpUrl::parse(raw).map(DestinationUrl::Rtmp),
            Some("srt") => SrtUrl::parse(raw).map(DestinationUrl::Srt),
            Some("http" | "https") => HttpUrl::parse(raw).map(DestinationUrl::Http),
            // Not a URL at all, or another scheme.
            _ => Err(url::Url::parse(raw.trim()).err().map(UrlError::Syntax).unwrap_or(UrlError::Scheme)),
        }
    }

    /// The protocol's name, as shown in status and `check-config`.
    pub fn protocol(&self) -> &'static str {
        match self {
            DestinationUrl::Rtmp(_) => "rtmp",
            DestinationUrl::Srt(_) => "srt",
            DestinationUrl::Http(_) => "cmaf",
        }
    }
}

impl fmt::Display for DestinationUrl {
    /// The redacted form, safe for logs, telemetry and errors.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DestinationUrl::Rtmp(u) => u.fmt(f),
            DestinationUrl::Srt(u) => u.fmt(f),
            DestinationUrl::Http(u) => u.fmt(f),
        }
    }
}

impl fmt::Debug for DestinationUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DestinationUrl::Rtmp(u) => u.fmt(f),
            DestinationUrl::Srt(u) => u.fmt(f),
            DestinationUrl::Http(u) => u.fmt(f),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scheme_picks_the_kind_and_an_unknown_one_is_refused_without_echo() {
        assert!(matches!(DestinationUrl::parse("rtmps://h/live"), Ok(DestinationUrl::Rtmp(_))));
        assert!(matches!(DestinationUrl::parse("srt://h:9000"), Ok(DestinationUrl::Srt(_))));
        assert!(matches!(DestinationUrl::parse("https://h/live"), Ok(DestinationUrl::Http(_))));
        for raw in ["sk4live://h/x", "ftp://sk4live/"] {
            let e = DestinationUrl::parse(raw).unwrap_err();
            assert_eq!(e, UrlError::Scheme, "{raw}");
            assert!(!e.to_string().contains("sk4live"));
        }
    }
}

//! SRT URLs: `srt://HOST:PORT[?key=value&...]`. The port is required (SRT
//! has no default); a listener may leave the host empty (`srt://:9000`,
//! every interface). The query may carry the settings channels hand out in
//! one pasted URL: `streamid`, `passphrase`, `pbkeylen`, `latency` (ms, as
//! libsrt and srt-live-transmit read it), `mode`; anything else is refused.
//! `Display` masks the values of `passphrase` and `streamid` (secrets).

use super::UrlError;
use crate::config::Secret;
use std::fmt;

/// The query keys fieldcast reads, in display order.
pub const QUERY_KEYS: &[&str] = &["mode", "latency", "pbkeylen", "passphrase", "streamid"];
/// Query keys whose values are secret.
const SECRET_KEYS: &[&str] = &["passphrase", "streamid"];

/// A parsed SRT URL. Query values are kept raw here: `validate` checks
/// them beside the destination's fields.
#[derive(Clone, PartialEq, Eq)]
pub struct SrtUrl {
    /// Empty for "every interface" (listener).
    host: String,
    port: u16,
    /// (key, value) in URL order; keys are among [`QUERY_KEYS`].
    query: Vec<(&'static str, Secret)>,
}

impl SrtUrl {
    pub fn parse(raw: &str) -> Result<SrtUrl, UrlError> {
        // `srt://:PORT` (no host, as srt-live-transmit writes a listener):
        // the URL parser wants a host, so parse it as every interface.
        let raw = raw.trim();
        let any_host = raw.starts_with("srt://:");
        let raw = if any_host { raw.replacen("srt://:", "srt://0.0.0.0:", 1) } else { raw.to_owned() };
        let url = url::Url::parse(&raw).map_err(UrlError::Syntax)?;
        if url.scheme() != "srt" {
            return Err(UrlError::Scheme);
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(UrlError::SrtCredentials);
        }
        if url.fragment().is_some() {
            return Err(UrlError::Fragment);
        }
        if !matches!(url.path(), "" | "/") {
            return Err(UrlError::SrtPath);
        }
        let host = if any_host { String::new() } else { url.host_str().unwrap_or("").trim_start_matches('[').trim_end_matches(']').to_string() };
        let port = match url.port() {
            Some(0) | None => return Err(UrlError::NoPort),
            Some(p) => p,
        };
        let mut query: Vec<(&'static str, Secret)> = Vec::new();
        for (k, v) in url.query_pairs() {
            let Some(key) = QUERY_KEYS.iter().find(|q| **q == k) else { return Err(UrlError::SrtQueryKey) };
            if query.iter().any(|(q, _)| q == key) {
                return Err(UrlError::SrtQueryTwice);
            }
            query.push((key, Secret::new(v.into_owned())));
        }
        Ok(SrtUrl { host, port, query })
    }

    /// The host to call or bind ("" = every interface).
    pub fn host(&self) -> &str {
        &self.host
    }
    pub fn port(&self) -> u16 {
        self.port
    }
    /// A query value (secret for `passphrase` and `streamid`).
    pub fn query(&self, key: &str) -> Option<&str> {
        self.query.iter().find(|(k, _)| *k == key).map(|(_, v)| v.expose())
    }

    /// `srt://host:port` with no query: what the transport dials.
    pub fn endpoint(&self) -> String {
        let host = if self.host.contains(':') { format!("[{}]", self.host) } else { self.host.clone() };
        format!("srt://{host}:{}", self.port)
    }
}

impl fmt::Display for SrtUrl {
    /// The redacted form: secret query values become `***`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.endpoint())?;
        for (i, (k, v)) in self.query.iter().enumerate() {
            let shown = if SECRET_KEYS.contains(k) { "***" } else { v.expose() };
            write!(f, "{}{k}={}", if i == 0 { '?' } else { '&' }, url::form_urlencoded::byte_serialize(shown.as_bytes()).collect::<String>().replace("%2A", "*"))?;
        }
        Ok(())
    }
}

impl fmt::Debug for SrtUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SrtUrl({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_host_port_and_the_known_query_keys() {
        let u = SrtUrl::parse("srt://relay.example.com:9000?latency=1500&streamid=live/cam1&passphrase=0123456789ab").unwrap();
        assert_eq!((u.host(), u.port()), ("relay.example.com", 9000));
        assert_eq!(u.query("latency"), Some("1500"));
        assert_eq!(u.query("streamid"), Some("live/cam1"));
        assert_eq!(u.query("pbkeylen"), None);
        assert_eq!(u.endpoint(), "srt://relay.example.com:9000");
        let listener = SrtUrl::parse("srt://:9000?mode=listener").unwrap();
        assert_eq!((listener.host(), listener.port(), listener.query("mode")), ("", 9000, Some("listener")));
        assert_eq!(SrtUrl::parse("srt://[::1]:9000").unwrap().endpoint(), "srt://[::1]:9000");
    }

    #[test]
    fn display_masks_the_passphrase_and_the_streamid() {
        let u = SrtUrl::parse("srt://h:9000?streamid=k3y-s3cr3t&passphrase=pa55phrase-x&latency=800").unwrap();
        let shown = format!("{u} {u:?}");
        assert!(!shown.contains("k3y") && !shown.contains("pa55"), "{shown}");
        assert_eq!(u.to_string(), "srt://h:9000?streamid=***&passphrase=***&latency=800");
    }

    #[test]
    fn refuses_what_is_not_an_srt_url_without_echoing_it() {
        let cases: &[(&str, UrlError)] = &[
            ("srt://h", UrlError::NoPort),
            ("srt://h:0", UrlError::NoPort),
            ("srt://h:9000/sk4live", UrlError::SrtPath),
            ("srt://h:9000?sk4live=1", UrlError::SrtQueryKey),
            ("srt://h:9000?latency=1&latency=2", UrlError::SrtQueryTwice),
            ("srt://sk4live:pw@h:9000", UrlError::SrtCredentials),
            ("srt://h:9000#sk4live", UrlError::Fragment),
        ];
        for (raw, want) in cases {
            let e = SrtUrl::parse(raw).unwrap_err();
            assert_eq!(&e, want, "{raw}");
            assert!(!e.to_string().contains("sk4live"), "{raw}: {e}");
        }
        assert!(matches!(SrtUrl::parse("srt://h:99999"), Err(UrlError::Syntax(_))), "a port over 65535");
        assert!(matches!(SrtUrl::parse("srt://h:port"), Err(UrlError::Syntax(_))));
    }
}

//! Scrubs a target's secrets (stream key, access token, tcUrl) out of any
//! text headed for logs or status, including text the server chose.

use crate::egress::url::IngestUrl;

const MASK: &str = "***";

/// The secret strings of one target, longest first.
#[derive(Clone, Debug, Default)]
pub(crate) struct Redactor {
    secrets: Vec<String>,
}

impl Redactor {
    pub fn new(url: &IngestUrl, stream_name: &str) -> Redactor {
        let app = url.app();
        // Everything after the application's first segment is a token (or query).
        let tail = app.find(['/', '?']).map(|i| &app[i + 1..]).unwrap_or("");
        let mut secrets: Vec<String> = [url.tc_url().as_str(), app, tail, stream_name]
            .into_iter()
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect();
        // An app without a token ("live") is public; only mask it as part of longer secrets.
        if tail.is_empty() {
            secrets.retain(|s| s != app);
        }
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        secrets.dedup();
        Redactor { secrets }
    }

    pub fn apply(&self, text: &str) -> String {
        let mut text = text.to_owned();
        for secret in &self.secrets {
            if text.contains(secret.as_str()) {
                text = text.replace(secret.as_str(), MASK);
            }
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_the_token_the_stream_key_and_the_tc_url() {
        let url = IngestUrl::parse("rtmp://h:1935/live/t0ken?sig=abc").unwrap();
        let r = Redactor::new(&url, "key-123");
        let shown = r.apply("app live/t0ken?sig=abc at rtmp://h:1935/live/t0ken?sig=abc stream key-123, token t0ken?sig=abc");
        assert_eq!(shown, "app *** at *** stream ***, token ***");
    }

    #[test]
    fn leaves_a_public_app_name_alone() {
        let r = Redactor::new(&IngestUrl::parse("rtmp://h/live").unwrap(), "secret_1080p");
        assert_eq!(r.apply("live app refused secret_1080p"), "live app refused ***");
    }
}

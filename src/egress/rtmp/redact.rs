//! Scrubs a target's secrets (stream key, access token, tcUrl) out of any
//! text headed for logs or status, including text the server chose.

use crate::config::url::RtmpUrl;

const MASK: &str = "***";

/// The secret strings of one target, longest first.
#[derive(Clone, Debug, Default)]
pub(crate) struct Redactor {
    secrets: Vec<String>,
}

impl Redactor {
    pub fn new(url: &RtmpUrl, stream_name: &str) -> Redactor {
        let app = url.app();
        // Everything after the application's first segment is a token (or a
        // query); masking it masks the app and tcUrl too ("rtmp://h/live/***").
        let tail = app.find(['/', '?']).map(|i| &app[i + 1..]).unwrap_or("");
        let mut secrets: Vec<String> =
            [tail, stream_name].into_iter().filter(|s| !s.is_empty()).map(str::to_owned).collect();
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
        let url = RtmpUrl::parse("rtmp://h:1935/live/t0ken?sig=abc").unwrap();
        let r = Redactor::new(&url, "key-123");
        let shown = r.apply("app live/t0ken?sig=abc at rtmp://h:1935/live/t0ken?sig=abc stream key-123");
        assert_eq!(shown, "app live/*** at rtmp://h:1935/live/*** stream ***");
    }

    #[test]
    fn leaves_a_public_app_name_and_url_alone() {
        let url = RtmpUrl::parse("rtmp://h/live").unwrap();
        let r = Redactor::new(&url, "secret_1080p");
        assert_eq!(r.apply(&format!("{url} live refused secret_1080p")), "rtmp://h:1935/live live refused ***");
    }
}

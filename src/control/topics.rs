//! The topic scheme under the device prefix (default `fieldcast/<device-id>`).

#[derive(Clone, Debug)]
pub struct Topics {
    prefix: String,
}

impl Topics {
    pub fn new(prefix: &str) -> Topics {
        Topics { prefix: prefix.trim_end_matches('/').to_string() }
    }
    fn at(&self, leaf: &str) -> String {
        format!("{}/{leaf}", self.prefix)
    }
    pub fn status(&self) -> String {
        self.at("status")
    }
    pub fn telemetry(&self) -> String {
        self.at("telemetry")
    }
    pub fn events(&self) -> String {
        self.at("events")
    }
    pub fn snapshot(&self) -> String {
        self.at("snapshot")
    }
    pub fn desired(&self) -> String {
        self.at("config/desired")
    }
    pub fn reported(&self) -> String {
        self.at("config/reported")
    }
    /// The subscription for commands.
    pub fn commands(&self) -> String {
        self.at("cmd/+")
    }
    pub fn command(&self, name: &str) -> String {
        self.at(&format!("cmd/{name}"))
    }
    /// Where a reply goes without an MQTT 5 response topic; `None` id (the
    /// payload was too broken to carry one) -> `reply`.
    pub fn reply(&self, id: Option<&str>) -> String {
        match id {
            Some(id) => self.at(&format!("reply/{id}")),
            None => self.at("reply"),
        }
    }
    /// `cmd/<name>` -> `name`.
    pub fn command_name<'a>(&self, topic: &'a str) -> Option<&'a str> {
        topic.strip_prefix(&self.prefix)?.strip_prefix("/cmd/").filter(|n| !n.contains('/'))
    }
}

/// Whether a client may publish to `topic`: not empty, no wildcard, no
/// NUL, at most 65535 bytes (an MQTT string).
pub fn publishable(topic: &str) -> bool {
    !topic.is_empty() && topic.len() <= 65_535 && !topic.contains(['+', '#', '\0'])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_sit_under_the_prefix() {
        let t = Topics::new("fieldcast/box-1/");
        assert_eq!(t.status(), "fieldcast/box-1/status");
        assert_eq!(t.commands(), "fieldcast/box-1/cmd/+");
        assert_eq!(t.reply(Some("c1")), "fieldcast/box-1/reply/c1");
        assert_eq!(t.reply(None), "fieldcast/box-1/reply");
        assert_eq!(t.command_name("fieldcast/box-1/cmd/start"), Some("start"));
        assert_eq!(t.command_name("fieldcast/box-2/cmd/start"), None);
        assert_eq!(t.command_name("fieldcast/box-1/cmd/a/b"), None);
    }

    #[test]
    fn only_concrete_topics_are_publishable() {
        for ok in ["a", "fieldcast/box-1/reply/x", "a//b", "/"] {
            assert!(publishable(ok), "{ok}");
        }
        let long = "x".repeat(65_536);
        for bad in ["", "a/+/b", "a/#", "+", "a\0b", long.as_str()] {
            assert!(!publishable(bad), "{bad:.20}");
        }
    }
}

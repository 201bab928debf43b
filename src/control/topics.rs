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
    /// Where the reply to a command goes: its MQTT 5 response topic, unless
    /// that is no topic one may publish to, or one of the box's own under
    /// its prefix other than `reply` and `reply/...` (a reply on `cmd/...` or
    /// `config/desired` would come back as input; on `status` or `events` it
    /// would corrupt them): then `reply/<id>`.
    pub fn reply_to(&self, response_topic: Option<&str>, id: Option<&str>) -> String {
        match response_topic {
            Some(t) if publishable(t) && !self.own_but_not_reply(t) => t.to_string(),
            _ => self.reply(id),
        }
    }

    fn own_but_not_reply(&self, topic: &str) -> bool {
        match topic.strip_prefix(&self.prefix) {
            Some(rest) if rest.starts_with('/') => rest != "/reply" && !rest.starts_with("/reply/"),
            _ => false,
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
    fn replies_never_go_to_the_boxs_own_topics_other_than_reply() {
        let t = Topics::new("fieldcast/box-1");
        let fallback = "fieldcast/box-1/reply/c1";
        let table = [
            (None, fallback),
            (Some("fieldcast/box-1/reply/dash-1"), "fieldcast/box-1/reply/dash-1"),
            (Some("fieldcast/box-1/reply"), "fieldcast/box-1/reply"),
            (Some("dashboards/ops/inbox"), "dashboards/ops/inbox"),
            (Some("fieldcast/box-10/cmd/start"), "fieldcast/box-10/cmd/start"),
            (Some("fieldcast/box-1/cmd/start"), fallback),
            (Some("fieldcast/box-1/cmd/"), fallback),
            (Some("fieldcast/box-1/config/desired"), fallback),
            (Some("fieldcast/box-1/config/reported"), fallback),
            (Some("fieldcast/box-1/status"), fallback),
            (Some("fieldcast/box-1/events"), fallback),
            (Some("fieldcast/box-1/replyx"), fallback),
            (Some("fieldcast/box-1/reply/+"), fallback),
            (Some("fieldcast/#"), fallback),
            (Some(""), fallback),
        ];
        for (response_topic, want) in table {
            assert_eq!(t.reply_to(response_topic, Some("c1")), want, "{response_topic:?}");
        }
        assert_eq!(t.reply_to(Some("fieldcast/box-1/cmd/stop"), None), "fieldcast/box-1/reply");
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

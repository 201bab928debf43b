//! Fleet control under abuse, end to end: a real mosquitto (password auth,
//! the device ACL), a real nginx-rtmp channel, the fieldcast binary, and a
//! dashboard that sends what a careless or hostile one would: oversized and
//! retained commands, bursts of thousands, response topics pointing back at
//! the box, old `config/desired` versions. Each case runs over MQTT 5 and
//! MQTT 3.1.1 where the protocols differ.

mod common;

use common::device::{ladder_toml, Device};
use common::wait_for;
use common::mosquitto::{device_acl, Mosquitto, MosquittoOptions};
use common::mqtt::Watcher;
use common::nginx::Nginx;

use serde_json::{json, Value};
use std::time::Duration;
use tempfile::TempDir;

const DEVICE: &str = "box-x";
const DEVICE_PASSWORD: &str = "mqtt-pw-x8Jq2";
const DASHBOARD: &str = "dashboard";
const STREAM_KEY: &str = "sk_live_abuse_77c1";
const T: Duration = Duration::from_secs(30);

fn topic(leaf: &str) -> String {
    format!("fieldcast/{DEVICE}/{leaf}")
}

struct Rig {
    /// Held: dropping it stops the broker.
    #[allow(dead_code)]
    mosquitto: Mosquitto,
    #[allow(dead_code)]
    nginx: Nginx,
    dir: TempDir,
    dash: Watcher,
    device: Option<Device>,
}

impl Rig {
    /// `protocol`: "5" or "3.1.1" (forced, so the case is that protocol's).
    fn new(protocol: &str, broker: MosquittoOptions) -> Rig {
        let mosquitto = Mosquitto::start_with(MosquittoOptions {
            users: vec![(DEVICE.into(), DEVICE_PASSWORD.into()), (DASHBOARD.into(), "dash-pw".into())],
            acl: Some(device_acl(DEVICE, DASHBOARD)),
            ..broker
        });
        let nginx = Nginx::start();
        let dir = tempfile::tempdir().unwrap();
        let config = format!(
            "device_id = \"{DEVICE}\"\nstate_dir = \"{state}\"\n\n{ladder}\n[recording]\nenabled = false\n\n\
             [[destination]]\nname = \"primary\"\nurl = \"{rtmp}\"\nstream = \"{{rung}}_{{key}}\"\nkey = \"{STREAM_KEY}\"\n\n\
             [mqtt]\nbroker = \"{broker}\"\nusername = \"{DEVICE}\"\npassword = \"{DEVICE_PASSWORD}\"\n\
             autostart = false\ntelemetry_seconds = 60\nprotocol = \"{protocol}\"\nkeepalive_seconds = 5\n",
            state = dir.path().join("state").display(),
            ladder = ladder_toml(),
            rtmp = nginx.rtmp_url("live"),
            broker = mosquitto.url(),
        );
        std::fs::write(dir.path().join("config.toml"), config).unwrap();
        let dash = Watcher::connect(&mosquitto.url(), None, Some((DASHBOARD, "dash-pw")), "fieldcast/#");
        Rig { mosquitto, nginx, dir, dash, device: None }
    }

    fn start_device(&mut self) {
        let d = Device::spawn(&self.dir.path().join("config.toml"), &self.dir.path().join("fieldcast.log"));
        self.device = Some(d);
        let online = self.dash.wait_msg(T, |m| m.topic == topic("status") && m.json().is_some_and(|v| v["online"] == true));
        assert!(online.is_some(), "no online status: {}", self.log());
    }

    fn log(&self) -> String {
        self.device.as_ref().map(|d| d.log_text()).unwrap_or_default()
    }

    /// How many times the device connected to the broker (every process it ran).
    fn connects(&self) -> usize {
        self.log().matches("MQTT connected").count()
    }

    /// Sends `cmd/<name>` and returns the reply from `reply/<id>`.
    fn command(&self, name: &str, body: Value) -> Value {
        let id = body["id"].as_str().expect("test commands carry an id").to_string();
        self.dash.publish(&topic(&format!("cmd/{name}")), body.to_string().as_bytes(), false);
        self.reply(&topic(&format!("reply/{id}")))
    }

    fn reply(&self, on: &str) -> Value {
        self.dash.wait_json(T, on, |_| true).unwrap_or_else(|| panic!("no reply on {on}; log:\n{}", self.log()))
    }

    fn assert_no_secrets(&self) {
        let published: String = self
            .dash
            .messages()
            .iter()
            .filter(|m| !m.topic.contains("/cmd/") && !m.topic.ends_with("/config/desired"))
            .map(|m| format!("{} {}\n", m.topic, String::from_utf8_lossy(&m.payload)))
            .collect();
        for secret in [STREAM_KEY, DEVICE_PASSWORD] {
            assert!(!published.contains(secret), "secret published over MQTT");
            assert!(!self.log().contains(secret), "secret in the log");
        }
    }
}

fn padded_command(id: &str, bytes: usize) -> Vec<u8> {
    format!("{{\"id\":\"{id}\",\"pad\":\"{}\"}}", "x".repeat(bytes)).into_bytes()
}

/// Oversized commands of every size class: just over the 64 KiB command
/// limit, over the old 1 MiB client limit, and over what an MQTT 5 box
/// announces (16 MiB). None may cost the connection; each one the box can
/// see is answered `payload_too_large`; the next command is answered.
fn oversized_commands_are_refused_without_costing_the_connection(protocol: &str) {
    let mut rig = Rig::new(protocol, MosquittoOptions::default());
    rig.start_device();
    let sizes = [70 * 1024, 2 * 1024 * 1024, 17 * 1024 * 1024];
    for (i, size) in sizes.into_iter().enumerate() {
        let inbox = topic(&format!("reply/big-{i}"));
        let payload = padded_command(&format!("big-{i}"), size);
        rig.dash.publish_with_response(&topic("cmd/status"), &payload, &inbox, format!("corr-{i}").as_bytes());
        let next = rig.command("status", json!({"id": format!("after-big-{i}")}));
        assert_eq!(next["ok"], true, "size {size}: {next}");
        let seen_by_the_box = protocol == "3.1.1" || size < 16 * 1024 * 1024;
        if seen_by_the_box {
            // MQTT 5: on the response topic; 3.1.1 has none, and the payload
            // is refused unread, so there is no id: `reply`.
            let on = if protocol == "5" { inbox } else { topic("reply") };
            let r = rig.dash.wait_msg(T, |m| m.topic == on && m.json().is_some_and(|v| v["error"]["code"] == "payload_too_large"));
            let r = r.unwrap_or_else(|| panic!("size {size}: no payload_too_large on {on}: {}", rig.log()));
            if protocol == "5" {
                assert_eq!(r.correlation.as_deref(), Some(format!("corr-{i}").as_bytes()), "size {size}");
            }
        }
    }
    if protocol == "3.1.1" {
        let refusals = rig.dash.on(&topic("reply")).len();
        assert_eq!(refusals, sizes.len(), "each oversized command answered once (no redelivery loop)");
    }
    assert_eq!(rig.connects(), 1, "the box reconnected: {}", rig.log());
    assert!(!rig.log().contains("connection lost"), "{}", rig.log());
    let births = rig.dash.on(&topic("status")).iter().filter(|m| m.json().is_some_and(|v| v["online"] == true)).count();
    assert_eq!(births, 1, "one birth, no reconnect");
    rig.assert_no_secrets();
}

#[test]
fn oversized_commands_are_refused_without_costing_the_connection_over_mqtt_5() {
    oversized_commands_are_refused_without_costing_the_connection("5");
}

#[test]
fn oversized_commands_are_refused_without_costing_the_connection_over_mqtt_3_1_1() {
    oversized_commands_are_refused_without_costing_the_connection("3.1.1");
}

/// Well past what any queue of the box holds, sent at once: every command is
/// answered, in order, and its `command` event sent, in order; the box
/// slowed the broker down instead of dropping anything. (The broker's own
/// per-client queue is raised above the burst: mosquitto drops beyond its
/// `max_queued_messages`, whatever the client does.)
fn a_burst_of_commands_is_answered_in_full_and_in_order(protocol: &str) {
    let mut rig = Rig::new(protocol, MosquittoOptions { max_queued_messages: Some(100_000), ..Default::default() });
    rig.start_device();
    const N: usize = 2000;
    for i in 0..N {
        rig.dash.publish(&topic("cmd/status"), json!({"id": format!("burst-{i}")}).to_string().as_bytes(), false);
    }
    let replies = |d: &Watcher| d.messages().into_iter().filter(|m| m.topic.contains("/reply/burst-")).count();
    let all = wait_for(Duration::from_secs(180), || replies(&rig.dash) == N);
    assert!(all, "{} of {N} commands answered: {}", replies(&rig.dash), rig.log());
    let order: Vec<String> = rig.dash.messages().into_iter().filter(|m| m.topic.contains("/reply/burst-")).map(|m| m.topic).collect();
    let want: Vec<String> = (0..N).map(|i| topic(&format!("reply/burst-{i}"))).collect();
    assert!(order == want, "replies out of order or repeated");
    let events = |d: &Watcher| -> Vec<String> {
        d.on(&topic("events"))
            .iter()
            .filter_map(|m| m.json())
            .filter(|e| e["type"] == "command" && e["name"] == "status")
            .filter_map(|e| e["id"].as_str().map(str::to_string))
            .collect()
    };
    assert!(wait_for(T, || events(&rig.dash).len() >= N), "{} of {N} command events", events(&rig.dash).len());
    let want: Vec<String> = (0..N).map(|i| format!("burst-{i}")).collect();
    assert!(events(&rig.dash) == want, "events out of order or repeated");
    assert!(!rig.log().contains("dropped"), "the device dropped messages: {}", rig.log());
    assert_eq!(rig.connects(), 1, "the box reconnected: {}", rig.log());
}

#[test]
fn a_burst_of_commands_is_answered_in_full_and_in_order_over_mqtt_5() {
    a_burst_of_commands_is_answered_in_full_and_in_order("5");
}

#[test]
fn a_burst_of_commands_is_answered_in_full_and_in_order_over_mqtt_3_1_1() {
    a_burst_of_commands_is_answered_in_full_and_in_order("3.1.1");
}

//! Fleet control under abuse, end to end: a real mosquitto (password auth,
//! the device ACL), a real nginx-rtmp channel, the fieldcast binary, and a
//! dashboard that sends what a careless or hostile one would: oversized and
//! retained commands, bursts of thousands, response topics pointing back at
//! the box, old `config/desired` versions. Each case runs over MQTT 5 and
//! MQTT 3.1.1 where the protocols differ.

mod common;

use common::device::{flv_has_video_frame, ladder_toml, small_ladder, Device};
use common::wait_for;
use common::mosquitto::{device_acl, Mosquitto, MosquittoOptions};
use common::mqtt::{Msg, Watcher};
use common::mqtt_stall::StallProxy;
use common::nginx::Nginx;

use serde_json::{json, Value};
use std::path::PathBuf;
use std::time::{Duration, Instant};
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
    mosquitto: Mosquitto,
    nginx: Nginx,
    dir: TempDir,
    dash: Watcher,
    device: Option<Device>,
    /// Between the box and the broker, when the case stalls the broker.
    proxy: Option<StallProxy>,
}

impl Rig {
    /// `protocol`: "5" or "3.1.1" (forced, so the case is that protocol's).
    fn new(protocol: &str, broker: MosquittoOptions) -> Rig {
        Rig::build(protocol, broker, None)
    }

    /// With `stalled`, the box reaches the broker through a [`StallProxy`]
    /// (stalled from the start if true).
    fn build(protocol: &str, broker: MosquittoOptions, stalled: Option<bool>) -> Rig {
        let mosquitto = Mosquitto::start_with(MosquittoOptions {
            users: vec![(DEVICE.into(), DEVICE_PASSWORD.into()), (DASHBOARD.into(), "dash-pw".into())],
            acl: Some(device_acl(DEVICE, DASHBOARD)),
            ..broker
        });
        let nginx = Nginx::start();
        let dir = tempfile::tempdir().unwrap();
        let proxy = stalled.map(|on| StallProxy::start(mosquitto.port(), on));
        let broker_url = proxy.as_ref().map(|p| p.url()).unwrap_or_else(|| mosquitto.url());
        let config = format!(
            "device_id = \"{DEVICE}\"\nstate_dir = \"{state}\"\n\n{ladder}\n[recording]\nenabled = false\n\n\
             [[destination]]\nname = \"primary\"\nurl = \"{rtmp}\"\nstream = \"{{rung}}_{{key}}\"\nkey = \"{STREAM_KEY}\"\n\n\
             [mqtt]\nbroker = \"{broker}\"\nusername = \"{DEVICE}\"\npassword = \"{DEVICE_PASSWORD}\"\n\
             autostart = false\ntelemetry_seconds = 60\nprotocol = \"{protocol}\"\nkeepalive_seconds = 5\n",
            state = dir.path().join("state").display(),
            ladder = ladder_toml(),
            rtmp = nginx.rtmp_url("live"),
            broker = broker_url,
        );
        std::fs::write(dir.path().join("config.toml"), config.to_string() + common::NO_HTTP).unwrap();
        let dash = Watcher::connect(&mosquitto.url(), None, Some((DASHBOARD, "dash-pw")), "fieldcast/#");
        Rig { mosquitto, nginx, dir, dash, device: None, proxy }
    }

    fn spawn_device(&mut self) {
        let d = Device::spawn(&self.dir.path().join("config.toml"), &self.dir.path().join("fieldcast.log"));
        self.device = Some(d);
    }

    fn start_device(&mut self) {
        self.spawn_device();
        let online = self.dash.wait_msg(T, |m| m.topic == topic("status") && m.json().is_some_and(|v| v["online"] == true));
        assert!(online.is_some(), "no online status: {}", self.log());
    }

    /// SIGTERM, wait for a clean exit, forget what the dashboard saw.
    fn stop_device(&mut self) {
        let code = self.device.as_mut().expect("device started").stop().map(|s| s.code());
        assert_eq!(code, Some(Some(0)), "clean exit on SIGTERM: {}", self.log());
        self.dash.clear();
    }

    fn go_live(&mut self) -> Vec<PathBuf> {
        let r = self.command("start", json!({"id": format!("go-{:08x}", rand::random::<u32>())}));
        assert_eq!(r["state"], "live", "{r}");
        let files: Vec<PathBuf> = small_ladder().iter().map(|(n, ..)| self.nginx.recording(&format!("{n}_{STREAM_KEY}"))).collect();
        assert!(wait_for(T, || files.iter().all(|f| flv_has_video_frame(f))), "not every rung arrived: {}", self.log());
        files
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

    /// Every reply seen, for failure messages.
    fn all_replies(&self) -> String {
        self.dash.messages().iter().filter(|m| m.topic.contains("/reply")).map(|m| format!("{} {}\n", m.topic, String::from_utf8_lossy(&m.payload))).collect()
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

/// The command's own state, from a `status` command.
fn state_of(rig: &Rig) -> String {
    let id = format!("st-{:08x}", rand::random::<u32>());
    rig.command("status", json!({"id": id}))["state"].as_str().unwrap_or_default().to_string()
}

/// Whether the broker still holds a retained message on `cmd/<name>`.
fn retained_command_left(rig: &Rig, name: &str) -> bool {
    let late = Watcher::connect(&rig.mosquitto.url(), None, Some((DASHBOARD, "dash-pw")), &topic(&format!("cmd/{name}")));
    late.wait_msg(Duration::from_secs(2), |m| m.retain && !m.payload.is_empty()).is_some()
}

fn refusals(rig: &Rig, id: &str) -> usize {
    rig.dash.on(&topic(&format!("reply/{id}"))).iter().filter(|m| m.json().is_some_and(|v| v["error"]["code"] == "retained_command")).count()
}

#[test]
fn a_retained_command_is_never_run_and_is_answered_once_over_mqtt_5() {
    let mut rig = Rig::new("5", MosquittoOptions::default());
    rig.start_device();
    rig.go_live();
    // Published retained while the box is connected (MQTT 5 shows the flag).
    rig.dash.publish(&topic("cmd/stop"), br#"{"id": "ret-stop"}"#, true);
    let r = rig.reply(&topic("reply/ret-stop"));
    assert_eq!((r["ok"].as_bool(), r["error"]["code"].as_str(), r["state"].as_str()), (Some(false), Some("retained_command"), Some("live")), "{r}");
    assert_eq!(state_of(&rig), "live");
    assert!(!retained_command_left(&rig, "stop"), "the box did not remove the retained command");
    // Published retained while the box is away: queued and retained both; refused once.
    rig.stop_device();
    rig.dash.publish(&topic("cmd/restart"), br#"{"id": "ret-away"}"#, true);
    std::thread::sleep(Duration::from_millis(500));
    for boot in 0..2 {
        rig.start_device();
        assert!(rig.dash.wait_msg(T, |m| m.topic == topic("status") && m.json().is_some_and(|v| v["state"] == "live")).is_some(), "not live again");
        std::thread::sleep(Duration::from_secs(2));
        assert_eq!(state_of(&rig), "live", "boot {boot}");
        let want = if boot == 0 { 1 } else { 0 };
        assert_eq!(refusals(&rig, "ret-away"), want, "boot {boot}: {}", rig.all_replies());
        assert_eq!(refusals(&rig, "ret-stop"), 0, "boot {boot}: answered again after a restart");
        rig.stop_device();
    }
    assert!(!retained_command_left(&rig, "restart"));
}

#[test]
fn a_retained_command_is_never_replayed_at_boot_over_mqtt_3_1_1() {
    let mut rig = Rig::new("3.1.1", MosquittoOptions::default());
    rig.start_device();
    rig.go_live();
    // Delivered live, 3.1.1 clears the retain flag: it runs, as any command.
    let r = {
        rig.dash.publish(&topic("cmd/stop"), br#"{"id": "ret-stop"}"#, true);
        rig.reply(&topic("reply/ret-stop"))
    };
    assert_eq!(r["state"], "idle", "{r}");
    rig.go_live();
    // It is never run again: the first boot refuses the retained copy once
    // and removes it; later boots never see it.
    for boot in 0..2 {
        rig.stop_device();
        rig.start_device();
        assert!(rig.dash.wait_msg(T, |m| m.topic == topic("status") && m.json().is_some_and(|v| v["state"] == "live")).is_some(), "not live again");
        std::thread::sleep(Duration::from_secs(2));
        assert_eq!(state_of(&rig), "live", "boot {boot}: {}", rig.log());
        let want = if boot == 0 { 1 } else { 0 };
        assert_eq!(refusals(&rig, "ret-stop"), want, "boot {boot}: {}", rig.all_replies());
    }
    assert!(!retained_command_left(&rig, "stop"));
    // The box's own removal (an empty message, echoed under 3.1.1) was not answered.
    assert!(rig.dash.on(&topic("reply")).is_empty(), "{}", rig.all_replies());
    rig.assert_no_secrets();
}

#[test]
fn replies_never_land_on_the_boxs_own_topics() {
    let mut rig = Rig::new("5", MosquittoOptions::default());
    rig.start_device();
    // (Wildcards and empty topics, which a broker may refuse in a response
    // topic, are in the unit test of `Topics::reply_to`.)
    let own = ["cmd/status", "cmd/stop", "cmd/", "config/desired", "config/reported", "status", "events", "telemetry", "snapshot"];
    for (i, leaf) in own.iter().enumerate() {
        let id = format!("own-{i}");
        let response_topic = topic(leaf);
        rig.dash.publish_with_response(&topic("cmd/status"), json!({"id": id}).to_string().as_bytes(), &response_topic, b"c");
        let r = rig.reply(&topic(&format!("reply/{id}")));
        assert_eq!((r["id"].as_str(), r["ok"].as_bool()), (Some(id.as_str()), Some(true)), "response topic {response_topic:?}: {r}");
    }
    std::thread::sleep(Duration::from_secs(1));
    // Nothing from the box on its inbound topics (only the dashboard's own commands).
    let on_cmd = rig.dash.messages().into_iter().filter(|m| m.topic.starts_with(&topic("cmd/"))).count();
    assert_eq!(on_cmd, own.len(), "the box published on cmd/...");
    assert!(rig.dash.on(&topic("config/desired")).is_empty(), "the box published on config/desired");
    let bogus_status = rig.dash.on(&topic("status")).iter().filter(|m| m.json().is_some_and(|v| v.get("id").is_some())).count();
    assert_eq!(bogus_status, 0, "a reply landed on status");
    // A response topic under reply/ is honoured.
    rig.dash.publish_with_response(&topic("cmd/status"), br#"{"id": "inbox-ok"}"#, &topic("reply/dash-7"), b"c7");
    let m = rig.dash.wait_msg(T, |m| m.topic == topic("reply/dash-7")).expect("reply on the response topic");
    assert_eq!(m.correlation.as_deref(), Some(&b"c7"[..]));
    assert_eq!(rig.connects(), 1);
}

#[test]
fn desired_config_versions_only_move_forward_across_restarts() {
    let mut rig = Rig::new("5", MosquittoOptions::default());
    rig.start_device();
    let desired = |version: u64, max_ms: u64| json!({"version": version, "config": {"egress": {"reconnect_max_ms": max_ms}}});
    let reported = |rig: &Rig, pred: &dyn Fn(&Value) -> bool| {
        rig.dash.wait_json(T, &topic("config/reported"), pred).unwrap_or_else(|| panic!("no such config/reported; log:\n{}", rig.log()))
    };
    let applied = |v: &Value| v["version"] == 7 && v["config"]["egress"]["reconnect_max_ms"] == 7000;
    rig.dash.publish(&topic("config/desired"), desired(7, 7000).to_string().as_bytes(), true);
    let r = reported(&rig, &|v| v["status"] == "synced" && v["version"] == 7);
    assert!(applied(&r), "{r}");

    // Older: refused, nothing changes (version, config).
    rig.dash.publish(&topic("config/desired"), desired(6, 6000).to_string().as_bytes(), true);
    let r = reported(&rig, &|v| v["status"] == "rejected");
    assert_eq!((r["error"]["code"].as_str(), r["error"]["field"].as_str()), (Some("stale_version"), Some("version")), "{r}");
    assert!(applied(&r), "an older version changed the shadow: {r}");
    // The same version with other content: refused too.
    rig.dash.clear();
    rig.dash.publish(&topic("config/desired"), desired(7, 5000).to_string().as_bytes(), true);
    let r = reported(&rig, &|v| v["status"] == "rejected");
    assert_eq!(r["error"]["code"], "version_conflict", "{r}");
    assert!(applied(&r), "{r}");
    let ev = rig.dash.wait_json(T, &topic("events"), |e| e["type"] == "config" && e["status"] == "rejected").expect("rejected event");
    assert_eq!(ev["error"]["code"], "version_conflict");
    // The same document again (other key order, whitespace): a redelivery, nothing to do.
    rig.dash.clear();
    rig.dash.publish(&topic("config/desired"), br#"{"config": {"egress": {"reconnect_max_ms": 7000}},   "version": 7}"#, true);
    std::thread::sleep(Duration::from_secs(1));
    assert!(rig.dash.on(&topic("config/reported")).is_empty(), "a redelivery was handled again");

    // Persisted: after a restart, an older version is still refused and the
    // newest applied config is the one running.
    rig.stop_device();
    rig.dash.publish(&topic("config/desired"), desired(3, 3000).to_string().as_bytes(), true);
    rig.start_device();
    let r = reported(&rig, &|v| v["status"] == "rejected");
    assert_eq!(r["error"]["code"], "stale_version", "{r}");
    assert!(applied(&r), "{r}");
    let saved: Value = serde_json::from_slice(&std::fs::read(rig.dir.path().join("state/remote.json")).unwrap()).unwrap();
    assert_eq!((saved["desired_version"].as_u64(), saved["overlay"]["egress"]["reconnect_max_ms"].as_u64()), (Some(7), Some(7000)), "{saved}");
    // Moving forward still works.
    rig.dash.publish(&topic("config/desired"), desired(8, 8000).to_string().as_bytes(), true);
    let r = reported(&rig, &|v| v["status"] == "synced" && v["version"] == 8);
    assert_eq!(r["config"]["egress"]["reconnect_max_ms"], 8000);
}

/// The first birth `status` after `since`, as JSON.
fn birth_after(rig: &Rig, since: Instant, timeout: Duration) -> Option<Value> {
    let birth = |m: &Msg| m.topic == topic("status") && m.at > since && m.json().is_some_and(|v| v["online"] == true);
    rig.dash.wait_msg(timeout, birth).and_then(|m| m.json())
}

/// A dashboard's MQTT 5 request/response: the reply on its response topic.
fn reply_on_response_topic(rig: &Rig, id: &str) {
    let inbox = topic(&format!("reply/inbox-{id}"));
    rig.dash.publish_with_response(&topic("cmd/status"), json!({"id": id}).to_string().as_bytes(), &inbox, id.as_bytes());
    let m = rig.dash.wait_msg(T, |m| m.topic == inbox).unwrap_or_else(|| panic!("no reply on the response topic; log:\n{}", rig.log()));
    assert_eq!(m.correlation.as_deref(), Some(id.as_bytes()));
}

#[test]
fn a_broker_that_spoke_mqtt_5_keeps_getting_5_through_a_stall() {
    let mut rig = Rig::build("auto", MosquittoOptions::default(), Some(false));
    rig.start_device();
    let first = birth_after(&rig, Instant::now() - Duration::from_secs(60), T).unwrap();
    assert_eq!(first["mqtt_protocol"], "5");
    // The broker stalls longer than the 5 s connect timeout, then recovers.
    let proxy = rig.proxy.as_ref().unwrap();
    proxy.stall(true);
    let cut = Instant::now();
    proxy.cut();
    std::thread::sleep(Duration::from_secs(8));
    proxy.stall(false);
    let back = birth_after(&rig, cut, Duration::from_secs(60)).unwrap_or_else(|| panic!("not back; log:\n{}", rig.log()));
    assert_eq!(back["mqtt_protocol"], "5", "a stall looked like a broker without MQTT 5: {back}");
    reply_on_response_topic(&rig, "after-stall");
    assert!(!rig.log().contains("trying 3.1.1"), "{}", rig.log());
}

#[test]
fn a_box_that_fell_back_to_3_1_1_on_a_stall_at_boot_gets_mqtt_5_back_soon() {
    let mut rig = Rig::build("auto", MosquittoOptions::default(), Some(true));
    let t0 = Instant::now();
    rig.spawn_device();
    std::thread::sleep(Duration::from_secs(7));
    rig.proxy.as_ref().unwrap().stall(false);
    // MQTT 5 got no answer at boot: a 3.1.1 guess, for now.
    let guess = birth_after(&rig, t0, T).unwrap_or_else(|| panic!("not online; log:\n{}", rig.log()));
    assert_eq!(guess["mqtt_protocol"], "3.1.1", "{guess}");
    // Within a re-probe (30 s) the box is on 5 again, without ever going offline.
    let v5 = rig.dash.wait_msg(Duration::from_secs(90), |m| {
        m.topic == topic("status") && m.json().is_some_and(|v| v["online"] == true && v["mqtt_protocol"] == "5")
    });
    assert!(v5.is_some(), "still on 3.1.1; log:\n{}", rig.log());
    let offline = rig.dash.on(&topic("status")).iter().filter(|m| m.json().is_some_and(|v| v["online"] == false)).count();
    assert_eq!(offline, 0, "the re-probe published the Last Will");
    reply_on_response_topic(&rig, "after-reprobe");
}

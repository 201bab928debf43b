//! Fleet control end to end: a real mosquitto (TLS listener with a test CA,
//! password auth, an ACL confining the device to its own topics), a real
//! nginx-rtmp channel judged by ffprobe, and the fieldcast binary.

mod common;

use common::device::{flv_has_video_frame, ladder_toml, small_ladder, Device};
use common::mosquitto::{device_acl, Mosquitto, MosquittoOptions};
use common::mqtt::Watcher;
use common::nginx::Nginx;
use common::{ffprobe, wait_for};
use nix::sys::signal::Signal;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tempfile::TempDir;

const DEVICE: &str = "box-a";
const DEVICE_PASSWORD: &str = "mqtt-pw-Q7v2Lr";
const DASHBOARD: &str = "dashboard";
const STREAM_KEY: &str = "sk_live_4f9a8c7e2d";
const T: Duration = Duration::from_secs(20);

fn topic(leaf: &str) -> String {
    format!("fieldcast/{DEVICE}/{leaf}")
}

struct Rig {
    mosquitto: Mosquitto,
    nginx: Nginx,
    dir: TempDir,
    dash: Watcher,
    device: Option<Device>,
}

struct Options {
    autostart: bool,
    tls: bool,
    /// The device authenticates with a client certificate (CN = user name), no password.
    mtls: bool,
    protocol: &'static str,
    telemetry_s: u32,
}

impl Default for Options {
    fn default() -> Self {
        Options { autostart: false, tls: true, mtls: false, protocol: "auto", telemetry_s: 1 }
    }
}

impl Rig {
    fn new(o: Options) -> Rig {
        let mosquitto = Mosquitto::start_with(MosquittoOptions {
            tls: true,
            users: vec![(DEVICE.into(), DEVICE_PASSWORD.into()), (DASHBOARD.into(), "dash-pw".into())],
            acl: Some(device_acl(DEVICE, DASHBOARD)),
            client_certs: o.mtls,
            ..Default::default()
        });
        let nginx = Nginx::start();
        let dir = tempfile::tempdir().unwrap();
        let (broker, mut auth) = if o.tls {
            (mosquitto.tls_url(), format!("ca_file = \"{}\"\n", mosquitto.ca_file().unwrap().display()))
        } else {
            (mosquitto.url(), String::new())
        };
        if o.mtls {
            let (cert, key) = mosquitto.client_cert(DEVICE);
            auth += &format!("client_cert = \"{}\"\nclient_key = \"{}\"\n", cert.display(), key.display());
        } else {
            auth += &format!("username = \"{DEVICE}\"\npassword = \"{DEVICE_PASSWORD}\"\n");
        }
        let config = format!(
            "device_id = \"{DEVICE}\"\nstate_dir = \"{state}\"\n\n{ladder}\n[recording]\nenabled = false\n\n\
             [[destination]]\nname = \"primary\"\nurl = \"{rtmp}\"\nstream = \"{{rung}}_{{key}}\"\nkey = \"{STREAM_KEY}\"\n\n\
             [mqtt]\nbroker = \"{broker}\"\n{auth}\
             autostart = {autostart}\ntelemetry_seconds = {tel}\nprotocol = \"{proto}\"\nkeepalive_seconds = 5\n",
            state = dir.path().join("state").display(),
            ladder = ladder_toml(),
            rtmp = nginx.rtmp_url("live"),
            autostart = o.autostart,
            tel = o.telemetry_s,
            proto = o.protocol,
        );
        std::fs::write(dir.path().join("config.toml"), config.to_string() + common::NO_HTTP).unwrap();
        let dash = Watcher::connect(&mosquitto.url(), None, Some((DASHBOARD, "dash-pw")), "fieldcast/#");
        Rig { mosquitto, nginx, dir, dash, device: None }
    }

    fn start_device(&mut self) {
        let d = Device::spawn(&self.dir.path().join("config.toml"), &self.dir.path().join("fieldcast.log"));
        self.device = Some(d);
        let online = self.dash.wait_msg(T, |m| m.topic == topic("status") && m.json().is_some_and(|v| v["online"] == true));
        assert!(online.is_some(), "no online status: {}", self.log());
    }

    /// Starts the device, sends `start`, waits until every rung's first
    /// picture is at the channel; returns the rungs' recordings there.
    fn go_live(&mut self) -> Vec<PathBuf> {
        self.start_device();
        let r = self.command("start", json!({"id": "go"}));
        assert_eq!(r["state"], "live", "{r}");
        let files: Vec<PathBuf> = rungs().iter().map(|r| self.rung_file("", r)).collect();
        assert!(wait_for(T, || files.iter().all(|f| flv_has_video_frame(f))), "not every rung arrived: {}", self.log());
        files
    }

    fn device(&mut self) -> &mut Device {
        self.device.as_mut().expect("device started")
    }

    fn log(&self) -> String {
        self.device.as_ref().map(|d| d.log_text()).unwrap_or_default()
    }

    fn state_file(&self) -> PathBuf {
        self.dir.path().join("state/remote.json")
    }

    /// Sends `cmd/<name>` and returns the reply from `reply/<id>`.
    fn command(&self, name: &str, body: Value) -> Value {
        let id = body["id"].as_str().expect("test commands carry an id").to_string();
        self.dash.publish(&topic(&format!("cmd/{name}")), body.to_string().as_bytes(), false);
        self.reply(&topic(&format!("reply/{id}")), |_| true)
    }

    fn reply(&self, on: &str, pred: impl Fn(&Value) -> bool) -> Value {
        self.dash.wait_json(Duration::from_secs(40), on, pred).unwrap_or_else(|| panic!("no reply on {on}; log:\n{}", self.log()))
    }

    fn rung_file(&self, prefix: &str, rung: &str) -> PathBuf {
        self.nginx.recording(&format!("{prefix}{rung}_{STREAM_KEY}"))
    }

    /// Nothing the device published and nothing it logged holds a secret.
    fn assert_no_secrets(&self) {
        let device_topics: String = self
            .dash
            .messages()
            .iter()
            .filter(|m| !m.topic.contains("/cmd/") && !m.topic.ends_with("/config/desired"))
            .map(|m| format!("{} {}\n", m.topic, String::from_utf8_lossy(&m.payload)))
            .collect();
        let log = self.log();
        for secret in [STREAM_KEY, DEVICE_PASSWORD] {
            assert!(!device_topics.contains(secret), "secret published over MQTT");
            assert!(!log.contains(secret), "secret in the log");
        }
    }
}

fn rungs() -> Vec<&'static str> {
    small_ladder().iter().map(|r| r.0).collect()
}

/// Established TCP connections to a loopback port (from /proc/net/tcp).
fn connections_to(port: u16) -> usize {
    let text = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
    let want = format!(":{port:04X}");
    text.lines().skip(1).filter(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        f.len() > 3 && f[2].ends_with(&want) && f[3] == "01"
    }).count()
}

#[test]
fn start_and_stop_over_mqtt_reach_every_rung_and_replies_carry_the_ids() {
    let mut rig = Rig::new(Options::default());
    rig.start_device();
    let status = rig.dash.wait_json(T, &topic("status"), |v| v["online"] == true).unwrap();
    assert_eq!((status["state"].as_str(), status["device_id"].as_str()), (Some("idle"), Some(DEVICE)));
    assert!(status["firmware"].is_string() && status["board"] == "generic" && status["started_at"].is_string());

    // MQTT 5 request/response: reply on our response topic with our correlation data.
    let t0 = Instant::now();
    rig.dash.publish_with_response(&topic("cmd/start"), br#"{"id": "start-1"}"#, &topic("reply/dash-inbox"), b"corr-42");
    let reply = rig.dash.wait_msg(Duration::from_secs(40), |m| m.topic == topic("reply/dash-inbox")).expect("start reply");
    assert_eq!(reply.correlation.as_deref(), Some(&b"corr-42"[..]));
    eprintln!("MEASURED start command -> reply (live): {:?}", t0.elapsed());
    let reply = reply.json().unwrap();
    assert_eq!((reply["id"].as_str(), reply["ok"].as_bool(), reply["state"].as_str()), (Some("start-1"), Some(true), Some("live")), "{reply}");
    let first = rungs().iter().map(|r| rig.rung_file("", r)).collect::<Vec<_>>();
    assert!(wait_for(T, || first.iter().any(|f| flv_has_video_frame(f))), "no video at the channel: {}", rig.log());
    let to_first_frame = t0.elapsed();
    assert!(wait_for(T, || first.iter().all(|f| flv_has_video_frame(f))), "not every rung arrived: {}", rig.log());
    let to_all = t0.elapsed();
    eprintln!("MEASURED start command -> first video frame at the channel: {to_first_frame:?} (all rungs: {to_all:?})");

    std::thread::sleep(Duration::from_secs(4));
    assert!(connections_to(rig.nginx.rtmp_port) >= rungs().len());
    let t1 = Instant::now();
    let reply = rig.command("stop", json!({"id": "stop-1"}));
    let stop_reply = t1.elapsed();
    assert_eq!((reply["id"].as_str(), reply["ok"].as_bool(), reply["state"].as_str()), (Some("stop-1"), Some(true), Some("idle")), "{reply}");
    assert!(wait_for(Duration::from_secs(5), || connections_to(rig.nginx.rtmp_port) == 0), "publish connections still open");
    eprintln!("MEASURED stop command -> reply with every publish closed: {stop_reply:?} (connections gone after {:?})", t1.elapsed());

    // What the channel received: every rung, video and audio, decodable.
    for (f, (name, w, h, _)) in first.iter().zip(small_ladder()) {
        let v = ffprobe::video_packets(f);
        assert!(v.len() >= 90, "{name}: {} video packets", v.len());
        assert!(!ffprobe::audio_packets(f).is_empty(), "{name}: no audio");
        let s = ffprobe::stream_of(&ffprobe::streams(f.to_str().unwrap()), "video");
        assert_eq!((s["width"].as_u64(), s["height"].as_u64()), (Some(u64::from(*w)), Some(u64::from(*h))));
        assert_eq!(ffprobe::decode_errors(f), "", "{name}");
    }
    let size: Vec<u64> = first.iter().map(|f| std::fs::metadata(f).unwrap().len()).collect();
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(size, first.iter().map(|f| std::fs::metadata(f).unwrap().len()).collect::<Vec<_>>(), "still publishing after stop");
    let saved: Value = serde_json::from_slice(&std::fs::read(rig.state_file()).unwrap()).unwrap();
    assert_eq!(saved["run"], "idle");
    assert!(rig.device().alive());
    rig.assert_no_secrets();
    if std::env::var_os("FIELDCAST_TEST_SHOW_LOG").is_some() {
        eprintln!("{}", rig.log());
    }
}

#[test]
fn killing_the_process_makes_the_broker_publish_offline() {
    // Also the MQTT 3.1.1 path, over plain TCP (replies go to reply/<id>).
    let mut rig = Rig::new(Options { tls: false, protocol: "3.1.1", ..Default::default() });
    rig.start_device();
    let r = rig.command("status", json!({"id": "st-1"}));
    assert_eq!((r["ok"].as_bool(), r["result"]["mqtt_protocol"].as_str()), (Some(true), Some("3.1.1")), "{r}");
    rig.dash.clear();
    rig.device().signal(Signal::SIGKILL);
    let will = rig.dash.wait_json(Duration::from_secs(15), &topic("status"), |v| v["online"] == false);
    let will = will.expect("no Last Will");
    assert_eq!((will["state"].as_str(), will["device_id"].as_str()), (Some("offline"), Some(DEVICE)));
    // Retained: a dashboard connecting later sees it too.
    let late = Watcher::connect(&rig.mosquitto.url(), None, Some((DASHBOARD, "dash-pw")), &topic("status"));
    let seen = late.wait_msg(Duration::from_secs(5), |m| m.retain).and_then(|m| m.json()).expect("retained status");
    assert_eq!(seen["online"], false);
    rig.assert_no_secrets();
}

#[test]
fn desired_config_is_applied_reported_synced_and_survives_a_restart_resuming_live() {
    let mut rig = Rig::new(Options::default());
    rig.start_device();
    assert_eq!(rig.command("start", json!({"id": "go"}))["state"], "live");
    let url = rig.nginx.rtmp_url("live");
    let desired = json!({"version": 7, "config": {"destination": [
        {"name": "primary", "url": url, "stream": "moved_{rung}_{key}", "key": STREAM_KEY}
    ]}});
    rig.dash.publish(&topic("config/desired"), desired.to_string().as_bytes(), true);
    let reported = rig.reply(&topic("config/reported"), |v| v["status"] == "synced" && v["version"] == 7);
    assert_eq!(reported["config_version"], 1);
    assert_eq!(reported["config"]["destination"][0]["key"], "***");
    // Literal text of a template may be a key: shown as `***` (config::redact_template).
    assert_eq!(reported["config"]["destination"][0]["stream"], "***_{rung}_{key}");
    let moved: Vec<PathBuf> = rungs().iter().map(|r| rig.rung_file("moved_", r)).collect();
    assert!(wait_for(T, || moved.iter().all(|f| flv_has_video_frame(f))), "not publishing to the new streams: {}", rig.log());
    let status = rig.dash.wait_json(T, &topic("status"), |v| v["state"] == "live" && v["config_version"] == 1).unwrap();
    assert_eq!(status["desired"], "live");

    // Restart the process: it comes back live, on the new config, without re-applying it.
    assert_eq!(rig.device().stop().map(|s| s.code()), Some(Some(0)), "clean exit on SIGTERM");
    for f in &moved {
        std::fs::remove_file(f).unwrap();
    }
    rig.dash.clear();
    rig.start_device();
    assert!(wait_for(T, || moved.iter().all(|f| flv_has_video_frame(f))), "did not resume live on the saved config: {}", rig.log());
    rig.dash.wait_json(T, &topic("status"), |v| v["state"] == "live").expect("live after restart");
    let reported = rig.reply(&topic("config/reported"), |v| v["version"] == 7);
    assert_eq!((reported["status"].as_str(), reported["config_version"].as_u64()), (Some("synced"), Some(1)));
    rig.assert_no_secrets();
}

#[test]
fn commands_sent_while_the_box_is_away_run_when_it_returns_unless_they_expired() {
    let mut rig = Rig::new(Options::default());
    rig.start_device();
    // Away, as during a reboot: the broker keeps the session (600 s default).
    assert_eq!(rig.device().stop().map(|s| s.code()), Some(Some(0)), "clean exit on SIGTERM");
    rig.dash.clear();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64();
    rig.dash.publish(&topic("cmd/status"), json!({"id": "away-expiring", "expires_at": now + 1.0}).to_string().as_bytes(), false);
    rig.dash.publish(&topic("cmd/start"), json!({"id": "away-start", "expires_at": now + 300.0}).to_string().as_bytes(), false);
    std::thread::sleep(Duration::from_millis(1500));
    assert!(rig.dash.on(&topic("reply/away-start")).is_empty(), "a reply while the box was away");

    rig.start_device();
    let start = rig.reply(&topic("reply/away-start"), |_| true);
    assert_eq!((start["ok"].as_bool(), start["state"].as_str()), (Some(true), Some("live")), "{start}");
    let stale = rig.reply(&topic("reply/away-expiring"), |_| true);
    assert_eq!((stale["ok"].as_bool(), stale["error"]["code"].as_str()), (Some(false), Some("stale")), "{stale}");
    let files: Vec<PathBuf> = rungs().iter().map(|r| rig.rung_file("", r)).collect();
    assert!(wait_for(T, || files.iter().all(|f| flv_has_video_frame(f))), "the queued start did not stream: {}", rig.log());
    assert!(rig.log().contains("session_resumed=true"), "the broker did not resume the session: {}", rig.log());
    rig.assert_no_secrets();
}

/// (command, payload, expected code, expected field)
fn bad_payloads() -> Vec<(&'static str, Vec<u8>, &'static str, Option<&'static str>)> {
    let big = format!("{{\"id\":\"big\",\"pad\":\"{}\"}}", "x".repeat(70 * 1024));
    vec![
        ("start", big.into_bytes(), "payload_too_large", None),
        ("start", vec![0xc3, 0x28, b'{'], "bad_encoding", None),
        ("start", b"{\"id\": \"b1\"".to_vec(), "malformed_json", None),
        ("start", b"".to_vec(), "malformed_json", None),
        ("status", b"[\"id\"]".to_vec(), "not_an_object", None),
        ("status", b"42".to_vec(), "not_an_object", None),
        ("status", b"{}".to_vec(), "missing_id", Some("id")),
        ("status", b"{\"id\": 12}".to_vec(), "wrong_type", Some("id")),
        ("status", b"{\"id\": \"\"}".to_vec(), "invalid_id", Some("id")),
        ("status", b"{\"id\": \"has space\"}".to_vec(), "invalid_id", Some("id")),
        ("reboot", b"{\"id\": \"b11\"}".to_vec(), "unknown_command", None),
        ("stop", b"{\"id\": \"b12\", \"now\": true}".to_vec(), "unknown_field", None),
        ("stop", b"{\"id\": \"b13\", \"expires_at\": \"2001-01-01T00:00:00Z\"}".to_vec(), "stale", Some("expires_at")),
        ("stop", b"{\"id\": \"b14\", \"expires_at\": \"soon\"}".to_vec(), "invalid_value", Some("expires_at")),
        ("configure", b"{\"id\": \"b15\"}".to_vec(), "missing_field", Some("config")),
        ("configure", b"{\"id\": \"b16\", \"config\": [1]}".to_vec(), "wrong_type", Some("config")),
        ("configure", b"{\"id\": \"b17\", \"config\": {\"ladder\": {\"gop_seconds\": 99}}}".to_vec(), "invalid_config", Some("config.ladder.gop_seconds")),
        ("configure", b"{\"id\": \"b18\", \"config\": {\"ladder\": {\"gop_secs\": 2}}}".to_vec(), "unknown_field", Some("config.ladder")),
        ("configure", b"{\"id\": \"b19\", \"config\": {\"mqtt\": {\"broker\": \"mqtt://elsewhere\"}}}".to_vec(), "forbidden_field", Some("config.mqtt")),
        ("configure", b"{\"id\": \"b20\", \"config\": {\"destination\": [{\"name\": \"x\", \"url\": \"udp://nope:9000\"}]}}".to_vec(), "invalid_config", Some("config.destination[0].url")),
        // An http(s) URL is CMAF ingest only when it says so.
        ("configure", b"{\"id\": \"b26\", \"config\": {\"destination\": [{\"name\": \"x\", \"url\": \"http://nope/ingest\"}]}}".to_vec(), "invalid_config", Some("config.destination[0].protocol")),
        ("configure", b"{\"id\": \"b21\", \"config\": {\"ladder\": {\"rungs\": [{\"name\": \"a\", \"width\": \"wide\", \"height\": 360, \"bitrate_kbps\": 800}]}}}".to_vec(), "invalid_config", Some("config.ladder.rungs[0].width")),
        // Live, switching to a capture device that is not there would take the stream off the air.
        ("configure", b"{\"id\": \"b25\", \"config\": {\"source\": {\"kind\": \"v4l2\", \"device\": \"/dev/video-typo\"}}}".to_vec(), "invalid_config", Some("config.source.device")),
        // Live, a config with nowhere to send the stream would take it off the air.
        ("configure", b"{\"id\": \"b24\", \"config\": {\"destination\": []}}".to_vec(), "invalid_config", Some("config.destination")),
        ("snapshot", b"{\"id\": \"b22\", \"width\": 5}".to_vec(), "invalid_value", Some("width")),
        ("snapshot", b"{\"id\": \"b23\", \"width\": \"max\"}".to_vec(), "wrong_type", Some("width")),
    ]
}

#[test]
fn bad_payloads_get_coded_errors_while_the_stream_and_saved_state_stay_untouched() {
    let mut rig = Rig::new(Options::default());
    let files = rig.go_live();
    let saved_before = std::fs::read(rig.state_file()).unwrap();
    let sizes = |fs: &[PathBuf]| fs.iter().map(|f| std::fs::metadata(f).map(|m| m.len()).unwrap_or(0)).collect::<Vec<_>>();
    let before = sizes(&files);
    let table = bad_payloads();
    assert!(table.len() >= 20);
    for (i, (name, payload, code, field)) in table.iter().enumerate() {
        let inbox = topic(&format!("reply/table-{i}"));
        rig.dash.publish_with_response(&topic(&format!("cmd/{name}")), payload, &inbox, i.to_string().as_bytes());
        let r = rig.reply(&inbox, |_| true);
        assert_eq!(r["ok"], false, "case {i}: {r}");
        assert_eq!(r["error"]["code"].as_str(), Some(*code), "case {i} (cmd/{name}): {r}");
        assert_eq!(r["error"]["field"].as_str(), *field, "case {i}: {r}");
        assert_eq!(r["state"], "live", "case {i}: {r}");
        assert!(rig.device().alive(), "case {i} killed the process");
    }
    // Without an MQTT 5 response topic the reply goes to reply/<id>.
    let r = rig.command("stop", json!({"id": "b-old", "expires_at": 1_000_000_000}));
    assert_eq!(r["error"]["code"], "stale");
    // A broken config/desired is reported as rejected, nothing applied.
    rig.dash.publish(&topic("config/desired"), br#"{"version": 3, "config": {"ladder": {"gop_seconds": 0.1}}}"#, true);
    let rep = rig.reply(&topic("config/reported"), |v| v["status"] == "rejected");
    assert_eq!(rep["error"]["field"], "config.ladder.gop_seconds");

    // The stream kept going and the saved state did not change (but the
    // handled desired version, recorded so it is not retried).
    std::thread::sleep(Duration::from_secs(2));
    let after = sizes(&files);
    assert!(after.iter().zip(&before).all(|(a, b)| a > b), "a rung stopped growing: {before:?} -> {after:?}");
    let mut saved: Value = serde_json::from_slice(&std::fs::read(rig.state_file()).unwrap()).unwrap();
    assert_eq!(saved["desired_version"], 3);
    saved["desired_version"] = Value::Null;
    saved["desired_digest"] = Value::Null;
    let mut was: Value = serde_json::from_slice(&saved_before).unwrap();
    was["desired_version"] = Value::Null;
    was["desired_digest"] = Value::Null;
    assert_eq!(saved, was);
    let status = rig.command("status", json!({"id": "after"}));
    assert_eq!((status["state"].as_str(), status["result"]["config_version"].as_u64()), (Some("live"), Some(0)));
    // What the channel recorded through all of that decodes cleanly (judged
    // once the publishes are closed: a recording being written ends mid-tag).
    let r = rig.command("stop", json!({"id": "end"}));
    assert_eq!(r["state"], "idle", "{r}");
    assert!(wait_for(Duration::from_secs(5), || connections_to(rig.nginx.rtmp_port) == 0), "publish connections still open");
    for f in &files {
        assert_eq!(ffprobe::decode_errors(f), "", "{}", f.display());
    }
    rig.assert_no_secrets();
}

#[test]
fn a_broker_outage_never_touches_the_stream_and_telemetry_resumes() {
    let mut rig = Rig::new(Options::default());
    let files = rig.go_live();
    rig.dash.wait_json(T, &topic("telemetry"), |v| v["state"] == "live").expect("telemetry");

    rig.mosquitto.stop();
    std::thread::sleep(Duration::from_secs(10));
    assert!(rig.device().alive());
    rig.mosquitto.restart();
    let back = Instant::now();
    // The dashboard's own client reconnects too; then telemetry flows again.
    let t = rig.dash.wait_msg(Duration::from_secs(40), |m| m.topic == topic("telemetry") && m.at > back).expect("telemetry resumed");
    let t = t.json().unwrap();
    assert_eq!(t["state"], "live");
    assert!(t["destinations"].as_array().unwrap().iter().all(|d| d["state"] == "connected" && d["reconnects"] == 0), "{t}");
    let ev = rig.dash.wait_json(T, &topic("events"), |v| v["type"] == "mqtt_reconnected").expect("reconnect event");
    assert!(ev["outage_s"].as_f64().unwrap() >= 9.0, "{ev}");
    assert!(ev["messages_dropped"].as_u64().unwrap() > 0, "telemetry during the outage is counted as dropped: {ev}");
    // Status is re-published (the restarted broker lost the retained one).
    rig.dash.wait_msg(T, |m| m.topic == topic("status") && m.at > back).expect("status re-published");

    // Judged at the channel: one publish per rung, no gap in its timeline.
    std::thread::sleep(Duration::from_secs(2));
    rig.command("stop", json!({"id": "end"}));
    for f in &files {
        let v = ffprobe::video_packets(f);
        let gap = v.windows(2).map(|w| w[1].dts - w[0].dts).fold(0.0, f64::max);
        let span = v.last().unwrap().dts - v.first().unwrap().dts;
        assert!(gap < 0.5, "{}: a {gap:.2} s gap in the stream", f.display());
        assert!(span >= 12.0, "{}: only {span:.1} s received", f.display());
    }
    rig.assert_no_secrets();
}

#[test]
fn telemetry_reports_the_bitrate_the_channel_actually_received() {
    let mut rig = Rig::new(Options { telemetry_s: 2, ..Default::default() });
    rig.start_device();
    assert_eq!(rig.command("start", json!({"id": "go"}))["state"], "live");
    std::thread::sleep(Duration::from_secs(9));
    rig.command("stop", json!({"id": "end"}));
    let reports: Vec<Value> = rig.dash.on(&topic("telemetry")).iter().filter_map(|m| m.json()).filter(|v| v["state"] == "live").collect();
    assert!(reports.len() >= 3, "{} live telemetry reports", reports.len());
    let last = reports.last().unwrap();
    assert!(last["input"]["signal"] == true && last["input"]["fps"].as_f64().unwrap() > 20.0, "{last}");
    assert!(last["system"]["rss_bytes"].as_u64().unwrap() > 10_000_000 && last["system"]["process_cpu_percent"].as_f64().is_some());
    for (name, _, _, target) in small_ladder() {
        // Whole intervals only (the first one includes the encoder start).
        let told: Vec<f64> = reports[1..]
            .iter()
            .filter_map(|r| r["rungs"].as_array().unwrap().iter().find(|x| x["name"] == *name).map(|x| x["bitrate_kbps"].as_f64().unwrap()))
            .collect();
        let told = told.iter().sum::<f64>() / told.len() as f64;
        let v = ffprobe::video_packets(&rig.rung_file("", name));
        let skip = v.iter().position(|p| p.dts >= 2.0).unwrap_or(0);
        let got = ffprobe::measured_bitrate(&v[skip..], 1.0 / 30.0) / 1000.0;
        eprintln!("MEASURED {name}: telemetry {told:.0} kbit/s, channel {got:.0} kbit/s, target {target}");
        assert!((told - got).abs() / got < 0.25, "{name}: telemetry {told:.0} vs channel {got:.0} kbit/s");
    }
    rig.assert_no_secrets();
}

#[test]
fn a_snapshot_is_a_jpeg_of_the_input_and_repeated_ids_run_once() {
    let mut rig = Rig::new(Options::default());
    rig.start_device();
    let r = rig.command("snapshot", json!({"id": "snap-idle"}));
    assert_eq!(r["error"]["code"], "unavailable", "{r}");
    assert_eq!(rig.command("start", json!({"id": "go"}))["state"], "live");
    // `start` while live: the current status, nothing restarted.
    let again = rig.command("start", json!({"id": "go-again"}));
    assert_eq!((again["ok"].as_bool(), again["state"].as_str()), (Some(true), Some("live")));
    assert!(again["result"]["live_for_s"].as_f64().is_some(), "start while live returns the status: {again}");
    std::thread::sleep(Duration::from_secs(1));
    let r = rig.command("snapshot", json!({"id": "snap-1", "width": 320}));
    assert_eq!(r["ok"], true, "{r}");
    let jpeg = rig.dash.wait_msg(T, |m| m.topic == topic("snapshot")).expect("snapshot published");
    assert_eq!(&jpeg.payload[..3], &[0xff, 0xd8, 0xff], "not a JPEG");
    assert_eq!(r["result"]["bytes"].as_u64(), Some(jpeg.payload.len() as u64));
    let path = rig.dir.path().join("snap.jpg");
    std::fs::write(&path, &jpeg.payload).unwrap();
    let s = ffprobe::stream_of(&ffprobe::streams(path.to_str().unwrap()), "video");
    assert_eq!((s["codec_name"].as_str(), s["width"].as_u64()), (Some("mjpeg"), Some(320)));

    // The same id again: the first reply, and the command does not run twice.
    let stop = rig.command("stop", json!({"id": "stop-x"}));
    assert_eq!(stop["state"], "idle");
    rig.dash.clear();
    let repeat = rig.command("stop", json!({"id": "stop-x"}));
    assert_eq!(repeat, stop);
    let fresh = rig.command("stop", json!({"id": "stop-y"}));
    assert_eq!(fresh["error"]["code"], "not_allowed");
    assert!(rig.dash.on(&topic("events")).iter().filter_map(|m| m.json()).all(|e| e["type"] != "state"), "the repeat changed state");
    rig.assert_no_secrets();
}

fn ctl(rig: &Rig, args: &[&str]) -> std::process::Output {
    let mut cmd = common::fieldcast_command();
    cmd.args(["ctl", "--broker", &rig.mosquitto.url(), "--device", DEVICE, "--username", DASHBOARD, "--timeout", "20"])
        .args(args)
        .env("FIELDCAST_MQTT_PASSWORD", "dash-pw");
    common::run_with_timeout(&mut cmd, Duration::from_secs(60))
}

#[test]
fn the_operator_cli_prints_replies_with_exit_codes_and_watches() {
    let mut rig = Rig::new(Options::default());
    rig.start_device();
    let out = ctl(&rig, &["status", r#"{"id": "cli-1"}"#]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let reply: Value = serde_json::from_slice(&out.stdout).expect("the reply as JSON");
    assert_eq!((reply["id"].as_str(), reply["result"]["device_id"].as_str()), (Some("cli-1"), Some(DEVICE)));

    let out = ctl(&rig, &["stop"]);
    assert_eq!(out.status.code(), Some(1), "a refusal exits 1");
    let reply: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(reply["error"]["code"], "not_allowed");
    assert!(reply["id"].as_str().unwrap().starts_with("ctl-"), "ctl makes up an id: {reply}");

    let out = ctl(&rig, &["start", "{not json"]);
    assert_eq!(out.status.code(), Some(64));

    let out = ctl(&rig, &["watch", "--count", "3"]);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(text.lines().count(), 3, "{text}");
    assert!(text.contains(&topic("status")) && text.contains("(retained)"), "{text}");

    // Nobody answers for another device: exit 2 after the timeout.
    let mut cmd = common::fieldcast_command();
    cmd.args(["ctl", "--broker", &rig.mosquitto.url(), "--device", "nobody", "--username", DASHBOARD, "--timeout", "1", "status"])
        .env("FIELDCAST_MQTT_PASSWORD", "dash-pw");
    let out = common::run_with_timeout(&mut cmd, Duration::from_secs(30));
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
    rig.assert_no_secrets();
}

#[test]
fn configure_merges_a_patch_restarts_the_stream_on_it_and_null_reverts_it() {
    let mut rig = Rig::new(Options::default());
    rig.go_live();
    let ladder = small_ladder();
    let (top, rest) = (ladder[0], &ladder[1..]);
    // Only the top rung, at a new bitrate; the rest of the config stays.
    let patch = json!({"ladder": {"rungs": [{"name": top.0, "width": top.1, "height": top.2, "bitrate_kbps": top.3 / 2}]}});
    let r = rig.command("configure", json!({"id": "cfg-1", "config": patch}));
    assert_eq!((r["ok"].as_bool(), r["state"].as_str(), r["result"]["config_version"].as_u64()), (Some(true), Some("live"), Some(1)), "{r}");
    let t = rig
        .dash
        .wait_json(T, &topic("telemetry"), |v| v["rungs"].as_array().is_some_and(|a| a.len() == 1 && a[0]["fps"].as_f64() > Some(0.0)))
        .expect("telemetry on the new ladder");
    assert_eq!(t["rungs"][0]["target_kbps"].as_u64(), Some(u64::from(top.3 / 2)));
    assert_eq!(t["destinations"].as_array().unwrap().len(), 1);
    let reported = rig.reply(&topic("config/reported"), |v| v["config_version"] == 1);
    assert_eq!(reported["config"]["ladder"]["rungs"][0]["name"], top.0);
    let saved: Value = serde_json::from_slice(&std::fs::read(rig.state_file()).unwrap()).unwrap();
    assert_eq!(saved["overlay"]["ladder"]["rungs"][0]["bitrate_kbps"].as_u64(), Some(u64::from(top.3 / 2)));

    // `null` removes the override: back to the file's ladder, every rung.
    let others: Vec<PathBuf> = rest.iter().map(|(name, ..)| rig.rung_file("", name)).collect();
    for f in &others {
        std::fs::remove_file(f).unwrap();
    }
    let r = rig.command("configure", json!({"id": "cfg-2", "config": {"ladder": null}}));
    assert_eq!((r["ok"].as_bool(), r["result"]["config_version"].as_u64()), (Some(true), Some(2)), "{r}");
    assert!(wait_for(T, || others.iter().all(|f| flv_has_video_frame(f))), "the other rungs did not come back");
    let saved: Value = serde_json::from_slice(&std::fs::read(rig.state_file()).unwrap()).unwrap();
    assert_eq!(saved["overlay"], json!({}));
    rig.assert_no_secrets();
}

#[test]
fn an_idle_box_may_be_configured_piece_by_piece_and_refuses_to_start_with_nowhere_to_stream() {
    let mut rig = Rig::new(Options::default());
    rig.start_device();
    // Idle, a box may be configured piece by piece: a capture device not
    // plugged in yet, no destination yet.
    let r = rig.command("configure", json!({"id": "cfg-dev", "config": {"source": {"kind": "v4l2", "device": "/dev/video-not-yet"}}}));
    assert_eq!((r["ok"].as_bool(), r["state"].as_str()), (Some(true), Some("idle")), "{r}");
    let r = rig.command("configure", json!({"id": "cfg-dev-back", "config": {"source": null}}));
    assert_eq!(r["ok"].as_bool(), Some(true), "{r}");
    let r = rig.command("configure", json!({"id": "cfg-none", "config": {"destination": []}}));
    assert_eq!((r["ok"].as_bool(), r["state"].as_str()), (Some(true), Some("idle")), "{r}");
    let r = rig.command("start", json!({"id": "go-nowhere"}));
    assert_eq!((r["ok"].as_bool(), r["state"].as_str(), r["error"]["code"].as_str()), (Some(false), Some("error"), Some("start_failed")), "{r}");
    assert!(r["error"]["message"].as_str().unwrap().contains("nothing to send the stream to"), "{r}");
    let status = rig.dash.wait_json(T, &topic("status"), |v| v["state"] == "error").expect("error status");
    assert!(status["reason"].as_str().unwrap().contains("no destination"), "{status}");
    assert!(rig.device().alive());
    // The destination back (null: the file's again): the box should be live, so it goes live.
    let r = rig.command("configure", json!({"id": "cfg-back", "config": {"destination": null}}));
    assert_eq!((r["ok"].as_bool(), r["state"].as_str()), (Some(true), Some("live")), "{r}");
    let files: Vec<PathBuf> = rungs().iter().map(|r| rig.rung_file("", r)).collect();
    assert!(wait_for(T, || files.iter().all(|f| flv_has_video_frame(f))), "not live after the destination returned: {}", rig.log());
    rig.assert_no_secrets();
}

#[test]
fn a_device_can_authenticate_with_a_client_certificate_instead_of_a_password() {
    let mut rig = Rig::new(Options { mtls: true, ..Default::default() });
    rig.go_live();
    // The broker took the certificate's CN as the user: the ACL for box-a applies.
    let r = rig.command("status", json!({"id": "mtls-1"}));
    assert_eq!((r["state"].as_str(), r["result"]["mqtt_protocol"].as_str()), (Some("live"), Some("5")), "{r}");
    assert!(rig.mosquitto.log().contains(&format!("u'{DEVICE}'")), "the broker did not see the certificate's identity");
    rig.assert_no_secrets();
}

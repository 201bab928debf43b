//! `protocol = "auto"` against a broker that speaks only MQTT 3.1.1 (amqtt):
//! the device gets no answer to MQTT 5, falls back to 3.1.1, and is then
//! fully controllable; a real nginx-rtmp channel judges the stream.

mod common;

use common::amqtt::{pub311, Amqtt, Sub311};
use common::device::{flv_has_video_frame, ladder_toml, small_ladder, Device};
use common::nginx::Nginx;
use common::wait_for;
use nix::sys::signal::Signal;
use std::time::Duration;

const DEVICE: &str = "box-v3";
const STREAM_KEY: &str = "sk_v311_93hd7";
const T: Duration = Duration::from_secs(30);

fn topic(leaf: &str) -> String {
    format!("fieldcast/{DEVICE}/{leaf}")
}

#[test]
fn auto_falls_back_to_3_1_1_on_a_broker_without_mqtt_5_and_is_fully_controllable() {
    let broker = Amqtt::start();
    let nginx = Nginx::start();
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "device_id = \"{DEVICE}\"\nstate_dir = \"{state}\"\n\n{ladder}\n[recording]\nenabled = false\n\n\
         [[destination]]\nname = \"primary\"\nurl = \"{rtmp}\"\nstream = \"{{rung}}_{{key}}\"\nkey = \"{STREAM_KEY}\"\n\n\
         [mqtt]\nbroker = \"{broker}\"\nprotocol = \"auto\"\ntelemetry_seconds = 1\nkeepalive_seconds = 5\n",
        state = dir.path().join("state").display(),
        ladder = ladder_toml(),
        rtmp = nginx.rtmp_url("live"),
        broker = broker.url(),
    );
    std::fs::write(dir.path().join("config.toml"), config.to_string() + common::NO_HTTP).unwrap();
    let mut dash = Sub311::start(broker.port, "fieldcast/#");
    let device = Device::spawn(&dir.path().join("config.toml"), &dir.path().join("fieldcast.log"));
    let ctx = |device: &Device| format!("device log:\n{}\nbroker log:\n{}", device.log_text(), broker.log());

    // Birth over 3.1.1 (the MQTT 5 attempt gets no CONNACK: 5 s).
    let online = dash.wait_json(T, &topic("status"), |v| v["online"] == true && v["mqtt_protocol"] == "3.1.1");
    assert!(online.is_some(), "no online status over 3.1.1; {}", ctx(&device));
    assert!(device.log_text().contains("trying 3.1.1"), "the fallback was not logged");

    // Commands: replies go to reply/<id> (3.1.1 has no response topic).
    pub311(broker.port, &topic("cmd/start"), r#"{"id":"v3-start"}"#, false);
    let r = dash.wait_json(T, &topic("reply/v3-start"), |_| true).unwrap_or_else(|| panic!("no start reply; {}", ctx(&device)));
    assert_eq!((r["ok"].as_bool(), r["state"].as_str()), (Some(true), Some("live")), "{r}");
    let files: Vec<_> = small_ladder().iter().map(|(n, ..)| nginx.recording(&format!("{n}_{STREAM_KEY}"))).collect();
    assert!(wait_for(T, || files.iter().all(|f| flv_has_video_frame(f))), "not every rung arrived; {}", ctx(&device));

    // Telemetry flows with per-rung figures.
    let tel = dash.wait_json(Duration::from_secs(10), &topic("telemetry"), |v| {
        v["rungs"].as_array().is_some_and(|r| r.len() == small_ladder().len() && r.iter().all(|x| x["fps"].as_f64().unwrap_or(0.0) > 0.0))
    });
    assert!(tel.is_some(), "no telemetry with every rung's fps; {}", ctx(&device));

    pub311(broker.port, &topic("cmd/stop"), r#"{"id":"v3-stop"}"#, false);
    let r = dash.wait_json(T, &topic("reply/v3-stop"), |_| true).unwrap_or_else(|| panic!("no stop reply; {}", ctx(&device)));
    assert_eq!((r["ok"].as_bool(), r["state"].as_str()), (Some(true), Some("idle")), "{r}");

    // The Last Will was registered in the 3.1.1 CONNECT too.
    device.signal(Signal::SIGKILL);
    let will = dash.wait_json(Duration::from_secs(20), &topic("status"), |v| v["online"] == false);
    assert_eq!(will.expect("no Last Will")["state"], "offline");

    let seen: String = dash.lines().iter().map(|(t, p)| format!("{t} {p}\n")).collect();
    assert!(!seen.contains(STREAM_KEY) && !device.log_text().contains(STREAM_KEY), "the stream key leaked");
}

//! A live `configure` never takes the stream off the air: what would is
//! refused before anything changes (a source file that is not media, a
//! recording folder that cannot be made), and what slips past the checks
//! (a device node that is no capture device) is rolled back by the box
//! itself to the last config that was live, with an event.

mod common;

use common::device::Device;
use common::mosquitto::Mosquitto;
use common::mqtt::Watcher;
use common::nginx::{Nginx, NginxOptions};
use serde_json::{Value, json};
use std::time::Duration;

const T: Duration = Duration::from_secs(40);

fn topic(t: &str) -> String {
    format!("fieldcast/cam/{t}")
}

fn command(dash: &Watcher, id: &str, config: Value) -> Value {
    dash.publish(&topic("cmd/configure"), json!({"id": id, "config": config}).to_string().as_bytes(), false);
    dash.wait_json(T, &topic(&format!("reply/{id}")), |_| true).unwrap_or_else(|| panic!("no reply to {id}"))
}

#[test]
fn a_live_configure_that_would_go_off_air_is_refused_and_one_that_slips_past_is_rolled_back() {
    let dir = tempfile::tempdir().unwrap();
    let mosquitto = Mosquitto::start();
    let nginx = Nginx::start_with(NginxOptions { file_per_publish: true, ..Default::default() });
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "device_id = \"cam\"\nstate_dir = \"{}\"\n[source]\nwidth = 640\nheight = 360\n\
             [ladder]\ngop_seconds = 1\nrungs = [{{ name = \"360p\", width = 640, height = 360, bitrate_kbps = 500 }}]\n\
             [recording]\nenabled = false\n[[destination]]\nurl = \"{}\"\nstream = \"{{rung}}\"\n\
             [mqtt]\nbroker = \"{}\"\nautostart = true\n",
            dir.path().join("state").display(),
            nginx.rtmp_url("live"),
            mosquitto.url()
        ) + common::NO_HTTP,
    )
    .unwrap();
    let dash = Watcher::connect(&mosquitto.url(), None, None, "fieldcast/cam/#");
    let mut device = Device::spawn(&config, &dir.path().join("fieldcast.log"));
    assert!(dash.wait_json(T, &topic("status"), |v| v["state"] == "live").is_some(), "{}", device.log_text());

    // Refused before anything changes, naming the field, never the value.
    let not_media = dir.path().join("SECRETnotes.txt");
    std::fs::write(&not_media, "not a video at all\n".repeat(100)).unwrap();
    let blocker = dir.path().join("SECRETblocker");
    std::fs::write(&blocker, b"").unwrap();
    let refusals = [
        ("r1", json!({"source": {"kind": "file", "path": not_media}}), "config.source.path"),
        ("r2", json!({"recording": {"enabled": true, "dir": blocker.join("rec")}}), "config.recording.dir"),
    ];
    for (id, patch, field) in refusals {
        let reply = command(&dash, id, patch);
        assert_eq!(reply["ok"], false, "{reply}");
        assert_eq!((reply["error"]["code"].as_str(), reply["error"]["field"].as_str()), (Some("invalid_config"), Some(field)), "{reply}");
        assert!(!reply.to_string().contains("SECRET"), "a submitted value was echoed: {reply}");
        assert_eq!(reply["state"], "live", "{reply}");
    }
    assert!(!device.log_text().contains("remote config applied"), "a refused configure was applied");

    // Passes the checks (a character device) but is no camera: the box
    // tries it, fails, and goes back by itself to the config that was live.
    dash.clear();
    let _ = command(&dash, "s1", json!({"source": {"kind": "v4l2", "device": "/dev/null"}}));
    let rolled = dash.wait_json(T, &topic("events"), |v| v["type"] == "config" && v["status"] == "rolled_back");
    let rolled = rolled.unwrap_or_else(|| panic!("no rolled_back event: {}", device.log_text()));
    assert_eq!(rolled["error"]["code"], "start_failed", "{rolled}");
    assert!(!rolled.to_string().contains("/dev/null"), "{rolled}");
    assert!(dash.wait_json(T, &topic("status"), |v| v["state"] == "live").is_some(), "not live again: {}", device.log_text());
    let reported = dash.wait_json(T, &topic("config/reported"), |v| v["status"] == "rolled_back");
    let reported = reported.unwrap_or_else(|| panic!("config/reported does not say rolled_back: {}", device.log_text()));
    assert!(reported["config"].get("source").is_none(), "the reported config is the one that was live: {reported}");
    // A viewer joining now gets pictures (nginx names recordings by the
    // second, so two publishes in one second would share a file: ask live).
    let live = common::ffprobe::live_packets(&format!("{}/360p", nginx.rtmp_url("live")), 200);
    assert!(live.iter().filter(|(kind, _)| kind == "video").count() >= 10, "the channel got no picture after the rollback: {}", device.log_text());
    // The rolled-back config is what a restart comes back with.
    assert_eq!(device.stop().and_then(|s| s.code()), Some(0), "{}", device.log_text());
    let saved = std::fs::read_to_string(dir.path().join("state/remote.json")).unwrap();
    assert!(!saved.contains("/dev/null"), "the failed config was kept: {saved}");
}

/// Bits per second of each whole GOP a live subscriber joining now gets
/// from `url` (keyframe to keyframe, video only), the first `gops` of them.
fn gop_rates(url: &str, gops: usize) -> Vec<f64> {
    let packets = common::ffprobe::live_packets(url, 90 * (gops + 2));
    let video: Vec<_> = packets.into_iter().filter(|(k, _)| k == "video").map(|(_, p)| p).collect();
    let keys: Vec<usize> = video.iter().enumerate().filter(|(_, p)| p.keyframe).map(|(i, _)| i).collect();
    keys.windows(2)
        .take(gops)
        .map(|w| {
            let bytes: u64 = video[w[0]..w[1]].iter().map(|p| p.size).sum();
            bytes as f64 * 8.0 / (video[w[1]].dts - video[w[0]].dts)
        })
        .collect()
}

fn near(measured: f64, kbps: u32) -> bool {
    (measured / (f64::from(kbps) * 1000.0) - 1.0).abs() <= 0.2
}

#[test]
fn a_bitrate_only_configure_is_set_live_without_a_reconnect_and_anything_else_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let mosquitto = Mosquitto::start();
    let nginx = Nginx::start_with(NginxOptions { file_per_publish: true, ..Default::default() });
    let ladder = common::device::small_ladder();
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "device_id = \"cam\"\nstate_dir = \"{}\"\n{}gop_seconds = 1\n\
             [recording]\nenabled = false\n[[destination]]\nurl = \"{}\"\nstream = \"{{rung}}\"\n\
             [mqtt]\nbroker = \"{}\"\nautostart = true\ntelemetry_seconds = 1\n",
            dir.path().join("state").display(),
            common::device::ladder_toml(),
            nginx.rtmp_url("live"),
            mosquitto.url()
        ),
    )
    .unwrap();
    let dash = Watcher::connect(&mosquitto.url(), None, None, "fieldcast/cam/#");
    let mut device = Device::spawn(&config, &dir.path().join("fieldcast.log"));
    assert!(dash.wait_json(T, &topic("status"), |v| v["state"] == "live").is_some(), "{}", device.log_text());
    let url = |rung: &str| format!("{}/{rung}", nginx.rtmp_url("live"));

    // The judge first: before the change every rung is at its bitrate.
    let (top, top_kbps) = (ladder[0].0, ladder[0].3);
    let before = gop_rates(&url(top), 3);
    assert!(before.len() == 3 && before[1..].iter().all(|r| near(*r, top_kbps)), "{top}: {before:?} bit/s, not {top_kbps} kbit/s");

    // Every rung to 60% of its bitrate (the order of the ladder kept).
    let lowered: Vec<(&str, u32)> = ladder.iter().map(|(n, _, _, k)| (*n, k * 6 / 10)).collect();
    let rungs: Vec<Value> = ladder
        .iter()
        .zip(&lowered)
        .map(|((n, w, h, _), (_, k))| json!({"name": n, "width": w, "height": h, "bitrate_kbps": k}))
        .collect();
    dash.clear();
    let sent = std::time::Instant::now();
    let reply = command(&dash, "b1", json!({"ladder": {"rungs": rungs}}));
    assert_eq!((reply["ok"].as_bool(), reply["result"]["applied"].as_str()), (Some(true), Some("live")), "{reply}\n{}", device.log_text());
    let event = dash.wait_json(T, &topic("events"), |v| v["type"] == "config" && v["status"] == "applied");
    assert_eq!(event.as_ref().map(|e| e["applied"].clone()), Some(json!("live")), "{event:?}");
    // Joined right after the reply: from the third GOP on (2 GOPs after the
    // change at most), every rung is at its new bitrate.
    let joined = sent.elapsed();
    for (rung, kbps) in &lowered {
        let after = gop_rates(&url(rung), 4);
        eprintln!("{rung}: {after:?} bit/s after, target {kbps} kbit/s");
        assert!(after.len() == 4 && after[2..].iter().all(|r| near(*r, *kbps)), "{rung}: {after:?} bit/s, not {kbps} kbit/s");
    }
    eprintln!("configure -> a subscriber joining {joined:?} after it: GOP rates above (the first whole GOP already new?)");
    // Telemetry's target follows; a player joining now is told the new bitrate.
    let t = dash.wait_json(T, &topic("telemetry"), |v| v["rungs"][0]["target_kbps"] == lowered[0].1);
    assert!(t.is_some(), "telemetry kept the old target: {}", device.log_text());
    let declared = common::ffprobe::num(&common::ffprobe::stream_of(&common::ffprobe::streams(&url(top)), "video")["bit_rate"]);
    assert_eq!(declared, f64::from(lowered[0].1) * 1024.0, "onMetaData");

    // One publish per rung: the live change reconnected nothing.
    for (n, ..) in ladder {
        assert_eq!(nginx.recordings(n).len(), 1, "{n} was published again: {:?}", nginx.recordings(n));
    }

    // Anything beyond bitrates restarts, as before: a new GOP.
    let reply = command(&dash, "g1", json!({"ladder": {"gop_seconds": 2}}));
    assert_eq!((reply["ok"].as_bool(), reply["result"]["applied"].as_str()), (Some(true), Some("restart")), "{reply}");
    assert!(
        common::wait_for(T, || ladder.iter().all(|(n, ..)| nginx.recordings(n).len() == 2)),
        "the restart did not publish again: {}",
        device.log_text()
    );
    assert_eq!(device.stop().and_then(|s| s.code()), Some(0), "{}", device.log_text());
    let log = device.log_text();
    assert_eq!(log.matches("session started").count(), 2, "{log}");
}

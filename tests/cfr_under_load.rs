//! A constant frame rate even when the machine is busy: the standard ladder
//! (the small one under emulation) from the live test pattern, with a CPU
//! hog competing for the cores. The channel's timeline has no hole, every
//! GOP is exactly `gop` frames, IDRs stay aligned across rungs, and
//! telemetry accounts for every frame sent: captured, or repeated.

mod common;

use common::device::{emulated, Device};
use common::ffprobe::video_packets;
use common::mosquitto::Mosquitto;
use common::mqtt::Watcher;
use common::nginx::{Nginx, NginxOptions};
use std::process::{Command, Stdio};
use std::time::Duration;

const T: Duration = Duration::from_secs(30);

/// (name, width, height, kbit/s)
fn ladder() -> &'static [(&'static str, u32, u32, u32)] {
    if emulated() {
        &common::device::small_ladder()[..2]
    } else {
        &[("r1080", 1920, 1080, 5500), ("r720", 1280, 720, 3000), ("r540", 960, 540, 1600), ("r360", 640, 360, 800)]
    }
}

/// One busy core for `seconds` (a shell spin loop, ended by `timeout`).
fn hog(seconds: u32) -> std::process::Child {
    Command::new("timeout")
        .args([&seconds.to_string(), "sh", "-c", "while :; do :; done"])
        .stdout(Stdio::null())
        .spawn()
        .expect("start the CPU hog")
}

/// Starts fieldcast on `config` and waits until it says it is live.
fn live(config: &std::path::Path, mosquitto: &Mosquitto) -> (Watcher, Device) {
    let dash = Watcher::connect(&mosquitto.url(), None, None, "fieldcast/cam/#");
    let device = Device::spawn(config, &config.with_file_name("fieldcast.log"));
    assert!(dash.wait_json(T, "fieldcast/cam/status", |v| v["state"] == "live").is_some(), "never live: {}", device.log_text());
    (dash, device)
}

#[test]
fn with_a_cpu_hog_competing_every_rung_keeps_a_hole_free_timeline_and_exact_gops() {
    let dir = tempfile::tempdir().unwrap();
    let l = ladder();
    let mosquitto = Mosquitto::start();
    let nginx = Nginx::start_with(NginxOptions { file_per_publish: true, ..Default::default() });
    let rungs: Vec<String> =
        l.iter().map(|(n, w, h, k)| format!("{{ name = \"{n}\", width = {w}, height = {h}, bitrate_kbps = {k} }}")).collect();
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "device_id = \"cam\"\nstate_dir = \"{}\"\n[source]\nkind = \"test\"\nwidth = {}\nheight = {}\n[audio]\nsource = \"test\"\n\
             [ladder]\ngop_seconds = 2\nrungs = [{}]\n[recording]\nenabled = false\n\
             [[destination]]\nurl = \"{}\"\nstream = \"{{rung}}\"\n\
             [mqtt]\nbroker = \"{}\"\nautostart = true\ntelemetry_seconds = 1\n",
            dir.path().join("state").display(),
            l[0].1,
            l[0].2,
            rungs.join(", "),
            nginx.rtmp_url("live"),
            mosquitto.url(),
        ) + common::NO_HTTP,
    )
    .unwrap();
    let (dash, mut device) = live(&config, &mosquitto);
    let mut busy = hog(10);
    std::thread::sleep(Duration::from_secs(12));
    let _ = busy.wait();
    dash.clear();
    let telemetry = dash.wait_json(T, "fieldcast/cam/telemetry", |v| v["rungs"].as_array().is_some_and(|r| !r.is_empty()));
    let telemetry = telemetry.unwrap_or_else(|| panic!("no telemetry: {}", device.log_text()));
    assert_eq!(device.stop().and_then(|s| s.code()), Some(0), "{}", device.log_text());
    let log = device.log_text();

    // Every frame sent is accounted for: a captured frame, or a repeated one.
    let input = &telemetry["input"];
    let n = |v: &serde_json::Value| v.as_u64().unwrap_or_else(|| panic!("not a count: {v} in {telemetry}"));
    let (captured, repeated, skipped) = (n(&input["frames_captured"]), n(&input["frames_repeated"]), n(&input["frames_skipped"]));
    assert_eq!(n(&input["slate_frames"]), 0, "{telemetry}");
    for r in telemetry["rungs"].as_array().unwrap() {
        let sent = n(&r["frames"]) as i64;
        let accounted = (captured + repeated - skipped) as i64;
        // In flight between the capture and the encoder's output: queues and encoder latency.
        assert!((accounted - sent).abs() <= 40, "{}: {sent} frames out, {accounted} accounted for: {telemetry}", r["name"]);
    }
    eprintln!("captured {captured}, repeated {repeated}, skipped {skipped}");

    let mut keys = Vec::new();
    for (name, ..) in l {
        let files = nginx.recordings(name);
        assert_eq!(files.len(), 1, "{name}: {files:?}\n{log}");
        let pk = video_packets(&files[0]);
        assert!(pk.len() > 300, "{name}: {} frames", pk.len());
        assert!(pk[0].keyframe, "{name}");
        for w in pk.windows(2) {
            let d = w[1].dts - w[0].dts;
            assert!((0.032..=0.035).contains(&d), "{name}: a {:.0} ms hole at {:.3} s\n{log}", d * 1000.0, w[0].dts);
        }
        let k: Vec<usize> = pk.iter().enumerate().filter(|(_, p)| p.keyframe).map(|(i, _)| i).collect();
        assert!(k.iter().all(|i| i % 60 == 0) && k.len() == pk.len().div_ceil(60), "{name}: keyframes at frames {k:?}");
        keys.push(k.iter().map(|i| pk[*i].pts).collect::<Vec<f64>>());
    }
    let common = keys.iter().map(Vec::len).min().unwrap();
    for (k, (name, ..)) in keys.iter().zip(l) {
        for (a, b) in k[..common].iter().zip(&keys[0][..common]) {
            assert!((a - b).abs() < 0.002, "{name}: IDR at {a} where {} has {b}", l[0].0);
        }
    }
}

/// A still test pattern (the built-in default's SMPTE bars) is rendered once
/// and repeated live by imagefreeze, whose own rate is 25 fps unless told:
/// it must be captured at the ladder's 30, or the frame clock fills every
/// sixth slot with a repeated frame (the built-in default warned of 50
/// repeated frames every 10 s).
#[test]
fn a_still_test_pattern_is_captured_at_the_ladder_rate_with_no_frame_repeated() {
    if emulated() {
        eprintln!("SKIP: under emulation the machine does not keep real time, so repeated frames prove nothing here");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mosquitto = Mosquitto::start();
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "device_id = \"cam\"\nstate_dir = \"{}\"\n[source]\nkind = \"test\"\npattern = \"smpte\"\nwidth = 640\nheight = 360\n\
             [audio]\nsource = \"test\"\n[ladder]\nrungs = [{{ name = \"r360\", width = 640, height = 360, bitrate_kbps = 800 }}]\n\
             [recording]\nmin_free_mb = 0\n[mqtt]\nbroker = \"{}\"\nautostart = true\ntelemetry_seconds = 1\n",
            dir.path().join("state").display(),
            mosquitto.url(),
        ) + common::NO_HTTP,
    )
    .unwrap();
    let (dash, mut device) = live(&config, &mosquitto);
    // Past the start, two telemetry samples 5 s apart.
    std::thread::sleep(Duration::from_secs(2));
    let sample = |dash: &Watcher| {
        dash.clear();
        let t = dash.wait_json(T, "fieldcast/cam/telemetry", |v| v["input"]["frames_captured"].is_u64());
        let t = t.unwrap_or_else(|| panic!("no telemetry: {}", device.log_text()));
        (std::time::Instant::now(), t["input"]["frames_captured"].as_u64().unwrap(), t["input"]["frames_repeated"].as_u64().unwrap())
    };
    let (t0, captured0, repeated0) = sample(&dash);
    std::thread::sleep(Duration::from_secs(5));
    let (t1, captured1, repeated1) = sample(&dash);
    assert_eq!(device.stop().and_then(|s| s.code()), Some(0), "{}", device.log_text());
    let rate = (captured1 - captured0) as f64 / (t1 - t0).as_secs_f64();
    assert!((27.0..=33.0).contains(&rate), "captured at {rate:.1} fps, not 30");
    assert!(repeated1 - repeated0 <= 2, "{} frames repeated in {:.1} s", repeated1 - repeated0, (t1 - t0).as_secs_f64());
    eprintln!("captured at {rate:.1} fps, {} repeated", repeated1 - repeated0);
}

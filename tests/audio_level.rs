//! The audio level meter: with the built-in test audio (a 440 Hz tick of
//! ten periods at amplitude 0.3, once a second) every channel's level in
//! `/api/v1/telemetry` is what that signal computes to (peak 20·log10(0.3)
//! = -10.5 dBFS; RMS over a second: a sine's -3 dB below the peak, for
//! 10/440 of the second, -29.9 dBFS), `/metrics` carries the same, and
//! while the slate mutes the input's audio it reads silence.

mod common;

use common::http::request;
use common::nginx::Nginx;
use serde_json::Value;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

const TOKEN: &str = "Tk9-audio-level-token-Qw";

fn write_config(dir: &Path, fifo: &Path, rtmp: &str, port: u16) -> std::path::PathBuf {
    let path = dir.join("config.toml");
    std::fs::write(
        &path,
        format!(
            "state_dir = \"{}\"\n[source]\nkind = \"file\"\npath = \"{}\"\n[audio]\nsource = \"test\"\n\
             [ladder]\ngop_seconds = 1\nrungs = [{{ name = \"180p\", width = 320, height = 180, bitrate_kbps = 300 }}]\n\
             [recording]\nenabled = false\n[[destination]]\nurl = \"{rtmp}\"\nstream = \"{{rung}}\"\n\
             [http]\nlisten = \"127.0.0.1:{port}\"\ntoken = \"{TOKEN}\"\n",
            dir.join("state").display(),
            fifo.display()
        ),
    )
    .unwrap();
    path
}

fn get(port: u16, path: &str) -> Option<String> {
    let r = request(port, "GET", path, &[("Authorization", &format!("Bearer {TOKEN}"))], None).ok()?;
    (r.status == 200).then(|| r.text())
}

fn input(port: u16) -> Option<Value> {
    let t: Value = serde_json::from_str(&get(port, "/api/v1/telemetry")?).ok()?;
    Some(t["input"].clone()).filter(|i| !i.is_null())
}

fn levels(i: &Value) -> Vec<(f64, f64)> {
    i["audio"].as_array().map_or(Vec::new(), |a| a.iter().map(|c| (c["peak_dbfs"].as_f64().unwrap(), c["rms_dbfs"].as_f64().unwrap())).collect())
}

#[test]
fn the_test_tone_reads_its_computed_level_per_channel_and_the_slate_reads_silence() {
    let dir = tempfile::tempdir().unwrap();
    let nginx = Nginx::start();
    let fifo = dir.path().join("camera.y4m");
    assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let writer = format!(
        "while :; do ffmpeg -v quiet -re -f lavfi -i testsrc2=size=320x180:rate=30 -t 60 -pix_fmt yuv420p -f yuv4mpegpipe -y '{}'; sleep 0.1; done",
        fifo.display()
    );
    let mut feeder = Command::new("sh").args(["-c", &writer]).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    let port = common::free_port();
    let config = write_config(dir.path(), &fifo, &nginx.rtmp_url("live"), port);
    let mut device = common::device::Device::spawn(&config, &dir.path().join("fieldcast.log"));

    // A tick with both channels measured over a whole second.
    let expected_peak = 20.0 * 0.3f64.log10();
    let expected_rms = expected_peak - 3.01 + 10.0 * (10.0f64 / 440.0).log10();
    let mut last = Value::Null;
    let heard = common::wait_for(Duration::from_secs(60), || {
        assert!(device.alive(), "fieldcast died:\n{}", device.log_text());
        let Some(i) = input(port) else { return false };
        last = i.clone();
        let l = levels(&i);
        l.len() == 2 && l.iter().all(|(p, _)| *p > -60.0)
    });
    assert!(heard, "no audio level in telemetry; last input {last}\n{}", device.log_text());
    // The first window may hold the stream's first moments (a peak of -3.5
    // dBFS was read once there): read a whole second of the steady tone.
    std::thread::sleep(Duration::from_millis(1500));
    last = input(port).unwrap_or(last);
    eprintln!("measured {:?} (peak, rms) per channel; expected {expected_peak:.1}, {expected_rms:.1}", levels(&last));
    for (c, (peak, rms)) in levels(&last).into_iter().enumerate() {
        assert!((peak - expected_peak).abs() < 3.0, "channel {c}: peak {peak} dBFS, expected {expected_peak:.1}: {last}");
        assert!((rms - expected_rms).abs() < 3.0, "channel {c}: rms {rms} dBFS, expected {expected_rms:.1}: {last}");
    }
    let metrics = get(port, "/metrics").expect("metrics");
    for kind in ["peak", "rms"] {
        let line = metrics
            .lines()
            .find(|l| l.starts_with("fieldcast_audio_level_dbfs{") && l.contains("channel=\"1\"") && l.contains(&format!("kind=\"{kind}\"")))
            .unwrap_or_else(|| panic!("no {kind} level for channel 1 in /metrics:\n{metrics}"));
        let v: f64 = line.rsplit(' ').next().unwrap().parse().unwrap();
        let want = if kind == "peak" { expected_peak } else { expected_rms };
        assert!((v - want).abs() < 3.0, "{line}");
    }

    // Freeze the camera: once the slate is on the air its audio is muted.
    let pids = Command::new("pgrep").args(["-f", &format!("yuv4mpegpipe -y {}", fifo.display())]).output().unwrap().stdout;
    let pid = String::from_utf8(pids).unwrap().split_whitespace().next().expect("the feeder runs").to_string();
    assert!(Command::new("kill").args(["-STOP", &pid]).status().unwrap().success());
    let silent = common::wait_for(Duration::from_secs(30), || {
        let Some(i) = input(port) else { return false };
        last = i.clone();
        let l = levels(&i);
        i["slate"] == true && l.len() == 2 && l.iter().all(|(p, r)| *p <= -90.0 && *r <= -90.0)
    });
    let _ = Command::new("kill").args(["-CONT", &pid]).status();
    assert!(silent, "the slate's audio did not read silence; last input {last}\n{}", device.log_text());

    device.stop();
    let _ = feeder.kill();
    let _ = Command::new("pkill").args(["-9", "-f", &format!("yuv4mpegpipe -y {}", fifo.display())]).status();
    let _ = feeder.wait();
}

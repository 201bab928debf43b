//! A lost input never takes the stream off the air: the camera (a FIFO fed
//! by ffmpeg) freezes for 10 s and comes back; the channel receives every
//! second of it on the same publish (no gap, fixed GOP, IDRs aligned across
//! rungs), the frames of the gap are the last frame repeated and then the
//! slate, the live picture is back within 1 s, and status stays `live` with
//! `input.signal: false, slate: true` meanwhile.

mod common;

use common::device::{small_ladder, Device};
use common::ffprobe::{video_packets, Packet};
use common::mosquitto::Mosquitto;
use common::mqtt::Watcher;
use common::nginx::{Nginx, NginxOptions};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(30);
/// How long the camera freezes.
const FROZEN: Duration = Duration::from_secs(10);
/// Decoded frames are judged at this size (RGB).
const THUMB: (usize, usize) = (32, 18);
/// The slate's colour: a green no test picture averages to.
const SLATE_RGB: [f64; 3] = [0.0, 200.0, 0.0];

/// A 16:9 slate smaller than the picture (it is scaled, not refused).
fn slate_image(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("slate.png");
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-f", "lavfi", "-i", "color=c=0x00C800:s=320x180", "-frames:v", "1", "-y"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    path
}

/// A live camera into `fifo`: a moving, hue-cycling picture (every frame
/// differs from the last), restarted whenever a reader closes the pipe (the
/// start's feeder check and format probe do).
fn feeder(fifo: &Path, w: u32, h: u32) -> std::process::Child {
    let script = format!(
        "while :; do ffmpeg -v quiet -re -f lavfi -i 'testsrc2=size={w}x{h}:rate=30,hue=H=2*PI*t' -t 600 -pix_fmt yuv420p -f yuv4mpegpipe -y '{}'; sleep 0.1; done",
        fifo.display()
    );
    Command::new("sh").args(["-c", &script]).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap()
}

fn feeder_pid(fifo: &Path) -> Option<String> {
    let out = Command::new("pgrep").args(["-f", &format!("yuv4mpegpipe -y {}", fifo.display())]).output().ok()?;
    String::from_utf8(out.stdout).ok()?.split_whitespace().next().map(str::to_string)
}

/// Every frame of `file`, decoded and shrunk to [`THUMB`], as RGB bytes.
fn thumbnails(file: &Path) -> Vec<Vec<u8>> {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(file)
        .args(["-vf", &format!("scale={}:{}", THUMB.0, THUMB.1), "-f", "rawvideo", "-pix_fmt", "rgb24", "-"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    out.stdout.chunks_exact(THUMB.0 * THUMB.1 * 3).map(<[u8]>::to_vec).collect()
}

fn mean_rgb(f: &[u8]) -> [f64; 3] {
    let mut m = [0.0; 3];
    for px in f.chunks_exact(3) {
        for c in 0..3 {
            m[c] += f64::from(px[c]);
        }
    }
    m.map(|x| x / (f.len() / 3) as f64)
}

fn mean_abs_diff(a: &[u8], b: &[u8]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (f64::from(*x) - f64::from(*y)).abs()).sum::<f64>() / a.len() as f64
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    Live,
    /// The same picture as the frame before.
    Still,
    Slate,
}

fn classify(frames: &[Vec<u8>], slate: &[u8]) -> Vec<Kind> {
    frames
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let m = mean_rgb(f);
            if mean_abs_diff(f, slate) < 12.0 && (0..3).all(|c| (m[c] - SLATE_RGB[c]).abs() < 30.0) {
                Kind::Slate
            } else if i > 0 && mean_abs_diff(f, &frames[i - 1]) < 1.5 {
                Kind::Still
            } else {
                Kind::Live
            }
        })
        .collect()
}

/// Runs of equal kinds: (kind, first frame, frames).
fn runs(kinds: &[Kind]) -> Vec<(Kind, usize, usize)> {
    let mut out: Vec<(Kind, usize, usize)> = Vec::new();
    for (i, k) in kinds.iter().enumerate() {
        match out.last_mut() {
            Some(r) if r.0 == *k => r.2 += 1,
            _ => out.push((*k, i, 1)),
        }
    }
    out
}

/// No hole and no jump in the timeline, a keyframe exactly every `gop`
/// frames; returns the keyframe times.
fn judge_timeline(name: &str, pk: &[Packet], gop: usize) -> Vec<f64> {
    assert!(pk[0].keyframe, "{name}: the first frame is not a keyframe");
    for w in pk.windows(2) {
        let d = w[1].dts - w[0].dts;
        assert!((0.032..=0.035).contains(&d), "{name}: a {:.0} ms step in the timeline at {:.3} s", d * 1000.0, w[0].dts);
    }
    let keys: Vec<usize> = pk.iter().enumerate().filter(|(_, p)| p.keyframe).map(|(i, _)| i).collect();
    assert!(keys.iter().all(|i| i % gop == 0), "{name}: keyframes at frames {keys:?}, want every {gop}");
    assert_eq!(keys.len(), pk.len().div_ceil(gop), "{name}: a keyframe missing: {keys:?} of {} frames", pk.len());
    keys.iter().map(|i| pk[*i].pts).collect()
}

#[test]
fn a_camera_frozen_for_ten_seconds_gets_the_last_frame_then_the_slate_on_the_same_publish_and_comes_back_live() {
    let dir = tempfile::tempdir().unwrap();
    let ladder = &small_ladder()[..2];
    let (top_w, top_h) = (ladder[0].1, ladder[0].2);
    let slate = slate_image(dir.path());
    let fifo = dir.path().join("camera.y4m");
    assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let mosquitto = Mosquitto::start();
    let nginx = Nginx::start_with(NginxOptions { file_per_publish: true, ..Default::default() });
    let rungs: Vec<String> =
        ladder.iter().map(|(n, w, h, k)| format!("{{ name = \"{n}\", width = {w}, height = {h}, bitrate_kbps = {k} }}")).collect();
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "device_id = \"cam\"\nstate_dir = \"{state}\"\n[source]\nkind = \"file\"\npath = \"{fifo}\"\n[audio]\nsource = \"test\"\n\
             [ladder]\ngop_seconds = 1\nrungs = [{rungs}]\n[recording]\nenabled = false\n\
             [[destination]]\nurl = \"{url}\"\nstream = \"{{rung}}\"\n\
             [input_loss]\ninput_loss_ms = 500\nrepeat_frame_ms = 1000\nslate_image = \"{slate}\"\n\
             [mqtt]\nbroker = \"{broker}\"\nautostart = true\ntelemetry_seconds = 1\n",
            state = dir.path().join("state").display(),
            fifo = fifo.display(),
            rungs = rungs.join(", "),
            url = nginx.rtmp_url("live"),
            slate = slate.display(),
            broker = mosquitto.url(),
        ) + common::NO_HTTP,
    )
    .unwrap();
    let dash = Watcher::connect(&mosquitto.url(), None, None, "fieldcast/cam/#");
    let mut camera = feeder(&fifo, top_w, top_h);
    let mut device = Device::spawn(&config, &dir.path().join("fieldcast.log"));
    let live = dash.wait_json(T, "fieldcast/cam/status", |v| v["state"] == "live" && v["input"]["signal"] == true);
    assert!(live.is_some(), "never live with a signal: {}", device.log_text());
    std::thread::sleep(Duration::from_secs(3));

    // The camera freezes.
    let pid = feeder_pid(&fifo).expect("the feeder runs");
    // From here on: a start on a loaded machine may itself show the slate
    // until the first frame comes (that is right, and not what is judged).
    let started_states: Vec<String> = dash
        .on("fieldcast/cam/events")
        .iter()
        .filter_map(|m| m.json())
        .filter(|e| e["type"] == "state")
        .filter_map(|e| e["state"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(started_states.last().map(String::as_str), Some("live"), "{}", device.log_text());
    dash.clear();
    assert!(Command::new("kill").args(["-STOP", &pid]).status().unwrap().success());
    let stopped = Instant::now();
    let lost = dash.wait_json(Duration::from_secs(5), "fieldcast/cam/status", |v| {
        v["state"] == "live" && v["input"]["signal"] == false && v["input"]["slate"] == true && v["input"]["since"].is_string()
    });
    std::thread::sleep(FROZEN.saturating_sub(stopped.elapsed()));
    let _ = Command::new("kill").args(["-CONT", &pid]).status();
    let frozen_for = stopped.elapsed().as_secs_f64();
    assert!(lost.is_some(), "status never said live + no signal + slate: {}", device.log_text());
    let back = dash.wait_json(Duration::from_secs(5), "fieldcast/cam/status", |v| v["state"] == "live" && v["input"]["signal"] == true);
    assert!(back.is_some(), "the signal never came back: {}", device.log_text());
    std::thread::sleep(Duration::from_secs(3));
    let telemetry = dash.wait_json(T, "fieldcast/cam/telemetry", |v| v["input"]["slate_frames"].as_u64().unwrap_or(0) > 0);
    let telemetry = telemetry.unwrap_or_else(|| panic!("telemetry never counted slate frames: {}", device.log_text()));
    assert_eq!(device.stop().and_then(|s| s.code()), Some(0), "{}", device.log_text());
    let _ = camera.kill();
    let _ = Command::new("pkill").args(["-9", "-f", &format!("yuv4mpegpipe -y {}", fifo.display())]).status();
    let _ = camera.wait();
    let log = device.log_text();

    // Events said so; the state never left `live`; nothing restarted or reconnected.
    let events: Vec<serde_json::Value> = dash.on("fieldcast/cam/events").iter().filter_map(|m| m.json()).collect();
    let kinds: Vec<&str> = events.iter().filter_map(|e| e["type"].as_str()).filter(|t| t.starts_with("input_")).collect();
    assert_eq!(kinds, ["input_lost", "input_back"], "{events:#?}");
    let states: Vec<&str> = events.iter().filter(|e| e["type"] == "state").filter_map(|e| e["state"].as_str()).collect();
    let until_stop: Vec<&str> = states.iter().copied().take_while(|s| *s != "stopping").collect();
    assert!(until_stop.is_empty(), "the state changed during the loss: {events:#?}");
    assert_eq!(log.matches("session started").count(), 1, "the pipeline restarted:\n{log}");
    for d in telemetry["destinations"].as_array().unwrap() {
        assert_eq!(d["reconnects"], 0, "{telemetry}");
    }
    assert!(telemetry["input"]["frames_repeated"].as_u64().unwrap() >= 25, "{telemetry}");

    // The channel: one publish per rung, every frame, fixed GOP, aligned IDRs.
    let mut keys = Vec::new();
    for (name, ..) in ladder {
        let files = nginx.recordings(name);
        assert_eq!(files.len(), 1, "{name}: the publish reconnected: {files:?}\n{log}");
        let pk = video_packets(&files[0]);
        let span = pk.last().unwrap().dts - pk[0].dts;
        assert!(span > FROZEN.as_secs_f64() + 4.0, "{name}: only {span:.1} s received");
        keys.push(judge_timeline(name, &pk, 30));
    }
    let n = keys[0].len().min(keys[1].len());
    assert!(n >= 12, "{keys:?}");
    for (a, b) in keys[0][..n].iter().zip(&keys[1][..n]) {
        assert!((a - b).abs() < 0.002, "IDRs not aligned across rungs: {a} vs {b}");
    }

    // The gap, decoded: the last frame repeated, then the slate, then live again.
    let slate_thumb = {
        let out = Command::new("ffmpeg")
            .args(["-v", "error", "-i"])
            .arg(&slate)
            .args(["-vf", &format!("scale={}:{}", THUMB.0, THUMB.1), "-f", "rawvideo", "-pix_fmt", "rgb24", "-"])
            .output()
            .unwrap();
        out.stdout
    };
    let frames = thumbnails(&nginx.recordings(ladder[0].0)[0]);
    let runs = runs(&classify(&frames, &slate_thumb));
    let shown: Vec<String> = runs.iter().map(|(k, at, n)| format!("{k:?}@{:.2}s x{n}", *at as f64 / 30.0)).collect();
    let slate_run = runs.iter().position(|r| r.0 == Kind::Slate && r.2 > 30).unwrap_or_else(|| panic!("no slate in {shown:?}"));
    assert!(slate_run >= 2, "{shown:?}");
    let (still, before) = (runs[slate_run - 1], runs[slate_run - 2]);
    assert_eq!((still.0, before.0), (Kind::Still, Kind::Live), "not live, then the last frame, then the slate: {shown:?}");
    let still_s = still.2 as f64 / 30.0;
    assert!((1.0..=2.3).contains(&still_s), "the last frame was repeated for {still_s:.2} s (want 1.5): {shown:?}");
    let after = runs.get(slate_run + 1).unwrap_or_else(|| panic!("never live after the slate: {shown:?}"));
    assert_eq!(after.0, Kind::Live, "{shown:?}");
    let gap_s = (still.2 + runs[slate_run].2) as f64 / 30.0;
    // From the last live frame to the first live one again: the freeze plus
    // the time the picture took to return, which must be within 1 s.
    assert!(gap_s <= frozen_for + 1.0, "live picture back {:.2} s after the feeder resumed: {shown:?}", gap_s - frozen_for);
    assert!(gap_s >= frozen_for - 0.5, "the gap ({gap_s:.2} s) is shorter than the freeze ({frozen_for:.2} s): {shown:?}");
    eprintln!("gap {gap_s:.2} s for a {frozen_for:.2} s freeze; still {still_s:.2} s; runs {shown:?}");
}

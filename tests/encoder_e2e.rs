//! End to end: the real fieldcast binary encodes the standard ladder from the
//! live test pattern and publishes every rung to a real nginx-rtmp started on
//! a free loopback port with `record all`; ffprobe judges what it received.

mod common;

use common::ffprobe::{audio_packets, video_packets, Packet};
use common::nginx::Nginx;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const STANDARD: &[(&str, u32, u32, u64)] =
    &[("video_5500", 1920, 1080, 5500), ("video_3000", 1280, 720, 3000), ("video_1600", 960, 540, 1600), ("video_800", 640, 360, 800)];
/// Under QEMU (the aarch64 run) x264 is emulated and cannot keep the
/// standard ladder in real time: a smaller ladder, the same assertions
/// (640x360 + 320x180 made ~24 fps of 30 there, the frame clock skipping).
const EMULATED: &[(&str, u32, u32, u64)] = &[("video_600", 426, 240, 600), ("video_250", 214, 120, 250)];

fn emulated() -> bool {
    std::env::var_os("FIELDCAST_TEST_EXEC_WRAPPER").is_some_and(|w| !w.is_empty())
}

fn rungs() -> &'static [(&'static str, u32, u32, u64)] {
    if emulated() { EMULATED } else { STANDARD }
}

/// The ladder section for the config: the built-in standard one, or the small one.
fn ladder_config() -> String {
    if !emulated() {
        return String::new();
    }
    let rungs: Vec<String> = EMULATED
        .iter()
        .map(|(_, w, h, k)| format!("{{ width = {w}, height = {h}, bitrate_kbps = {k} }}"))
        .collect();
    format!("[source]\nwidth = {}\nheight = {}\n[ladder]\nrungs = [{}]\n", EMULATED[0].1, EMULATED[0].2, rungs.join(", "))
}

fn ffprobe_json(args: &[&str]) -> Value {
    let out = Command::new("ffprobe").args(["-v", "error", "-of", "json"]).args(args).output().expect("ffprobe");
    serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
}

fn stream(file: &Path, sel: &str) -> Value {
    let v = ffprobe_json(&["-select_streams", sel, "-show_streams", file.to_str().unwrap()]);
    v["streams"][0].clone()
}

fn write_config(dir: &Path, port: u16, extra: &str) -> PathBuf {
    let path = dir.join("config.toml");
    let text = format!(
        "state_dir = \"{}\"\n{extra}\n[[destination]]\nname = \"channel\"\nurl = \"rtmp://127.0.0.1:{port}/live\"\nstream = \"video_{{kbps}}\"\n",
        dir.join("state").display()
    );
    std::fs::write(&path, text.to_string() + common::NO_HTTP).unwrap();
    path
}

fn spawn_fieldcast(config: &Path, seconds: u32, log: &Path) -> Child {
    common::fieldcast_command()
        .args(["run", "--config", config.to_str().unwrap(), "--duration", &seconds.to_string()])
        .env("FIELDCAST_BOARD_DIR", concat!(env!("CARGO_MANIFEST_DIR"), "/board"))
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .expect("start fieldcast")
}

fn wait_exit(child: &mut Child, timeout: Duration) -> Option<i32> {
    let end = Instant::now() + timeout;
    while Instant::now() < end {
        if let Some(s) = child.try_wait().unwrap() {
            return s.code();
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    None
}

/// Asserts monotonic DTS, a keyframe first, and returns keyframe PTS values.
/// `logs`: the run's log, which says when the output's frame clock fell so
/// far behind real time that it skipped slots.
fn judge_video(name: &str, pk: &[Packet], fps: f64, gop_frames: usize, logs: &str) -> Vec<f64> {
    assert!(pk.len() > 100, "{name}: only {} video packets", pk.len());
    assert!(pk[0].keyframe, "{name}: the first video frame is not a keyframe");
    for w in pk.windows(2) {
        assert!(w[1].dts > w[0].dts, "{name}: timestamps not strictly increasing: {} then {}", w[0].dts, w[1].dts);
    }
    let key_idx: Vec<usize> = pk.iter().enumerate().filter(|(_, p)| p.keyframe).map(|(i, _)| i).collect();
    for (n, w) in key_idx.windows(2).enumerate() {
        let frames = w[1] - w[0];
        // The first GOP of a publish may be a few frames short when the live
        // capture skipped frames while four encoders initialised on a busy
        // machine: a capture-level loss every rung shares (keyframe PTS are
        // still checked on the grid below and across rungs by the caller).
        // Under qemu-aarch64 the whole machine runs slower than real time,
        // so such a shared capture loss can hit any GOP: the emulated run
        // judges the arm64 binary's output structure, the native run the
        // exact frame count.
        // Slower still (qemu on a busy machine), the frame clock skips the
        // slots it is a second behind, and says so: those GOPs keep their
        // place on the timeline (checked below) with fewer frames.
        let slack = if n == 0 || emulated() { gop_frames / 10 } else { 1 };
        let skipped = emulated() && logs.contains("the output fell behind real time; skipping ahead");
        assert!(
            frames <= gop_frames + 1 && (frames + slack >= gop_frames || skipped),
            "{name}: a GOP of {frames} frames at {} s (want {gop_frames} +-1)",
            pk[w[0]].pts
        );
        let secs = pk[w[1]].pts - pk[w[0]].pts;
        assert!((secs - gop_frames as f64 / fps).abs() <= 1.0 / fps + 0.002, "{name}: keyframes {secs} s apart");
    }
    key_idx.iter().map(|i| pk[*i].pts).collect()
}

#[test]
fn the_standard_ladder_reaches_the_channel_aligned_cbr_with_truthful_metadata() {
    let dir = tempfile::tempdir().unwrap();
    let nginx = Nginx::start();
    let config = write_config(dir.path(), nginx.rtmp_port, &format!("[recording]\nmin_free_mb = 0\n{}", ladder_config()));
    let log = dir.path().join("fieldcast.log");
    let mut child = spawn_fieldcast(&config, 16, &log);

    // onMetaData, judged on the live stream (nginx's recordings carry no script tag).
    std::thread::sleep(Duration::from_secs(7));
    let mut declared = Vec::new();
    for (name, ..) in rungs() {
        let url = format!("rtmp://127.0.0.1:{}/live/{name}", nginx.rtmp_port);
        let v = ffprobe_json(&["-rw_timeout", "5000000", "-show_streams", "-show_format", &url]);
        let video = v["streams"].as_array().and_then(|s| s.iter().find(|s| s["codec_type"] == "video")).cloned().unwrap_or(Value::Null);
        let bit_rate: f64 = video["bit_rate"].as_str().and_then(|s| s.parse().ok()).unwrap_or(0.0);
        assert!(bit_rate > 0.0, "{name}: onMetaData videodatarate missing or zero: {v}");
        declared.push(bit_rate / 1024.0);
        let audio = v["streams"].as_array().and_then(|s| s.iter().find(|s| s["codec_type"] == "audio")).cloned().unwrap_or(Value::Null);
        assert_eq!(audio["codec_name"], "aac", "{name}: live stream audio {v}");
    }

    let code = wait_exit(&mut child, Duration::from_secs(40));
    let logs = std::fs::read_to_string(&log).unwrap_or_default();
    assert_eq!(code, Some(0), "fieldcast exit; log:\n{logs}");

    let mut all_keys = Vec::new();
    for (i, (name, w, h, kbps)) in rungs().iter().enumerate() {
        let file = nginx.recording(name);
        assert!(file.exists(), "{name}: nothing recorded by the channel; log:\n{logs}");
        let v = stream(&file, "v:0");
        assert_eq!(v["codec_name"], "h264", "{name}");
        assert_eq!(v["profile"], "High", "{name}");
        assert_eq!((v["width"].as_u64(), v["height"].as_u64()), (Some(u64::from(*w)), Some(u64::from(*h))), "{name}");
        assert_eq!(v["r_frame_rate"], "30/1", "{name}");
        // One colour space down the whole ladder: left to GStreamer's default
        // per picture height, 540p and 360p came out BT.601 (smpte170m).
        for key in ["color_space", "color_primaries", "color_transfer"] {
            assert_eq!(v[key], "bt709", "{name}: {key} of {v}");
        }
        let a = stream(&file, "a:0");
        assert_eq!(a["codec_name"], "aac", "{name}: audio");
        assert_eq!(a["sample_rate"], "48000", "{name}: audio");

        let pk = video_packets(&file);
        let keys = judge_video(name, &pk, 30.0, 60, &logs);
        let span = pk.last().unwrap().pts - pk[0].pts;
        assert!(span >= 12.0, "{name}: only {span} s recorded");
        // Bitrate over whole GOPs (first keyframe to last keyframe).
        let (k0, k1) = (keys[0], *keys.last().unwrap());
        let bytes: u64 = pk.iter().filter(|p| p.pts >= k0 && p.pts < k1).map(|p| p.size).sum();
        let measured = bytes as f64 * 8.0 / (k1 - k0) / 1000.0;
        let target = *kbps as f64;
        assert!((measured - target).abs() <= 0.2 * target, "{name}: measured {measured:.0} kbit/s, target {target}");
        assert!(declared[i] <= 2.0 * measured && declared[i] >= measured / 2.0, "{name}: declared {} vs measured {measured:.0}", declared[i]);
        eprintln!("{name}: {measured:.0} kbit/s (target {target}), declared {:.0}, keyframes {keys:?}", declared[i]);

        let apk = audio_packets(&file);
        assert!(apk.len() > 400, "{name}: {} audio packets", apk.len());
        for w in apk.windows(2) {
            assert!(w[1].pts > w[0].pts, "{name}: audio timestamps not increasing");
        }
        all_keys.push(keys);
    }
    // The same IDR instants in every rung (over the span all of them cover).
    let lo = all_keys.iter().map(|k| k[0]).fold(f64::MIN, f64::max);
    let hi = all_keys.iter().map(|k| *k.last().unwrap()).fold(f64::MAX, f64::min);
    let window = |k: &Vec<f64>| k.iter().copied().filter(|t| *t >= lo - 1e-3 && *t <= hi + 1e-3).collect::<Vec<_>>();
    let reference = window(&all_keys[0]);
    assert!(reference.len() >= 5, "too few common keyframes: {reference:?}");
    for (k, (name, ..)) in all_keys.iter().zip(rungs()) {
        let mine = window(k);
        assert_eq!(mine.len(), reference.len(), "{name}: keyframes {mine:?} vs {reference:?}");
        for (a, b) in mine.iter().zip(&reference) {
            assert!((a - b).abs() < 0.002, "{name}: keyframe at {a} where 1080p has {b}");
        }
    }
    // The local recording (the built-in default output) exists too.
    let rec: Vec<_> = walk(&dir.path().join("state/recordings"));
    assert_eq!(rec.iter().filter(|p| p.extension().is_some_and(|e| e == "mp4")).count(), rungs().len(), "{rec:?}");
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() { out.extend(walk(&p)) } else { out.push(p) }
        }
    }
    out
}

#[test]
fn publishing_resumes_after_the_channel_restarts_on_the_same_timeline() {
    let dir = tempfile::tempdir().unwrap();
    let mut nginx = Nginx::start();
    let ladder = if emulated() { ladder_config() } else { "[ladder]\nprofile = \"basic\"\n".to_string() };
    let config = write_config(dir.path(), nginx.rtmp_port, &format!("[recording]\nenabled = false\n{ladder}"));
    let log = dir.path().join("fieldcast.log");
    let mut child = spawn_fieldcast(&config, 24, &log);
    std::thread::sleep(Duration::from_secs(6));
    nginx.stop();
    std::thread::sleep(Duration::from_secs(5));
    assert!(child.try_wait().unwrap().is_none(), "fieldcast exited while the channel was down");
    nginx.restart();
    // The port accepted at most one poll (50 ms) before `restart` returned.
    let accepted_at = std::time::SystemTime::now() - Duration::from_millis(50);
    // nginx's `record` rebases every new recording to 0, but its live relay
    // keeps the publisher's timestamps: judge the timeline there. A publish
    // that restarted its clock would show ~3 s here, a continuing one ~15 s.
    std::thread::sleep(Duration::from_secs(4));
    let names: Vec<&str> = if emulated() { EMULATED.iter().map(|r| r.0).collect() } else { vec!["video_2000", "video_1100", "video_600"] };
    let live = format!("rtmp://127.0.0.1:{}/live/{}", nginx.rtmp_port, names[0]);
    let v = ffprobe_json(&["-rw_timeout", "5000000", "-show_entries", "stream=codec_type,start_time", &live]);
    let video_start: f64 = v["streams"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["codec_type"] == "video"))
        .and_then(|s| s["start_time"].as_str())
        .and_then(|t| t.parse().ok())
        .unwrap_or(0.0);
    assert!(video_start > 12.0, "after the reconnect the live stream starts at {video_start} s: the timeline did not continue ({v})");
    let code = wait_exit(&mut child, Duration::from_secs(45));
    let logs = std::fs::read_to_string(&log).unwrap_or_default();
    assert_eq!(code, Some(0), "log:\n{logs}");
    for name in names.iter().copied() {
        // nginx rewrites the file on a new publish: this is what arrived after the gap.
        let file = nginx.recording(name);
        let pk = video_packets(&file);
        assert!(pk.len() > 150, "{name}: only {} frames after the restart; log:\n{logs}", pk.len());
        assert!(pk[0].keyframe, "{name}: resumed on a non-keyframe");
        judge_video(name, &pk, 30.0, 60, &logs);
    }
    assert!(logs.contains("reconnect") || logs.contains("Reconnect"), "no reconnect in the log:\n{logs}");

    // Every rung publishing again within 0.5 s of the server accepting, and
    // all resuming on the same IDR (at most one GOP later).
    let stamp = |line: &str| humantime::parse_rfc3339(line.split_whitespace().next()?).ok();
    let rung_of = |line: &str| Some(line.split("egress=").nth(1)?.split([' ', '}']).next()?.to_string());
    let mut published = std::collections::BTreeMap::new();
    let mut first_pts = std::collections::BTreeMap::new();
    for line in logs.lines() {
        let (Some(t), Some(rung)) = (stamp(line), rung_of(line)) else { continue };
        if t < accepted_at {
            continue;
        }
        if line.contains("publishing; media starts") {
            published.entry(rung).or_insert(t);
        } else if line.contains("first video frame sent") {
            let pts: u64 = line.split("pts_ms=").nth(1).and_then(|p| p.split_whitespace().next()).and_then(|p| p.parse().ok()).unwrap_or(0);
            first_pts.entry(rung).or_insert(pts);
        }
    }
    assert_eq!(published.len(), names.len(), "not every rung published again: {published:?}\n{logs}");
    let bound = if emulated() { Duration::from_secs(2) } else { Duration::from_millis(500) };
    for (rung, t) in &published {
        let after = t.duration_since(accepted_at).unwrap_or_default();
        eprintln!("MEASURED {rung}: publishing {} ms after the channel accepted again", after.as_millis());
        assert!(after <= bound, "{rung}: publishing {after:?} after the channel came back");
    }
    let idrs: std::collections::BTreeSet<u64> = first_pts.values().copied().collect();
    eprintln!("MEASURED first video after the reconnect, per rung (ms of the timeline): {first_pts:?}");
    assert_eq!(first_pts.len(), names.len(), "{first_pts:?}");
    assert_eq!(idrs.len(), 1, "the rungs resumed on different IDRs: {first_pts:?}");
}

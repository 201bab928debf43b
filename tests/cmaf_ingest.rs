//! CMAF ingest (DASH-IF interface 1) end to end: the real fieldcast binary
//! posts every rung's video track and the shared audio track to a recording
//! HTTP receiver on a free loopback port (`common::http_receiver`, which
//! never judges). The judges are ffprobe (codec, size, frame rate, keyframe
//! at every segment start, the same PTS across rungs, bitrate) and pymp4, an
//! independent MP4 box parser from PyPI (brands, btrt, mfhd +1, tfdt
//! continuous, lmsg), each reading a track's header + segments concatenated.

mod common;

use common::device::emulated;
use common::ffprobe::{self, Packet, stream_of};
use common::http_receiver::{Answer, HttpReceiver, Request};
use common::{fieldcast_command, wait_child};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

const GOP_FRAMES: usize = 30;

/// How long each run streams: qemu-user takes seconds to start the pipeline.
fn run_seconds() -> u32 {
    if emulated() { 14 } else { 9 }
}

/// (name, width, height, kbit/s): two rungs, smaller under qemu.
fn ladder() -> &'static [(&'static str, u32, u32, u32)] {
    if emulated() { &[("r180", 320, 180, 300), ("r90", 160, 90, 150)] } else { &[("r360", 640, 360, 800), ("r180", 320, 180, 300)] }
}

fn ladder_toml() -> String {
    let l = ladder();
    let rungs: Vec<String> = l.iter().map(|(n, w, h, k)| format!("{{ name = \"{n}\", width = {w}, height = {h}, bitrate_kbps = {k} }}")).collect();
    format!(
        "[source]\nkind = \"test\"\nwidth = {}\nheight = {}\npattern = \"ball\"\n[ladder]\ngop_seconds = 1\nrungs = [{}]\n[recording]\nenabled = false\n",
        l[0].1,
        l[0].2,
        rungs.join(", ")
    )
}

/// Runs `fieldcast run` for `seconds` with `config`; returns its log.
fn run_fieldcast(dir: &Path, config: &str, seconds: u32) -> String {
    let path = dir.join("config.toml");
    std::fs::write(&path, format!("state_dir = \"{}\"\n{config}", dir.join("state").display())).unwrap();
    let log = dir.join("fieldcast.log");
    let mut child = fieldcast_command()
        .args(["run", "--config", path.to_str().unwrap(), "--duration", &seconds.to_string()])
        .env("FIELDCAST_LOG", "info,fieldcast::egress::cmaf=debug")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("start fieldcast");
    let exited = wait_child(&mut child, Duration::from_secs(u64::from(seconds) + 40));
    let logs = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(exited, "fieldcast did not end; log:\n{logs}");
    assert_eq!(child.wait().unwrap().code(), Some(0), "fieldcast exit; log:\n{logs}");
    logs
}

fn box_type(body: &[u8]) -> &str {
    body.get(4..8).and_then(|b| std::str::from_utf8(b).ok()).unwrap_or("")
}

/// The track as a file: its first accepted header, then every accepted segment.
fn track_file(dir: &Path, requests: &[Request], name: &str) -> PathBuf {
    let ok: Vec<&Request> = requests.iter().filter(|r| r.answer == Answer::Status(200)).collect();
    let mut data = ok.iter().find(|r| box_type(&r.body) == "ftyp").expect("an accepted CMAF header").body.clone();
    for r in ok.iter().filter(|r| box_type(&r.body) == "styp") {
        data.extend_from_slice(&r.body);
    }
    let path = dir.join(format!("{name}.mp4"));
    std::fs::write(&path, data).unwrap();
    path
}

/// pymp4's reading of a track file (tests/tools/cmaf_boxes.py).
fn pymp4(file: &Path) -> Value {
    let home = std::env::var("HOME").unwrap_or_default();
    let python = PathBuf::from(home).join(".cache/fieldcast/amqtt-venv/bin/python");
    assert!(python.exists(), "pymp4's venv is missing: run scripts/install-test-deps.sh");
    let out = common::run_with_timeout(
        Command::new(python).arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/tools/cmaf_boxes.py")).arg(file),
        Duration::from_secs(60),
    );
    assert!(out.status.success(), "pymp4 could not read {}: {}", file.display(), String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("pymp4 JSON")
}

/// pymp4's checks of one track: CMAF brands, btrt at the declared rate,
/// mfhd +1 from 1, tfdt strictly increasing without a gap, every segment
/// starting on a sync sample, lmsg on the last only. Returns (timescale, segment starts in s).
fn judge_boxes(file: &Path, bitrate_bps: u64, what: &str) -> (u64, Vec<f64>) {
    let b = pymp4(file);
    let brands: Vec<&str> = b["ftyp"]["brands"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    assert!(brands.contains(&"cmfc") && brands.contains(&"cmf2"), "{what}: ftyp brands {brands:?}");
    assert_eq!(b["btrt"][0]["avg"].as_u64(), Some(bitrate_bps), "{what}: btrt {}", b["btrt"]);
    let timescale = b["timescale"].as_u64().unwrap();
    let segs = b["segments"].as_array().unwrap();
    assert!(segs.len() >= 4, "{what}: only {} segments", segs.len());
    for (i, s) in segs.iter().enumerate() {
        let brands: Vec<&str> = s["brands"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
        assert_eq!(brands.contains(&"lmsg"), i + 1 == segs.len(), "{what}: segment {i} brands {brands:?}");
        assert!(s["first_sync"].as_bool().unwrap(), "{what}: segment {i} does not start on a sync sample");
        if i > 0 {
            let p = &segs[i - 1];
            assert_eq!(s["seq"].as_u64().unwrap(), p["seq"].as_u64().unwrap() + 1, "{what}: mfhd at segment {i}");
            let end = p["tfdt"].as_u64().unwrap() + p["duration"].as_u64().unwrap();
            assert_eq!(s["tfdt"].as_u64().unwrap(), end, "{what}: tfdt gap or overlap before segment {i}");
        }
    }
    (timescale, segs.iter().map(|s| s["tfdt"].as_u64().unwrap() as f64 / timescale as f64).collect())
}

/// ffprobe's checks of a video track; returns its keyframe times (s).
fn judge_video(file: &Path, (name, w, h, kbps): (&str, u32, u32, u32), starts: &[f64], what: &str) -> Vec<f64> {
    let streams = ffprobe::streams(file.to_str().unwrap());
    let v = stream_of(&streams, "video");
    assert_eq!(v["codec_name"], "h264", "{what}");
    assert_eq!((v["width"].as_u64(), v["height"].as_u64()), (Some(u64::from(w)), Some(u64::from(h))), "{what}: size");
    assert_eq!(v["r_frame_rate"], "30/1", "{what}: frame rate");
    assert_eq!(ffprobe::decode_errors(file), "", "{what}: decode errors");
    let pk: Vec<Packet> = ffprobe::video_packets(file);
    let keys: Vec<f64> = pk.iter().filter(|p| p.keyframe).map(|p| p.dts).collect();
    assert_eq!(keys.len(), starts.len(), "{what}: {} keyframes for {} segments", keys.len(), starts.len());
    for (k, s) in keys.iter().zip(starts) {
        assert!((k - s).abs() < 0.002, "{what}: a keyframe at {k} s where a segment starts at {s} s");
    }
    let key_idx: Vec<usize> = pk.iter().enumerate().filter(|(_, p)| p.keyframe).map(|(i, _)| i).collect();
    let mut whole = (0u64, 0.0);
    for k in key_idx.windows(2) {
        let frames = k[1] - k[0];
        if emulated() {
            // Under qemu-user the encoder may fall behind real time and the
            // output's channel drop to the next keyframe: a segment may be short.
            assert!(frames <= GOP_FRAMES, "{what}: a segment of {frames} frames");
        } else {
            assert_eq!(frames, GOP_FRAMES, "{what}: a segment of {frames} frames");
        }
        if frames == GOP_FRAMES {
            whole.0 += pk[k[0]..k[1]].iter().map(|p| p.size).sum::<u64>();
            whole.1 += pk[k[1]].dts - pk[k[0]].dts;
        }
    }
    assert!(whole.1 >= 2.0, "{what}: under 2 s of whole segments");
    // Over the whole GOPs (all of them natively).
    let measured = whole.0 as f64 * 8.0 / whole.1 / 1000.0;
    let target = f64::from(kbps);
    assert!((measured - target).abs() <= 0.2 * target, "{what}: {measured:.0} kbit/s for a {target} kbit/s rung ({name})");
    eprintln!("{what}: {} frames in {} segments, {measured:.0} kbit/s (target {target})", pk.len(), starts.len());
    keys
}

fn judge_audio(file: &Path, video_starts: &[f64], what: &str) {
    let streams = ffprobe::streams(file.to_str().unwrap());
    let a = stream_of(&streams, "audio");
    assert_eq!((a["codec_name"].as_str(), a["sample_rate"].as_str(), a["channels"].as_u64()), (Some("aac"), Some("48000"), Some(2)), "{what}");
    let (timescale, starts) = judge_boxes(file, 128_000, what);
    assert_eq!(timescale, 48_000, "{what}: timescale");
    // Cut at the video's keyframes: the first AAC frame at or after each (21.3 ms a frame).
    for s in &starts[1..] {
        assert!(video_starts.iter().any(|v| s - v >= -0.001 && s - v < 0.0225), "{what}: an audio segment at {s} s, no video segment there");
    }
}

/// Consecutive keyframe lists agree wherever they overlap.
fn assert_same_keyframes(a: &[f64], b: &[f64], what: &str) {
    let (lo, hi) = (a[0].max(b[0]), a.last().unwrap().min(*b.last().unwrap()));
    let win = |k: &[f64]| k.iter().copied().filter(|t| *t >= lo - 1e-3 && *t <= hi + 1e-3).collect::<Vec<_>>();
    let (wa, wb) = (win(a), win(b));
    assert!(wa.len() >= 3, "{what}: too few common keyframes: {a:?} {b:?}");
    assert_eq!(wa.len(), wb.len(), "{what}: {wa:?} vs {wb:?}");
    for (x, y) in wa.iter().zip(&wb) {
        assert!((x - y).abs() < 0.002, "{what}: keyframe at {x} vs {y}");
    }
}

#[test]
fn every_track_posts_its_cmaf_header_then_one_gop_a_post_and_ffprobe_and_pymp4_accept_it() {
    let dir = tempfile::tempdir().unwrap();
    let rx = HttpReceiver::start();
    let url = rx.url("/live/ch1").replace("http://", "http://ingest:pa55SECRET@");
    let config = format!("{}[[destination]]\nname = \"origin\"\nprotocol = \"cmaf\"\nurl = \"{url}\"\ntrack_path = \"Streams({{track}})\"\n", ladder_toml());
    let logs = run_fieldcast(dir.path(), &config, run_seconds());
    assert!(!logs.contains("pa55SECRET"), "a credential in the log:\n{logs}");
    if !emulated() {
        // Every track connects before the first header exists: the session does not wait for it.
        assert!(!logs.contains("not every publish is up"), "the pipeline waited for the CMAF outputs:\n{logs}");
    }

    let all = rx.requests();
    let mut keys = Vec::new();
    for rung in ladder() {
        let path = format!("/live/ch1/Streams(video-{})", rung.0);
        let reqs: Vec<Request> = all.iter().filter(|r| r.path == path).cloned().collect();
        let what = format!("video-{}", rung.0);
        assert!(!reqs.is_empty(), "{what}: nothing posted; paths seen: {:?}", all.iter().map(|r| &r.path).collect::<Vec<_>>());
        // One persistent connection; the header first, then one segment a POST.
        assert!(reqs.iter().all(|r| r.method == "POST" && r.connection == reqs[0].connection), "{what}: one connection");
        assert_eq!(box_type(&reqs[0].body), "ftyp", "{what}: the header comes first");
        assert!(reqs[1..].iter().all(|r| box_type(&r.body) == "styp"), "{what}: a segment a POST");
        assert_eq!(reqs[0].headers.get("content-type").map(String::as_str), Some("video/mp4"));
        // Basic auth from the URL's credentials ("ingest:pa55SECRET").
        assert_eq!(reqs[0].headers.get("authorization").map(String::as_str), Some("Basic aW5nZXN0OnBhNTVTRUNSRVQ="));
        let file = track_file(dir.path(), &reqs, &what);
        let (timescale, starts) = judge_boxes(&file, u64::from(rung.3) * 1000, &what);
        assert_eq!(timescale, 90_000);
        assert_eq!(reqs.len() - 1, starts.len(), "{what}: POSTs vs segments");
        keys.push(judge_video(&file, *rung, &starts, &what));
    }
    assert_same_keyframes(&keys[0], &keys[1], "rungs");
    let audio: Vec<Request> = all.iter().filter(|r| r.path == "/live/ch1/Streams(audio)").cloned().collect();
    assert_eq!(audio[0].headers.get("content-type").map(String::as_str), Some("audio/mp4"));
    judge_audio(&track_file(dir.path(), &audio, "audio"), &keys[0], "audio");
    assert_eq!(all.len(), audio.len() + keys.iter().map(|k| k.len() + 1).sum::<usize>(), "only the tracks were posted to");
    let latencies: Vec<u64> = logs
        .lines()
        .filter(|l| l.contains("segment posted"))
        .filter_map(|l| l.split("latency_ms=").nth(1)?.split_whitespace().next()?.parse().ok())
        .collect();
    eprintln!("segment closing IDR at the output -> POST answered: {latencies:?} ms");
}

#[test]
fn a_dropped_connection_and_a_412_recover_without_a_gap_and_a_403_stops_only_its_own_tracks() {
    let dir = tempfile::tempdir().unwrap();
    let rx = HttpReceiver::start();
    let (top, second) = (ladder()[0].0, ladder()[1].0);
    let dropped = format!("/a/video-{top}");
    let precondition = format!("/a/video-{second}");
    // Request 0 is the header: the third segment's POST loses its connection,
    rx.answer_nth(&dropped, 3, Answer::Drop);
    // the second segment of the other rung is answered 412,
    rx.answer_nth(&precondition, 2, Answer::Status(412));
    // and every request of the second destination is forbidden.
    rx.answer_all("/b/", Answer::Status(403));
    let config = format!(
        "{}[[destination]]\nname = \"good\"\nprotocol = \"cmaf\"\nurl = \"{}\"\n\
         [[destination]]\nname = \"forbidden\"\nprotocol = \"cmaf\"\nurl = \"{}\"\nrungs = [\"{second}\"]\nforbidden_retries = 2\n\
         [egress]\nreconnect_initial_ms = 100\nreconnect_max_ms = 400\n",
        ladder_toml(),
        rx.url("/a"),
        rx.url("/b"),
    );
    let logs = run_fieldcast(dir.path(), &config, run_seconds());

    // Dropped: a new connection, the header again, then the same segment.
    let d = rx.requests_to(&dropped);
    assert_eq!(d[3].answer, Answer::Drop);
    assert!(d[4].connection != d[3].connection && box_type(&d[4].body) == "ftyp", "after the drop: a new connection and the header");
    assert_eq!(d[5].body, d[3].body, "the segment lost with the connection is sent again");
    let resend = d[5].at.duration_since(d[3].at);
    eprintln!("drop -> reconnected, header and the lost segment posted again: {} ms", resend.as_millis());
    let file = track_file(dir.path(), &d, "dropped");
    let (_, starts) = judge_boxes(&file, u64::from(ladder()[0].3) * 1000, "after a drop");
    let keys = judge_video(&file, ladder()[0], &starts, "after a drop");

    // 412: the header again on the same connection, then the same segment.
    let p = rx.requests_to(&precondition);
    assert_eq!(p[2].answer, Answer::Status(412));
    assert!(box_type(&p[3].body) == "ftyp" && p[3].connection == p[2].connection, "after a 412: the header again");
    assert_eq!(p[4].body, p[2].body, "then the refused segment");
    let file = track_file(dir.path(), &p, "precondition");
    let (_, starts) = judge_boxes(&file, u64::from(ladder()[1].3) * 1000, "after a 412");
    assert_same_keyframes(&keys, &judge_video(&file, ladder()[1], &starts, "after a 412"), "rungs after the faults");

    // 403: the first answer and its 2 retries, then that destination's tracks stop.
    for track in [format!("/b/video-{second}"), "/b/audio".to_string()] {
        let f = rx.requests_to(&track);
        assert_eq!(f.len(), 3, "{track}: {} requests for forbidden_retries = 2", f.len());
        assert!(f.iter().all(|r| r.answer == Answer::Status(403)));
    }
    assert!(logs.contains("403 Forbidden 3 times in a row") && logs.contains("track stopped"), "no clear 403 error; log:\n{logs}");
    assert!(logs.lines().filter(|l| l.contains("track stopped")).all(|l| l.contains("egress=forbidden/")), "only the forbidden destination stops:\n{logs}");
    assert!(!rx.requests_to("/a/audio").is_empty(), "the good destination's audio went on");
}

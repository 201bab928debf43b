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
use common::ingest::{self, GOP_FRAMES, ladder, ladder_toml, run_fieldcast, run_seconds};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::Duration;

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
    ingest::pymp4("cmaf_boxes.py", file)
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

/// The segments of a pymp4 reading that carry `slat`.
fn slat_flags(boxes: &Value) -> Vec<bool> {
    boxes["segments"].as_array().unwrap().iter().map(|s| s["brands"].as_array().unwrap().iter().any(|b| b == "slat")).collect()
}

/// The indexes of the `true`s: one run (a single loss), not empty.
fn one_run(flags: &[bool], what: &str) -> std::ops::Range<usize> {
    let on: Vec<usize> = (0..flags.len()).filter(|i| flags[*i]).collect();
    assert!(!on.is_empty(), "{what}: no segment labelled slat: {flags:?}");
    assert_eq!(on.len(), on[on.len() - 1] - on[0] + 1, "{what}: slat segments not one run: {flags:?}");
    on[0]..on[on.len() - 1] + 1
}

#[test]
fn segments_made_while_the_camera_is_frozen_are_labelled_slat_and_the_timeline_runs_on_without_a_gap() {
    use common::camera::{Kind, classify, feeder, feeder_pid, slate_image, thumbnails};
    let dir = tempfile::tempdir().unwrap();
    let rx = HttpReceiver::start();
    let (top, second) = (ladder()[0], ladder()[1]);
    let slate = slate_image(dir.path());
    let fifo = dir.path().join("camera.y4m");
    assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let rungs: Vec<String> = ladder().iter().map(|(n, w, h, k)| format!("{{ name = \"{n}\", width = {w}, height = {h}, bitrate_kbps = {k} }}")).collect();
    let config = format!(
        "[source]\nkind = \"file\"\npath = \"{}\"\n[audio]\nsource = \"test\"\n[ladder]\ngop_seconds = 1\nrungs = [{}]\n\
         [recording]\nenabled = false\n[input_loss]\ninput_loss_ms = 500\nrepeat_frame_ms = 1000\nslate_image = \"{}\"\n\
         [[destination]]\nname = \"origin\"\nprotocol = \"cmaf\"\nurl = \"{}\"\n",
        fifo.display(),
        rungs.join(", "),
        slate.display(),
        rx.url("/live")
    ) + common::NO_HTTP;
    let mut camera = feeder(&fifo, top.1, top.2);
    let top_path = format!("/live/video-{}", top.0);
    let seconds = run_seconds() + 8;
    let logs = std::thread::scope(|s| {
        s.spawn(|| {
            // Frozen for 4 s once the top rung has posted 3 segments of live picture.
            let live = common::wait_for(Duration::from_secs(u64::from(seconds)), || rx.requests_to(&top_path).len() > 3);
            let pid = feeder_pid(&fifo).filter(|_| live).expect("live, with the feeder running");
            assert!(std::process::Command::new("kill").args(["-STOP", &pid]).status().unwrap().success());
            std::thread::sleep(Duration::from_secs(4));
            let _ = std::process::Command::new("kill").args(["-CONT", &pid]).status();
        });
        run_fieldcast(dir.path(), &config, seconds)
    });
    let _ = camera.kill();
    let _ = camera.wait();
    assert!(logs.contains("input lost") && logs.contains("input back"), "no input loss and return in the log:\n{logs}");

    let slate_thumb = thumbnails(&slate).remove(0);
    let mut video_runs = Vec::new();
    for rung in [top, second] {
        let what = format!("video-{}", rung.0);
        let file = track_file(dir.path(), &rx.requests_to(&format!("/live/{what}")), &what);
        // tfdt continuous, mfhd +1, every segment on a sync sample, lmsg on the last only.
        let (_, starts) = judge_boxes(&file, u64::from(rung.3) * 1000, &what);
        judge_video(&file, rung, &starts, &what);
        let boxes = pymp4(&file);
        let flags = slat_flags(&boxes);
        let run = one_run(&flags, &what);
        // The decoded pictures of each segment (no B-frames: decode order is display order).
        let kinds = classify(&thumbnails(&file), &slate_thumb);
        let mut first = 0;
        for (i, seg) in boxes["segments"].as_array().unwrap().iter().enumerate() {
            let n = seg["samples"].as_u64().unwrap() as usize;
            let pictures = &kinds[first..(first + n).min(kinds.len())];
            first += n;
            if pictures.contains(&Kind::Slate) {
                assert!(flags[i], "{what}: segment {i} shows the slate but is not labelled slat: {pictures:?}");
            }
            if flags[i] {
                assert!(pictures.iter().any(|k| *k != Kind::Live), "{what}: segment {i} is labelled slat but is all live picture");
            }
        }
        assert!(kinds.contains(&Kind::Slate), "{what}: the slate never showed: {kinds:?}");
        assert!(run.start > 0 && run.end < flags.len(), "{what}: live segments before and after the loss: {flags:?}");
        eprintln!("{what}: segments {run:?} of {} labelled slat", flags.len());
        video_runs.push((run, starts));
    }
    // The same segments of both rungs (their IDRs are aligned).
    let (a, b) = (&video_runs[0], &video_runs[1]);
    let at = |(run, starts): &(std::ops::Range<usize>, Vec<f64>)| (starts[run.start], starts[run.end - 1]);
    let ((a0, a1), (b0, b1)) = (at(a), at(b));
    assert!((a0 - b0).abs() < 0.002 && (a1 - b1).abs() < 0.002, "rungs labelled different spans: {a0}..{a1} vs {b0}..{b1}");
    // Audio: the slate's silence is labelled too, within the same span (an
    // AAC frame is looked up after the picture of its instant was made).
    let audio = track_file(dir.path(), &rx.requests_to("/live/audio"), "audio");
    judge_audio(&audio, &video_runs[0].1, "audio");
    let boxes = pymp4(&audio);
    let run = one_run(&slat_flags(&boxes), "audio");
    let timescale = boxes["timescale"].as_f64().unwrap();
    let start = |i: usize| boxes["segments"][i]["tfdt"].as_f64().unwrap() / timescale;
    for i in run.clone() {
        assert!(start(i) >= a0 - 0.0225 && start(i) <= a1 + 0.0225, "audio segment {i} at {} s labelled slat, video's slat span {a0}..{a1}", start(i));
    }
    assert!(run.len() + 1 >= a.0.len(), "audio: {} slat segments for the video's {}", run.len(), a.0.len());
}

/// Time since 1970 now, in seconds.
fn unix_now() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64()
}

#[test]
fn epoch_aligned_encoders_started_apart_cut_the_same_segments_at_whole_seconds_since_1970() {
    // Two boxes push to one receiver, the second started 1.3 s after the
    // first: with `epoch_aligned` their segments (1 s GOPs) start at whole
    // seconds since 1970 and carry those times, so they are the same segments.
    let rx = HttpReceiver::start();
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let config = |path: &str| {
        format!(
            "{}[http]\nenabled = false\n[[destination]]\nname = \"origin\"\nprotocol = \"cmaf\"\nurl = \"{}\"\nepoch_aligned = true\n",
            ladder_toml(),
            rx.url(path)
        )
    };
    let started = unix_now();
    let (ca, cb) = (config("/a"), config("/b"));
    let (pa, pb) = (a.path().to_owned(), b.path().to_owned());
    let first = std::thread::spawn(move || run_fieldcast(&pa, &ca, run_seconds()));
    std::thread::sleep(Duration::from_millis(1300));
    let logs_b = run_fieldcast(&pb, &cb, run_seconds());
    let logs_a = first.join().unwrap();
    let ended = unix_now();

    let top = ladder()[0];
    let mut timelines = Vec::new();
    for (name, dir, logs) in [("a", a.path(), &logs_a), ("b", b.path(), &logs_b)] {
        let reqs = rx.requests_to(&format!("/{name}/video-{}", top.0));
        assert!(!reqs.is_empty(), "{name}: nothing posted:\n{logs}");
        let what = format!("box {name}, video-{}", top.0);
        let file = track_file(dir, &reqs, &what);
        let (timescale, starts) = judge_boxes(&file, u64::from(top.3) * 1000, &what);
        assert_eq!(timescale, 90_000);
        // Every segment after the first (which starts with the stream) starts on a whole second since 1970.
        let b = pymp4(&file);
        let segs = b["segments"].as_array().unwrap();
        let timeline: Vec<(u64, u64)> = segs.iter().map(|s| (s["tfdt"].as_u64().unwrap(), s["duration"].as_u64().unwrap())).collect();
        for (i, (tfdt, _)) in timeline.iter().enumerate().skip(1) {
            assert_eq!(tfdt % 90_000, 0, "{what}: segment {i} starts at {tfdt} ticks, not a whole second since 1970");
        }
        // The times are now, since 1970 (not the running time).
        assert!(starts[0] >= started - 1.0 && *starts.last().unwrap() <= ended + 1.0, "{what}: {:?} outside {started}..{ended}", (starts[0], starts.last()));
        // ffprobe: a keyframe at every segment start, at the same times.
        let keys: Vec<f64> = ffprobe::video_packets(&file).iter().filter(|p| p.keyframe).map(|p| p.dts).collect();
        assert_eq!(keys.len(), starts.len(), "{what}: keyframes {keys:?} for segments {starts:?}");
        for (k, s) in keys.iter().zip(&starts) {
            assert!((k - s).abs() < 0.002, "{what}: a keyframe at {k} s where a segment starts at {s} s");
        }
        // The audio track is cut at the same instants, on its own 48 kHz timescale.
        let audio: Vec<Request> = rx.requests_to(&format!("/{name}/audio"));
        judge_audio(&track_file(dir, &audio, &format!("{name}-audio")), &keys, &format!("box {name}, audio"));
        timelines.push(timeline);
    }
    // The segments both boxes made are the same: same start, same length
    // (under qemu a box that fell behind may cut one short: starts only).
    let common: Vec<&(u64, u64)> = timelines[0][1..timelines[0].len() - 1].iter().filter(|s| timelines[1].iter().any(|t| t.0 == s.0)).collect();
    assert!(common.len() >= 3, "too few common segments: {:?} vs {:?}", timelines[0], timelines[1]);
    if !emulated() {
        for s in &common {
            let other = timelines[1].iter().find(|t| t.0 == s.0).unwrap();
            if other != timelines[1].last().unwrap() {
                assert_eq!(*s, other, "the same segment, the same length");
            }
        }
    }
    eprintln!("common segments: {}", common.len());
}

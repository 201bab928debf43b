//! SRT outputs end to end: the real fieldcast binary (or the SRT actor fed
//! by a test source) sends MPEG-TS over SRT to real receivers started on
//! free loopback ports, ffmpeg's libsrt listener and `srt-live-transmit`,
//! each with a passphrase; ffprobe judges the files they wrote.

mod common;

use common::device::emulated;
use common::ffprobe::{self, Packet, stream_of, video_packets};
use common::nginx::Nginx;
use common::srt::{Kind, SrtReceiver, udp_bound};
use common::{fieldcast_command, wait_child};
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

const PASSPHRASE: &str = "correct-horse-battery";
const WRONG: &str = "not-the-passphrase";
/// The small ladder these tests encode: (name, width, height, kbit/s).
const LADDER: &[(&str, u32, u32, u32)] = &[("r360", 640, 360, 800), ("r180", 320, 180, 300)];
const FPS: f64 = 30.0;
const GOP_FRAMES: usize = 30;

fn libsrt_here() -> bool {
    if fieldcast::egress::srt::available() {
        return true;
    }
    eprintln!("SKIPPED: libsrt 1.5 is not installed on this machine (Debian: libsrt1.5-gnutls)");
    false
}

fn ladder_toml() -> String {
    let rungs: Vec<String> =
        LADDER.iter().map(|(n, w, h, k)| format!("{{ name = \"{n}\", width = {w}, height = {h}, bitrate_kbps = {k} }}")).collect();
    format!(
        "[source]\nkind = \"test\"\nwidth = 640\nheight = 360\npattern = \"ball\"\n[ladder]\ngop_seconds = 1\nrungs = [{}]\n[recording]\nenabled = false\n",
        rungs.join(", ")
    )
}

fn srt_destination(name: &str, url: &str, rung: &str, passphrase: &str) -> String {
    format!("[[destination]]\nname = \"{name}\"\nurl = \"{url}\"\nrungs = [\"{rung}\"]\npassphrase = \"{passphrase}\"\nlatency_ms = 500\n")
}

/// Runs `fieldcast run` for `seconds` with `config`; returns its log.
fn run_fieldcast(dir: &Path, config: &str, seconds: u32, during: impl FnOnce()) -> String {
    let path = dir.join("config.toml");
    std::fs::write(&path, format!("state_dir = \"{}\"\n{config}", dir.join("state").display()) + common::NO_HTTP).unwrap();
    let log = dir.join("fieldcast.log");
    let mut child = fieldcast_command()
        .args(["run", "--config", path.to_str().unwrap(), "--duration", &seconds.to_string()])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("start fieldcast");
    during();
    let exited = wait_child(&mut child, Duration::from_secs(u64::from(seconds) + 30));
    let logs = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(exited, "fieldcast did not end; log:\n{logs}");
    assert_eq!(child.wait().unwrap().code(), Some(0), "fieldcast exit; log:\n{logs}");
    logs
}

/// The log lines that name `what` (an output's destination).
fn lines_about(logs: &str, what: &str) -> String {
    logs.lines().filter(|l| l.contains(what)).collect::<Vec<_>>().join("\n")
}

/// Keyframe PTS of a received rung, after checking what ffprobe sees.
fn judge(file: &Path, (name, w, h, kbps): (&str, u32, u32, u32), what: &str) -> Vec<f64> {
    assert!(file.exists() && std::fs::metadata(file).unwrap().len() > 0, "{what}: nothing received");
    let streams = ffprobe::streams(file.to_str().unwrap());
    let v = stream_of(&streams, "video");
    assert_eq!(v["codec_name"], "h264", "{what}");
    assert_eq!((v["width"].as_u64(), v["height"].as_u64()), (Some(u64::from(w)), Some(u64::from(h))), "{what}: size");
    assert_eq!(v["r_frame_rate"], "30/1", "{what}: frame rate");
    let a = stream_of(&streams, "audio");
    assert_eq!((a["codec_name"].as_str(), a["sample_rate"].as_str()), (Some("aac"), Some("48000")), "{what}: audio");
    assert_eq!(ffprobe::decode_errors(file), "", "{what}: decode errors");
    let pk: Vec<Packet> = video_packets(file);
    for p in pk.windows(2) {
        assert!(p[1].dts > p[0].dts, "{what}: video dts {} after {}", p[1].dts, p[0].dts);
    }
    let keys: Vec<usize> = pk.iter().enumerate().filter(|(_, p)| p.keyframe).map(|(i, _)| i).collect();
    assert!(keys.len() >= 4, "{what}: {} keyframes in {} frames", keys.len(), pk.len());
    for k in keys.windows(2) {
        let frames = k[1] - k[0];
        assert!(frames.abs_diff(GOP_FRAMES) <= 1, "{what}: a GOP of {frames} frames at {} s", pk[k[0]].pts);
    }
    let (k0, k1) = (pk[keys[0]].pts, pk[*keys.last().unwrap()].pts);
    let bytes: u64 = pk.iter().filter(|p| p.pts >= k0 && p.pts < k1).map(|p| p.size).sum();
    let measured = bytes as f64 * 8.0 / (k1 - k0) / 1000.0;
    let target = f64::from(kbps);
    assert!((measured - target).abs() <= 0.2 * target, "{what}: {measured:.0} kbit/s for a {target} kbit/s rung ({name})");
    eprintln!("{what}: {} frames, {measured:.0} kbit/s (target {target}), keyframes at {:?}", pk.len(), keys.iter().map(|i| pk[*i].pts).collect::<Vec<_>>());
    keys.iter().map(|i| pk[*i].pts).collect()
}

/// Keyframes common to every list lie at the same PTS in each.
fn assert_aligned(all: &[(String, Vec<f64>)]) {
    let lo = all.iter().map(|(_, k)| k[0]).fold(f64::MIN, f64::max);
    let hi = all.iter().map(|(_, k)| *k.last().unwrap()).fold(f64::MAX, f64::min);
    let window = |k: &[f64]| k.iter().copied().filter(|t| *t >= lo - 1e-3 && *t <= hi + 1e-3).collect::<Vec<_>>();
    let reference = window(&all[0].1);
    assert!(reference.len() >= 3, "too few common keyframes: {all:?}");
    for (what, k) in all {
        let mine = window(k);
        assert_eq!(mine.len(), reference.len(), "{what}: keyframes {mine:?} vs {reference:?}");
        for (a, b) in mine.iter().zip(&reference) {
            assert!((a - b).abs() < 0.002, "{what}: keyframe at {a} where {} has {b}", all[0].0);
        }
    }
}

#[test]
fn every_rung_reaches_ffmpeg_and_srt_live_transmit_encrypted_and_a_wrong_passphrase_fails_only_its_output() {
    if !libsrt_here() {
        return;
    }
    if emulated() {
        // Seven receivers and a ladder in real time is too much for qemu;
        // the lighter SRT tests below run there.
        eprintln!("SKIPPED under emulation: covered by the native run");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut receivers = Vec::new();
    let mut config = ladder_toml();
    for kind in [Kind::Ffmpeg, Kind::LiveTransmit] {
        for rung in LADDER {
            let name = format!("{}-{}", if kind == Kind::Ffmpeg { "ffmpeg" } else { "slt" }, rung.0);
            let r = SrtReceiver::start(kind, dir.path(), &name, Some(PASSPHRASE));
            config.push_str(&srt_destination(&name, &r.url(), rung.0, PASSPHRASE));
            receivers.push((name, *rung, r));
        }
    }
    let mut refusing = SrtReceiver::start(Kind::Ffmpeg, dir.path(), "refusing", Some(PASSPHRASE));
    config.push_str(&srt_destination("refused", &refusing.url(), "r180", WRONG));
    // Eight callers starting at once is what once made one of them give up
    // a handshake the receiver had already accepted (libsrt's BROKEN-while-
    // completing window, see `Socket::connect`): that receiver then got
    // nothing. The assertion below prints its log and fieldcast's lines.
    let logs = run_fieldcast(dir.path(), &config, 10, || {});
    for (_, _, r) in &mut receivers {
        r.finish();
    }
    refusing.kill();

    let mut keys = Vec::new();
    for (name, rung, r) in &receivers {
        let got = std::fs::metadata(&r.out).map_or(0, |m| m.len());
        assert!(got > 0, "{name}: nothing received; its receiver's log:\n{}\nfieldcast about it:\n{}", r.log(), lines_about(&logs, name));
        keys.push((name.clone(), judge(&r.out, *rung, name)));
    }
    assert_aligned(&keys);
    // The wrong passphrase: a clear error on that output alone, no secret anywhere.
    assert!(logs.contains("refused/r180") && logs.contains("refused the passphrase (wrong passphrase)"), "log:\n{logs}");
    assert!(refusing.log().contains("Incorrect passphrase"), "the receiver saw no bad passphrase:\n{}", refusing.log());
    assert!(!logs.contains(PASSPHRASE) && !logs.contains(WRONG), "a passphrase in the log:\n{logs}");
    assert!(!logs.lines().any(|l| l.contains("reconnecting") && !l.contains("refused/")), "only the refused output reconnects:\n{logs}");
}

#[test]
fn an_srt_output_that_fails_for_good_leaves_the_rtmp_output_of_the_same_session_untouched() {
    if !libsrt_here() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let nginx = Nginx::start();
    let mut receiver = SrtReceiver::start(Kind::Ffmpeg, dir.path(), "doomed", Some(PASSPHRASE));
    let rung = if emulated() { ("r180", 320, 180, 300) } else { LADDER[0] };
    let config = format!(
        "[source]\nkind = \"test\"\nwidth = {w}\nheight = {h}\npattern = \"ball\"\n[ladder]\ngop_seconds = 1\n\
         rungs = [{{ name = \"{n}\", width = {w}, height = {h}, bitrate_kbps = {k} }}]\n[recording]\nenabled = false\n\
         [[destination]]\nname = \"channel\"\nurl = \"{rtmp}\"\nstream = \"{{rung}}\"\n{srt}",
        n = rung.0,
        w = rung.1,
        h = rung.2,
        k = rung.3,
        rtmp = nginx.rtmp_url("live"),
        srt = srt_destination("contribution", &receiver.url(), rung.0, PASSPHRASE),
    );
    let seconds = 9;
    let logs = run_fieldcast(dir.path(), &config, seconds, || {
        std::thread::sleep(Duration::from_secs(3));
        assert!(receiver.is_running(), "the SRT receiver ended early:\n{}", receiver.log());
        receiver.kill();
    });
    let pk = video_packets(&nginx.recording(rung.0));
    assert!(pk[0].keyframe, "the RTMP recording starts on a non-keyframe");
    let longest = pk.windows(2).map(|w| w[1].dts - w[0].dts).fold(0.0, f64::max);
    assert!(longest < 3.0 / FPS, "a {longest:.3} s gap in the RTMP recording; log:\n{logs}");
    let span = pk.last().unwrap().dts - pk[0].dts;
    assert!(span >= f64::from(seconds) - 3.0, "the RTMP recording spans only {span:.1} s; log:\n{logs}");
    assert!(!logs.contains("publish failed"), "the RTMP output reconnected; log:\n{logs}");
    let srt_line = |what: &str| logs.lines().any(|l| l.contains("egress=contribution/") && l.contains(what));
    assert!(srt_line("first video frame sent"), "the SRT output never sent before its receiver went away; log:\n{logs}");
    assert!(srt_line("SRT output failed; reconnecting"), "the SRT output did not notice its receiver was gone; log:\n{logs}");
    assert!(!logs.contains(PASSPHRASE), "the passphrase in the log:\n{logs}");
    // Adaptive bitrate (on by default) saw the dead receiver's backlog grow
    // and left the ladder the RTMP output carries alone: every change of
    // the factor is logged.
    assert_ladder_untouched(&logs);
    eprintln!("RTMP: {} frames over {span:.1} s, longest gap {longest:.3} s while the SRT receiver was gone", pk.len());
}

#[test]
fn a_listener_output_serves_the_receiver_that_dials_in() {
    if !libsrt_here() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let port = common::srt::free_udp_port();
    let rung = if emulated() { ("r180", 320, 180, 300) } else { LADDER[1] };
    let config = format!(
        "{}[[destination]]\nname = \"pull\"\nurl = \"srt://:{port}?mode=listener\"\nrungs = [\"{}\"]\npassphrase = \"{PASSPHRASE}\"\n",
        ladder_toml(),
        rung.0
    );
    let out = dir.path().join("pulled.ts");
    let logs = run_fieldcast(dir.path(), &config, 10, || {
        std::thread::sleep(Duration::from_secs(2));
        let pulled = common::run_with_timeout(
            std::process::Command::new("ffmpeg")
                .args(["-nostdin", "-loglevel", "error", "-i"])
                .arg(format!("srt://127.0.0.1:{port}?mode=caller&passphrase={PASSPHRASE}&pbkeylen=16"))
                .args(["-t", "5", "-c", "copy", "-f", "mpegts", "-y"])
                .arg(&out),
            Duration::from_secs(20),
        );
        assert!(pulled.status.success(), "ffmpeg could not pull: {}", String::from_utf8_lossy(&pulled.stderr));
    });
    judge(&out, rung, "pulled from the listener");
    assert!(!logs.contains(PASSPHRASE), "the passphrase in the log:\n{logs}");
}

/// The wall-clock time at the start of a log line (`2026-12-02T00:35:44.299389Z ...`).
fn logged_at(line: &str) -> Option<std::time::SystemTime> {
    humantime::parse_rfc3339(line.split_whitespace().next()?).ok()
}

#[test]
fn a_receiver_killed_and_restarted_on_its_port_gets_the_stream_back_at_once_on_the_same_timeline() {
    if !libsrt_here() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let rung = if emulated() { ("r180", 320, 180, 300) } else { LADDER[0] };
    let mut before = SrtReceiver::start(Kind::Ffmpeg, dir.path(), "before", Some(PASSPHRASE));
    let port = before.port;
    let config = format!(
        "[source]\nkind = \"test\"\nwidth = {w}\nheight = {h}\npattern = \"ball\"\n[ladder]\ngop_seconds = 1\n\
         rungs = [{{ name = \"{n}\", width = {w}, height = {h}, bitrate_kbps = {k} }}]\n[recording]\nenabled = false\n{srt}",
        n = rung.0,
        w = rung.1,
        h = rung.2,
        k = rung.3,
        srt = srt_destination("channel", &before.url(), rung.0, PASSPHRASE),
    );
    // Adaptive bitrate is on (the default): the dead receiver's growing
    // send buffer is not congestion, so the bitrate judged after the
    // restart is the rung's target.
    let mut after = None;
    let mut accepting_at = None;
    let logs = run_fieldcast(dir.path(), &config, if emulated() { 26 } else { 20 }, || {
        // ffmpeg probes its input for up to 5 s before it writes a byte
        // (and under qemu the stream takes a few seconds to start).
        std::thread::sleep(Duration::from_secs(if emulated() { 12 } else { 8 }));
        assert!(before.is_running(), "the SRT receiver ended early:\n{}", before.log());
        before.kill();
        // Gone for 2 s: several connect attempts meet nobody.
        std::thread::sleep(Duration::from_secs(2));
        let spawned = std::time::SystemTime::now();
        let r = SrtReceiver::start_on(Kind::Ffmpeg, port, dir.path(), "after", Some(PASSPHRASE));
        // When it accepts: its bind, seen in the kernel's table (polled;
        // if it is there already, the spawn: an upper bound on the delay).
        let bound_already = udp_bound(port);
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while !udp_bound(port) {
            assert!(std::time::Instant::now() < deadline, "the restarted receiver never bound its port");
            std::thread::sleep(Duration::from_millis(2));
        }
        accepting_at = Some(if bound_already { spawned } else { std::time::SystemTime::now() });
        after = Some(r);
    });
    let mut after = after.unwrap();
    after.finish();
    before.finish();
    let accepting_at = accepting_at.unwrap();
    let reconnected = logs
        .lines()
        .filter(|l| l.contains("connected; media starts"))
        .filter_map(logged_at)
        .find(|t| *t > accepting_at)
        .unwrap_or_else(|| panic!("no connection after the receiver came back; log:\n{logs}"));
    let delay = reconnected.duration_since(accepting_at).unwrap_or_default();
    eprintln!("SRT: connected {} ms after the restarted receiver bound its port", delay.as_millis());
    let attempts = logs.lines().filter(|l| l.contains("reconnecting") || l.contains("connected;")).collect::<Vec<_>>();
    eprintln!("its attempts meanwhile:\n{}", attempts.join("\n"));
    // ffmpeg binds its port a little before it answers handshakes, so this
    // bound is looser than the 0.5 s that
    // `every_rung_on_one_listener_comes_back_within_half_a_second_of_a_restart_at_one_idr`
    // holds to (its listener says when it listens).
    let bound = if emulated() { Duration::from_millis(2000) } else { Duration::from_millis(1000) };
    assert!(delay <= bound, "SRT reconnected {delay:?} after the receiver came back (bound {bound:?}); log:\n{logs}");
    // The receiver that was killed left a file cut mid-packet: its keyframes only.
    let k1: Vec<f64> = video_packets(&before.out).iter().filter(|p| p.keyframe).map(|p| p.pts).collect();
    assert!(k1.len() >= 2, "before the restart: keyframes {k1:?}");
    let k2 = judge(&after.out, rung, "after the restart");
    let (last, first) = (*k1.last().unwrap(), k2[0]);
    assert!(first > last, "the timeline went back: {first} after {last}");
    // The grid goes on: the first keyframe after the restart is a whole number of GOPs later.
    let gops = first - last;
    assert!((gops - gops.round()).abs() < 0.01 && gops.round() >= 2.0, "keyframe grid broken across the restart: {last} -> {first}");
    assert!(!logs.contains(PASSPHRASE), "the passphrase in the log:\n{logs}");
    assert_ladder_untouched(&logs);
}

/// The adaptive bitrate never moved the ladder (each change is logged).
fn assert_ladder_untouched(logs: &str) {
    let moved: Vec<&str> = logs.lines().filter(|l| l.contains("adaptive bitrate: the ladder at")).collect();
    assert!(moved.is_empty(), "a receiver that went away moved the whole ladder:\n{}", moved.join("\n"));
}

/// tests/tools/srt_listener.py: one libsrt listener taking every rung's
/// caller on one port (each with its stream id), writing a file per
/// connection, its events (`listening`, `accepted <id> <n>`) on stdout.
struct MultiListener {
    child: std::process::Child,
    events: std::path::PathBuf,
}

impl MultiListener {
    fn start(port: u16, dir: &Path, name: &str) -> MultiListener {
        let out = dir.join(name);
        std::fs::create_dir_all(&out).unwrap();
        let events = dir.join(format!("{name}.events"));
        let child = std::process::Command::new("python3")
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/tools/srt_listener.py"))
            .arg(port.to_string())
            .arg(&out)
            .arg(PASSPHRASE)
            .stdout(std::fs::File::create(&events).unwrap())
            .stderr(std::fs::File::create(dir.join(format!("{name}.stderr"))).unwrap())
            .spawn()
            .expect("start tests/tools/srt_listener.py");
        let me = MultiListener { child, events };
        let up = common::wait_for(Duration::from_secs(10), || me.event_time("listening").is_some());
        assert!(up, "the SRT listener did not start: {:?}", std::fs::read_to_string(dir.join(format!("{name}.stderr"))));
        me
    }

    /// The time of the first event line starting with `prefix`.
    fn event_time(&self, prefix: &str) -> Option<f64> {
        let text = std::fs::read_to_string(&self.events).unwrap_or_default();
        text.lines().find(|l| l.starts_with(prefix)).and_then(|l| l.split_whitespace().last()?.parse().ok())
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for MultiListener {
    fn drop(&mut self) {
        self.kill();
    }
}

#[test]
fn every_rung_on_one_listener_comes_back_within_half_a_second_of_a_restart_at_one_idr() {
    if !libsrt_here() {
        return;
    }
    if emulated() {
        // Measured under qemu: every rung back 0.30-0.31 s after the
        // listener, but the 360p rung's first GOP after the restart arrived
        // with frames missing (qemu encodes two rungs barely in real time);
        // the single-rung restart test below runs there.
        eprintln!("SKIPPED under emulation: covered by the native run");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let port = common::srt::free_udp_port();
    let mut before = MultiListener::start(port, dir.path(), "before");
    // Every rung on one URL: the stream id (default `{rung}`) tells them apart.
    let config = format!(
        "{}[[destination]]\nname = \"channel\"\nurl = \"srt://127.0.0.1:{port}\"\npassphrase = \"{PASSPHRASE}\"\nlatency_ms = 500\n",
        ladder_toml()
    );
    let mut after = None;
    let logs = run_fieldcast(dir.path(), &config, 18, || {
        std::thread::sleep(Duration::from_secs(7));
        before.kill();
        // Gone for 2 s: connect attempts meet nobody.
        std::thread::sleep(Duration::from_secs(2));
        after = Some(MultiListener::start(port, dir.path(), "after"));
    });
    let mut after = after.unwrap();
    after.kill();
    before.kill();
    let accepting = after.event_time("listening").unwrap();
    let mut delays = Vec::new();
    for (rung, ..) in LADDER {
        let at = after.event_time(&format!("accepted {rung} 1")).unwrap_or_else(|| panic!("{rung} never came back; log:\n{logs}"));
        delays.push((rung, at - accepting));
    }
    eprintln!("SRT, one listener, every rung: connected again {:?} s after the restarted listener was up", delays);
    let bound = 0.5;
    for (rung, d) in &delays {
        assert!(*d <= bound, "{rung} connected {d:.3} s after the listener was back (bound {bound} s); log:\n{logs}");
    }
    // Before and after: every rung whole, at the same keyframes; after the
    // restart all of them resume at one IDR of the grid.
    let mut firsts = Vec::new();
    for (name, part) in [("before", &before), ("after", &after)] {
        let _ = part;
        let mut keys = Vec::new();
        for rung in LADDER {
            let file = dir.path().join(name).join(format!("{}-1.ts", rung.0));
            if name == "before" {
                // Killed mid-packet: its keyframes only.
                keys.push((format!("{name}/{}", rung.0), video_packets(&file).iter().filter(|p| p.keyframe).map(|p| p.pts).collect::<Vec<_>>()));
            } else {
                keys.push((format!("{name}/{}", rung.0), judge(&file, *rung, &format!("{name}/{}", rung.0))));
            }
        }
        assert_aligned(&keys);
        firsts.push(keys.iter().map(|(_, k)| k[0]).collect::<Vec<_>>());
    }
    let after_firsts = &firsts[1];
    assert!(after_firsts.iter().all(|t| (t - after_firsts[0]).abs() < 0.002), "the rungs resumed at different keyframes: {after_firsts:?}");
    assert!(!logs.contains(PASSPHRASE), "the passphrase in the log:\n{logs}");
    assert_ladder_untouched(&logs);
}

#[test]
fn an_srt_failover_standby_is_probed_without_taking_its_receiver_and_one_that_is_down_is_a_warning() {
    if !libsrt_here() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let rung = if emulated() { ("r180", 320, 180, 300) } else { LADDER[1] };
    let mut primary = SrtReceiver::start(Kind::Ffmpeg, dir.path(), "primary", Some(PASSPHRASE));
    let backup_port = common::srt::free_udp_port();
    let config = format!(
        "[source]\nkind = \"test\"\nwidth = {w}\nheight = {h}\npattern = \"ball\"\n[ladder]\ngop_seconds = 1\n\
         rungs = [{{ name = \"{n}\", width = {w}, height = {h}, bitrate_kbps = {k} }}]\n[recording]\nenabled = false\n\
         [[destination]]\nname = \"channel\"\nurl = \"{url}\"\nbackup_url = \"srt://127.0.0.1:{backup_port}\"\n\
         redundancy = \"failover\"\nfailover_after_ms = 1000\npassphrase = \"{PASSPHRASE}\"\nlatency_ms = 500\n",
        n = rung.0,
        w = rung.1,
        h = rung.2,
        k = rung.3,
        url = primary.url(),
    );
    let log_file = dir.path().join("fieldcast.log");
    let log_now = || std::fs::read_to_string(&log_file).unwrap_or_default();
    let mut backup = None;
    let mut backup_alive_before_switch = false;
    // Under qemu the steps below take longer (a start of seconds, each wait
    // near its bound): the run is long enough for the backup to stream after them.
    let seconds = if emulated() { 40 } else { 24 };
    let logs = run_fieldcast(dir.path(), &config, seconds, || {
        // Nobody on the backup's port: a warning, the primary streaming.
        let down = common::wait_for(Duration::from_secs(8), || log_now().contains("the failover standby endpoint is down"));
        assert!(down, "no warning for a standby that is down; log:\n{}", log_now());
        // The backup's receiver starts: probed several times, never taken.
        let mut b = SrtReceiver::start_on(Kind::Ffmpeg, backup_port, dir.path(), "backup", Some(PASSPHRASE));
        let back = common::wait_for(Duration::from_secs(8), || log_now().contains("the failover standby endpoint is reachable again"));
        assert!(back, "the standby never came back; log:\n{}", log_now());
        // Reachable: probed every 3 s; two more probes pass meanwhile.
        std::thread::sleep(Duration::from_secs(7));
        backup_alive_before_switch = b.is_running();
        // The primary's receiver dies: the destination fails over to the backup.
        primary.kill();
        let switched = common::wait_for(Duration::from_secs(10), || log_now().contains("switching the destination to the other one"));
        assert!(switched, "no failover within 10 s of the primary's end; log:\n{}", log_now());
        // Streams there for a few seconds before the run ends.
        std::thread::sleep(Duration::from_secs(4));
        backup = Some(b);
    });
    let mut backup = backup.unwrap();
    backup.finish();
    assert!(backup_alive_before_switch, "a probe took the backup receiver's one caller slot:\n{}", backup.log());
    assert!(logs.contains("switching the destination to the other one"), "no failover; log:\n{logs}");
    judge(&backup.out, rung, "the backup after the failover");
    let warned = |endpoint: &str| {
        logs.lines().filter(|l| l.contains("the failover standby endpoint is down") && l.contains(&format!("endpoint=\"{endpoint}\""))).count()
    };
    assert_eq!(warned("backup"), 1, "the backup's warning is said once; log:\n{logs}");
    // After the switch the dead primary is the standby: down, a warning too.
    assert_eq!(warned("primary"), 1, "the dead primary, now the standby, is not reported down; log:\n{logs}");
    assert!(!logs.contains(PASSPHRASE), "the passphrase in the log:\n{logs}");
}

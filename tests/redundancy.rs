//! Primary and backup ingest, against two real nginx-rtmp channels:
//! `failover` switches every rung to the backup once the primary has been
//! failing for `failover_after_ms`, and never back while the backup works;
//! `both` pushes identical copies, keyframe for keyframe. A failover
//! standby that is down is a warning in telemetry, not a degradation.

mod common;

use common::device::{emulated, flv_has_video_frame};
use common::ffprobe::video_packets;
use common::http::request;
use common::nginx::{Nginx, NginxOptions};
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

const RUNGS: [&str; 2] = ["r360", "r180"];

fn config(dir: &Path, primary: &Nginx, backup: &Nginx, extra: &str) -> std::path::PathBuf {
    config_with(dir, primary, backup, extra, common::NO_HTTP)
}

/// As [`config`], with `tail` (e.g. an `[http]` section) at the end.
fn config_with(dir: &Path, primary: &Nginx, backup: &Nginx, extra: &str, tail: &str) -> std::path::PathBuf {
    let path = dir.join("config.toml");
    let (w, h) = if emulated() { (320, 180) } else { (640, 360) };
    std::fs::write(
        &path,
        format!(
            "[source]\nwidth = {w}\nheight = {h}\n[ladder]\ngop_seconds = 1\nrungs = [\
             {{ name = \"r360\", width = {w}, height = {h}, bitrate_kbps = 600 }}, \
             {{ name = \"r180\", width = 320, height = 180, bitrate_kbps = 300 }}]\n\
             [recording]\nenabled = false\n[egress]\nconnect_timeout_ms = 2000\n\
             [[destination]]\nname = \"channel\"\nurl = \"{}\"\nbackup_url = \"{}\"\nstream = \"{{rung}}\"\n{extra}\n",
            primary.rtmp_url("live"),
            backup.rtmp_url("live"),
        ) + tail,
    )
    .unwrap();
    path
}

fn spawn(config: &Path, seconds: u32, log: &Path) -> Child {
    common::fieldcast_command()
        .args(["run", "--config", config.to_str().unwrap(), "--duration", &seconds.to_string()])
        .env("FIELDCAST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap()
}

fn all_have_video(n: &Nginx) -> bool {
    RUNGS.iter().all(|r| n.recordings(r).last().is_some_and(|f| flv_has_video_frame(f)))
}

#[test]
fn failover_switches_every_rung_to_the_backup_and_never_flaps_back() {
    let dir = tempfile::tempdir().unwrap();
    let mut primary = Nginx::start_with(NginxOptions { file_per_publish: true, ..Default::default() });
    let backup = Nginx::start_with(NginxOptions { file_per_publish: true, ..Default::default() });
    let cfg = config(dir.path(), &primary, &backup, "redundancy = \"failover\"\nfailover_after_ms = 2000");
    let log = dir.path().join("fieldcast.log");
    let mut child = spawn(&cfg, 40, &log);
    let text = || std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        common::wait_for(Duration::from_secs(20), || all_have_video(&primary)),
        "the primary got no ladder: {}",
        text()
    );
    assert!(RUNGS.iter().all(|r| backup.recordings(r).is_empty()), "failover pushed to the standby too");

    // The primary dies: within failover_after_ms + 2 s the backup has the whole ladder.
    primary.stop();
    let killed = Instant::now();
    let switched = common::wait_for(Duration::from_secs(4), || all_have_video(&backup));
    let took = killed.elapsed();
    assert!(switched, "the backup did not get the ladder within 4 s: {}", text());
    eprintln!("MEASURED failover: the backup had every rung {} ms after the primary died", took.as_millis());
    assert!(text().contains("switching the destination to the other one"), "{}", text());

    // The primary comes back: no switch back while the backup works.
    let before: Vec<usize> = RUNGS.iter().map(|r| primary.recordings(r).len()).collect();
    primary.restart();
    std::thread::sleep(Duration::from_secs(6));
    let after: Vec<usize> = RUNGS.iter().map(|r| primary.recordings(r).len()).collect();
    assert_eq!(before, after, "the box flapped back to the primary: {}", text());
    let per_rung: Vec<usize> = RUNGS.iter().map(|r| backup.recordings(r).len()).collect();
    assert_eq!(per_rung, [1, 1], "the backup publishes were interrupted: {}", text());
    // A standby primary is not a degradation: the last state names no output
    // (on a loaded machine it may say the capture is not keeping real time).
    let log_text = text();
    let last = log_text.lines().rev().find(|l| l.contains("INFO state state=")).unwrap_or_default();
    assert!(!last.contains("channel/"), "last state {last:?}:\n{log_text}");
    common::kill(child.id(), nix::sys::signal::Signal::SIGTERM);
    assert!(common::wait_child(&mut child, Duration::from_secs(20)));
}

#[test]
fn both_pushes_identical_copies_keyframe_for_keyframe() {
    let dir = tempfile::tempdir().unwrap();
    let a = Nginx::start();
    let b = Nginx::start();
    let cfg = config(dir.path(), &a, &b, "redundancy = \"both\"");
    let log = dir.path().join("fieldcast.log");
    let mut child = spawn(&cfg, 8, &log);
    assert!(common::wait_child(&mut child, Duration::from_secs(40)));
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    for rung in RUNGS {
        let (ka, kb): (Vec<f64>, Vec<f64>) = (keyframes(&a.recording(rung)), keyframes(&b.recording(rung)));
        assert!(ka.len() >= 5, "{rung}: {} keyframes at the primary: {text}", ka.len());
        let n = ka.len().min(kb.len());
        assert!(ka.len().abs_diff(kb.len()) <= 1, "{rung}: {} vs {} keyframes", ka.len(), kb.len());
        // nginx rebases each recording to its first tag: equal lists mean the
        // same first IDR and the same timestamps after it.
        for i in 0..n {
            assert!((ka[i] - kb[i]).abs() < 0.002, "{rung}: keyframe {i} at {} vs {}", ka[i], kb[i]);
        }
        let (va, vb) = (video_packets(&a.recording(rung)).len(), video_packets(&b.recording(rung)).len());
        assert!(va.abs_diff(vb) <= 30, "{rung}: {va} vs {vb} frames");
    }
}

fn keyframes(file: &Path) -> Vec<f64> {
    video_packets(file).iter().filter(|p| p.keyframe).map(|p| p.pts).collect()
}

const TOKEN: &str = "redundancy-test-token-0123456789";

/// The latest telemetry document from the HTTP API, once there is one.
fn telemetry(port: u16) -> Option<serde_json::Value> {
    let auth = format!("Bearer {TOKEN}");
    let r = request(port, "GET", "/api/v1/telemetry", &[("Authorization", &auth)], None).ok()?;
    (r.status == 200).then(|| r.json())
}

/// The outputs of `endpoint` in a telemetry document.
fn outputs<'a>(t: &'a serde_json::Value, endpoint: &str) -> Vec<&'a serde_json::Value> {
    t["destinations"].as_array().map(|d| d.iter().filter(|o| o["endpoint"] == endpoint).collect()).unwrap_or_default()
}

/// Every rung live on the primary, every backup output a standby with (or without) the warning.
fn standby_shows(t: &serde_json::Value, down: bool) -> bool {
    let (primary, backup) = (outputs(t, "primary"), outputs(t, "backup"));
    primary.len() == RUNGS.len()
        && primary.iter().all(|o| o["state"] == "connected")
        && backup.len() == RUNGS.len()
        && backup.iter().all(|o| o["state"] == "standby" && (o["warning"] == "standby_down") == down)
}

#[test]
fn a_failover_standby_that_is_down_is_a_warning_not_a_degradation_and_clears_when_it_comes_back() {
    let dir = tempfile::tempdir().unwrap();
    let mut primary = Nginx::start_with(NginxOptions { file_per_publish: true, ..Default::default() });
    let mut backup = Nginx::start_with(NginxOptions { file_per_publish: true, ..Default::default() });
    backup.stop();
    let port = common::free_port();
    let http = format!("\n[http]\nlisten = \"127.0.0.1:{port}\"\ntoken = \"{TOKEN}\"\n");
    let cfg = config_with(dir.path(), &primary, &backup, "redundancy = \"failover\"\nfailover_after_ms = 2000", &http);
    let log = dir.path().join("fieldcast.log");
    let mut child = spawn(&cfg, 90, &log);
    let text = || std::fs::read_to_string(&log).unwrap_or_default();
    let slow = if emulated() { 3 } else { 1 };

    // Backup down from the start: the warning shows, the box stays live, the primary streams.
    assert!(
        common::wait_for(Duration::from_secs(20 * slow), || all_have_video(&primary)),
        "no ladder at the primary: {}",
        text()
    );
    let streaming = Instant::now();
    let mut last = None;
    let shown = common::wait_for(Duration::from_secs(12 * slow), || {
        last = telemetry(port);
        last.as_ref().is_some_and(|t| t["state"] == "live" && standby_shows(t, true))
    });
    assert!(shown, "no standby_down warning on a live box; telemetry {last:#?}\n{}", text());
    eprintln!(
        "MEASURED standby down: warning in telemetry {} ms after the primary had the ladder",
        streaming.elapsed().as_millis()
    );
    let t = last.clone().unwrap();
    assert!(
        outputs(&t, "primary").iter().all(|o| o.get("warning").is_none()),
        "the active endpoint has no warning: {t:#}"
    );
    let down_lines = || text().lines().filter(|l| l.contains("the failover standby endpoint is down")).count();
    assert_eq!(down_lines(), 1, "the standby going down is logged once: {}", text());
    let line = text().lines().find(|l| l.contains("the failover standby endpoint is down")).unwrap().to_owned();
    eprintln!("the log says: {line}");
    assert!(line.contains("endpoint=\"backup\"") || line.contains("endpoint=backup"), "{line}");
    assert!(RUNGS.iter().all(|r| backup.recordings(r).is_empty()), "a probe published to the standby");
    let metrics =
        request(port, "GET", "/metrics", &[("Authorization", &format!("Bearer {TOKEN}"))], None).unwrap().text();
    assert!(
        metrics.lines().any(|l| l.starts_with("fieldcast_output_standby_down{")
            && l.contains("endpoint=\"backup\"")
            && l.ends_with(" 1.0")),
        "{metrics}"
    );

    // The backup comes back: the warning clears, still a standby.
    backup.restart();
    let back = Instant::now();
    let cleared = common::wait_for(Duration::from_secs(20 * slow), || {
        last = telemetry(port);
        last.as_ref().is_some_and(|t| t["state"] == "live" && standby_shows(t, false))
    });
    assert!(cleared, "the warning did not clear; telemetry {last:#?}\n{}", text());
    eprintln!(
        "MEASURED standby back: warning cleared {} ms after the backup listened again",
        back.elapsed().as_millis()
    );
    assert_eq!(
        text().lines().filter(|l| l.contains("the failover standby endpoint is reachable again")).count(),
        1,
        "{}",
        text()
    );
    assert_eq!(down_lines(), 1, "{}", text());
    assert!(RUNGS.iter().all(|r| backup.recordings(r).is_empty()), "a probe published to the standby");

    // Failover still works: the primary dies, the backup takes the ladder.
    primary.stop();
    let killed = Instant::now();
    assert!(
        common::wait_for(Duration::from_secs(4 * slow), || all_have_video(&backup)),
        "no switch to the backup: {}",
        text()
    );
    eprintln!(
        "MEASURED failover after probing: the backup had every rung {} ms after the primary died",
        killed.elapsed().as_millis()
    );
    common::kill(child.id(), nix::sys::signal::Signal::SIGTERM);
    assert!(common::wait_child(&mut child, Duration::from_secs(20)));
}

//! Primary and backup ingest, against two real nginx-rtmp channels:
//! `failover` switches every rung to the backup once the primary has been
//! failing for `failover_after_ms`, and never back while the backup works;
//! `both` pushes identical copies, keyframe for keyframe.

mod common;

use common::device::{emulated, flv_has_video_frame};
use common::ffprobe::video_packets;
use common::nginx::{Nginx, NginxOptions};
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

const RUNGS: [&str; 2] = ["r360", "r180"];

fn config(dir: &Path, primary: &Nginx, backup: &Nginx, extra: &str) -> std::path::PathBuf {
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
        ) + common::NO_HTTP,
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
    assert!(common::wait_for(Duration::from_secs(20), || all_have_video(&primary)), "the primary got no ladder: {}", text());
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

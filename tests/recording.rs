//! Local recording: segmented files per chosen rung, each starting with a
//! keyframe and decodable; and a whole run never prints a secret.

mod common;

use common::ffprobe::{audio_packets, video_packets};
use common::nginx::Nginx;

#[test]
fn chosen_rungs_are_recorded_in_segments_that_each_start_on_a_keyframe_and_no_secret_is_logged() {
    let dir = tempfile::tempdir().unwrap();
    let nginx = Nginx::start();
    let rec = dir.path().join("rec");
    let config = dir.path().join("config.toml");
    // Under qemu-user x264 keeps real time only with small pictures (with
    // 960x540 + 640x360 the frame clock skips a second every two there).
    let (small, mid) = if common::device::emulated() { ((214, 120, 200), (426, 240, 500)) } else { ((640, 360, 700), (960, 540, 1200)) };
    std::fs::write(
        &config,
        format!(
            "[source]\nwidth = {}\nheight = {}\n\
             [ladder]\ngop_seconds = 1\nrungs = [{{ name = \"small\", width = {}, height = {}, bitrate_kbps = {} }}, {{ name = \"mid\", width = {}, height = {}, bitrate_kbps = {} }}]\n\
             [recording]\nmin_free_mb = 0\nformat = \"mkv\"\nsegment_seconds = 2\nrungs = [\"small\"]\ndir = \"{}\"\n\
             [[destination]]\nurl = \"rtmp://127.0.0.1:{}/live/t0kenSECRET?auth=p4ssSECRET\"\nstream = \"{{rung}}_{{key}}\"\nkey = \"k3ySECRET\"\n",
            mid.0,
            mid.1,
            small.0,
            small.1,
            small.2,
            mid.0,
            mid.1,
            mid.2,
            rec.display(),
            nginx.rtmp_port
        ) + common::NO_HTTP,
    )
    .unwrap();
    let out = common::fieldcast_command()
        .args(["run", "--config", config.to_str().unwrap(), "--duration", "7.5"])
        .env("NO_COLOR", "1")
        .env("FIELDCAST_LOG", "debug")
        .output()
        .expect("run fieldcast");
    let log = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{log}");
    assert!(!log.contains("SECRET"), "a secret reached the log:\n{log}");
    assert!(log.contains("rtmp://127.0.0.1"), "the destination is logged, redacted:\n{log}");

    let session = std::fs::read_dir(&rec).unwrap().next().expect("a session folder").unwrap().path();
    let mut files: Vec<_> = std::fs::read_dir(&session).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    let names: Vec<_> = files.iter().map(|f| f.file_name().unwrap().to_string_lossy().to_string()).collect();
    assert!(names.iter().all(|n| n.starts_with("small-") && n.ends_with(".mkv")), "only the chosen rung, as mkv: {names:?}");
    assert!(files.len() >= 3, "7.5 s in 2 s segments: {names:?}");
    for (i, f) in files[..files.len() - 1].iter().enumerate() {
        let v = video_packets(f);
        assert!(v.first().is_some_and(|p| p.keyframe), "{}: does not start on a keyframe", f.display());
        let span = v.last().unwrap().pts - v[0].pts;
        // Segments are cut on the running-time clock, so the first one is
        // short when the first frame came late; every later one is a whole
        // 2 s natively. Under qemu-aarch64 the recorder runs slower than real
        // time and its channel may drop to the next keyframe (the egress
        // back-pressure rule), so a later segment may lose a GOP there too.
        let shortest = if i == 0 { 0.0 } else if common::device::emulated() { 0.9 } else { 1.5 };
        assert!((shortest..=3.1).contains(&span), "{}: a {span} s segment", f.display());
        assert!(!audio_packets(f).is_empty(), "{}: no audio", f.display());
    }
}

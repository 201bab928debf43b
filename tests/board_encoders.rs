//! Every board profile drives its encoder for real where the element exists
//! on this machine: a short run through `board = "<name>"`, judged by ffprobe
//! on the recording. Boards whose hardware encoder is absent here are
//! skipped, and the test says which.

mod common;

use common::ffprobe::video_packets;

/// Asks the binary under test (not gst-inspect-1.0, which under QEMU would
/// look at the host's plugins) which encoder elements it can create.
fn available_encoders() -> String {
    let out = common::fieldcast_command().arg("probe").output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn element_exists(probe: &str, name: &str) -> bool {
    probe.lines().any(|l| l.split_whitespace().collect::<Vec<_>>() == ["encoder:", name, "available"])
}

#[test]
fn each_board_profile_encodes_with_its_element_or_is_skipped_with_a_reason() {
    let mut ran = Vec::new();
    let probe = available_encoders();
    for entry in std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/board")).unwrap() {
        let path = entry.unwrap().path();
        let profile: toml::Table = std::fs::read_to_string(&path).unwrap().parse().unwrap();
        let name = profile["name"].as_str().unwrap().to_string();
        let element = profile["encoder"]["element"].as_str().unwrap().to_string();
        if !element_exists(&probe, &element) {
            eprintln!("SKIP board `{name}`: encoder element `{element}` is not on this machine (needs the board)");
            continue;
        }
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("config.toml");
        std::fs::write(
            &config,
            format!(
                "board = \"{name}\"\n[source]\nwidth = 640\nheight = 360\n\
                 [ladder]\ngop_seconds = 1\nrungs = [{{ width = 640, height = 360, bitrate_kbps = 600 }}, {{ width = 320, height = 180, bitrate_kbps = 250 }}]\n\
                 [recording]\nmin_free_mb = 0\ndir = \"{}\"\n",
                dir.path().join("rec").display()
            ) + common::NO_HTTP,
        )
        .unwrap();
        // The run's clock starts before the pipeline does: under qemu-user the
        // start (plugin load, negotiation) takes seconds of it, so the run
        // is longer there. Either way at least 3 s of pictures must come out.
        let duration = if common::device::emulated() { "7" } else { "3.5" };
        let out = common::fieldcast_command().args(["run", "--config", config.to_str().unwrap(), "--duration", duration]).output().unwrap();
        let log = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "board {name}:\n{log}");
        let session = std::fs::read_dir(dir.path().join("rec"))
            .ok()
            .and_then(|mut d| d.next())
            .unwrap_or_else(|| panic!("board {name}: no recording session folder:\n{log}"))
            .unwrap()
            .path();
        for rung in ["360p", "180p"] {
            let file = session.join(format!("{rung}-00000.mp4"));
            let pk = video_packets(&file);
            assert!(pk.len() >= 75, "board {name} rung {rung}: {} frames in a {duration} s run", pk.len());
            let keys: Vec<f64> = pk.iter().filter(|p| p.keyframe).map(|p| p.pts).collect();
            assert!(keys.len() >= 3, "board {name} rung {rung}: keyframes {keys:?} (GOP 1 s)");
        }
        eprintln!("board `{name}` encoded with `{element}`");
        ran.push(name);
    }
    assert!(ran.contains(&"generic".to_string()), "the generic board (x264enc) must run everywhere");
}

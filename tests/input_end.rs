//! The end of a file or FIFO input is not the end of the box: it is input
//! loss. The box stays `live` on the same publish (the slate on the air,
//! status `input.signal: false`), reopens the input itself and the live
//! picture returns when the feeder does; a FIFO with no feeder at all at
//! the start waits in `error`. Unless the config says the file is a
//! one-shot (`at_end = "stop"`), which ends the run cleanly.

mod common;

use common::camera::{mean_abs_diff, thumbnails};
use common::device::Device;
use common::mosquitto::Mosquitto;
use common::mqtt::Watcher;
use common::nginx::{Nginx, NginxOptions};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const T: Duration = Duration::from_secs(30);
const INPUT_ENDED: &str = "input ended: reopening it";

/// ffmpeg writing live Y4M into `fifo`: `seconds` of it once, or (None) forever,
/// restarted whenever a reader closes the pipe (as the format probe does).
fn feeder(fifo: &Path, seconds: Option<u32>) -> Child {
    let write = |t: &str| {
        format!(
            "ffmpeg -v quiet -re -f lavfi -i testsrc2=size=640x360:rate=30 {t} -pix_fmt yuv420p -f yuv4mpegpipe -y '{}'",
            fifo.display()
        )
    };
    // A reader that looks and leaves (the feeder check, the format probe)
    // ends a writer, so the feeder writes in a loop; with `seconds`, each run
    // lasts that long and the loop ends once `last_run` is called (the run
    // going on then is the last: its end is the input's end).
    let script = match seconds {
        Some(s) => format!("while [ ! -e '{}' ]; do {}; sleep 0.1; done", last_run_marker(fifo).display(), write(&format!("-t {s}"))),
        None => format!("while :; do {}; sleep 0.1; done", write("-t 600")),
    };
    Command::new("sh").args(["-c", &script]).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap()
}

fn last_run_marker(fifo: &Path) -> std::path::PathBuf {
    fifo.with_extension("last-run")
}

/// The feeder's current run is its last: when it ends, the input ends.
fn last_run(fifo: &Path) {
    std::fs::write(last_run_marker(fifo), b"").unwrap();
}

fn stop_feeder(mut f: Child, fifo: &Path) {
    let _ = f.kill();
    let _ = Command::new("pkill").args(["-9", "-f", &format!("yuv4mpegpipe -y {}", fifo.display())]).status();
    let _ = f.wait();
}

fn config(dir: &Path, source: &str, extra: &str, rtmp: &str) -> std::path::PathBuf {
    let path = dir.join("config.toml");
    std::fs::write(
        &path,
        format!(
            "device_id = \"cam\"\nstate_dir = \"{}\"\n[source]\nkind = \"file\"\n{source}\n[audio]\nsource = \"test\"\n\
             [ladder]\ngop_seconds = 1\nrungs = [{{ name = \"360p\", width = 640, height = 360, bitrate_kbps = 500 }}]\n\
             [recording]\nenabled = false\n[[destination]]\nurl = \"{rtmp}\"\nstream = \"{{rung}}\"\n{extra}",
            dir.join("state").display()
        ) + common::NO_HTTP,
    )
    .unwrap();
    path
}

fn status(w: &Watcher, pred: impl Fn(&serde_json::Value) -> bool) -> Option<serde_json::Value> {
    w.wait_json(T, "fieldcast/cam/status", pred)
}

#[test]
fn a_fifo_whose_feeder_ends_stays_live_on_the_slate_and_the_same_publish_until_the_feeder_returns() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("camera.y4m");
    assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let mosquitto = Mosquitto::start();
    let nginx = Nginx::start_with(NginxOptions { file_per_publish: true, ..Default::default() });
    let cfg = config(
        dir.path(),
        &format!("path = \"{}\"", fifo.display()),
        &format!("[mqtt]\nbroker = \"{}\"\nautostart = true\nkeepalive_seconds = 5\n", mosquitto.url()),
        &nginx.rtmp_url("live"),
    );
    let dash = Watcher::connect(&mosquitto.url(), None, None, "fieldcast/cam/#");
    // No feeder yet: the box comes up, connected, and says it waits for its input.
    let mut device = Device::spawn(&cfg, &dir.path().join("fieldcast.log"));
    let waiting = status(&dash, |v| v["online"] == true && v["state"] == "error" && v["reason"] == INPUT_ENDED);
    assert!(waiting.is_some(), "no error state naming the input: {}", device.log_text());

    let first = feeder(&fifo, Some(4));
    assert!(status(&dash, |v| v["state"] == "live" && v["input"]["signal"] == true).is_some(), "never live: {}", device.log_text());
    last_run(&fifo);
    dash.clear();
    // The feeder's stream ends: input loss, the box stays live on the slate.
    let lost = status(&dash, |v| v["state"] == "live" && v["input"]["signal"] == false && v["input"]["slate"] == true);
    assert!(lost.is_some(), "the end of the input did not show as input loss: {}", device.log_text());
    std::thread::sleep(Duration::from_secs(3));
    assert!(device.alive(), "the process exited at the end of its input: {}", device.log_text());
    let statuses: Vec<serde_json::Value> = dash.on("fieldcast/cam/status").iter().filter_map(|m| m.json()).collect();
    assert!(statuses.iter().all(|v| v["online"] == true && v["state"] == "live"), "left live: {statuses:#?}");
    stop_feeder(first, &fifo);

    // The feeder returns: the live picture is back on the same publish.
    let second = feeder(&fifo, None);
    let back = status(&dash, |v| v["state"] == "live" && v["input"]["signal"] == true);
    assert!(back.is_some(), "the input never came back: {}", device.log_text());
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(nginx.recordings("360p").len(), 1, "the publish was restarted: {}", device.log_text());
    assert_eq!(device.log_text().matches("session started").count(), 1, "the session restarted: {}", device.log_text());
    assert_eq!(device.stop().and_then(|s| s.code()), Some(0), "{}", device.log_text());
    stop_feeder(second, &fifo);
}

/// Three seconds (90 frames) of a moving 360p30 picture in `name`: an MP4
/// (decoded through decodebin) or a raw Y4M file (read straight into the
/// Y4M decoder in large blocks).
fn clip(dir: &Path, name: &str) -> std::path::PathBuf {
    let clip = dir.join(name);
    let codec: &[&str] = if name.ends_with(".y4m") { &["-pix_fmt", "yuv420p"] } else { &["-c:v", "libx264", "-preset", "ultrafast"] };
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-f", "lavfi", "-i", "testsrc2=size=640x360:rate=30:duration=3"])
        .args(codec)
        .arg("-y")
        .arg(&clip)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    clip
}

#[test]
fn standalone_a_one_shot_file_ends_the_run_cleanly_and_a_default_file_is_reopened() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["clip.mp4", "clip.y4m"] {
        let clip = clip(dir.path(), name);
        let nginx = Nginx::start_with(NginxOptions { file_per_publish: true, ..Default::default() });

        let one_shot = config(dir.path(), &format!("path = \"{}\"\nat_end = \"stop\"", clip.display()), "", &nginx.rtmp_url("live"));
        let out = common::run_with_timeout(common::fieldcast_command().args(["run", "--config", one_shot.to_str().unwrap()]).env("FIELDCAST_LOG", "info"), T);
        let log = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{name}: a one-shot file ends the run with 0:\n{log}");
        assert!(log.contains("source ended"), "{name}: {log}");
        // The file's end reached the channel: its last picture is the
        // file's last frame (the stop once came before the frame clock had
        // sent it).
        let recorded = nginx.recordings("360p");
        assert_eq!(recorded.len(), 1, "{name}: {recorded:?}");
        let (sent, got) = (thumbnails(&clip), thumbnails(&recorded[0]));
        let last = got.last().unwrap_or_else(|| panic!("{name}: no frame at the channel"));
        let nearest = (0..sent.len()).min_by(|a, b| mean_abs_diff(last, &sent[*a]).total_cmp(&mean_abs_diff(last, &sent[*b]))).unwrap();
        assert_eq!(nearest, sent.len() - 1, "{name}: the channel's last picture is the file's frame {nearest} of {}\n{log}", sent.len());
        // And each frame once, where the box keeps real time (under
        // emulation the frame clock repeats frames the slow capture missed).
        if !common::device::emulated() {
            assert_eq!(got.len(), sent.len(), "{name}: of the file's {} frames at the channel\n{log}", sent.len());
            assert!(!log.contains("repeated the previous frame"), "{name}: a frame of the file was repeated:\n{log}");
        }

        // Default (`reopen`): the run outlives the 3 s file, playing it again
        // inside the same session (the outputs never stop).
        // Under emulation the 3 s clip plays in about 5 s (decoding runs
        // slower than real time), so the run lasts longer there.
        let reopen = config(dir.path(), &format!("path = \"{}\"", clip.display()), "", &nginx.rtmp_url("live"));
        let secs = if common::device::emulated() { "20" } else { "10" };
        let out = common::run_with_timeout(
            common::fieldcast_command().args(["run", "--config", reopen.to_str().unwrap(), "--duration", secs]).env("FIELDCAST_LOG", "info"),
            T + Duration::from_secs(20),
        );
        let log = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{name}: {log}");
        assert!(log.matches("source ended: reopening it").count() >= 2, "{name}: the file was not reopened (twice in {secs} s):\n{log}");
        assert_eq!(log.matches("session started").count(), 1, "{name}: the session restarted:\n{log}");
        assert!(!log.contains(INPUT_ENDED), "{name}: {log}");
    }
}

//! `live` means frames reach the channel in real time: an input beyond what
//! the board can capture is refused by the plan, one that passes the plan
//! but does not keep real time is `degraded` with the measured rate, and a
//! lost input stays `live` (the outputs carry the slate) and says so until
//! frames return.

mod common;

use common::nginx::Nginx;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

fn write_config(dir: &Path, source: &str, rtmp: &str) -> std::path::PathBuf {
    let path = dir.join("config.toml");
    std::fs::write(
        &path,
        format!(
            "state_dir = \"{}\"\n[source]\n{source}\n[audio]\nsource = \"test\"\n\
             [ladder]\ngop_seconds = 1\nrungs = [{{ name = \"360p\", width = 640, height = 360, bitrate_kbps = 500 }}]\n\
             [recording]\nenabled = false\n[[destination]]\nurl = \"{rtmp}\"\nstream = \"{{rung}}\"\n",
            dir.join("state").display()
        ) + common::NO_HTTP,
    )
    .unwrap();
    path
}

/// Runs fieldcast in the background, collecting its log.
fn spawn(config: &Path, seconds: &str) -> (std::process::Child, Arc<Mutex<String>>, std::thread::JoinHandle<()>) {
    let mut child = common::fieldcast_command()
        .args(["run", "--config", config.to_str().unwrap(), "--duration", seconds])
        .env("FIELDCAST_LOG", "info")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let log = Arc::new(Mutex::new(String::new()));
    let (l, stderr) = (log.clone(), child.stderr.take().unwrap());
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let mut l = l.lock().unwrap();
            l.push_str(&line);
            l.push('\n');
        }
    });
    (child, log, reader)
}

#[test]
fn an_input_beyond_the_boards_capture_budget_is_refused_before_anything_starts() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "width = 7680\nheight = 4320\nfps = 120", "rtmp://127.0.0.1:1/live");
    let out = common::fieldcast_command().args(["check-config", config.to_str().unwrap()]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(78), "{text}");
    assert!(text.contains("source: capturing and scaling this input needs 4008 Mpixel/s"), "{text}");
}

#[test]
fn a_box_that_does_not_keep_real_time_says_degraded_with_the_measured_rate() {
    let dir = tempfile::tempdir().unwrap();
    let nginx = Nginx::start();
    // A camera that promises 30 fps and delivers 15, whatever the speed of
    // the machine: a Y4M stream that says 30 fps, written at half real time.
    // A frame every 67 ms is slow, not lost (input_loss_ms is 500). The
    // writer starts again when a reader goes (the probe reads the format
    // and closes the FIFO).
    let fifo = dir.path().join("camera.y4m");
    assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let mut feeder = common::camera::feeder_at(&fifo, 640, 360, 0.5);
    let config = write_config(dir.path(), &format!("kind = \"file\"\npath = \"{}\"", fifo.display()), &nginx.rtmp_url("live"));
    let (mut child, log, reader) = spawn(&config, "16");
    assert!(common::wait_child(&mut child, Duration::from_secs(40)), "fieldcast did not stop");
    reader.join().unwrap();
    let _ = feeder.kill();
    let _ = Command::new("pkill").args(["-9", "-f", &format!("yuv4mpegpipe -y {}", fifo.display())]).status();
    let _ = feeder.wait();
    let log = log.lock().unwrap().clone();
    assert_eq!(child.wait().unwrap().code(), Some(0), "{log}");
    let line = log.lines().find(|l| l.contains("state=\"degraded\" reason=\"not real time: capturing "));
    let line = line.unwrap_or_else(|| panic!("never degraded for not keeping real time:\n{log}"));
    let measured: f64 = line.split("capturing ").nth(1).unwrap().split(' ').next().unwrap().parse().unwrap();
    assert!((12.0..=18.0).contains(&measured), "the measured rate is not the delivered 15 fps: {line}\n{log}");
    assert!(line.contains("of 30 fps"), "{line}");
    println!("{line}");
    assert!(!log.contains("input lost"), "a slow input is not a lost one:\n{log}");
}

#[test]
fn a_lost_input_stays_live_on_the_slate_and_says_so_until_frames_return() {
    let dir = tempfile::tempdir().unwrap();
    let nginx = Nginx::start();
    let fifo = dir.path().join("camera.y4m");
    assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let writer = format!(
        "while :; do ffmpeg -v quiet -re -f lavfi -i testsrc2=size=640x360:rate=30 -t 60 -pix_fmt yuv420p -f yuv4mpegpipe -y '{}'; sleep 0.1; done",
        fifo.display()
    );
    let mut feeder = Command::new("sh").args(["-c", &writer]).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    let config = write_config(dir.path(), &format!("kind = \"file\"\npath = \"{}\"", fifo.display()), &nginx.rtmp_url("live"));
    let (mut child, log, reader) = spawn(&config, "30");
    let has = |s: &str| log.lock().unwrap().contains(s);
    assert!(common::wait_for(Duration::from_secs(20), || has("state=\"live\"")), "{}", log.lock().unwrap());
    std::thread::sleep(Duration::from_secs(2));
    // Freeze the camera: the capture gets nothing.
    let pids = Command::new("pgrep").args(["-f", &format!("yuv4mpegpipe -y {}", fifo.display())]).output().unwrap().stdout;
    let pid = String::from_utf8(pids).unwrap().split_whitespace().next().expect("the feeder runs").to_string();
    assert!(Command::new("kill").args(["-STOP", &pid]).status().unwrap().success());
    let lost = common::wait_for(Duration::from_secs(6), || has("input lost"));
    // Longer than the old 2 s "no signal" threshold: still not degraded.
    std::thread::sleep(Duration::from_secs(3));
    let _ = Command::new("kill").args(["-CONT", &pid]).status();
    assert!(lost, "input loss was not reported:\n{}", log.lock().unwrap());
    let after = log.lock().unwrap().len();
    assert!(
        common::wait_for(Duration::from_secs(10), || log.lock().unwrap()[after..].contains("input back")),
        "the input was not reported back when frames returned:\n{}",
        log.lock().unwrap()
    );
    let text = log.lock().unwrap().clone();
    assert!(!text.contains("state=\"degraded\""), "a lost input on the slate is not degraded:\n{text}");
    assert_eq!(text.matches("session started").count(), 1, "the session restarted:\n{text}");
    common::kill(child.id(), nix::sys::signal::Signal::SIGTERM);
    assert!(common::wait_child(&mut child, Duration::from_secs(20)));
    reader.join().unwrap();
    let _ = feeder.kill();
    let _ = Command::new("pkill").args(["-9", "-f", &format!("yuv4mpegpipe -y {}", fifo.display())]).status();
    let _ = feeder.wait();
}

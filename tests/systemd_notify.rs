//! fieldcast under a systemd-like supervisor: the test owns the
//! `NOTIFY_SOCKET` datagram socket, sets `WATCHDOG_USEC`, and sees READY=1,
//! STATUS= lines and periodic WATCHDOG=1. A lost input (the camera's
//! process gone, for longer than the watchdog's timeout) keeps the pings
//! coming: the slate is on the air and the capture is reopening, so systemd
//! must not restart the service. A capture stuck for good (a read that
//! never returns: the process feeding it frozen) stops them, so systemd
//! restarts it.

mod common;

use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Notifications received during `window`, with their arrival time.
fn collect(sock: &UnixDatagram, window: Duration) -> Vec<(Instant, String)> {
    let end = Instant::now() + window;
    let mut out = Vec::new();
    let mut buf = [0u8; 512];
    while Instant::now() < end {
        sock.set_read_timeout(Some((end - Instant::now()).max(Duration::from_millis(10)))).unwrap();
        if let Ok(n) = sock.recv(&mut buf) {
            out.push((Instant::now(), String::from_utf8_lossy(&buf[..n]).into_owned()));
        }
    }
    out
}

#[test]
fn the_watchdog_is_fed_through_a_long_input_loss_and_stops_only_when_the_capture_is_stuck() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("capture.y4m");
    assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    // A camera on a pipe: ffmpeg writes live Y4M into the FIFO (restarted if
    // a reader closes it, as the format probe does).
    let writer_cmd = format!(
        "while :; do ffmpeg -v quiet -re -f lavfi -i testsrc2=size=640x360:rate=30 -t 60 -pix_fmt yuv420p -f yuv4mpegpipe -y '{}'; sleep 0.1; done",
        fifo.display()
    );
    let mut writer = Command::new("sh").args(["-c", &writer_cmd]).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "state_dir = \"{}\"\n[source]\nkind = \"file\"\npath = \"{}\"\n[audio]\nsource = \"test\"\n[recording]\nmin_free_mb = 0\n\
             [ladder]\nrungs = [{{ width = 640, height = 360, bitrate_kbps = 500 }}]\n",
            dir.path().join("state").display(),
            fifo.display()
        ) + common::NO_HTTP,
    )
    .unwrap();
    let sock_path = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    let mut fieldcast = common::fieldcast_command()
        .args(["run", "--config", config.to_str().unwrap()])
        .env("NOTIFY_SOCKET", &sock_path)
        .env("WATCHDOG_USEC", "1000000")
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.path().join("fieldcast.log")).unwrap())
        .spawn()
        .unwrap();

    let healthy = collect(&sock, Duration::from_secs(8));
    let msgs: Vec<&str> = healthy.iter().map(|(_, m)| m.as_str()).collect();
    assert!(msgs.contains(&"READY=1"), "{msgs:?}");
    assert!(msgs.contains(&"STATUS=live"), "{msgs:?}");
    let pings = msgs.iter().filter(|m| **m == "WATCHDOG=1").count();
    assert!(pings >= 12, "a ping every 0.5 s while healthy: {pings} in 8 s ({msgs:?})");

    // Unplug the camera for 12 s (twice the stall limit, longer than this
    // watchdog's 1 s): its process is gone, the FIFO ends, the capture waits
    // for a new feeder. The pings go on at their pace.
    let _ = writer.kill();
    let _ = writer.wait();
    let _ = Command::new("pkill").args(["-9", "-f", &format!("yuv4mpegpipe -y {}", fifo.display())]).status();
    let unplugged = collect(&sock, Duration::from_secs(12));
    let pings: Vec<Instant> = unplugged.iter().filter(|(_, m)| m == "WATCHDOG=1").map(|(t, _)| *t).collect();
    let longest_gap = pings.windows(2).map(|w| w[1] - w[0]).max().unwrap_or(Duration::from_secs(12));
    assert!(pings.len() >= 18 && longest_gap < Duration::from_secs(2), "pings stopped while the input was lost: {} in 12 s, longest gap {longest_gap:?}", pings.len());
    assert!(!unplugged.iter().any(|(_, m)| m.starts_with("STATUS=error")), "{unplugged:?}");

    // Plug it back, then freeze it: the capture's read never returns.
    writer = Command::new("sh").args(["-c", &writer_cmd]).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    let back = collect(&sock, Duration::from_secs(6));
    assert!(back.iter().any(|(_, m)| m == "WATCHDOG=1"), "{back:?}");
    let pid = String::from_utf8(Command::new("pgrep").args(["-f", &format!("yuv4mpegpipe -y {}", fifo.display())]).output().unwrap().stdout).unwrap();
    let pid = pid.split_whitespace().next().expect("the ffmpeg writer runs").to_string();
    assert!(Command::new("kill").args(["-STOP", &pid]).status().unwrap().success());
    let log = || std::fs::read_to_string(dir.path().join("fieldcast.log")).unwrap();
    assert!(!log().contains("the capture is stuck"), "{}", log());
    let stalled_at = Instant::now();
    let stalled = collect(&sock, Duration::from_secs(14));
    let last_ping = stalled.iter().filter(|(_, m)| m == "WATCHDOG=1").map(|(t, _)| *t).max();
    let silent_for = last_ping.map(|t| Instant::now() - t).unwrap_or(Duration::from_secs(14));
    assert!(silent_for >= Duration::from_secs(3), "pings continued while the capture was stuck: last one {silent_for:?} ago");
    // 2 s of silence before the capture is reopened, 5 s stuck in it, slack.
    assert!(last_ping.is_none_or(|t| t - stalled_at <= Duration::from_secs(10)), "pings stop about 7 s after the last frame");
    assert!(log().contains("the capture delivers no frames: reopening it"), "{}", log());
    assert!(log().contains("the capture is stuck"), "{}", log());

    let _ = Command::new("kill").args(["-CONT", &pid]).status();
    common::kill(fieldcast.id(), nix::sys::signal::Signal::SIGTERM);
    let end = collect(&sock, Duration::from_secs(3));
    assert!(end.iter().any(|(_, m)| m == "STOPPING=1"), "{end:?}");
    let _ = fieldcast.kill();
    let _ = fieldcast.wait();
    let _ = writer.kill();
    let _ = Command::new("pkill").args(["-9", "-f", &format!("yuv4mpegpipe -y {}", fifo.display())]).status();
    let _ = writer.wait();
}

//! The supervisor loop never waits on a start or a stop: with a start that
//! hangs for real (a FIFO whose feeder passes the gate with a few bytes,
//! then never writes again, so the probe blocks in `read`), the watchdog
//! is still fed, SIGTERM is answered at once and the whole stop stays
//! bounded inside the unit's `TimeoutStopSec`; and `START_TIMEOUT` gives
//! the hung start up. The test owns the `NOTIFY_SOCKET` (as systemd would).

mod common;

use std::io::Write;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// `TimeoutStopSec=` of systemd/fieldcast.service.
const TIMEOUT_STOP: Duration = Duration::from_secs(20);

/// A feeder that writes the first bytes of a Y4M header and then holds the
/// FIFO open without writing: any reader blocks in `read` for good.
fn silent_feeder(fifo: &Path) -> std::thread::JoinHandle<()> {
    let fifo = fifo.to_owned();
    std::thread::spawn(move || {
        // Blocks until a reader opens the FIFO (the start's feeder check).
        let mut f = std::fs::OpenOptions::new().write(true).open(&fifo).unwrap();
        let _ = f.write_all(b"YUV4MPEG2 W64");
        std::thread::sleep(Duration::from_secs(90));
    })
}

struct Hung {
    _dir: tempfile::TempDir,
    sock: UnixDatagram,
    child: Child,
    _feeder: std::thread::JoinHandle<()>,
}

fn start_box() -> Hung {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("camera.y4m");
    assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let feeder = silent_feeder(&fifo);
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
    let child = common::fieldcast_command()
        .args(["run", "--config", config.to_str().unwrap()])
        .env("NOTIFY_SOCKET", &sock_path)
        .env("WATCHDOG_USEC", "1000000")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    Hung { _dir: dir, sock, child, _feeder: feeder }
}

/// Notifications, with arrival times, until `until` says stop (asked after
/// each one and every 100 ms with `None`) or `window` passes.
fn collect(sock: &UnixDatagram, window: Duration, mut until: impl FnMut(Option<&str>) -> bool) -> Vec<(Instant, String)> {
    let end = Instant::now() + window;
    let mut out = Vec::new();
    let mut buf = [0u8; 512];
    while Instant::now() < end {
        sock.set_read_timeout(Some((end - Instant::now()).clamp(Duration::from_millis(10), Duration::from_millis(100)))).unwrap();
        let done = match sock.recv(&mut buf) {
            Ok(n) => {
                let m = String::from_utf8_lossy(&buf[..n]).into_owned();
                let done = until(Some(&m));
                out.push((Instant::now(), m));
                done
            }
            Err(_) => until(None),
        };
        if done {
            break;
        }
    }
    out
}

fn pings(msgs: &[(Instant, String)]) -> Vec<Instant> {
    msgs.iter().filter(|(_, m)| m == "WATCHDOG=1").map(|(t, _)| *t).collect()
}

/// The longest silence between pings (and the window's ends) in `from..to`.
fn longest_gap(pings: &[Instant], from: Instant, to: Instant) -> Duration {
    let mut points = vec![from];
    points.extend(pings.iter().copied().filter(|t| *t > from && *t < to));
    points.push(to);
    points.windows(2).map(|w| w[1] - w[0]).max().unwrap()
}

#[test]
fn sigterm_during_a_hung_start_is_answered_at_once_and_the_stop_is_bounded_with_the_watchdog_fed() {
    let mut b = start_box();
    // The start hangs in the probe; the loop is alive meanwhile.
    let hung = collect(&b.sock, Duration::from_secs(6), |_| false);
    let msgs: Vec<&str> = hung.iter().map(|(_, m)| m.as_str()).collect();
    assert!(msgs.contains(&"STATUS=starting"), "{msgs:?}");
    assert!(!msgs.iter().any(|m| m.starts_with("STATUS=live")), "the start was meant to hang: {msgs:?}");
    let p = pings(&hung);
    assert!(p.len() >= 8, "the watchdog is fed while a start hangs: {} pings in 6 s ({msgs:?})", p.len());

    let term = Instant::now();
    common::kill(b.child.id(), nix::sys::signal::Signal::SIGTERM);
    let child = &mut b.child;
    let stop = collect(&b.sock, TIMEOUT_STOP, |_| matches!(child.try_wait(), Ok(Some(_))));
    let stopping = stop.iter().find(|(_, m)| m == "STOPPING=1").map(|(t, _)| *t).expect("STOPPING=1 after SIGTERM");
    assert!(stopping - term < Duration::from_secs(1), "SIGTERM answered at once: {:?}", stopping - term);
    assert!(common::wait_child(&mut b.child, Duration::from_secs(1)), "fieldcast did not exit within TimeoutStopSec");
    let exited = Instant::now();
    let took = exited - term;
    // The stop waits for the hung start as long as any stop may take, then gives it up.
    assert!(took >= Duration::from_secs(5), "the stop was meant to be slow (it waits for the hung start): {took:?}");
    assert!(took < Duration::from_secs(16), "the whole stop is bounded well inside TimeoutStopSec: {took:?}");
    let status = b.child.wait().unwrap();
    assert_eq!(status.code(), Some(0), "a stop that gave up on a hung start is still a clean stop");
    let p = pings(&stop);
    let last = stop.iter().map(|(t, _)| *t).max().unwrap_or(term);
    let gap = longest_gap(&p, term, last);
    assert!(gap < Duration::from_secs(2), "the watchdog is fed while the stop runs: longest silence {gap:?} over {took:?}");
}

#[test]
fn a_start_that_hangs_is_given_up_after_start_timeout_and_the_box_says_so() {
    let mut b = start_box();
    let t0 = Instant::now();
    let seen = collect(&b.sock, Duration::from_secs(45), |m| m.is_some_and(|m| m.starts_with("STATUS=error")));
    let error = seen.iter().find(|(_, m)| m.starts_with("STATUS=error")).unwrap_or_else(|| panic!("no error after START_TIMEOUT: {seen:?}"));
    assert_eq!(error.1, "STATUS=error: the start did not finish within 30 s; trying again");
    let after = error.0 - t0;
    assert!(after >= Duration::from_secs(29) && after < Duration::from_secs(40), "given up after START_TIMEOUT (30 s): {after:?}");
    let gap = longest_gap(&pings(&seen), t0 + Duration::from_secs(3), error.0);
    assert!(gap < Duration::from_secs(2), "the watchdog is fed throughout the hung start: longest silence {gap:?}");
    common::kill(b.child.id(), nix::sys::signal::Signal::SIGTERM);
    assert!(common::wait_child(&mut b.child, TIMEOUT_STOP), "fieldcast did not exit after SIGTERM");
    assert_eq!(b.child.wait().unwrap().code(), Some(0));
}

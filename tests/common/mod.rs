//! Helpers shared by the end-to-end tests: a private nginx-rtmp channel
//! ([`nginx`]), ffprobe as the judge of what arrived ([`ffprobe`]), a live
//! GStreamer H.264/AAC source feeding egress channels ([`source`]), a
//! recording HTTP receiver for CMAF and Smooth ingest ([`http_receiver`],
//! [`ingest`]), a relay that strips type 0 chunk headers from a real RTMP
//! server ([`rtmp_relay`]), a test
//! CA for RTMPS ([`tls`]), a FIFO camera that can freeze and a judge of
//! its pictures ([`camera`]), free ports and condition waits.
#![allow(dead_code)]

pub mod amqtt;
pub mod camera;
pub mod device;
pub mod ffprobe;
pub mod http;
pub mod http_receiver;
pub mod ingest;
pub mod mosquitto;
pub mod mqtt;
pub mod mqtt_stall;
pub mod netns;
pub mod nginx;
pub mod rtmp_relay;
pub mod source;
pub mod srt;
pub mod tls;

use std::net::TcpListener;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A loopback TCP port that was free a moment ago, and that no earlier call
/// in this test process handed out: the kernel may give the same ephemeral
/// port to two binds in a row once the first is closed, and a broker whose
/// plain and TLS listeners got the same port failed to start ("Address
/// already in use", once in a CI run).
pub fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut given = GIVEN.lock().unwrap_or_else(|p| p.into_inner());
    loop {
        let port = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port").local_addr().unwrap().port();
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
}

/// Polls `condition` every 50 ms until it holds (true) or `timeout` passes (false).
pub fn wait_for(timeout: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if condition() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// [`wait_for`] for async tests: yields to the runtime between polls.
pub async fn wait_for_async(timeout: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if condition() {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Whether something accepts TCP connections on `127.0.0.1:port`.
pub fn port_accepts(port: u16) -> bool {
    std::net::TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(200)).is_ok()
}

/// Runs a command to completion, killing it after `timeout`.
pub fn run_with_timeout(cmd: &mut Command, timeout: Duration) -> Output {
    let child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn command");
    let pid = child.id();
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    let waiter = std::thread::spawn(move || {
        let out = child.wait_with_output();
        let _ = done_tx.send(());
        out
    });
    if done_rx.recv_timeout(timeout).is_err() {
        kill(pid, nix::sys::signal::Signal::SIGKILL);
    }
    waiter.join().unwrap().expect("wait for command")
}

/// Sends `signal` to one process we started.
pub fn kill(pid: u32, signal: nix::sys::signal::Signal) {
    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), signal);
}

/// Waits up to `timeout` for a child to exit; true if it did.
pub fn wait_child(child: &mut Child, timeout: Duration) -> bool {
    wait_for(timeout, || matches!(child.try_wait(), Ok(Some(_))))
}

/// A `Command` for the fieldcast binary under test. Under qemu-user (the
/// aarch64 test run) the arm64 binary cannot be exec'd directly: the runner
/// exports `FIELDCAST_TEST_EXEC_WRAPPER`, which is put in front of it.
pub fn fieldcast_command() -> Command {
    let bin = env!("CARGO_BIN_EXE_fieldcast");
    let mut cmd = match std::env::var_os("FIELDCAST_TEST_EXEC_WRAPPER") {
        Some(wrapper) if !wrapper.is_empty() => {
            let mut c = Command::new(wrapper);
            c.arg(bin);
            c
        }
        _ => Command::new(bin),
    };
    cmd.env("FIELDCAST_BOARD_DIR", concat!(env!("CARGO_MANIFEST_DIR"), "/board")).env("NO_COLOR", "1");
    cmd
}

/// Appended to the config of a test that does not judge the HTTP API: no
/// server, so test daemons running at once never contend for its port.
pub const NO_HTTP: &str = "\n[http]\nenabled = false\n";

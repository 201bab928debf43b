//! SRT receivers started by a test on a free loopback UDP port, in listener
//! mode, writing what they receive to an MPEG-TS file: ffmpeg's libsrt input
//! and `srt-live-transmit` (Debian `srt-tools`), the two peers a channel or
//! a relay would be.

use super::{kill, wait_child};
use nix::sys::signal::Signal;
use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A loopback UDP port that was free a moment ago.
pub fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0").expect("bind a UDP port").local_addr().unwrap().port()
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Ffmpeg,
    LiveTransmit,
}

pub struct SrtReceiver {
    pub kind: Kind,
    pub port: u16,
    /// The MPEG-TS file written.
    pub out: PathBuf,
    log: PathBuf,
    child: Option<Child>,
}

impl SrtReceiver {
    /// A listener on a free port; `passphrase` enables AES-128.
    pub fn start(kind: Kind, dir: &Path, name: &str, passphrase: Option<&str>) -> SrtReceiver {
        Self::start_on(kind, free_udp_port(), dir, name, passphrase)
    }

    /// A listener on `port` (a receiver restarted where it was).
    pub fn start_on(kind: Kind, port: u16, dir: &Path, name: &str, passphrase: Option<&str>) -> SrtReceiver {
        let out = dir.join(format!("{name}.ts"));
        let log = dir.join(format!("{name}.log"));
        let crypto = passphrase.map(|p| format!("&passphrase={p}&pbkeylen=16")).unwrap_or_default();
        let mut cmd = match kind {
            Kind::Ffmpeg => {
                let mut c = Command::new("ffmpeg");
                c.args(["-nostdin", "-loglevel", "info", "-i"])
                    .arg(format!("srt://127.0.0.1:{port}?mode=listener{crypto}"))
                    .args(["-c", "copy", "-copyts", "-muxdelay", "0", "-muxpreload", "0", "-f", "mpegts", "-y"])
                    .arg(&out)
                    .stdout(Stdio::null());
                c
            }
            Kind::LiveTransmit => {
                assert!(
                    Command::new("srt-live-transmit").arg("-version").output().is_ok(),
                    "srt-live-transmit is not installed (scripts/install-deps.sh installs srt-tools)"
                );
                let mut c = Command::new("srt-live-transmit");
                c.args(["-q", "-a", "no"])
                    .arg(format!("srt://127.0.0.1:{port}?mode=listener{crypto}"))
                    .arg("file://con")
                    .stdout(std::fs::File::create(&out).unwrap());
                c
            }
        };
        let child = cmd.stderr(std::fs::File::create(&log).unwrap()).spawn().expect("start the SRT receiver");
        // Until it has bound its port (seen in /proc/net/udp), then a moment
        // more for its listen call: a caller that starts sooner sends its
        // first handshake into nothing.
        let t0 = std::time::Instant::now();
        while !udp_bound(port) && t0.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(20));
        }
        std::thread::sleep(Duration::from_millis(100));
        SrtReceiver { kind, port, out, log, child: Some(child) }
    }

    /// `srt://127.0.0.1:PORT`, for a caller.
    pub fn url(&self) -> String {
        format!("srt://127.0.0.1:{}", self.port)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn is_running(&mut self) -> bool {
        self.child.as_mut().is_some_and(|c| c.try_wait().ok().flatten().is_none())
    }

    /// Kills the receiver at once (a receiver that is gone, not closing).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Lets the receiver finish its file (the caller has gone) or stops it.
    pub fn finish(&mut self) {
        if let Some(mut c) = self.child.take()
            && !wait_child(&mut c, Duration::from_secs(5))
        {
            kill(c.id(), Signal::SIGINT);
            if !wait_child(&mut c, Duration::from_secs(5)) {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
}

impl Drop for SrtReceiver {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Whether the UDP `port` is bound on this machine.
pub fn udp_bound(port: u16) -> bool {
    let hex = format!(":{port:04X} ");
    ["/proc/net/udp", "/proc/net/udp6"].iter().any(|f| {
        std::fs::read_to_string(f)
            .unwrap_or_default()
            .lines()
            .skip(1)
            .any(|l| l.split_whitespace().nth(1).is_some_and(|local| format!("{local} ").ends_with(&hex)))
    })
}

//! A broker that speaks only MQTT 3.1.1 (amqtt, from PyPI; installed by
//! `scripts/install-deps.sh`), and a 3.1.1 dashboard made of the mosquitto
//! command-line clients, for the `protocol = "auto"` fallback.

use super::{free_port, kill, port_accepts, wait_child, wait_for};
use nix::sys::signal::Signal;
use serde_json::Value;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use tempfile::TempDir;

/// Where `scripts/install-deps.sh` puts amqtt (overridden by `FIELDCAST_AMQTT`).
fn amqtt_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("FIELDCAST_AMQTT") {
        return p.into();
    }
    let home = std::env::var_os("HOME").expect("HOME");
    PathBuf::from(home).join(".cache/fieldcast/amqtt-venv/bin/amqtt")
}

/// A running amqtt broker, anonymous, on a free loopback port.
pub struct Amqtt {
    dir: TempDir,
    pub port: u16,
    child: Child,
}

impl Amqtt {
    pub fn start() -> Amqtt {
        let bin = amqtt_bin();
        assert!(bin.exists(), "{} is missing: run scripts/install-deps.sh", bin.display());
        let dir = tempfile::Builder::new().prefix("fieldcast-amqtt-").tempdir().expect("temp dir");
        let port = free_port();
        let conf = format!(
            "listeners:\n  default:\n    type: tcp\n    bind: 127.0.0.1:{port}\n\
             plugins:\n  amqtt.plugins.authentication.AnonymousAuthPlugin:\n    allow_anonymous: true\n"
        );
        std::fs::write(dir.path().join("amqtt.yaml"), conf).unwrap();
        let log = std::fs::File::create(dir.path().join("amqtt.log")).unwrap();
        let child = Command::new(&bin)
            .arg("-c")
            .arg(dir.path().join("amqtt.yaml"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start amqtt");
        let mut b = Amqtt { dir, port, child };
        let up = wait_for(Duration::from_secs(20), || port_accepts(port) || !b.running());
        assert!(up && b.running(), "amqtt did not start:\n{}", b.log());
        b
    }

    pub fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("amqtt.log")).unwrap_or_default()
    }

    fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Amqtt {
    fn drop(&mut self) {
        kill(self.child.id(), Signal::SIGTERM);
        if !wait_child(&mut self.child, Duration::from_secs(5)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// `mosquitto_sub -V 311 -v` on a filter, every line kept in a file.
pub struct Sub311 {
    child: Child,
    out: tempfile::NamedTempFile,
}

impl Sub311 {
    pub fn start(port: u16, filter: &str) -> Sub311 {
        let out = tempfile::NamedTempFile::new().unwrap();
        let child = Command::new("mosquitto_sub")
            .args(["-V", "311", "-h", "127.0.0.1", "-p", &port.to_string(), "-q", "1", "-v", "-t", filter])
            .stdin(Stdio::null())
            .stdout(out.reopen().unwrap())
            .stderr(Stdio::null())
            .spawn()
            .expect("mosquitto_sub (apt-get install mosquitto-clients)");
        // Subscribed once a message published now is seen.
        let probe = format!("{}/probe", filter.trim_end_matches("/#"));
        let mut s = Sub311 { child, out };
        let seen = wait_for(Duration::from_secs(10), || {
            pub311(port, &probe, "{}", false);
            s.lines().iter().any(|(t, _)| t == &probe)
        });
        assert!(seen, "mosquitto_sub never saw its probe");
        s
    }

    /// (topic, payload) of every message so far.
    pub fn lines(&mut self) -> Vec<(String, String)> {
        let text = std::fs::read_to_string(self.out.path()).unwrap_or_default();
        text.lines().filter_map(|l| l.split_once(' ')).map(|(t, p)| (t.to_string(), p.to_string())).collect()
    }

    /// The first JSON message on `topic` that satisfies `pred`.
    pub fn wait_json(&mut self, timeout: Duration, topic: &str, pred: impl Fn(&Value) -> bool) -> Option<Value> {
        let mut found = None;
        wait_for(timeout, || {
            found = self.lines().into_iter().filter(|(t, _)| t == topic).filter_map(|(_, p)| serde_json::from_str(&p).ok()).find(|v| pred(v));
            found.is_some()
        });
        found
    }
}

impl Drop for Sub311 {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `mosquitto_pub -V 311` one message (QoS 1).
pub fn pub311(port: u16, topic: &str, payload: &str, retain: bool) {
    let mut c = Command::new("mosquitto_pub");
    c.args(["-V", "311", "-h", "127.0.0.1", "-p", &port.to_string(), "-q", "1", "-t", topic, "-m", payload]);
    if retain {
        c.arg("-r");
    }
    let st = c.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null()).status().expect("mosquitto_pub");
    assert!(st.success(), "mosquitto_pub to {topic} failed");
}

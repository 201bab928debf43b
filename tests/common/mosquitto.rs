//! A private mosquitto (the fleet's broker) on free loopback ports: a plain
//! listener and, optionally, a TLS one (test CA), password auth and an ACL.
//! Persistence is off, so a restart forgets retained messages, as a broker
//! that lost its disk would.

use super::tls::TestCa;
use super::{free_port, kill, port_accepts, wait_child, wait_for};
use nix::sys::signal::Signal;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use tempfile::TempDir;

#[derive(Clone, Debug, Default)]
pub struct MosquittoOptions {
    /// Add a TLS listener with a server certificate from a fresh [`TestCa`].
    pub tls: bool,
    /// With users: `allow_anonymous false` and a password file.
    pub users: Vec<(String, String)>,
    /// An ACL file's text.
    pub acl: Option<String>,
    /// The TLS listener demands a client certificate from the test CA and
    /// takes its CN as the user name (mutual TLS).
    pub client_certs: bool,
    /// `max_queued_messages`: QoS 1 messages held per client beyond its
    /// in-flight window (mosquitto's default, 1000, drops the rest).
    pub max_queued_messages: Option<u32>,
}

/// A device may use only its own topics; the dashboard sees the fleet.
pub fn device_acl(device_user: &str, dashboard_user: &str) -> String {
    format!("user {device_user}\ntopic readwrite fieldcast/{device_user}/#\n\nuser {dashboard_user}\ntopic readwrite fieldcast/#\n")
}

/// A running broker; dropping it stops it (and removes its temp dir).
pub struct Mosquitto {
    dir: TempDir,
    pub port: u16,
    pub tls_port: Option<u16>,
    ca: Option<TestCa>,
    child: Option<Child>,
}

impl Mosquitto {
    /// Anonymous access, plain listener only.
    pub fn start() -> Mosquitto {
        Mosquitto::start_with(MosquittoOptions::default())
    }

    /// Writes the config to a temp dir and starts the broker on free ports.
    pub fn start_with(o: MosquittoOptions) -> Mosquitto {
        let dir = tempfile::Builder::new().prefix("fieldcast-mosquitto-").tempdir().expect("temp dir");
        let d = dir.path();
        let port = free_port();
        let mut conf = format!("per_listener_settings false\npersistence false\nlog_dest file {}/mosquitto.log\nlog_type all\n", d.display());
        conf += &format!("listener {port} 127.0.0.1\n");
        let ca = o.tls.then(|| TestCa::generate(d));
        let tls_port = o.tls.then(free_port);
        if let (Some(ca), Some(p)) = (&ca, tls_port) {
            conf += &format!(
                "listener {p} 127.0.0.1\ncafile {}\ncertfile {}\nkeyfile {}\n",
                ca.ca_pem.display(),
                ca.cert_pem.display(),
                ca.key_pem.display()
            );
            if o.client_certs {
                conf += "require_certificate true\nuse_identity_as_username true\n";
            }
        }
        if o.users.is_empty() {
            conf += "allow_anonymous true\n";
        } else {
            let pw = d.join("passwd");
            for (i, (u, p)) in o.users.iter().enumerate() {
                let create: &[&str] = if i == 0 { &["-b", "-c"] } else { &["-b"] };
                let st = Command::new("mosquitto_passwd").args(create).arg(&pw).arg(u).arg(p).status().expect("mosquitto_passwd");
                assert!(st.success(), "mosquitto_passwd for {u}");
            }
            // Owner-only, as mosquitto expects (later 2.0.x releases warn about readable ones).
            std::fs::set_permissions(&pw, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
            conf += &format!("allow_anonymous false\npassword_file {}\n", pw.display());
        }
        if let Some(acl) = &o.acl {
            std::fs::write(d.join("acl"), acl).unwrap();
            conf += &format!("acl_file {}\n", d.join("acl").display());
        }
        if let Some(n) = o.max_queued_messages {
            conf += &format!("max_queued_messages {n}\n");
        }
        // As root, mosquitto would switch to user `mosquitto`, who cannot read this dir.
        if nix::unistd::geteuid().is_root() {
            conf += "user root\n";
        }
        std::fs::write(d.join("mosquitto.conf"), conf).unwrap();
        let mut m = Mosquitto { dir, port, tls_port, ca, child: None };
        m.restart();
        m
    }

    /// The plain listener's port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The TLS listener's port, if started with `tls`.
    pub fn tls_port(&self) -> Option<u16> {
        self.tls_port
    }

    /// `mqtt://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }

    /// `mqtts://localhost:PORT` (by name, so the certificate's name is checked).
    pub fn tls_url(&self) -> String {
        format!("mqtts://localhost:{}", self.tls_port.expect("started with tls"))
    }

    /// A client certificate and key for `cn`, signed by the broker's test CA.
    pub fn client_cert(&self, cn: &str) -> (PathBuf, PathBuf) {
        self.ca.as_ref().expect("started with tls").issue_client(self.dir.path(), cn)
    }

    /// The CA that signed the TLS listener's certificate.
    pub fn ca_file(&self) -> Option<PathBuf> {
        self.ca.as_ref().map(|c| c.ca_pem.clone())
    }

    /// The broker's log (`log_type all`), then anything it wrote to stderr
    /// (config errors are reported there, before the log file is opened).
    pub fn log(&self) -> String {
        let read = |f: &str| std::fs::read_to_string(self.dir.path().join(f)).unwrap_or_default();
        read("mosquitto.log") + &read("stderr.log")
    }

    /// Whether the broker process is alive.
    pub fn is_running(&mut self) -> bool {
        self.child.as_mut().is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// SIGTERM (SIGKILL after 5 s), waits until the plain port is closed.
    pub fn stop(&mut self) {
        self.halt();
        assert!(wait_for(Duration::from_secs(5), || !port_accepts(self.port)), "mosquitto still listening");
    }

    fn halt(&mut self) {
        if let Some(mut c) = self.child.take() {
            kill(c.id(), Signal::SIGTERM);
            if !wait_child(&mut c, Duration::from_secs(5)) {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }

    /// (Re)starts on the same ports with the same config; waits until every
    /// listener accepts (panics with the log if it exits or times out).
    pub fn restart(&mut self) {
        self.stop();
        let stderr = std::fs::File::create(self.dir.path().join("stderr.log")).unwrap();
        let child = Command::new("/usr/sbin/mosquitto")
            .arg("-c")
            .arg(self.dir.path().join("mosquitto.conf"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("start mosquitto (apt-get install mosquitto)");
        self.child = Some(child);
        let ports: Vec<u16> = std::iter::once(self.port).chain(self.tls_port).collect();
        let up = wait_for(Duration::from_secs(10), || !self.is_running() || ports.iter().all(|p| port_accepts(*p)));
        assert!(up && self.is_running(), "mosquitto did not start:\n{}", self.log());
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        self.halt();
    }
}

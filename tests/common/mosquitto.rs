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
    pub tls: bool,
    /// With users: `allow_anonymous false` and a password file.
    pub users: Vec<(String, String)>,
    /// An ACL file's text.
    pub acl: Option<String>,
}

/// A device may use only its own topics; the dashboard sees the fleet.
pub fn device_acl(device_user: &str, dashboard_user: &str) -> String {
    format!("user {device_user}\ntopic readwrite fieldcast/{device_user}/#\n\nuser {dashboard_user}\ntopic readwrite fieldcast/#\n")
}

pub struct Mosquitto {
    dir: TempDir,
    pub port: u16,
    pub tls_port: Option<u16>,
    ca: Option<TestCa>,
    child: Option<Child>,
}

impl Mosquitto {
    pub fn start() -> Mosquitto {
        Mosquitto::start_with(MosquittoOptions::default())
    }

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
        }
        if o.users.is_empty() {
            conf += "allow_anonymous true\n";
        } else {
            let pw = d.join("passwd");
            std::fs::write(&pw, "").unwrap();
            for (u, p) in &o.users {
                let st = Command::new("mosquitto_passwd").arg("-b").arg(&pw).arg(u).arg(p).status().expect("mosquitto_passwd");
                assert!(st.success());
            }
            conf += &format!("allow_anonymous false\npassword_file {}\n", pw.display());
        }
        if let Some(acl) = &o.acl {
            std::fs::write(d.join("acl"), acl).unwrap();
            conf += &format!("acl_file {}\n", d.join("acl").display());
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

    pub fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }

    pub fn tls_url(&self) -> String {
        format!("mqtts://localhost:{}", self.tls_port.expect("started with tls"))
    }

    pub fn ca_file(&self) -> Option<PathBuf> {
        self.ca.as_ref().map(|c| c.ca_pem.clone())
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("mosquitto.log")).unwrap_or_default()
    }

    pub fn is_running(&mut self) -> bool {
        self.child.as_mut().is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            kill(c.id(), Signal::SIGTERM);
            if !wait_child(&mut c, Duration::from_secs(5)) {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }

    /// (Re)starts on the same ports with the same config.
    pub fn restart(&mut self) {
        self.stop();
        let child = Command::new("mosquitto")
            .arg("-c")
            .arg(self.dir.path().join("mosquitto.conf"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start mosquitto (apt-get install mosquitto)");
        self.child = Some(child);
        let ports: Vec<u16> = std::iter::once(self.port).chain(self.tls_port).collect();
        assert!(
            wait_for(Duration::from_secs(10), || ports.iter().all(|p| port_accepts(*p))),
            "mosquitto did not start: {}",
            self.log()
        );
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        self.stop();
    }
}

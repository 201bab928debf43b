//! A private nginx with the RTMP module on a free loopback port: the channel
//! the egress publishes to. Application `live` relays (`live on`) and records
//! every stream to `<record dir>/<stream>.flv` (or one file per publish).
//! Optionally an RTMPS front (nginx `stream` module, TLS terminated with a
//! test CA) proxies to it.
//!
//! What nginx-rtmp 1.2 (Debian 12) does with timestamps: `record` rebases
//! each file to start at 0 (with `record_append on`, a new publish continues
//! from the file's last tag, hiding any gap); `live` subscribers get the
//! publisher's own timestamps. Judge timelines on the live stream.

use super::tls::TestCa;
use super::{free_port, kill, port_accepts, wait_child, wait_for};
use nix::sys::signal::Signal;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use tempfile::TempDir;

const RTMP_MODULE: &str = "/usr/lib/nginx/modules/ngx_rtmp_module.so";
const STREAM_MODULE: &str = "/usr/lib/nginx/modules/ngx_stream_module.so";

/// Whether an RTMPS front can be built here (package `libnginx-mod-stream`).
pub fn stream_module_available() -> bool {
    Path::new(STREAM_MODULE).exists()
}

#[derive(Clone, Debug, Default)]
pub struct NginxOptions {
    /// `record_unique on`: each publish gets its own `<stream>-<unix time>.flv`
    /// instead of truncating `<stream>.flv`.
    pub file_per_publish: bool,
    /// More applications like `live` (names may hold a `/`, as an AMS
    /// `live/<token>` path does).
    pub extra_apps: Vec<String>,
    /// Add a TLS listener (RTMPS) in front of the RTMP port.
    pub rtmps: bool,
}

pub struct Nginx {
    dir: TempDir,
    pub rtmp_port: u16,
    pub rtmps_port: Option<u16>,
    ca: Option<TestCa>,
    child: Option<Child>,
}

impl Nginx {
    pub fn start() -> Nginx {
        Nginx::start_with(NginxOptions::default())
    }

    pub fn start_with(options: NginxOptions) -> Nginx {
        assert!(Path::new(RTMP_MODULE).exists(), "nginx RTMP module missing: apt-get install libnginx-mod-rtmp");
        let dir = tempfile::Builder::new().prefix("fieldcast-nginx-").tempdir().expect("temp dir");
        std::fs::create_dir(dir.path().join("record")).unwrap();
        let ca = options.rtmps.then(|| {
            assert!(stream_module_available(), "RTMPS front needs {STREAM_MODULE}");
            TestCa::generate(dir.path())
        });
        let rtmp_port = free_port();
        let rtmps_port = options.rtmps.then(free_port);
        std::fs::write(dir.path().join("nginx.conf"), config(dir.path(), rtmp_port, rtmps_port, ca.as_ref(), &options))
            .unwrap();
        let mut nginx = Nginx { dir, rtmp_port, rtmps_port, ca, child: None };
        nginx.restart();
        nginx
    }

    /// `rtmp://127.0.0.1:PORT/<app>`.
    pub fn rtmp_url(&self, app: &str) -> String {
        format!("rtmp://127.0.0.1:{}/{app}", self.rtmp_port)
    }

    /// `rtmps://localhost:PORT/<app>` (by name, so SNI and the name check are exercised).
    pub fn rtmps_url(&self, app: &str) -> String {
        format!("rtmps://localhost:{}/{app}", self.rtmps_port.expect("started with rtmps"))
    }

    /// The CA that signed the RTMPS front's certificate.
    pub fn ca_file(&self) -> PathBuf {
        self.ca.as_ref().expect("started with rtmps").ca_pem.clone()
    }

    /// Where nginx records `stream` (any application).
    pub fn recording(&self, stream: &str) -> PathBuf {
        self.dir.path().join("record").join(format!("{stream}.flv"))
    }

    /// Every recording of `stream`, oldest first (see `file_per_publish`).
    pub fn recordings(&self, stream: &str) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(self.dir.path().join("record"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| {
                let name = p.file_name().unwrap().to_string_lossy();
                name == format!("{stream}.flv") || name.starts_with(&format!("{stream}-"))
            })
            .collect();
        files.sort();
        files
    }

    pub fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default()
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Stops the server as an outage would: every connection is closed.
    /// A fast shutdown (SIGTERM), so workers go too and the port is free.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            kill(child.id(), Signal::SIGTERM);
            if !wait_child(&mut child, Duration::from_secs(5)) {
                kill(child.id(), Signal::SIGKILL);
                let _ = child.wait();
            }
            assert!(wait_for(Duration::from_secs(5), || !port_accepts(self.rtmp_port)), "nginx still listening");
        }
    }

    /// (Re)starts the server on the same ports and waits until it accepts.
    pub fn restart(&mut self) {
        self.stop();
        let dir = self.dir.path();
        let child = Command::new("nginx")
            .arg("-p")
            .arg(dir)
            .arg("-c")
            .arg(dir.join("nginx.conf"))
            .arg("-e")
            .arg(dir.join("error.log"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn nginx");
        self.child = Some(child);
        let ports = [Some(self.rtmp_port), self.rtmps_port];
        let up = wait_for(Duration::from_secs(10), || ports.iter().flatten().all(|p| port_accepts(*p)));
        assert!(up, "nginx did not start; error.log:\n{}", self.error_log());
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            kill(child.id(), Signal::SIGTERM);
            if !wait_child(&mut child, Duration::from_secs(3)) {
                kill(child.id(), Signal::SIGKILL);
                let _ = child.wait();
            }
        }
    }
}

fn config(dir: &Path, rtmp_port: u16, rtmps_port: Option<u16>, ca: Option<&TestCa>, options: &NginxOptions) -> String {
    let dir = dir.display();
    // Workers run as `nobody` unless told otherwise; the temp dir is ours only.
    let running_as_root = std::fs::metadata("/proc/self").map(|m| m.uid() == 0).unwrap_or(false);
    let user = if running_as_root { "user root;" } else { "" };
    let unique = if options.file_per_publish { "on" } else { "off" };
    let apps: String = std::iter::once("live")
        .chain(options.extra_apps.iter().map(String::as_str))
        .map(|app| {
            format!(
                "        application {app} {{\n            live on;\n            record all;\n            \
                 record_path {dir}/record;\n            record_unique {unique};\n        }}\n"
            )
        })
        .collect();
    let mut conf = format!(
        r#"load_module {RTMP_MODULE};
{stream_module}
{user}
daemon off;
master_process on;
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log info;
events {{ worker_connections 64; }}
rtmp {{
    server {{
        listen 127.0.0.1:{rtmp_port};
        chunk_size 4096;
{apps}    }}
}}
"#,
        stream_module = if rtmps_port.is_some() { format!("load_module {STREAM_MODULE};") } else { String::new() },
    );
    if let (Some(port), Some(ca)) = (rtmps_port, ca) {
        conf.push_str(&format!(
            r#"stream {{
    server {{
        listen 127.0.0.1:{port} ssl;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        ssl_protocols TLSv1.2 TLSv1.3;
        proxy_pass 127.0.0.1:{rtmp_port};
    }}
}}
"#,
            cert = ca.cert_pem.display(),
            key = ca.key_pem.display(),
        ));
    }
    conf
}

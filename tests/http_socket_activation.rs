//! Socket activation, with systemd's own implementation of the protocol as
//! the peer (`systemd-socket-activate`, which listens, then starts the
//! service with `LISTEN_FDS`/`LISTEN_PID` and the socket as fd 3, as
//! systemd does for `fieldcast.socket`): the page and API answer on the
//! passed socket, `[http] listen` is never bound, and a passed socket that
//! cannot serve HTTP is refused with a warning in favour of `[http] listen`.

mod common;

use common::{free_port, port_accepts, wait_child, wait_for};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// `systemd-socket-activate [extra] -l 127.0.0.1:port` starting `fieldcast run`
/// (through the qemu wrapper under emulation) once the first connection comes.
fn activated(dir: &Path, port: u16, extra: &[&str], http_listen: u16) -> Child {
    let config = dir.join("config.toml");
    std::fs::write(
        &config,
        format!(
            "device_id = \"cam\"\nstate_dir = \"{d}/state\"\n[source]\nwidth = 320\nheight = 180\n\
             [ladder]\nrungs = [{{ width = 320, height = 180, bitrate_kbps = 300 }}]\n\
             [recording]\ndir = \"{d}/rec\"\nmin_free_mb = 0\n[http]\nlisten = \"127.0.0.1:{http_listen}\"\npublic_status = true\n",
            d = dir.display()
        ),
    )
    .unwrap();
    let fc = common::fieldcast_command();
    let mut cmd = Command::new("systemd-socket-activate");
    cmd.args(extra).arg("-l").arg(format!("127.0.0.1:{port}"));
    // The child gets only the environment named here (and LISTEN_*).
    for name in ["PATH", "HOME", "FIELDCAST_TEST_EXEC_WRAPPER", "QEMU_LD_PREFIX", "FIELDCAST_ARM64_GST_REGISTRY", "XDG_CACHE_HOME"] {
        if let Ok(v) = std::env::var(name) {
            cmd.arg(format!("-E{name}={v}"));
        }
    }
    for (k, v) in fc.get_envs() {
        if let Some(v) = v {
            cmd.arg(format!("-E{}={}", k.to_string_lossy(), v.to_string_lossy()));
        }
    }
    cmd.arg("-EFIELDCAST_LOG=info").arg(fc.get_program()).args(fc.get_args()).args(["run", "-c"]).arg(&config).args(["--duration", "20"]);
    cmd.stdout(Stdio::null()).stderr(std::fs::File::create(dir.join("fieldcast.log")).unwrap()).spawn().expect("systemd-socket-activate (package systemd)")
}

fn stop(mut child: Child) {
    common::kill(child.id(), nix::sys::signal::Signal::SIGTERM);
    if !wait_child(&mut child, Duration::from_secs(20)) {
        let _ = child.kill();
        let _ = child.wait();
    }
}

#[test]
fn the_page_and_api_answer_on_the_socket_systemd_passes_and_listen_is_never_bound() {
    let dir = tempfile::tempdir().unwrap();
    let (port, listen) = (free_port(), free_port());
    let child = activated(dir.path(), port, &[], listen);
    assert!(wait_for(Duration::from_secs(10), || port_accepts(port)), "systemd-socket-activate never listened");
    // The first connection starts the service; it is answered once the server is up.
    let status = common::http::request(port, "GET", "/api/v1/status", &[], None).expect("an answer on the passed socket");
    assert_eq!(status.status, 200, "{}", status.text());
    assert_eq!(status.json()["device_id"], "cam");
    let page = common::http::request(port, "GET", "/", &[], None).unwrap();
    assert_eq!(page.status, 200);
    assert!(page.text().contains("<html"), "the page on the passed socket");
    assert!(!port_accepts(listen), "[http] listen was bound although a socket was passed");
    // Answered, so the server logged where it listens before it served.
    let log = std::fs::read_to_string(dir.path().join("fieldcast.log")).unwrap();
    assert!(log.contains(&format!("listen=127.0.0.1:{port} from=\"socket passed by systemd\"")), "{log}");
    stop(child);
}

#[test]
fn a_passed_socket_that_cannot_serve_http_is_refused_for_http_listen_with_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let (port, listen) = (free_port(), free_port());
    // A datagram socket: systemd-socket-activate starts the service on its first datagram.
    let child = activated(dir.path(), port, &["--datagram"], listen);
    std::thread::sleep(Duration::from_millis(300));
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let served = wait_for(Duration::from_secs(30), || {
        let _ = udp.send_to(b"x", ("127.0.0.1", port));
        port_accepts(listen)
    });
    // The log line follows the bind: wait for it too.
    let said = format!("listen=127.0.0.1:{listen} from=\"[http] listen\"");
    let log_path = dir.path().join("fieldcast.log");
    let logged = wait_for(Duration::from_secs(10), || std::fs::read_to_string(&log_path).unwrap_or_default().contains(&said));
    let log = std::fs::read_to_string(&log_path).unwrap();
    assert!(served && logged, "the API never listened on [http] listen: {log}");
    let status = common::http::request(listen, "GET", "/api/v1/status", &[], None).unwrap();
    assert_eq!(status.status, 200);
    assert!(log.contains("ignoring what systemd passed as a socket") && log.contains("not a stream socket"), "{log}");
    stop(child);
}

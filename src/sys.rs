//! The systemd side: `sd_notify` over `$NOTIFY_SOCKET` (READY, STATUS,
//! WATCHDOG, STOPPING) and the watchdog interval. Without `NOTIFY_SOCKET`
//! (not under systemd) every call is a no-op.

use std::os::unix::net::UnixDatagram;
use std::time::Duration;

fn socket_path() -> Option<std::ffi::OsString> {
    std::env::var_os("NOTIFY_SOCKET").filter(|s| !s.is_empty())
}

/// Sends one notification; errors are ignored (systemd may be gone).
pub fn notify(state: &str) {
    let Some(path) = socket_path() else { return };
    let Ok(sock) = UnixDatagram::unbound() else { return };
    let bytes = path.as_encoded_bytes();
    let _ = if let Some(name) = bytes.strip_prefix(b"@") {
        // Abstract socket: a leading NUL instead of '@'.
        use std::os::linux::net::SocketAddrExt;
        match std::os::unix::net::SocketAddr::from_abstract_name(name) {
            Ok(addr) => sock.send_to_addr(state.as_bytes(), &addr),
            Err(e) => Err(e),
        }
    } else {
        sock.send_to(state.as_bytes(), &path)
    };
}

pub fn notify_ready() {
    notify("READY=1");
}

/// A one-line status shown by `systemctl status` (newlines are flattened).
pub fn notify_status(status: &str) {
    notify(&format!("STATUS={}", status.replace('\n', " ")));
}

pub fn notify_watchdog() {
    notify("WATCHDOG=1");
}

pub fn notify_stopping() {
    notify("STOPPING=1");
}

/// How often to ping: half of `WATCHDOG_USEC`, if the watchdog is meant for
/// this process (`WATCHDOG_PID` unset or ours).
pub fn watchdog_interval() -> Option<Duration> {
    if let Some(pid) = std::env::var("WATCHDOG_PID").ok().filter(|p| !p.is_empty())
        && pid.parse::<u32>().ok() != Some(std::process::id())
    {
        return None;
    }
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
    (usec > 0).then(|| Duration::from_micros(usec / 2))
}

#[cfg(test)]
mod tests {
    use super::*;

    // One test touches the process environment, so everything runs in it.
    #[test]
    fn notifications_reach_the_socket_and_the_watchdog_interval_is_half() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify.sock");
        let server = UnixDatagram::bind(&path).unwrap();
        server.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        // SAFETY: this is the only test in the crate that reads or writes these variables.
        unsafe {
            std::env::set_var("NOTIFY_SOCKET", &path);
            std::env::set_var("WATCHDOG_USEC", "4000000");
            std::env::remove_var("WATCHDOG_PID");
        }
        let mut buf = [0u8; 256];
        for (send, want) in [
            (notify_ready as fn(), "READY=1"),
            (notify_watchdog, "WATCHDOG=1"),
            (notify_stopping, "STOPPING=1"),
        ] {
            send();
            let n = server.recv(&mut buf).unwrap();
            assert_eq!(&buf[..n], want.as_bytes());
        }
        notify_status("live\n4 rungs");
        let n = server.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"STATUS=live 4 rungs");
        assert_eq!(watchdog_interval(), Some(Duration::from_secs(2)));
        unsafe { std::env::set_var("WATCHDOG_PID", "1") };
        assert_eq!(watchdog_interval(), None, "the watchdog of another process");
        unsafe {
            std::env::remove_var("WATCHDOG_PID");
            std::env::remove_var("NOTIFY_SOCKET");
            std::env::remove_var("WATCHDOG_USEC");
        }
        notify_ready(); // no socket: a no-op, not an error
    }
}

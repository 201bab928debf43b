//! Socket activation: under systemd, `fieldcast.socket` listens on port 80
//! and passes the socket to the service (`LISTEN_PID`, `LISTEN_FDS`, fd 3
//! on, as sd_listen_fds(3) says), so the service needs no capability to
//! serve the page on a privileged port. Taken once at the very start of
//! `run`, while the process has a single thread; the server then serves on
//! it instead of `[http] listen`, and a restarted server serves on it again.

use std::net::TcpListener;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, RawFd};
use std::sync::OnceLock;

/// The first passed descriptor (SD_LISTEN_FDS_START).
const FIRST_FD: RawFd = 3;

/// What the start found.
#[derive(Debug)]
pub enum Passed {
    /// No socket was passed (not socket-activated, or for another process).
    None,
    /// A listening TCP socket; `extra` more descriptors were passed and left alone.
    Listener { listener: TcpListener, extra: usize },
    /// Something was passed that cannot serve HTTP: why (logged once the
    /// logger is up; the server then listens on `[http] listen`).
    Unusable(String),
}

static PASSED: OnceLock<Passed> = OnceLock::new();

/// Reads and clears the activation variables, keeping the socket for the
/// server.
///
/// # Safety
/// Call while the process has a single thread: it changes the environment.
pub unsafe fn take() {
    let pid = std::env::var("LISTEN_PID").ok();
    let fds = std::env::var("LISTEN_FDS").ok();
    // SAFETY: the caller guarantees no other thread reads the environment;
    // the variables must not reach the processes GStreamer starts.
    unsafe {
        std::env::remove_var("LISTEN_PID");
        std::env::remove_var("LISTEN_FDS");
        std::env::remove_var("LISTEN_FDNAMES");
    }
    let _ = PASSED.set(interpret(pid.as_deref(), fds.as_deref(), std::process::id()));
}

/// What [`take`] found (`None` if it was never called).
pub fn passed() -> &'static Passed {
    PASSED.get().unwrap_or(&Passed::None)
}

/// A fresh handle on the passed listener for one run of the server.
pub fn listener() -> Option<std::io::Result<tokio::net::TcpListener>> {
    let Passed::Listener { listener, .. } = passed() else { return None };
    Some(listener.try_clone().and_then(|l| {
        l.set_nonblocking(true)?;
        tokio::net::TcpListener::from_std(l)
    }))
}

fn interpret(pid: Option<&str>, fds: Option<&str>, me: u32) -> Passed {
    let (Some(pid), Some(fds)) = (pid, fds) else { return Passed::None };
    if pid.trim().parse::<u32>().ok() != Some(me) {
        return Passed::None;
    }
    let count = match fds.trim().parse::<usize>() {
        Ok(0) => return Passed::None,
        Ok(n) => n,
        Err(_) => return Passed::Unusable("LISTEN_FDS is not a number".into()),
    };
    // SAFETY: systemd passed descriptors FIRST_FD.. to this process (LISTEN_PID is ours).
    let fd = unsafe { BorrowedFd::borrow_raw(FIRST_FD) };
    if let Err(why) = check_listening_tcp(fd) {
        return Passed::Unusable(why);
    }
    // Not inherited by the processes GStreamer or the tests start.
    let _ = nix::fcntl::fcntl(fd.as_raw_fd(), nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC));
    // SAFETY: a listening TCP socket that nothing else in this process owns.
    let listener = unsafe { TcpListener::from_raw_fd(FIRST_FD) };
    Passed::Listener { listener, extra: count - 1 }
}

fn check_listening_tcp(fd: BorrowedFd<'_>) -> Result<(), String> {
    use nix::sys::socket::{AddressFamily, SockaddrLike, SockaddrStorage, SockType, getsockname, getsockopt, sockopt};
    match getsockopt(&fd, sockopt::SockType) {
        Ok(SockType::Stream) => {}
        Ok(_) => return Err("the passed socket is not a stream socket (ListenStream= in fieldcast.socket)".into()),
        Err(_) => return Err("descriptor 3 is not a socket".into()),
    }
    if !getsockopt(&fd, sockopt::AcceptConn).unwrap_or(false) {
        return Err("the passed socket is not listening".into());
    }
    let addr: SockaddrStorage = getsockname(fd.as_raw_fd()).map_err(|e| format!("the passed socket has no address: {e}"))?;
    match addr.family() {
        Some(AddressFamily::Inet | AddressFamily::Inet6) => Ok(()),
        _ => Err("the passed socket is not an IP socket (ListenStream= needs a port)".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variables_for_another_process_or_no_descriptors_mean_nothing_was_passed() {
        assert!(matches!(interpret(None, None, 42), Passed::None));
        assert!(matches!(interpret(Some("41"), Some("1"), 42), Passed::None), "LISTEN_PID of another process");
        assert!(matches!(interpret(Some("42"), Some("0"), 42), Passed::None));
        assert!(matches!(interpret(Some("42"), None, 42), Passed::None));
        assert!(matches!(interpret(Some("42"), Some("one"), 42), Passed::Unusable(_)));
    }
}

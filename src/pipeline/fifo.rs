//! A FIFO input and its feeder. Opening a FIFO for reading blocks until a
//! writer comes, which would hang the start of a session (and with it the
//! loop that answers the fleet). This asks without blocking: open the FIFO
//! non-blocking (which never waits) and see, for a short while, whether a
//! feeder writes into it (a feeder blocked in its own `open` is let through
//! by ours). The probe and the capture then open it as before.

use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;
use std::time::Duration;
use std::os::fd::AsRawFd;

/// How long a start waits for a feeder to write before calling the input absent.
pub const FEEDER_WAIT: Duration = Duration::from_millis(500);

pub fn is_fifo(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.file_type().is_fifo())
}

/// For a FIFO: whether a feeder writes into it within `wait`. Anything
/// else (a regular file, a missing path: the probe reports those) is `true`.
pub async fn feeder_present(path: &Path, wait: Duration) -> bool {
    if !is_fifo(path) {
        return true;
    }
    let path = path.to_owned();
    // poll(2) on a blocking thread: bounded by `wait`, never on a runtime worker.
    tokio::task::spawn_blocking(move || {
        let Ok(file) = std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK).open(&path) else {
            return false;
        };
        let mut fds = [libc::pollfd { fd: file.as_raw_fd(), events: libc::POLLIN, revents: 0 }];
        let ms = wait.as_millis().min(i32::MAX as u128) as i32;
        // SAFETY: one valid pollfd, owned by `file`, which outlives the call.
        let ready = unsafe { libc::poll(fds.as_mut_ptr(), 1, ms) };
        // Readable: data waits in the pipe (or a feeder came and went, also worth a start).
        ready > 0 && fds[0].revents & (libc::POLLIN | libc::POLLHUP) != 0
    })
    .await
    .unwrap_or(false)
}

/// For a FIFO being reopened by the capture: a reader (opened without
/// blocking) once a feeder has written into it within `wait`, else `None`.
/// Kept open until the capture has opened the FIFO too, so the feeder never
/// finds itself without a reader in between.
pub fn reader_with_feeder(path: &Path, wait: Duration) -> Option<std::fs::File> {
    let file = std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK).open(path).ok()?;
    let mut fds = [libc::pollfd { fd: file.as_raw_fd(), events: libc::POLLIN, revents: 0 }];
    let ms = wait.as_millis().min(i32::MAX as u128) as i32;
    // SAFETY: one valid pollfd, owned by `file`, which outlives the call.
    let ready = unsafe { libc::poll(fds.as_mut_ptr(), 1, ms) };
    if ready > 0 && fds[0].revents & libc::POLLIN != 0 {
        return Some(file);
    }
    // A feeder that came and went leaves HUP set on this reader: a fresh one next time.
    if ready > 0 {
        std::thread::sleep(wait);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn fifo(dir: &Path) -> std::path::PathBuf {
        let path = dir.join("camera.y4m");
        nix::unistd::mkfifo(&path, nix::sys::stat::Mode::S_IRWXU).unwrap();
        path
    }

    #[tokio::test]
    async fn a_fifo_without_a_feeder_is_reported_absent_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let path = fifo(dir.path());
        let t = std::time::Instant::now();
        assert!(!feeder_present(&path, Duration::from_millis(200)).await);
        assert!(t.elapsed() < Duration::from_secs(2));
    }

    #[tokio::test]
    async fn a_feeder_waiting_to_write_is_seen() {
        let dir = tempfile::tempdir().unwrap();
        let path = fifo(dir.path());
        let p = path.clone();
        // A feeder blocks in open() until a reader comes, then writes.
        let feeder = std::thread::spawn(move || {
            let mut f = std::fs::OpenOptions::new().write(true).open(&p).unwrap();
            let _ = f.write_all(b"YUV4MPEG2 W640 H360 F30:1\n");
        });
        assert!(feeder_present(&path, Duration::from_secs(5)).await);
        feeder.join().unwrap();
    }

    #[tokio::test]
    async fn files_and_missing_paths_are_left_to_the_probe() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("clip.mp4");
        std::fs::write(&file, b"x").unwrap();
        assert!(feeder_present(&file, Duration::from_millis(10)).await);
        assert!(feeder_present(&dir.path().join("absent"), Duration::from_millis(10)).await);
    }
}

//! A fieldcast daemon under test: `fieldcast run -c <config>` with its log
//! captured to a file, plus the small ladders the MQTT tests stream.

use super::fieldcast_command;
use nix::sys::signal::Signal;
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus};
use std::time::Duration;

/// Under QEMU (the aarch64 run) x264 is emulated: stream smaller pictures.
pub fn emulated() -> bool {
    std::env::var_os("FIELDCAST_TEST_EXEC_WRAPPER").is_some_and(|w| !w.is_empty())
}

/// (name, width, height, kbit/s) of a small ladder that runs in real time here.
pub fn small_ladder() -> &'static [(&'static str, u32, u32, u32)] {
    if emulated() {
        &[("r240", 426, 240, 500), ("r120", 214, 120, 200)]
    } else {
        &[("r360", 640, 360, 800), ("r270", 480, 270, 500), ("r180", 320, 180, 300)]
    }
}

/// `[source]` (test pattern at the top rung's size) and `[ladder]` TOML.
pub fn ladder_toml() -> String {
    let l = small_ladder();
    let rungs: Vec<String> = l
        .iter()
        .map(|(n, w, h, k)| format!("{{ name = \"{n}\", width = {w}, height = {h}, bitrate_kbps = {k} }}"))
        .collect();
    format!(
        "[source]\nkind = \"test\"\nwidth = {}\nheight = {}\n\n[ladder]\nrungs = [{}]\n",
        l[0].1,
        l[0].2,
        rungs.join(", ")
    )
}

pub struct Device {
    pub child: Child,
    pub log: PathBuf,
}

impl Device {
    pub fn spawn(config: &Path, log: &Path) -> Device {
        let child = fieldcast_command()
            .args(["run", "-c"])
            .arg(config)
            .env("FIELDCAST_LOG", "info")
            .stdout(std::fs::File::create(log.with_extension("stdout")).unwrap())
            .stderr(std::fs::OpenOptions::new().create(true).append(true).open(log).unwrap())
            .spawn()
            .expect("spawn fieldcast");
        Device { child, log: log.to_path_buf() }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    pub fn signal(&self, s: Signal) {
        super::kill(self.child.id(), s);
    }

    /// SIGTERM and wait (bounded) for the exit status.
    pub fn stop(&mut self) -> Option<ExitStatus> {
        self.signal(Signal::SIGTERM);
        if super::wait_child(&mut self.child, Duration::from_secs(30)) { self.child.try_wait().ok().flatten() } else { None }
    }
}

impl Drop for Device {
    fn drop(&mut self) {
        if self.alive() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Whether an FLV file holds at least one coded video frame (not just the
/// AVC sequence header): the channel has received a picture.
pub fn flv_has_video_frame(path: &Path) -> bool {
    let Ok(b) = std::fs::read(path) else { return false };
    let mut i = 13; // header (9) + PreviousTagSize0 (4)
    while i + 11 <= b.len() {
        let kind = b[i];
        let size = ((b[i + 1] as usize) << 16) | ((b[i + 2] as usize) << 8) | b[i + 3] as usize;
        let data = i + 11;
        if data + size > b.len() {
            return false;
        }
        if kind == 9 && size >= 2 && b[data] & 0x0f == 7 && b[data + 1] == 1 {
            return true;
        }
        i = data + size + 4;
    }
    false
}

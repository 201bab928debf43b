//! What the HTTP ingest tests (CMAF, Smooth) share: the ladder they run,
//! `fieldcast run` for a while with a config, and pymp4 (from the test
//! venv) reading a file through one of `tests/tools/*.py`.

use super::device::emulated;
use super::{fieldcast_command, wait_child};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

pub const GOP_FRAMES: usize = 30;

/// How long each run streams: qemu-user takes seconds to start the pipeline.
pub fn run_seconds() -> u32 {
    if emulated() { 14 } else { 9 }
}

/// (name, width, height, kbit/s): two rungs, smaller under qemu.
pub fn ladder() -> &'static [(&'static str, u32, u32, u32)] {
    if emulated() { &[("r180", 320, 180, 300), ("r90", 160, 90, 150)] } else { &[("r360", 640, 360, 800), ("r180", 320, 180, 300)] }
}

pub fn ladder_toml() -> String {
    let l = ladder();
    let rungs: Vec<String> = l.iter().map(|(n, w, h, k)| format!("{{ name = \"{n}\", width = {w}, height = {h}, bitrate_kbps = {k} }}")).collect();
    format!(
        "[source]\nkind = \"test\"\nwidth = {}\nheight = {}\npattern = \"ball\"\n[ladder]\ngop_seconds = 1\nrungs = [{}]\n[recording]\nenabled = false\n",
        l[0].1,
        l[0].2,
        rungs.join(", ")
    )
}

/// Runs `fieldcast run` for `seconds` with `config`; returns its log.
pub fn run_fieldcast(dir: &Path, config: &str, seconds: u32) -> String {
    let path = dir.join("config.toml");
    std::fs::write(&path, format!("state_dir = \"{}\"\n{config}", dir.join("state").display())).unwrap();
    let log = dir.join("fieldcast.log");
    let mut child = fieldcast_command()
        .args(["run", "--config", path.to_str().unwrap(), "--duration", &seconds.to_string()])
        .env("FIELDCAST_LOG", "info,fieldcast::egress::cmaf=debug,fieldcast::egress::smooth=debug")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("start fieldcast");
    let exited = wait_child(&mut child, Duration::from_secs(u64::from(seconds) + 40));
    let logs = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(exited, "fieldcast did not end; log:\n{logs}");
    assert_eq!(child.wait().unwrap().code(), Some(0), "fieldcast exit; log:\n{logs}");
    logs
}

/// pymp4's reading of `file` through `tests/tools/<script>`, as JSON.
pub fn pymp4(script: &str, file: &Path) -> Value {
    let home = std::env::var("HOME").unwrap_or_default();
    let python = PathBuf::from(home).join(".cache/fieldcast/amqtt-venv/bin/python");
    assert!(python.exists(), "pymp4's venv is missing: run scripts/install-test-deps.sh");
    let out = super::run_with_timeout(
        Command::new(python).arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/tools").join(script)).arg(file),
        Duration::from_secs(60),
    );
    assert!(out.status.success(), "pymp4 could not read {}: {}", file.display(), String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("pymp4 JSON")
}

//! The unit file: `systemd-analyze verify` accepts it (with ExecStart
//! pointed at the binary under test), and it agrees with the binary's
//! contract: Type=notify, watchdog on, and the config-error exit code
//! excluded from restarts.

use std::process::Command;

const UNIT: &str = include_str!("../systemd/fieldcast.service");
const SOCKET: &str = include_str!("../systemd/fieldcast.socket");

fn directive(key: &str) -> Vec<&'static str> {
    UNIT.lines().filter_map(|l| l.strip_prefix(key).and_then(|r| r.strip_prefix('='))).collect()
}

#[test]
fn systemd_analyze_verify_accepts_the_unit() {
    let dir = tempfile::tempdir().unwrap();
    let unit = dir.path().join("fieldcast.service");
    std::fs::write(&unit, UNIT.replace("/usr/bin/fieldcast", env!("CARGO_BIN_EXE_fieldcast"))).unwrap();
    // The socket unit beside it: verified together (it activates the service of its name).
    let socket = dir.path().join("fieldcast.socket");
    std::fs::write(&socket, SOCKET).unwrap();
    let out = Command::new("systemd-analyze").arg("verify").arg(&unit).arg(&socket).output().expect("systemd-analyze (package systemd)");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "systemd-analyze verify failed:\n{stderr}");
    assert!(stderr.trim().is_empty(), "systemd-analyze verify warned:\n{stderr}");
}

#[test]
fn the_unit_matches_what_the_binary_does() {
    assert_eq!(directive("Type"), ["notify"]);
    assert_eq!(directive("RestartPreventExitStatus"), [fieldcast::exit::CONFIG.to_string().as_str()]);
    assert_eq!(directive("Restart"), ["on-failure"]);
    assert!(!directive("WatchdogSec").is_empty());
    assert_eq!(directive("DevicePolicy"), ["closed"]);
    assert!(directive("DeviceAllow").contains(&"char-video4linux rw"));
    assert!(directive("ExecStart")[0].starts_with("/usr/bin/fieldcast run --config /etc/fieldcast/config.toml"));
    for hardening in ["NoNewPrivileges", "ProtectSystem", "ProtectHome", "PrivateTmp"] {
        assert!(!directive(hardening).is_empty(), "{hardening} missing");
    }
    assert!(directive("MemoryDenyWriteExecute").is_empty(), "breaks GStreamer's ORC");
    // Port 80 comes from fieldcast.socket: the service keeps no capability.
    assert_eq!(directive("CapabilityBoundingSet"), [""]);
    assert_eq!(SOCKET.lines().filter_map(|l| l.strip_prefix("ListenStream=")).collect::<Vec<_>>(), ["80"]);
}

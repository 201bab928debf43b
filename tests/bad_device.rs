//! A capture device that is missing (a USB dongle not plugged in yet) is
//! reported by field and retried with backoff; the process stays up and
//! still stops cleanly.

#[allow(dead_code)]
mod common;


#[test]
fn a_missing_capture_device_is_named_in_the_error_and_retried_without_exiting() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(&config, "[source]\nkind = \"v4l2\"\ndevice = \"/dev/video-not-plugged\"\n[recording]\nenabled = false\n").unwrap();
    let out = common::fieldcast_command()
        .args(["run", "--config", config.to_str().unwrap(), "--duration", "4"])
        .env("NO_COLOR", "1")
        .output()
        .expect("run fieldcast");
    let log = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "a clean stop at the time limit:\n{log}");
    assert!(log.contains("source.device: /dev/video-not-plugged does not exist"), "{log}");
    let attempts = log.matches("cannot start the stream").count();
    assert!(attempts >= 2, "retried ({attempts} attempts):\n{log}");
}

#[test]
fn under_systemd_each_log_line_carries_its_journald_priority() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(&config, "[source]\nkind = \"v4l2\"\ndevice = \"/dev/video-not-plugged\"\n[recording]\nenabled = false\n").unwrap();
    let out = common::fieldcast_command()
        .args(["run", "--config", config.to_str().unwrap(), "--duration", "1.5"])
        .env("JOURNAL_STREAM", "8:12345")
        .output()
        .expect("run fieldcast");
    let log = String::from_utf8_lossy(&out.stderr);
    let error = log.lines().find(|l| l.contains("cannot start the stream")).expect("an error line");
    assert!(error.starts_with("<3>"), "error priority: {error}");
    let info = log.lines().find(|l| l.contains("board selected")).expect("an info line");
    assert!(info.starts_with("<6>"), "info priority: {info}");
}

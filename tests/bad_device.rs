//! A capture device that is missing (a USB dongle not plugged in yet) is
//! reported by field and retried with backoff; the process stays up and
//! still stops cleanly. Under systemd its log lines carry their priority.

mod common;

/// Runs fieldcast on a V4L2 device that does not exist; returns exit code and log.
fn run_without_device(seconds: &str, env: &[(&str, &str)]) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    // Recording (into the temp dir) is the output: a standalone box needs one.
    let text = format!("state_dir = \"{}\"\n[source]\nkind = \"v4l2\"\ndevice = \"/dev/video-not-plugged\"\n[recording]\nmin_free_mb = 0\n", dir.path().join("state").display());
    std::fs::write(&config, text.to_string() + common::NO_HTTP).unwrap();
    let out = common::fieldcast_command()
        .args(["run", "--config", config.to_str().unwrap(), "--duration", seconds])
        .envs(env.iter().copied())
        .output()
        .expect("run fieldcast");
    (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn a_missing_capture_device_is_named_by_its_field_and_retried_without_exiting() {
    let (code, log) = run_without_device("4", &[]);
    assert_eq!(code, Some(0), "a clean stop at the time limit:\n{log}");
    assert!(log.contains("source.device: does not exist"), "{log}");
    assert!(!log.contains("video-not-plugged"), "the submitted value is never echoed:\n{log}");
    let attempts = log.matches("cannot start the stream").count();
    assert!(attempts >= 2, "retried ({attempts} attempts):\n{log}");
}

#[test]
fn under_systemd_each_log_line_carries_its_journald_priority() {
    let (_, log) = run_without_device("1.5", &[("JOURNAL_STREAM", "8:12345")]);
    let error = log.lines().find(|l| l.contains("cannot start the stream")).expect("an error line");
    assert!(error.starts_with("<3>"), "error priority: {error}");
    let info = log.lines().find(|l| l.contains("board selected")).expect("an info line");
    assert!(info.starts_with("<6>"), "info priority: {info}");
}

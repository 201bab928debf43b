//! The crew's page in a real browser: headless Chromium (Debian's
//! /usr/bin/chromium) driven by Playwright (`playwright-core` from npm,
//! installed by scripts/install-test-deps.sh) through tests/browser/page.cjs:
//! log in, see "on air", the thumbnail loads and changes, Stop shows idle
//! while nginx-rtmp sees the publishes close, Start shows on air again, a bad
//! destination URL shows its error next to the field, and a phone-width
//! screenshot is saved (`$CARGO_TARGET_TMPDIR/http_browser/page-phone.png`).
//! Node and the browser run on the host, also in the aarch64 run.

mod common;

use common::device::{ladder_toml, small_ladder, Device};
use common::nginx::{Nginx, NginxOptions};
use std::io::Write;
use std::process::Stdio;
use std::time::Duration;

const PASSWORD: &str = "Pw-browser-crew-7Qz";

#[test]
fn the_page_in_chromium_logs_in_shows_on_air_stops_starts_and_shows_a_bad_urls_error() {
    let home = std::env::var("HOME").unwrap();
    let modules = format!("{home}/.cache/fieldcast/node/node_modules");
    assert!(std::path::Path::new(&format!("{modules}/playwright-core")).exists(), "playwright-core missing: run scripts/install-test-deps.sh");
    assert!(std::path::Path::new("/usr/bin/chromium").exists(), "chromium missing: run scripts/install-test-deps.sh");
    let dir = tempfile::tempdir().unwrap();
    let nginx = Nginx::start_with(NginxOptions { file_per_publish: true, ..Default::default() });
    let port = common::free_port();
    let mut child = common::fieldcast_command().arg("passwd").stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().unwrap();
    child.stdin.take().unwrap().write_all(format!("{PASSWORD}\n").as_bytes()).unwrap();
    let hash = String::from_utf8(child.wait_with_output().unwrap().stdout).unwrap().trim().to_string();
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "device_id = \"browser-box\"\nstate_dir = \"{}\"\n{}[audio]\nsource = \"test\"\n[recording]\nenabled = false\n\
             [[destination]]\nname = \"primary\"\nurl = \"{}\"\nstream = \"{{rung}}\"\n\
             [http]\nlisten = \"127.0.0.1:{port}\"\npassword_hash = \"{hash}\"\n",
            dir.path().join("state").display(),
            ladder_toml(),
            nginx.rtmp_url("live")
        ),
    )
    .unwrap();
    let mut device = Device::spawn(&config, &dir.path().join("fieldcast.log"));
    assert!(common::wait_for(Duration::from_secs(60), || common::port_accepts(port)), "no page:\n{}", device.log_text());
    let out = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("http_browser");
    std::fs::create_dir_all(&out).unwrap();
    let mut node = std::process::Command::new("node");
    node.arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/browser/page.cjs"))
        .env("NODE_PATH", &modules)
        .env("FIELDCAST_URL", format!("http://127.0.0.1:{port}/"))
        .env("FIELDCAST_PASSWORD", PASSWORD)
        .env("OUT_DIR", &out)
        .env("STEP_TIMEOUT_MS", "90000");
    let run = common::run_with_timeout(&mut node, Duration::from_secs(600));
    let said = format!("{}{}", String::from_utf8_lossy(&run.stdout), String::from_utf8_lossy(&run.stderr));
    eprintln!("{said}");
    assert!(run.status.success() && said.contains("DONE"), "the browser run failed:\n{said}\n{}", device.log_text());
    for step in ["STEP on-air", "STEP thumbnail-changes", "STEP audio-meters", "STEP sparklines", "STEP idle", "STEP on-air-again", "STEP url-error \"has a scheme that is not supported", "STEP ladder-error \"is larger than the source picture", "STEP screenshot"] {
        assert!(said.contains(step), "missing {step}:\n{said}");
    }
    // The form offers every built-in profile.
    let profiles: Vec<&str> = fieldcast::config::PROFILES.iter().map(|(n, _)| *n).collect();
    assert!(said.contains(&format!("offered {}", profiles.join(","))), "the ladder form's choices:\n{said}");
    assert!(out.join("page-phone.png").metadata().is_ok_and(|m| m.len() > 10_000), "no screenshot");
    let log = device.log_text();
    assert_eq!(device.stop().and_then(|s| s.code()), Some(0), "{log}");
    // Stop closed every publish and Start opened new ones: a file per publish at the channel.
    for (name, ..) in small_ladder() {
        let files = nginx.recordings(name);
        assert!(files.len() >= 2, "{name}: {} publishes at the channel, expected one before Stop and one after Start", files.len());
    }
    assert!(!log.contains(PASSWORD) && !log.contains("BrowserKey-Qz7x9Vw"), "the log holds a secret:\n{log}");
}

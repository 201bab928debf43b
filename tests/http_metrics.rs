//! `GET /metrics` against the real daemon: the whole exposition parsed by
//! the Prometheus client library's own OpenMetrics parser (Python
//! `prometheus_client`, pinned by scripts/install-test-deps.sh; it refuses
//! any malformed line), the conventional names and units are there with
//! their labels, the rung bitrate is what nginx-rtmp received (within 20%),
//! the token is required, and no secret is in any label or value.

mod common;

use common::device::{ladder_toml, small_ladder, Device};
use common::ffprobe;
use common::http::request;
use common::nginx::Nginx;
use serde_json::Value;
use std::collections::HashMap;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const TOKEN: &str = "Tk9-metrics-test-token-Zq";
const KEY: &str = "SkMz7x9VwKey";

/// The families the parser found, as JSON: `[{name, type, unit, samples: [{name, labels, value}]}]`.
fn parse(exposition: &str) -> Vec<Value> {
    let python = format!("{}/.cache/fieldcast/prom-venv/bin/python", std::env::var("HOME").unwrap());
    assert!(std::path::Path::new(&python).exists(), "{python} missing: run scripts/install-test-deps.sh");
    let script = "import json, sys\n\
        from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse\n\
        out = [{'name': f.name, 'type': f.type, 'unit': f.unit, 'samples': [{'name': s.name, 'labels': s.labels, 'value': s.value} for s in f.samples]} for f in parse(sys.stdin.read())]\n\
        print(json.dumps(out))\n";
    let mut child = Command::new(&python).args(["-c", script]).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    child.stdin.take().unwrap().write_all(exposition.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "the OpenMetrics parser refused the exposition: {}\n{exposition}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice::<Vec<Value>>(&out.stdout).unwrap()
}

fn sample<'a>(families: &'a [Value], name: &str, labels: &[(&str, &str)]) -> Option<&'a Value> {
    families.iter().flat_map(|f| f["samples"].as_array().unwrap()).find(|s| {
        s["name"] == name && labels.iter().all(|(k, v)| s["labels"][*k] == *v)
    })
}

#[test]
fn metrics_parse_as_openmetrics_with_units_and_labels_and_the_bitrate_is_what_the_channel_received() {
    let dir = tempfile::tempdir().unwrap();
    let nginx = Nginx::start();
    let port = common::free_port();
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "device_id = \"metrics-box\"\nstate_dir = \"{}\"\n{}[audio]\nsource = \"test\"\n[recording]\nenabled = false\n\
             [[destination]]\nname = \"primary\"\nurl = \"{}\"\nstream = \"{{rung}}_{{key}}\"\nkey = \"{KEY}\"\n\
             [http]\nlisten = \"127.0.0.1:{port}\"\ntoken = \"{TOKEN}\"\n",
            dir.path().join("state").display(),
            ladder_toml(),
            nginx.rtmp_url("live")
        ),
    )
    .unwrap();
    let mut device = Device::spawn(&config, &dir.path().join("fieldcast.log"));
    let auth = format!("Bearer {TOKEN}");
    let scrape = || request(port, "GET", "/metrics", &[("Authorization", &auth)], None);

    let r = loop_until(&mut device, || request(port, "GET", "/metrics", &[], None).ok());
    assert_eq!(r.status, 401, "metrics without the token: {}", r.text());

    // Scrape for a while: one bitrate per snapshot (a new one every 5 s).
    let (mut per_rung, mut uptimes, mut last) = (HashMap::<String, Vec<f64>>::new(), Vec::new(), Vec::new());
    let mut bodies = String::new();
    let start = Instant::now();
    while uptimes.len() < 4 && start.elapsed() < Duration::from_secs(120) {
        assert!(device.alive(), "fieldcast died:\n{}", device.log_text());
        let r = scrape().unwrap();
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.header("content-type"), Some("application/openmetrics-text; version=1.0.0; charset=utf-8"));
        bodies.push_str(&r.text());
        let families = parse(&r.text());
        let live = sample(&families, "fieldcast_state", &[("state", "live")]).is_some_and(|s| s["value"] == 1.0);
        let up = sample(&families, "fieldcast_uptime_seconds", &[]).and_then(|s| s["value"].as_f64());
        if let (true, Some(up)) = (live, up)
            && !uptimes.contains(&up)
            && small_ladder().iter().all(|(n, ..)| sample(&families, "fieldcast_output_up", &[("rung", n)]).is_some_and(|s| s["value"] == 1.0))
        {
            uptimes.push(up);
            for (name, ..) in small_ladder() {
                let b = sample(&families, "fieldcast_rung_bitrate_bits_per_second", &[("rung", name)]).unwrap();
                per_rung.entry(name.to_string()).or_default().push(b["value"].as_f64().unwrap());
            }
            last = families;
        }
        std::thread::sleep(Duration::from_millis(700));
    }
    assert!(uptimes.len() >= 3, "too few live snapshots with every output up: {uptimes:?}\n{}", device.log_text());

    // Names, types and labels.
    let family = |name: &str| last.iter().find(|f| f["name"] == name).unwrap_or_else(|| panic!("no family {name}"));
    for (name, kind) in [
        ("fieldcast_rung_bitrate_bits_per_second", "gauge"),
        ("fieldcast_rung_frames_per_second", "gauge"),
        ("fieldcast_output_up", "gauge"),
        ("fieldcast_output_reconnects", "counter"),
        ("fieldcast_output_sent_bytes", "counter"),
        ("fieldcast_input_signal", "gauge"),
        ("fieldcast_input_frames_captured", "counter"),
        ("fieldcast_process_resident_memory_bytes", "gauge"),
        ("fieldcast_state", "gauge"),
    ] {
        assert_eq!(family(name)["type"], kind, "{name}");
    }
    let top = small_ladder()[0].0;
    let output = [("destination", "primary"), ("rung", top), ("endpoint", "primary")];
    assert!(sample(&last, "fieldcast_output_reconnects_total", &output).is_some(), "reconnects_total with destination/rung/endpoint labels");
    assert!(sample(&last, "fieldcast_output_sent_bytes_total", &output).and_then(|s| s["value"].as_f64()).is_some_and(|v| v > 0.0));
    assert_eq!(sample(&last, "fieldcast_input_signal", &[]).unwrap()["value"], 1.0);
    let fps = sample(&last, "fieldcast_rung_frames_per_second", &[("rung", top)]).unwrap()["value"].as_f64().unwrap();
    assert!(fps > 10.0, "rung fps {fps}");

    let log = device.log_text();
    assert_eq!(device.stop().and_then(|s| s.code()), Some(0), "{log}");
    for secret in [KEY, TOKEN, "rtmp://"] {
        assert!(!bodies.contains(secret), "the metrics hold {secret}");
    }
    assert!(!log.contains(KEY) && !log.contains(TOKEN), "the log holds a secret:\n{log}");

    // What the channel got, against what the metrics said (whole snapshots after the first).
    for (name, _, _, target) in small_ladder() {
        let told = &per_rung[*name][1..];
        let told = told.iter().sum::<f64>() / told.len() as f64;
        let v = ffprobe::video_packets(&nginx.recording(&format!("{name}_{KEY}")));
        let skip = v.iter().position(|p| p.dts >= 2.0).unwrap_or(0);
        let got = ffprobe::measured_bitrate(&v[skip..], 1.0 / 30.0);
        eprintln!("MEASURED {name}: metrics {:.0} kbit/s, channel {:.0} kbit/s, target {target}", told / 1000.0, got / 1000.0);
        assert!((told - got).abs() / got < 0.20, "{name}: metrics {told:.0} vs channel {got:.0} bit/s");
    }
}

/// Polls `f` until it gives something (the API is up), up to 60 s.
fn loop_until<T>(device: &mut Device, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(device.alive() && start.elapsed() < Duration::from_secs(60), "the API never answered:\n{}", device.log_text());
        std::thread::sleep(Duration::from_millis(200));
    }
}

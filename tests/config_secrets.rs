//! No output ever holds a submitted config value: every field of the config
//! schema (traced from the raw structs by `config::schema`, not a hand-picked
//! list) gets a marker value of every TOML/JSON type, and every channel is
//! searched for it: `check-config` (text and `--json`), `run`'s exit message,
//! and, against a real mosquitto, the `configure` reply, the events, the
//! retained `config/reported` of a rejected `config/desired`, and the log.
//! A secret field (key, password, stream template, URL) must not show its
//! marker even when the value is accepted.

mod common;

use common::device::Device;
use common::mosquitto::Mosquitto;
use common::mqtt::Watcher;
use common::run_with_timeout;
use fieldcast::config::schema::{self, Segment, Shape};
use serde_json::json;
use std::time::Duration;

/// Every marker holds one of these; none may appear in an output.
const NEEDLES: &[&str] = &["Qz7x9Vw", "7340123", "7340124", "73401235", "2093-07-19", "05:47:31"];
const EXIT_CONFIG: i32 = 78;

/// Fields whose value must never be shown, accepted or not.
fn is_secret(field: &str) -> bool {
    ["destination[0].key", "destination[0].stream", "destination[0].url", "destination[0].backup_url", "destination[0].passphrase", "destination[0].streamid", "mqtt.password", "http.token", "http.password_hash"]
        .contains(&field)
}

/// (name, value) of every marker for a field of `shape`: every TOML type, and
/// for string fields also an identifier-like, a URL-with-credentials and a
/// template-with-a-literal-key string (valid enough to reach deeper checks).
fn markers(shape: Shape) -> Vec<(&'static str, toml::Value)> {
    use toml::Value as V;
    let mut m = vec![
        ("string", V::String("mk!Qz7x9Vw".into())),
        ("integer", V::Integer(7_340_123)),
        ("float", V::Float(7_340_123.5)),
        ("bool", V::Boolean(true)),
        ("array", V::Array(vec![V::String("Qz7x9Vw-a".into()), V::Integer(7_340_124)])),
        ("table", V::Table([("mkQz7x9Vwkey".to_string(), V::String("Qz7x9Vw-t".into()))].into_iter().collect())),
        ("datetime", V::Datetime("2093-07-19T05:47:31Z".parse().unwrap())),
    ];
    if matches!(shape, Shape::String | Shape::Any) {
        m.push(("id-like string", V::String("Qz7x9Vw_id".into())));
        m.push(("url with credentials", V::String("rtmp://Qz7x9Vw:Qz7x9Vw-pw@127.0.0.1/live".into())));
        m.push(("mqtt url with credentials", V::String("mqtt://Qz7x9Vw:Qz7x9Vw-pw@127.0.0.1:1883".into())));
        m.push(("template with a literal key", V::String("{rung}_Qz7x9Vw".into())));
        m.push(("srt url with a passphrase and a streamid", V::String("srt://127.0.0.1:1?passphrase=Qz7x9Vw-pass&streamid=Qz7x9Vw".into())));
    }
    m
}

/// Sibling values a field needs to be read at all (`source.device` only
/// with `kind = "v4l2"`, a destination needs a URL, ...), as (path, value).
fn enablers(field: &str) -> Vec<(&'static str, toml::Value)> {
    use toml::Value as V;
    let s = |x: &str| V::String(x.into());
    let mut e = Vec::new();
    match field {
        "source.device" | "source.format" => e.push(("source.kind", s("v4l2"))),
        "source.device_number" | "source.mode" | "source.connection" => e.push(("source.kind", s("decklink"))),
        "source.path" => e.push(("source.kind", s("file"))),
        "audio.device" => e.push(("audio.source", s("alsa"))),
        "mqtt.password" => e.push(("mqtt.username", s("box"))),
        "destination[0].key" => e.push(("destination[0].stream", s("{rung}_{key}"))),
        "destination[0].pbkeylen" => e.push(("destination[0].passphrase", s("0123456789ab"))),
        "destination[0].redundancy" | "destination[0].failover_after_ms" => e.push(("destination[0].backup_url", s("rtmp://127.0.0.2:1/live"))),
        _ => {}
    }
    // SRT's fields are read on an SRT destination, RTMP's on an RTMP one.
    const SRT_FIELDS: &[&str] = &["streamid", "passphrase", "pbkeylen", "latency_ms", "mode"];
    if let Some(name) = field.strip_prefix("destination[0].") {
        let url = if SRT_FIELDS.contains(&name) { "srt://127.0.0.1:1" } else { "rtmp://127.0.0.1:1/live" };
        e.insert(0, ("destination[0].url", s(url)));
    } else if field == "destination[0]" {
        e.insert(0, ("destination[0].url", s("rtmp://127.0.0.1:1/live")));
    }
    if field.starts_with("ladder.rungs[0].") {
        let rung: toml::Table =
            [("name", s("r360")), ("width", V::Integer(640)), ("height", V::Integer(360)), ("bitrate_kbps", V::Integer(800))]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect();
        e.push(("ladder.rungs", V::Array(vec![V::Table(rung)])));
    }
    if field.starts_with("mqtt") && field != "mqtt" {
        e.insert(0, ("mqtt.broker", s("mqtt://127.0.0.1:1")));
    }
    e
}

/// `a.b[0].c` -> segments (indices are always 0 here).
fn parse_path(p: &str) -> Vec<Segment> {
    let known: Vec<Vec<Segment>> = schema::fields().into_iter().map(|f| f.path).collect();
    known.into_iter().find(|k| schema::dotted(k) == p).unwrap_or_else(|| panic!("{p} is not in the schema"))
}

fn set(slot: &mut toml::Value, path: &[Segment], v: toml::Value) {
    match path.split_first() {
        None => *slot = v,
        Some((Segment::Key(k), rest)) => {
            if !slot.is_table() {
                *slot = toml::Value::Table(toml::Table::new());
            }
            let child = slot.as_table_mut().unwrap().entry(k.to_string()).or_insert(toml::Value::Table(toml::Table::new()));
            set(child, rest, v)
        }
        Some((Segment::Index(_), rest)) => {
            if !slot.is_array() {
                *slot = toml::Value::Array(Vec::new());
            }
            let a = slot.as_array_mut().unwrap();
            if a.is_empty() {
                a.push(toml::Value::Table(toml::Table::new()));
            }
            set(&mut a[0], rest, v)
        }
    }
}

struct Case {
    field: String,
    marker: &'static str,
    /// The marker and its enablers (for the file: on top of the base).
    overlay: toml::Value,
}

/// Every schema field but the root, with every marker.
/// Every field with every marker natively. Under qemu-user (the aarch64
/// run, ~1.5 s a process) one marker per field, rotating through the types
/// field by field so each type is still used: the formatting under test is
/// the same Rust on both architectures, the full walk runs natively.
fn cases() -> Vec<Case> {
    let reduced = common::device::emulated();
    let mut out = Vec::new();
    for (i, f) in schema::fields().into_iter().filter(|f| !f.path.is_empty()).enumerate() {
        let field = f.dotted();
        let all = markers(f.shape);
        let n = all.len();
        for (j, (marker, value)) in all.into_iter().enumerate() {
            if reduced && j != i % n {
                continue;
            }
            let mut overlay = toml::Value::Table(toml::Table::new());
            for (p, v) in enablers(&field) {
                set(&mut overlay, &parse_path(p), v);
            }
            set(&mut overlay, &f.path, value);
            out.push(Case { field: field.clone(), marker, overlay });
        }
    }
    out
}

fn leaks(text: &str) -> Vec<&'static str> {
    NEEDLES.iter().copied().filter(|n| text.contains(n)).collect()
}

fn fieldcast(args: &[&str], config: &std::path::Path) -> (i32, String) {
    let mut cmd = common::fieldcast_command();
    cmd.args(args).arg(config).env("FIELDCAST_LOG", "info");
    let out = run_with_timeout(&mut cmd, Duration::from_secs(60));
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.code().unwrap_or(-1), text)
}

#[test]
fn check_config_and_run_never_echo_a_value_of_any_type_in_any_field() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    let all = cases();
    let mut failures = Vec::new();
    let mut refused_fields = std::collections::HashSet::new();
    let (mut refused, mut accepted) = (0, 0);
    for c in &all {
        let mut doc = toml::Value::Table(toml::Table::new());
        set(&mut doc, &parse_path("state_dir"), toml::Value::String(dir.path().join("state").display().to_string()));
        set(&mut doc, &parse_path("recording.dir"), toml::Value::String(dir.path().join("rec").display().to_string()));
        fieldcast::config::merge(doc.as_table_mut().unwrap(), c.overlay.as_table().unwrap().clone());
        std::fs::write(&path, toml::to_string(&doc).unwrap()).unwrap();
        let what = format!("{} = {} ({})", c.field, c.marker, toml::to_string(&doc).unwrap().replace('\n', "; "));
        let (code, text) = fieldcast(&["check-config"], &path);
        let (json_code, json_text) = fieldcast(&["check-config", "--json"], &path);
        if code != json_code || ![0, EXIT_CONFIG].contains(&code) {
            failures.push(format!("{what}: check-config exit {code}, --json exit {json_code}: {text}"));
            continue;
        }
        let secret = is_secret(&c.field);
        if code == EXIT_CONFIG || secret {
            for (channel, out) in [("check-config", &text), ("check-config --json", &json_text)] {
                if !leaks(out).is_empty() {
                    failures.push(format!("{what}: {channel} shows {:?}:\n{out}", leaks(out)));
                }
            }
        }
        if code == EXIT_CONFIG {
            refused += 1;
            refused_fields.insert(c.field.clone());
            let (run_code, run_text) = fieldcast(&["run", "-c"], &path);
            if run_code != EXIT_CONFIG {
                failures.push(format!("{what}: run exited {run_code}, not {EXIT_CONFIG}: {run_text}"));
            }
            if !leaks(&run_text).is_empty() {
                failures.push(format!("{what}: run's exit message shows {:?}:\n{run_text}", leaks(&run_text)));
            }
        } else {
            accepted += 1;
        }
    }
    eprintln!("MEASURED {} cases over {} fields: {refused} refused, {accepted} accepted", all.len(), refused_fields.len());
    assert!(failures.is_empty(), "{} leaks or wrong exits:\n{}", failures.len(), failures.join("\n\n"));
    // Every field was refused at least once (its wrong types), so every
    // field's error path was searched, not only the happy one.
    let every: Vec<String> = schema::fields().iter().filter(|f| !f.path.is_empty()).map(|f| f.dotted()).collect();
    let never: Vec<&String> = every.iter().filter(|f| !refused_fields.contains(*f)).collect();
    if common::device::emulated() {
        eprintln!("SKIP (emulated): one marker per field here, so some fields are only accepted; the native run checks every field is refused: {} were not", never.len());
    } else {
        assert!(never.is_empty(), "never refused: {never:?}");
    }
}

fn to_json(v: &toml::Value) -> serde_json::Value {
    match v {
        toml::Value::String(s) => json!(s),
        toml::Value::Integer(i) => json!(i),
        toml::Value::Float(f) => json!(f),
        toml::Value::Boolean(b) => json!(b),
        // JSON has no date-time: sent as the string it is written as.
        toml::Value::Datetime(d) => json!(d.to_string()),
        toml::Value::Array(a) => serde_json::Value::Array(a.iter().map(to_json).collect()),
        toml::Value::Table(t) => serde_json::Value::Object(t.iter().map(|(k, v)| (k.clone(), to_json(v))).collect()),
    }
}

#[test]
fn configure_replies_events_reported_config_and_the_log_never_echo_a_value() {
    const DEVICE: &str = "walk-box";
    let broker = Mosquitto::start();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    let log = dir.path().join("fieldcast.log");
    std::fs::write(
        &config,
        format!(
            "device_id = \"{DEVICE}\"\nstate_dir = \"{}\"\n[recording]\nenabled = false\n[mqtt]\nbroker = \"{}\"\nautostart = false\ntelemetry_seconds = 3600\n",
            dir.path().join("state").display(),
            broker.url()
        ),
    )
    .unwrap();
    let dash = Watcher::connect(&broker.url(), None, None, &format!("fieldcast/{DEVICE}/#"));
    let topic = |leaf: &str| format!("fieldcast/{DEVICE}/{leaf}");
    let _device = Device::spawn(&config, &log);
    let t = Duration::from_secs(30);
    assert!(dash.wait_json(t, &topic("status"), |v| v["online"] == true).is_some(), "not online: {}", std::fs::read_to_string(&log).unwrap_or_default());

    let request = |name: &str, body: serde_json::Value| -> serde_json::Value {
        let id = body["id"].as_str().unwrap().to_string();
        dash.publish(&topic(&format!("cmd/{name}")), body.to_string().as_bytes(), false);
        dash.wait_json(t, &topic(&format!("reply/{id}")), |_| true).unwrap_or_else(|| panic!("no reply to {id}"))
    };
    let reset = json!({"source": null, "audio": null, "ladder": null, "destination": null, "recording": null, "egress": null});
    let mut failures = Vec::new();
    let (mut refused, mut accepted, mut version) = (0, 0, 0u64);
    // File-only sections are refused as a whole: one marker each is enough.
    let local_only = |f: &str| !fieldcast::control::patch::REMOTE_SECTIONS.iter().any(|s| f == *s || f.starts_with(&format!("{s}.")) || f.starts_with(&format!("{s}[")));
    for (n, c) in cases().iter().enumerate().filter(|(_, c)| !local_only(&c.field) || c.marker == "string") {
        dash.clear();
        let patch = to_json(&c.overlay);
        let reply = request("configure", json!({"id": format!("w{n}"), "config": patch}));
        let ok = reply["ok"] == true;
        if !ok {
            // The same overlay as a `config/desired` document: rejected into the retained `config/reported`.
            version += 1;
            dash.publish(&topic("config/desired"), json!({"version": version, "config": patch}).to_string().as_bytes(), true);
            let reported = dash.wait_json(t, &topic("config/reported"), |v| v["version"] == version);
            assert!(reported.is_some_and(|r| r["status"] == "rejected"), "{} = {}: configure refused, desired not rejected", c.field, c.marker);
        }
        // Everything the box publishes for this case comes before this reply.
        request("status", json!({"id": format!("s{n}")}));
        let published: String = dash
            .messages()
            .iter()
            .filter(|m| !m.topic.contains("/cmd/") && !m.topic.ends_with("/config/desired"))
            .map(|m| format!("{} {}\n", m.topic, String::from_utf8_lossy(&m.payload)))
            .collect();
        if (!ok || is_secret(&c.field)) && !leaks(&published).is_empty() {
            failures.push(format!("{} = {} ({patch}): published {:?}:\n{published}", c.field, c.marker, leaks(&published)));
        }
        if ok {
            accepted += 1;
            assert_eq!(request("configure", json!({"id": format!("r{n}"), "config": reset}))["ok"], true, "reset refused");
        } else {
            refused += 1;
        }
    }
    dash.publish(&topic("config/desired"), b"", true);
    let journal = std::fs::read_to_string(&log).unwrap_or_default();
    eprintln!("MEASURED configure walk: {refused} refused, {accepted} accepted");
    let enough = if common::device::emulated() { 30 } else { 300 };
    assert!(refused > enough, "too few refusals to mean anything: {refused}");
    assert!(failures.is_empty(), "{} leaks:\n{}", failures.len(), failures.join("\n\n"));
    // Accepted values of plain fields may be logged by name; none is here.
    assert!(leaks(&journal).is_empty(), "the log shows {:?}:\n{journal}", leaks(&journal));
}

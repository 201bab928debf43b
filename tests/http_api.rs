//! The local HTTP API against the real daemon on a free loopback port:
//! `GET /api/v1/status` and `/api/v1/telemetry` are the MQTT documents,
//! `POST /api/v1/cmd/<name>` runs the MQTT commands with their bodies,
//! replies and error codes (each mapped to an HTTP status), only with the
//! bearer token; no response and no log line holds the stream key or the
//! token; and a port the server cannot have never touches the stream.

mod common;

use common::device::{ladder_toml, small_ladder, Device};
use common::http::{request, Response};
use common::nginx::Nginx;
use serde_json::{json, Value};
use std::path::Path;
use std::time::Duration;

const TOKEN: &str = "Tk9-http-api-test-token-Zq";
const KEY: &str = "SkQz7x9VwKey";
const NEW_KEY: &str = "NkR4p8LmKey";

fn write_config(dir: &Path, http: &str, extra: &str) -> std::path::PathBuf {
    let path = dir.join("config.toml");
    let text = format!(
        "device_id = \"http-box\"\nstate_dir = \"{}\"\n{}[audio]\nsource = \"test\"\n{extra}\n[http]\n{http}\n",
        dir.join("state").display(),
        ladder_toml()
    );
    std::fs::write(&path, text).unwrap();
    path
}

struct Api {
    port: u16,
    /// Every body the API sent, to look for secrets in.
    seen: Vec<String>,
}

impl Api {
    fn call(&mut self, method: &str, path: &str, token: Option<&str>, body: Option<&[u8]>) -> Response {
        let auth = token.map(|t| format!("Bearer {t}"));
        let headers: Vec<(&str, &str)> = auth.iter().map(|a| ("Authorization", a.as_str())).collect();
        let r = request(self.port, method, path, &headers, body).unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        self.seen.push(r.text());
        r
    }
    fn get(&mut self, path: &str) -> Response {
        self.call("GET", path, Some(TOKEN), None)
    }
    fn cmd(&mut self, name: &str, body: Value) -> Response {
        self.call("POST", &format!("/api/v1/cmd/{name}"), Some(TOKEN), Some(body.to_string().as_bytes()))
    }
    /// Waits (polling) until `/api/v1/status` says `state`.
    fn wait_state(&mut self, state: &str, device: &mut Device) {
        let mut last = String::new();
        let ok = common::wait_for(Duration::from_secs(120), || {
            assert!(device.alive(), "fieldcast died:\n{}", device.log_text());
            match request(self.port, "GET", "/api/v1/status", &[("Authorization", &format!("Bearer {TOKEN}"))], None) {
                Ok(r) if r.status == 200 => {
                    last = r.text();
                    r.json()["state"] == state
                }
                _ => false,
            }
        });
        assert!(ok, "never {state}; last status {last}\n{}", device.log_text());
    }
}

fn code(r: &Response) -> String {
    r.json()["error"]["code"].as_str().unwrap_or("").to_string()
}

#[test]
fn the_api_serves_status_telemetry_and_commands_only_with_the_token_and_never_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let nginx = Nginx::start();
    let port = common::free_port();
    let destination = format!(
        "[recording]\nenabled = false\n[[destination]]\nname = \"primary\"\nurl = \"{}\"\nstream = \"{{rung}}_{{key}}\"\nkey = \"{KEY}\"\n",
        nginx.rtmp_url("live")
    );
    let config = write_config(dir.path(), &format!("listen = \"127.0.0.1:{port}\"\ntoken = \"{TOKEN}\""), &destination);
    let mut device = Device::spawn(&config, &dir.path().join("fieldcast.log"));
    let mut api = Api { port, seen: Vec::new() };
    assert!(common::wait_for(Duration::from_secs(60), || common::port_accepts(port)), "the API never listened:\n{}", device.log_text());
    api.wait_state("live", &mut device);

    // Auth: no token, a wrong token, the right one.
    for token in [None, Some("Tk9-http-api-test-token-Zz"), Some("short")] {
        for (method, path, body) in [("GET", "/api/v1/status", None), ("GET", "/api/v1/telemetry", None), ("POST", "/api/v1/cmd/stop", Some(&b"{\"id\":\"x1\"}"[..]))] {
            let r = api.call(method, path, token, body);
            assert_eq!(r.status, 401, "{method} {path} with {token:?}: {}", r.text());
            assert_eq!(code(&r), "unauthorized");
            assert_eq!(r.header("www-authenticate"), Some("Bearer"));
        }
    }
    let status = api.get("/api/v1/status");
    assert_eq!(status.status, 200, "{}", status.text());
    let s = status.json();
    assert_eq!((s["online"].clone(), s["device_id"].clone(), s["state"].clone()), (json!(true), json!("http-box"), json!("live")), "{s}");

    // Telemetry: the first snapshot comes a few seconds after start.
    let mut telemetry = Value::Null;
    assert!(common::wait_for(Duration::from_secs(60), || {
        let r = api.get("/api/v1/telemetry");
        telemetry = if r.status == 200 { r.json() } else { Value::Null };
        telemetry["rungs"].as_array().is_some_and(|r| !r.is_empty()) && telemetry["destinations"].as_array().is_some_and(|d| !d.is_empty())
    }), "no telemetry with rungs and destinations: {telemetry}");
    let names: Vec<&str> = telemetry["rungs"].as_array().unwrap().iter().map(|r| r["name"].as_str().unwrap()).collect();
    let expected: Vec<&str> = small_ladder().iter().map(|r| r.0).collect();
    assert_eq!(names, expected, "{telemetry}");
    let s = api.get("/api/v1/status").json();
    assert_eq!(s["input"]["signal"], json!(true), "the status document follows the input: {s}");

    // The commands' error codes, each with its HTTP status; the stream stays up meanwhile.
    let big = vec![b' '; 70 * 1024];
    let cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        ("frobnicate", br#"{"id":"e1"}"#.to_vec(), 404, "unknown_command"),
        ("start", b"{not json".to_vec(), 400, "malformed_json"),
        ("start", b"[1,2]".to_vec(), 400, "not_an_object"),
        ("start", b"{}".to_vec(), 400, "missing_id"),
        ("start", br#"{"id":"e2","bogus":1}"#.to_vec(), 400, "unknown_field"),
        ("start", big, 413, "payload_too_large"),
        ("configure", br#"{"id":"e3","config":{"ladder":{"gop_seconds":99}}}"#.to_vec(), 400, "invalid_config"),
        ("configure", br#"{"id":"e4","config":{"http":{"token":"Tk9-http-api-test-token-Zz"}}}"#.to_vec(), 400, "forbidden_field"),
        ("configure", br#"{"id":"e5","config":{"destination":[{"name":"primary","url":"rtmp://user:pw@127.0.0.1/live","key":"NkR4p8LmKey"}]}}"#.to_vec(), 400, "invalid_config"),
    ];
    for (name, body, status, expected) in &cases {
        let r = api.call("POST", &format!("/api/v1/cmd/{name}"), Some(TOKEN), Some(body));
        assert_eq!((r.status, code(&r)), (*status, expected.to_string()), "cmd/{name}: {}", r.text());
        assert_eq!(r.json()["ok"], json!(false));
    }
    assert_eq!(api.get("/api/v1/status").json()["state"], json!("live"), "a refused command touched the stream");
    // The `status` command answers like its MQTT twin; a repeated id gets the first reply.
    let r = api.cmd("status", json!({"id": "st1"}));
    assert_eq!(r.status, 200, "{}", r.text());
    let first = r.json();
    assert_eq!((first["id"].clone(), first["ok"].clone(), first["result"]["state"].clone()), (json!("st1"), json!(true), json!("live")));
    assert!(first["result"]["destinations"][0]["url"].as_str().is_some(), "{first}");
    assert_eq!(api.cmd("status", json!({"id": "st1"})).json(), first, "a repeated id must get the first reply");

    // stop, stop again (refused: 409), start.
    let r = api.cmd("stop", json!({"id": "s1"}));
    assert_eq!((r.status, r.json()["state"].clone()), (200, json!("idle")), "{}", r.text());
    let r = api.cmd("stop", json!({"id": "s2"}));
    assert_eq!((r.status, code(&r)), (409, "not_allowed".to_string()), "{}", r.text());
    let r = api.cmd("snapshot", json!({"id": "p0"}));
    assert_eq!((r.status, code(&r)), (503, "unavailable".to_string()), "a snapshot while idle: {}", r.text());
    let r = api.cmd("start", json!({"id": "s3"}));
    assert_eq!((r.status, r.json()["ok"].clone()), (200, json!(true)), "{}", r.text());
    api.wait_state("live", &mut device);

    // A valid configure (a new key): applied, the stream restarts on it, the key never comes back.
    let r = api.cmd("configure", json!({"id": "c1", "config": {"destination": [{"name": "primary", "url": nginx.rtmp_url("live"), "stream": "{rung}_{key}", "key": NEW_KEY}]}}));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["result"]["config_version"], json!(1), "{}", r.text());
    api.wait_state("live", &mut device);
    let top = small_ladder()[0].0;
    assert!(
        common::wait_for(Duration::from_secs(60), || common::device::flv_has_video_frame(&nginx.recording(&format!("{top}_{NEW_KEY}")))),
        "the channel never got the new key's publish:\n{}",
        device.log_text()
    );
    // A snapshot over HTTP is the JPEG itself.
    let (mut jpeg, mut n) = (None, 0);
    assert!(common::wait_for(Duration::from_secs(60), || {
        n += 1;
        let r = api.cmd("snapshot", json!({"id": format!("p{n}")}));
        let ok = r.status == 200 && r.header("content-type") == Some("image/jpeg");
        jpeg = ok.then_some(r.body);
        ok
    }));
    assert_eq!(&jpeg.unwrap()[..2], &[0xff, 0xd8], "not a JPEG");
    // (Every response is kept by `call`.)
    api.get("/api/v1/status");
    api.get("/api/v1/telemetry");
    api.cmd("status", json!({"id": "st2"}));

    let log = device.log_text();
    assert_eq!(device.stop().and_then(|s| s.code()), Some(0), "{log}");
    for secret in [KEY, NEW_KEY, TOKEN] {
        for body in &api.seen {
            assert!(!body.contains(secret), "a response holds a secret: {body}");
        }
        assert!(!log.contains(secret), "the log holds a secret:\n{log}");
    }
    assert!(!log.contains("user:pw"), "the log holds a submitted value:\n{log}");
}

#[test]
fn a_port_the_api_cannot_have_never_touches_the_stream_and_the_api_comes_when_it_is_free() {
    let dir = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let recording = format!("[recording]\nmin_free_mb = 0\ndir = \"{}\"\n", dir.path().join("rec").display());
    // No token and public_status: the documents are public, commands refused.
    let config = write_config(dir.path(), &format!("listen = \"127.0.0.1:{port}\"\npublic_status = true"), &recording);
    let mut device = Device::spawn(&config, &dir.path().join("fieldcast.log"));
    assert!(
        common::wait_for(Duration::from_secs(90), || device.log_text().contains("HTTP API cannot listen") && device.log_text().contains("state=\"live\"")),
        "expected a logged bind failure and the stream live anyway:\n{}",
        device.log_text()
    );
    drop(taken);
    let mut api = Api { port, seen: Vec::new() };
    assert!(
        common::wait_for(Duration::from_secs(60), || request(port, "GET", "/api/v1/status", &[], None).is_ok_and(|r| r.status == 200)),
        "the API never came once the port was free:\n{}",
        device.log_text()
    );
    let r = api.call("GET", "/api/v1/status", None, None);
    assert_eq!(r.json()["state"], json!("live"), "{}", r.text());
    let r = api.call("POST", "/api/v1/cmd/stop", Some(TOKEN), Some(br#"{"id":"s1"}"#));
    assert_eq!((r.status, code(&r)), (401, "unauthorized".to_string()), "no token configured: no commands; {}", r.text());
    assert_eq!(api.call("GET", "/api/v1/status", None, None).json()["state"], json!("live"));
    let log = device.log_text();
    assert_eq!(device.stop().and_then(|s| s.code()), Some(0), "{log}");
}

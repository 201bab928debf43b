//! The crew's page against the real daemon: the embedded assets, login with
//! the argon2 hash `fieldcast passwd` prints (or the one-time setup code
//! from the journal), the HttpOnly SameSite=Strict session cookie, POSTs
//! refused without the session's CSRF token, live updates by SSE, the
//! thumbnail, a bad destination refused with its field, session expiry, and
//! the login rate limit (tests/http_browser.rs drives the page in a browser).

mod common;

use common::device::{ladder_toml, Device};
use common::http::{request, Response};
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

const PASSWORD: &str = "Pw-field-crew-7Qz";

fn hash(password: &str) -> String {
    let mut child = common::fieldcast_command().arg("passwd").stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().unwrap();
    child.stdin.take().unwrap().write_all(format!("{password}\n").as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let h = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert!(h.starts_with("$argon2id$") && !h.contains(password), "{h}");
    h
}

fn spawn(dir: &Path, port: u16, http: &str) -> Device {
    let config = dir.join("config.toml");
    std::fs::write(
        &config,
        format!(
            "device_id = \"page-box\"\nstate_dir = \"{}\"\n{}[audio]\nsource = \"test\"\n[recording]\nmin_free_mb = 0\ndir = \"{}\"\n\
             [http]\nlisten = \"127.0.0.1:{port}\"\n{http}\n",
            dir.join("state").display(),
            ladder_toml(),
            dir.join("rec").display()
        ),
    )
    .unwrap();
    let device = Device::spawn(&config, &dir.join("fieldcast.log"));
    assert!(common::wait_for(Duration::from_secs(60), || common::port_accepts(port)), "no page:\n{}", device.log_text());
    device
}

struct Browser {
    port: u16,
    cookie: Option<String>,
    csrf: Option<String>,
    seen: Vec<String>,
}

impl Browser {
    fn send(&mut self, method: &str, path: &str, body: Option<Value>, with_csrf: bool) -> Response {
        let mut headers: Vec<(&str, String)> = Vec::new();
        if let Some(c) = &self.cookie {
            headers.push(("Cookie", c.clone()));
        }
        if let (true, Some(t)) = (with_csrf, &self.csrf) {
            headers.push(("X-CSRF-Token", t.clone()));
        }
        let h: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let body = body.map(|b| b.to_string());
        let r = request(self.port, method, path, &h, body.as_deref().map(str::as_bytes)).unwrap();
        self.seen.push(r.text());
        r
    }
    fn login(&mut self, password: &str) -> Response {
        let r = self.send("POST", "/ui/login", Some(json!({"password": password})), false);
        if r.status == 200 {
            let set = r.header("set-cookie").expect("a cookie").to_string();
            for flag in ["HttpOnly", "SameSite=Strict", "Path=/"] {
                assert!(set.contains(flag), "cookie without {flag}: {set}");
            }
            self.cookie = Some(set.split(';').next().unwrap().to_string());
            self.csrf = r.json()["csrf"].as_str().map(str::to_string);
        }
        r
    }
    fn cmd(&mut self, name: &str, body: Value, with_csrf: bool) -> Response {
        self.send("POST", &format!("/api/v1/cmd/{name}"), Some(body), with_csrf)
    }
}

fn code(r: &Response) -> String {
    r.json()["error"]["code"].as_str().unwrap_or("").to_string()
}

/// Reads the SSE stream until `want` has arrived (or the timeout).
fn sse_until(port: u16, cookie: &str, want: &[&str], timeout: Duration) -> String {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
    write!(s, "GET /ui/events HTTP/1.1\r\nHost: x\r\nCookie: {cookie}\r\nAccept: text/event-stream\r\n\r\n").unwrap();
    let (mut got, start, mut buf) = (String::new(), Instant::now(), [0u8; 4096]);
    while start.elapsed() < timeout && !want.iter().all(|w| got.contains(w)) {
        if let Ok(n) = s.read(&mut buf) {
            if n == 0 {
                break;
            }
            got.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    }
    got
}

#[test]
fn the_page_logs_in_with_the_hash_guards_posts_with_csrf_pushes_status_and_expires_sessions() {
    let dir = tempfile::tempdir().unwrap();
    let port = common::free_port();
    let h = hash(PASSWORD);
    // Short sessions, to see one expire; each step below logs in afresh, so
    // a slow step (under qemu-user) never outlives its session.
    let lifetime = if common::device::emulated() { 20 } else { 8 };
    let mut device = spawn(dir.path(), port, &format!("password_hash = \"{h}\"\nsession_seconds = {lifetime}\ntoken = \"Tk9-page-test-token-Zq\""));
    let mut b = Browser { port, cookie: None, csrf: None, seen: Vec::new() };

    // The page itself is public (it holds no data) and asks for nothing outside the box.
    let page = b.send("GET", "/", None, false);
    assert_eq!(page.status, 200);
    assert!(page.header("content-type").unwrap().starts_with("text/html"));
    assert!(page.header("content-security-policy").unwrap().contains("default-src 'self'"));
    assert!(!page.text().contains("http://") && !page.text().contains("https://"), "the page loads nothing from elsewhere");
    for asset in ["/ui/app.js", "/ui/style.css"] {
        assert_eq!(b.send("GET", asset, None, false).status, 200, "{asset}");
    }
    // Nothing else without a login (public_status = false).
    for path in ["/api/v1/status", "/ui/events", "/ui/thumb.jpg", "/metrics"] {
        let r = b.send("GET", path, None, false);
        assert_eq!((r.status, code(&r)), (401, "unauthorized".into()), "{path}");
    }
    assert_eq!(b.send("GET", "/ui/session", None, false).json()["logged_in"], false);

    let r = b.login("not the password");
    assert_eq!((r.status, code(&r)), (401, "unauthorized".into()));
    let r = b.login(PASSWORD);
    assert_eq!(r.status, 200, "{}", r.text());
    let logged_in_at = Instant::now();
    assert_eq!(b.send("GET", "/api/v1/status", None, false).status, 200);
    // The session expires `lifetime` after the login.
    std::thread::sleep(Duration::from_secs(lifetime + 1).saturating_sub(logged_in_at.elapsed()));
    let r = b.send("GET", "/api/v1/status", None, false);
    assert_eq!((r.status, code(&r)), (401, "unauthorized".into()), "an expired session: {}", r.text());
    assert!(r.json()["error"]["message"].as_str().unwrap().contains("log in again"));
    let r = b.cmd("stop", json!({"id": "p-stop-x"}), true);
    assert_eq!(r.status, 401, "{}", r.text());

    assert_eq!(b.login(PASSWORD).status, 200);
    let s = b.send("GET", "/ui/session", None, false).json();
    assert_eq!((s["logged_in"].clone(), s["csrf"].clone()), (json!(true), json!(b.csrf.clone())));

    // A POST with the cookie but without the CSRF token is refused; with it, it runs.
    let r = b.cmd("stop", json!({"id": "p-stop-0"}), false);
    assert_eq!((r.status, code(&r)), (403, "forbidden".into()), "{}", r.text());
    assert_eq!(b.send("POST", "/ui/logout", Some(json!({})), false).status, 200);
    assert_eq!(b.send("GET", "/api/v1/status", None, false).status, 200, "a logout without the CSRF token ends nothing");
    // Live updates: the status and telemetry documents pushed.
    assert_eq!(b.login(PASSWORD).status, 200);
    let sse = sse_until(port, b.cookie.as_deref().unwrap(), &["event: status", "event: telemetry", "\"state\":\"live\""], Duration::from_secs(30));
    assert!(sse.contains("text/event-stream") && sse.contains("event: status") && sse.contains("\"state\":\"live\""), "{sse}");
    // The thumbnail: a JPEG of the input.
    assert_eq!(b.login(PASSWORD).status, 200);
    let mut jpeg = false;
    assert!(common::wait_for(Duration::from_secs(30), || {
        let r = b.send("GET", "/ui/thumb.jpg", None, false);
        jpeg = r.status == 200 && r.header("content-type") == Some("image/jpeg") && r.body.starts_with(&[0xff, 0xd8]);
        jpeg
    }));
    assert_eq!(b.login(PASSWORD).status, 200);
    let r = b.cmd("stop", json!({"id": "p-stop-1"}), true);
    assert_eq!((r.status, r.json()["state"].clone()), (200, json!("idle")), "{}", r.text());
    assert_eq!(b.login(PASSWORD).status, 200);
    let r = b.cmd("start", json!({"id": "p-start-1"}), true);
    assert_eq!((r.status, r.json()["ok"].clone()), (200, json!(true)), "{}", r.text());
    // The destination form's bad URL: refused with the field named, the stream untouched.
    let bad = json!({"id": "p-conf-1", "config": {"destination": [{"name": "primary", "url": "ftp://nowhere/live", "stream": "{rung}_{key}", "key": "PgKey-Qz7x9Vw"}]}});
    assert_eq!(b.login(PASSWORD).status, 200);
    let r = b.cmd("configure", bad, true);
    assert_eq!((r.status, code(&r)), (400, "invalid_config".into()), "{}", r.text());
    let fields: Vec<String> = r.json()["error"]["fields"].as_array().unwrap().iter().map(|f| f["field"].as_str().unwrap().to_string()).collect();
    assert!(fields.iter().any(|f| f == "config.destination[0].url"), "{fields:?}");
    assert_eq!(b.send("GET", "/api/v1/status", None, false).json()["state"], json!("live"));

    // The rate limit: after 5 failures from this address even the right password waits.
    for i in 0..5 {
        assert_eq!(b.login("wrong").status, 401, "attempt {i}");
    }
    let r = b.login(PASSWORD);
    assert_eq!((r.status, code(&r)), (429, "rate_limited".into()), "{}", r.text());
    assert!(r.header("retry-after").is_some_and(|s| s.parse::<u64>().is_ok_and(|n| (1..=60).contains(&n))));

    let log = device.log_text();
    assert_eq!(device.stop().and_then(|s| s.code()), Some(0), "{log}");
    for secret in [PASSWORD, h.as_str(), "PgKey-Qz7x9Vw", "Tk9-page-test-token-Zq"] {
        assert!(!log.contains(secret), "the log holds a secret:\n{log}");
        assert!(b.seen.iter().all(|body| !body.contains(secret)), "a response holds a secret");
    }
}

#[test]
fn without_a_password_hash_a_setup_code_from_the_journal_logs_in_once() {
    let dir = tempfile::tempdir().unwrap();
    let port = common::free_port();
    let mut device = spawn(dir.path(), port, "");
    let mut b = Browser { port, cookie: None, csrf: None, seen: Vec::new() };
    assert_eq!(b.send("GET", "/ui/session", None, false).json()["setup_code"], true);
    let mut log = String::new();
    assert!(common::wait_for(Duration::from_secs(30), || {
        log = device.log_text();
        log.contains("setup_code=")
    }));
    let code_text = log.split("setup_code=").nth(1).unwrap().split_whitespace().next().unwrap().trim_matches('"').to_string();
    assert_eq!(code_text.len(), 12, "{log}");
    let r = b.login(&code_text);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(b.send("GET", "/api/v1/status", None, false).status, 200);
    let mut other = Browser { port, cookie: None, csrf: None, seen: Vec::new() };
    let r = other.login(&code_text);
    assert_eq!((r.status, code(&r)), (401, "unauthorized".into()), "the setup code is one-time: {}", r.text());
    assert_eq!(device.stop().and_then(|s| s.code()), Some(0));
}

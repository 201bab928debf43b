//! A recording HTTP/1.1 receiver for ingest tests: a small server on a free
//! loopback port that records every request (method, path, headers, body,
//! connection, arrival time) and answers 200, unless told to answer a path
//! with another status or to drop the connection (at once, or part-way
//! through a long chunked body). It never judges: the tests hand what it
//! recorded to ffprobe and pymp4.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Clone, Debug)]
pub struct Request {
    pub method: String,
    pub path: String,
    /// Lower-case names.
    pub headers: HashMap<String, String>,
    pub body: Vec<u8>,
    /// Which TCP connection (0, 1, ... in accept order) carried it.
    pub connection: usize,
    /// When its request line and headers had arrived.
    pub started: Instant,
    /// When its body had fully arrived (or, dropped part-way, when it was dropped).
    pub at: Instant,
    /// What the receiver did with it.
    pub answer: Answer,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer {
    Status(u16),
    /// Read the request, then closed the connection without answering.
    Drop,
    /// Read this many bytes of the body (or all of a shorter one), then
    /// closed the connection without answering: a drop mid-stream.
    DropAfter(usize),
}

/// "The `nth` request (counting from 0) whose path contains `path` gets `answer`";
/// with `nth` None, every such request.
struct Rule {
    path: String,
    nth: Option<usize>,
    answer: Answer,
    seen: usize,
}

#[derive(Default)]
struct Shared {
    requests: Mutex<Vec<Request>>,
    rules: Mutex<Vec<Rule>>,
    stop: AtomicBool,
    connections: AtomicUsize,
}

pub struct HttpReceiver {
    pub port: u16,
    shared: Arc<Shared>,
}

impl HttpReceiver {
    pub fn start() -> HttpReceiver {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the receiver");
        let port = listener.local_addr().unwrap().port();
        let shared = Arc::new(Shared::default());
        let s = shared.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if s.stop.load(Ordering::Acquire) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let id = s.connections.fetch_add(1, Ordering::AcqRel);
                let s = s.clone();
                std::thread::spawn(move || serve(conn, id, &s));
            }
        });
        HttpReceiver { port, shared }
    }

    /// `http://127.0.0.1:PORT{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// The `nth` request (from 0) whose path contains `path` gets `answer`.
    pub fn answer_nth(&self, path: &str, nth: usize, answer: Answer) {
        self.shared.rules.lock().unwrap().push(Rule { path: path.into(), nth: Some(nth), answer, seen: 0 });
    }

    /// Every request whose path contains `path` gets `answer`.
    pub fn answer_all(&self, path: &str, answer: Answer) {
        self.shared.rules.lock().unwrap().push(Rule { path: path.into(), nth: None, answer, seen: 0 });
    }

    pub fn requests(&self) -> Vec<Request> {
        self.shared.requests.lock().unwrap().clone()
    }

    /// The requests whose path is exactly `path`, in arrival order.
    pub fn requests_to(&self, path: &str) -> Vec<Request> {
        self.requests().into_iter().filter(|r| r.path == path).collect()
    }
}

impl Drop for HttpReceiver {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        // Wakes the accept loop so it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

fn decide(s: &Shared, path: &str) -> Answer {
    let mut rules = s.rules.lock().unwrap();
    let mut answer = Answer::Status(200);
    for r in rules.iter_mut().filter(|r| path.contains(&r.path)) {
        let n = r.seen;
        r.seen += 1;
        if r.nth.is_none_or(|k| k == n) && answer == Answer::Status(200) {
            answer = r.answer;
        }
    }
    answer
}

fn serve(conn: TcpStream, id: usize, s: &Shared) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(60)));
    let mut writer = conn.try_clone().expect("clone the socket");
    let mut reader = BufReader::new(conn);
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let mut parts = line.split_whitespace();
        let (Some(method), Some(path)) = (parts.next(), parts.next()) else { return };
        let (method, path) = (method.to_string(), path.to_string());
        let mut headers = HashMap::new();
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
            }
        }
        let started = Instant::now();
        let answer = decide(s, &path);
        let limit = match answer {
            Answer::DropAfter(n) => n,
            _ => usize::MAX,
        };
        let body = match read_body(&mut reader, &headers, limit) {
            Some(b) => b,
            None => return,
        };
        s.requests.lock().unwrap().push(Request { method, path, headers, body, connection: id, started, at: Instant::now(), answer });
        match answer {
            Answer::Drop | Answer::DropAfter(_) => return,
            Answer::Status(code) => {
                let reply = format!("HTTP/1.1 {code} {}\r\nContent-Length: 0\r\n\r\n", reason(code));
                if writer.write_all(reply.as_bytes()).is_err() {
                    return;
                }
            }
        }
    }
}

/// The body, or only its first `limit` bytes of a chunked one (cut
/// mid-chunk: the rest is never read).
fn read_body(reader: &mut BufReader<TcpStream>, headers: &HashMap<String, String>, limit: usize) -> Option<Vec<u8>> {
    if headers.get("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        let mut body = Vec::new();
        loop {
            let mut size = String::new();
            reader.read_line(&mut size).ok()?;
            let n = usize::from_str_radix(size.trim().split(';').next()?, 16).ok()?;
            if body.len() + n > limit {
                let mut part = vec![0; limit - body.len()];
                reader.read_exact(&mut part).ok()?;
                body.extend_from_slice(&part);
                return Some(body);
            }
            let mut chunk = vec![0; n + 2];
            reader.read_exact(&mut chunk).ok()?;
            if n == 0 {
                return Some(body);
            }
            body.extend_from_slice(&chunk[..n]);
        }
    }
    let n: usize = headers.get("content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
    let mut body = vec![0; n];
    reader.read_exact(&mut body).ok()?;
    Some(body)
}

fn reason(code: u16) -> &'static str {
    match code {
        200 => "OK",
        403 => "Forbidden",
        404 => "Not Found",
        412 => "Precondition Failed",
        415 => "Unsupported Media Type",
        500 => "Internal Server Error",
        _ => "Status",
    }
}

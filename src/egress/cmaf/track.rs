//! One CMAF track's poster: its own persistent HTTP/1.1 connection, the
//! CMAF header first on every connection, then one segment per POST, in
//! order. The DASH-IF ingest failure rules live here:
//! - a TCP error (or no answer): reconnect to the same URL (connect timeout
//!   about one segment), resend the header, then the segments missed while
//!   the outage lasted less than [`RESEND_MAX`] segments, else resume at the
//!   live edge (the newest segment);
//! - `412`: the receiver lost the header: resend it, then the segment;
//! - `403`: retried `forbidden_retries` times, then this track stops;
//! - `404`/`415`: this track stops at once (no publishing point / wrong type);
//! - any other answer: retried with backoff (the segment stays queued).
//!
//! Never a burst beyond that: at most [`RESEND_MAX`] old segments are sent
//! back to back after a reconnect.

use super::http::{self, Connection, HttpError};
use super::segmenter::Segment;
use crate::backoff::Backoff;
use crate::config::url::HttpUrl;
use crate::egress::status::error_chain;
use bytes::Bytes;
use serde::Serialize;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_rustls::rustls::ClientConfig;
use tracing::{debug, info, instrument, warn};

/// An outage this many segments long or longer resumes at the live edge.
pub const RESEND_MAX: usize = 3;
/// Items a track's input holds (segments arrive one a GOP).
pub const TRACK_CHANNEL: usize = 16;
/// `412` answers in a row before the track backs off like for any failure.
const PRECONDITION_RETRIES: u32 = 3;

/// What one track posts where. The request target is secret (it may hold
/// a token): never shown.
#[derive(Clone)]
pub struct TrackPlan {
    /// The output's `destination/rung`, for logs.
    pub label: String,
    /// `video-720p` or `audio`.
    pub name: String,
    pub url: HttpUrl,
    pub target: String,
    pub content_type: &'static str,
    pub tls: Option<Arc<ClientConfig>>,
    pub connect_timeout: Duration,
    pub answer_timeout: Duration,
    pub backoff: Backoff,
    pub forbidden_retries: u32,
}

pub enum TrackInput {
    /// The CMAF header (again, when the encoder's configuration changed).
    Header(Bytes),
    Segment(Segment),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TrackState {
    Connecting,
    /// Connected: posting, or ready to post.
    Sending,
    Reconnecting,
    /// The stream ended (after its `lmsg` segment).
    Stopped,
    /// Refused for good (403 after the retries, 404, 415): this track only.
    Failed,
}

/// One track's telemetry. Never holds a secret.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TrackStatus {
    pub track: String,
    pub state: TrackState,
    pub segments_sent: u64,
    /// Body bytes of every accepted POST (headers and segments).
    pub bytes_sent: u64,
    pub last_http_status: Option<u16>,
    pub reconnects: u32,
    /// Segments posted again after a failed attempt (lost with the
    /// connection, or answered other than 2xx).
    pub retransmitted_segments: u64,
    /// Segments given up: past the resend window, or lost to a full input.
    pub segments_skipped: u64,
    pub last_error: Option<String>,
}

impl TrackStatus {
    /// A track that has not connected yet.
    pub fn new(track: &str) -> TrackStatus {
        TrackStatus {
            track: track.to_owned(),
            state: TrackState::Connecting,
            segments_sent: 0,
            bytes_sent: 0,
            last_http_status: None,
            reconnects: 0,
            retransmitted_segments: 0,
            segments_skipped: 0,
            last_error: None,
        }
    }
}

/// Starts the poster; it ends once `rx`'s senders are gone and its queue is posted.
pub fn spawn(plan: TrackPlan) -> (mpsc::Sender<TrackInput>, JoinHandle<()>, watch::Receiver<TrackStatus>) {
    let (tx, rx) = mpsc::channel(TRACK_CHANNEL);
    let (status_tx, status_rx) = watch::channel(TrackStatus::new(&plan.name));
    (tx, tokio::spawn(Poster::new(plan, status_tx).run(rx)), status_rx)
}

/// A queued segment and how often its POST was started.
struct Queued {
    segment: Segment,
    attempts: u32,
    /// When the segment was cut (its closing IDR reached the output).
    cut: Instant,
}

/// What one POST's answer means for the track.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    Accepted,
    ResendHeader,
    Forbidden,
    Refused(&'static str),
    Retry,
}

pub(crate) fn verdict(status: u16) -> Verdict {
    match status {
        200..=299 => Verdict::Accepted,
        412 => Verdict::ResendHeader,
        403 => Verdict::Forbidden,
        404 => Verdict::Refused("404 Not Found: no publishing point at this URL"),
        415 => Verdict::Refused("415 Unsupported Media Type: the receiver does not take this track"),
        _ => Verdict::Retry,
    }
}

struct Poster {
    plan: TrackPlan,
    status: watch::Sender<TrackStatus>,
    header: Option<Bytes>,
    queue: VecDeque<Queued>,
    conn: Option<Connection>,
    /// The current connection has had the header accepted.
    header_sent: bool,
    forbidden: u32,
    precondition: u32,
    /// An outage reached [`RESEND_MAX`]: only the newest segment is kept until one is posted.
    at_edge: bool,
}

impl Poster {
    fn new(plan: TrackPlan, status: watch::Sender<TrackStatus>) -> Poster {
        Poster { plan, status, header: None, queue: VecDeque::new(), conn: None, header_sent: false, forbidden: 0, precondition: 0, at_edge: false }
    }

    fn accept(&mut self, input: TrackInput) {
        match input {
            TrackInput::Header(h) => {
                if self.header.as_ref() != Some(&h) {
                    self.header = Some(h);
                    self.header_sent = false;
                }
            }
            TrackInput::Segment(segment) => {
                self.queue.push_back(Queued { segment, attempts: 0, cut: Instant::now() });
                if self.queue.len() > RESEND_MAX || (self.at_edge && self.queue.len() > 1) {
                    // The outage is as long as the resend window: resume at
                    // the live edge, the newest segment, until it is posted.
                    let skipped = self.queue.len() - 1;
                    self.queue.drain(..skipped);
                    self.status.send_modify(|s| s.segments_skipped += skipped as u64);
                    if !self.at_edge {
                        warn!("the outage reached {RESEND_MAX} segments: resuming at the live edge");
                    }
                    self.at_edge = true;
                }
            }
        }
    }

    #[instrument(name = "cmaf_track", skip_all, fields(egress = %self.plan.label, track = %self.plan.name, url = %self.plan.url))]
    async fn run(mut self, mut rx: mpsc::Receiver<TrackInput>) {
        let mut schedule = self.plan.backoff.schedule();
        let mut open = true;
        // Connect before the first header exists: the session holds its
        // pipeline back until every output is past `connecting`.
        let _ = self.connect().await;
        loop {
            // Take what has arrived; wait only when there is nothing to post.
            while open {
                let next = if self.queue.is_empty() || self.header.is_none() { rx.recv().await } else {
                    match rx.try_recv() {
                        Ok(i) => Some(i),
                        Err(mpsc::error::TryRecvError::Empty) => break,
                        Err(mpsc::error::TryRecvError::Disconnected) => None,
                    }
                };
                match next {
                    Some(i) => self.accept(i),
                    None => open = false,
                }
            }
            if self.queue.is_empty() || self.header.is_none() {
                break;
            }
            match self.step().await {
                Ok(()) => schedule.reset(),
                Err(Stop::Failed(why)) => return failed(&self.status, why, &mut rx).await,
                Err(Stop::Retry) => {
                    // While waiting, new segments still arrive (and the live-edge rule applies).
                    let until = Instant::now() + schedule.next_delay();
                    wait_taking(until, &mut rx, &mut open, |i| self.accept(i)).await;
                }
            }
        }
        self.status.send_modify(|s| s.state = TrackState::Stopped);
    }

    /// One attempt at the front segment (connecting and sending the header first if needed).
    async fn step(&mut self) -> Result<(), Stop> {
        if self.conn.is_none() {
            self.connect().await?;
        }
        if !self.header_sent {
            let header = self.header.clone().expect("checked by the caller");
            match self.post(header).await? {
                Verdict::Accepted => self.header_sent = true,
                v => return self.refused(v),
            }
        }
        let front = self.queue.front_mut().expect("checked by the caller");
        front.attempts += 1;
        let (data, again, seq, cut) = (front.segment.data.clone(), front.attempts > 1, front.segment.seq, front.cut);
        let started = Instant::now();
        match self.post(data.clone()).await? {
            Verdict::Accepted => {
                self.queue.pop_front();
                self.at_edge = false;
                self.forbidden = 0;
                self.precondition = 0;
                // `latency_ms`: from the segment's closing IDR at this output to its POST answered.
                debug!(seq, again, post_ms = started.elapsed().as_millis() as u64, latency_ms = cut.elapsed().as_millis() as u64, "segment posted");
                self.status.send_modify(|s| {
                    s.state = TrackState::Sending;
                    s.segments_sent += 1;
                    s.bytes_sent += data.len() as u64;
                    if again {
                        s.retransmitted_segments += 1;
                    }
                });
                Ok(())
            }
            v => self.refused(v),
        }
    }

    /// Opens the connection (the header goes first on it).
    async fn connect(&mut self) -> Result<(), Stop> {
        match http::connect(&self.plan.url, self.plan.tls.as_ref(), self.plan.connect_timeout).await {
            Ok(c) => {
                self.conn = Some(c);
                self.header_sent = false;
                self.status.send_modify(|s| {
                    if s.state == TrackState::Connecting {
                        s.state = TrackState::Sending;
                    }
                });
                Ok(())
            }
            Err(e) => Err(self.transport_failed(e)),
        }
    }

    /// Posts one body on the open connection; a transport failure drops it.
    async fn post(&mut self, body: Bytes) -> Result<Verdict, Stop> {
        let len = body.len() as u64;
        let conn = self.conn.as_mut().expect("connected");
        match conn.post(&self.plan.target, self.plan.content_type, body, self.plan.answer_timeout).await {
            Ok(code) => {
                let v = verdict(code);
                self.status.send_modify(|s| {
                    s.last_http_status = Some(code);
                    if v == Verdict::Accepted && !self.header_sent {
                        s.bytes_sent += len;
                    }
                });
                Ok(v)
            }
            Err(e) => Err(self.transport_failed(e)),
        }
    }

    fn transport_failed(&mut self, e: HttpError) -> Stop {
        self.conn = None;
        self.header_sent = false;
        let text = error_chain(&e);
        info!(error = %text, "connection failed; reconnecting");
        self.status.send_modify(|s| {
            s.state = TrackState::Reconnecting;
            s.reconnects += 1;
            s.last_error = Some(text);
        });
        Stop::Retry
    }

    fn refused(&mut self, v: Verdict) -> Result<(), Stop> {
        let code = self.status.borrow().last_http_status.unwrap_or(0);
        match v {
            Verdict::Accepted => Ok(()),
            Verdict::ResendHeader => {
                self.header_sent = false;
                self.precondition += 1;
                info!("412 Precondition Failed: resending the CMAF header");
                if self.precondition > PRECONDITION_RETRIES { Err(self.answer_failed(code)) } else { Ok(()) }
            }
            Verdict::Forbidden => {
                self.forbidden += 1;
                if self.forbidden > self.plan.forbidden_retries {
                    Err(Stop::Failed(format!(
                        "{}: 403 Forbidden {} times in a row (the receiver refuses this encoder or its credentials); track stopped",
                        self.plan.url, self.forbidden
                    )))
                } else {
                    Err(self.answer_failed(code))
                }
            }
            Verdict::Refused(why) => Err(Stop::Failed(format!("{}: {why}; track stopped", self.plan.url))),
            Verdict::Retry => Err(self.answer_failed(code)),
        }
    }

    fn answer_failed(&mut self, code: u16) -> Stop {
        let text = format!("{} answered HTTP {code}", self.plan.url);
        info!(error = %text, "retrying");
        self.status.send_modify(|s| {
            s.state = TrackState::Reconnecting;
            s.last_error = Some(text);
        });
        Stop::Retry
    }
}

pub(crate) enum Stop {
    Retry,
    Failed(String),
}

/// A track refused for good: `failed` with `why`; its input is read and
/// dropped until the output ends, so the output is never blocked.
pub(crate) async fn failed(status: &watch::Sender<TrackStatus>, why: String, rx: &mut mpsc::Receiver<TrackInput>) {
    warn!(reason = %why, "track stopped");
    status.send_modify(|s| {
        s.state = TrackState::Failed;
        s.last_error = Some(why);
    });
    while rx.recv().await.is_some() {}
}

/// Waits until `until` (a retry's backoff), handing whatever the output
/// sends meanwhile to `accept`; `open` turns false when the output ends.
pub(crate) async fn wait_taking(until: Instant, rx: &mut mpsc::Receiver<TrackInput>, open: &mut bool, mut accept: impl FnMut(TrackInput)) {
    while *open {
        match tokio::time::timeout_at(until, rx.recv()).await {
            Ok(Some(i)) => accept(i),
            Ok(None) => *open = false,
            Err(_) => break,
        }
    }
    tokio::time::sleep_until(until).await;
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    /// (connection, body) of each request a [`serve`] server took.
    type Seen = Arc<std::sync::Mutex<Vec<(usize, Vec<u8>)>>>;

    /// A minimal HTTP/1.1 server on `listener`: the n-th request (from 0)
    /// is answered `answer(n)`; 0 drops the connection unanswered.
    fn serve(listener: TcpListener, answer: fn(usize) -> u16) -> Seen {
        let seen: Seen = Arc::default();
        let s = seen.clone();
        tokio::spawn(async move {
            let mut conn_id = 0;
            while let Ok((mut sock, _)) = listener.accept().await {
                let s = s.clone();
                let id = conn_id;
                conn_id += 1;
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    loop {
                        let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                            let mut chunk = [0u8; 4096];
                            match sock.read(&mut chunk).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                            }
                            continue;
                        };
                        let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                        let len: usize = head.lines().find_map(|l| l.strip_prefix("content-length:")).map_or(0, |v| v.trim().parse().unwrap());
                        while buf.len() < end + 4 + len {
                            let mut chunk = [0u8; 4096];
                            match sock.read(&mut chunk).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                            }
                        }
                        let body = buf[end + 4..end + 4 + len].to_vec();
                        buf.drain(..end + 4 + len);
                        let n = {
                            let mut v = s.lock().unwrap();
                            v.push((id, body));
                            v.len() - 1
                        };
                        let code = answer(n);
                        if code == 0 {
                            return;
                        }
                        let reply = format!("HTTP/1.1 {code} X\r\nContent-Length: 0\r\n\r\n");
                        if sock.write_all(reply.as_bytes()).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        seen
    }

    fn plan(port: u16) -> TrackPlan {
        track_plan(&format!("http://127.0.0.1:{port}/live"), "/live/video-r", 1)
    }

    /// Track `video-r` of a plain-HTTP destination at `url`, posting to
    /// `target`, with short timeouts and backoff for tests.
    pub(crate) fn track_plan(url: &str, target: &str, forbidden_retries: u32) -> TrackPlan {
        TrackPlan {
            label: "d/r".into(),
            name: "video-r".into(),
            url: HttpUrl::parse(url).unwrap(),
            target: target.into(),
            content_type: "video/mp4",
            tls: None,
            connect_timeout: Duration::from_secs(2),
            answer_timeout: Duration::from_secs(2),
            backoff: Backoff { initial: Duration::from_millis(20), max: Duration::from_millis(50) },
            forbidden_retries,
        }
    }

    pub(crate) fn segment(seq: u32) -> TrackInput {
        TrackInput::Segment(Segment { seq, decode_time: u64::from(seq), start_ns: 0, duration_ns: 1, data: Bytes::from(format!("seg{seq}")), last: false, filler: false })
    }

    pub(crate) async fn settle(status: &watch::Receiver<TrackStatus>, done: impl Fn(&TrackStatus) -> bool) -> TrackStatus {
        for _ in 0..200 {
            if done(&status.borrow()) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        status.borrow().clone()
    }

    fn bodies(seen: &Seen) -> Vec<String> {
        seen.lock().unwrap().iter().map(|(_, b)| String::from_utf8_lossy(b).into_owned()).collect()
    }

    #[tokio::test]
    async fn a_404_or_415_stops_the_track_at_once_with_the_reason() {
        for (code, why) in [(404, "404 Not Found"), (415, "415 Unsupported Media Type")] {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let port = listener.local_addr().unwrap().port();
            let seen = serve(listener, if code == 404 { |_| 404 } else { |_| 415 });
            let (tx, task, status) = spawn(plan(port));
            tx.send(TrackInput::Header(Bytes::from_static(b"hdr"))).await.unwrap();
            tx.send(segment(1)).await.unwrap();
            let s = settle(&status, |s| s.state == TrackState::Failed).await;
            assert_eq!(s.state, TrackState::Failed);
            assert!(s.last_error.as_deref().unwrap().contains(why), "{s:?}");
            assert_eq!(bodies(&seen), ["hdr"], "no retry after {code}");
            // The output is never blocked by a stopped track.
            for n in 2..40 {
                tx.send(segment(n)).await.unwrap();
            }
            drop(tx);
            task.await.unwrap();
        }
    }

    #[tokio::test]
    async fn a_500_is_retried_on_the_same_connection_and_counted_as_retransmitted() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = serve(listener, |n| if n == 1 { 500 } else { 200 });
        let (tx, task, status) = spawn(plan(port));
        tx.send(TrackInput::Header(Bytes::from_static(b"hdr"))).await.unwrap();
        tx.send(segment(1)).await.unwrap();
        tx.send(segment(2)).await.unwrap();
        drop(tx);
        task.await.unwrap();
        let s = status.borrow().clone();
        assert_eq!(bodies(&seen), ["hdr", "seg1", "seg1", "seg2"]);
        assert!(seen.lock().unwrap().iter().all(|(c, _)| *c == 0), "one connection");
        assert_eq!((s.state, s.segments_sent, s.retransmitted_segments, s.last_http_status), (TrackState::Stopped, 2, 1, Some(200)));
    }

    #[tokio::test]
    async fn a_short_outage_resends_the_missed_segments_and_a_long_one_resumes_at_the_live_edge() {
        for (missed, expect) in [(2u32, vec!["hdr", "seg1", "seg2", "seg3"]), (5, vec!["hdr", "seg6"])] {
            // Nothing listens yet: the track retries while segments arrive.
            let port = TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap().port();
            let (tx, task, status) = spawn(plan(port));
            tx.send(TrackInput::Header(Bytes::from_static(b"hdr"))).await.unwrap();
            for n in 1..=missed {
                tx.send(segment(n)).await.unwrap();
            }
            settle(&status, |s| s.reconnects >= 2).await;
            let seen = serve(TcpListener::bind(("127.0.0.1", port)).await.unwrap(), |_| 200);
            tx.send(segment(missed + 1)).await.unwrap();
            let s = settle(&status, |s| s.segments_sent as usize == expect.len() - 1).await;
            drop(tx);
            task.await.unwrap();
            assert_eq!(bodies(&seen), expect, "after {missed} missed");
            assert_eq!(s.segments_skipped, u64::from(missed + 1) - (expect.len() as u64 - 1));
            assert_eq!(s.retransmitted_segments, 0, "never posted before: late, not again: {s:?}");
        }
    }

    #[test]
    fn answers_map_to_the_dash_if_rules() {
        assert_eq!(verdict(200), Verdict::Accepted);
        assert_eq!(verdict(201), Verdict::Accepted);
        assert_eq!(verdict(412), Verdict::ResendHeader);
        assert_eq!(verdict(403), Verdict::Forbidden);
        assert!(matches!(verdict(404), Verdict::Refused(_)));
        assert!(matches!(verdict(415), Verdict::Refused(_)));
        for c in [400, 500, 502, 503] {
            assert_eq!(verdict(c), Verdict::Retry);
        }
    }
}

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
    /// Segments posted again, or late, after a failure.
    pub retransmitted_segments: u64,
    /// Segments given up: past the resend window, or lost to a full input.
    pub segments_skipped: u64,
    pub last_error: Option<String>,
}

/// Starts the poster; it ends once `rx`'s senders are gone and its queue is posted.
pub fn spawn(plan: TrackPlan) -> (mpsc::Sender<TrackInput>, JoinHandle<()>, watch::Receiver<TrackStatus>) {
    let (tx, rx) = mpsc::channel(TRACK_CHANNEL);
    let status = TrackStatus {
        track: plan.name.clone(),
        state: TrackState::Connecting,
        segments_sent: 0,
        bytes_sent: 0,
        last_http_status: None,
        reconnects: 0,
        retransmitted_segments: 0,
        segments_skipped: 0,
        last_error: None,
    };
    let (status_tx, status_rx) = watch::channel(status);
    (tx, tokio::spawn(Poster::new(plan, status_tx).run(rx)), status_rx)
}

/// A queued segment; `late` once an attempt failed or an outage delayed it.
struct Queued {
    segment: Segment,
    late: bool,
    /// When the segment was cut (its closing IDR reached the output).
    cut: Instant,
}

/// What one POST's answer means for the track.
#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    Accepted,
    ResendHeader,
    Forbidden,
    Refused(&'static str),
    Retry,
}

fn verdict(status: u16) -> Verdict {
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
}

impl Poster {
    fn new(plan: TrackPlan, status: watch::Sender<TrackStatus>) -> Poster {
        Poster { plan, status, header: None, queue: VecDeque::new(), conn: None, header_sent: false, forbidden: 0, precondition: 0 }
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
                let late = self.status.borrow().state == TrackState::Reconnecting;
                self.queue.push_back(Queued { segment, late, cut: Instant::now() });
                if self.queue.len() > RESEND_MAX {
                    // The outage is as long as the resend window: resume at the live edge.
                    let skipped = self.queue.len() - 1;
                    self.queue.drain(..skipped);
                    self.status.send_modify(|s| s.segments_skipped += skipped as u64);
                    warn!(track = %self.plan.name, skipped, "resuming at the live edge");
                }
            }
        }
    }

    #[instrument(name = "cmaf_track", skip_all, fields(egress = %self.plan.label, track = %self.plan.name, url = %self.plan.url))]
    async fn run(mut self, mut rx: mpsc::Receiver<TrackInput>) {
        let mut schedule = self.plan.backoff.schedule();
        let mut open = true;
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
                Err(Stop::Failed(why)) => {
                    warn!(reason = %why, "track stopped");
                    self.status.send_modify(|s| {
                        s.state = TrackState::Failed;
                        s.last_error = Some(why);
                    });
                    // Keep reading (and discarding) so the output is never blocked.
                    while rx.recv().await.is_some() {}
                    return;
                }
                Err(Stop::Retry) => {
                    for q in self.queue.iter_mut() {
                        q.late = true;
                    }
                    let wait = schedule.next_delay();
                    // While waiting, new segments still arrive (and the live-edge rule applies).
                    let until = Instant::now() + wait;
                    while open {
                        match tokio::time::timeout_at(until, rx.recv()).await {
                            Ok(Some(i)) => self.accept(i),
                            Ok(None) => open = false,
                            Err(_) => break,
                        }
                    }
                    if !open {
                        tokio::time::sleep_until(until).await;
                    }
                }
            }
        }
        self.status.send_modify(|s| s.state = TrackState::Stopped);
    }

    /// One attempt at the front segment (connecting and sending the header first if needed).
    async fn step(&mut self) -> Result<(), Stop> {
        if self.conn.is_none() {
            match http::connect(&self.plan.url, self.plan.tls.as_ref(), self.plan.connect_timeout).await {
                Ok(c) => {
                    self.conn = Some(c);
                    self.header_sent = false;
                }
                Err(e) => return Err(self.transport_failed(e)),
            }
        }
        if !self.header_sent {
            let header = self.header.clone().expect("checked by the caller");
            match self.post(header).await? {
                Verdict::Accepted => self.header_sent = true,
                v => return self.refused(v),
            }
        }
        let front = self.queue.front().expect("checked by the caller");
        let (data, late, seq, cut) = (front.segment.data.clone(), front.late, front.segment.seq, front.cut);
        let started = Instant::now();
        match self.post(data.clone()).await? {
            Verdict::Accepted => {
                self.queue.pop_front();
                self.forbidden = 0;
                self.precondition = 0;
                // `latency_ms`: from the segment's closing IDR at this output to its POST answered.
                debug!(seq, late, post_ms = started.elapsed().as_millis() as u64, latency_ms = cut.elapsed().as_millis() as u64, "segment posted");
                self.status.send_modify(|s| {
                    s.state = TrackState::Sending;
                    s.segments_sent += 1;
                    s.bytes_sent += data.len() as u64;
                    if late {
                        s.retransmitted_segments += 1;
                    }
                });
                Ok(())
            }
            v => self.refused(v),
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
            if s.state != TrackState::Connecting {
                s.state = TrackState::Reconnecting;
            }
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

enum Stop {
    Retry,
    Failed(String),
}

#[cfg(test)]
mod tests {
    use super::*;

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

//! One Smooth Streaming track's poster: its own HTTP/1.1 connection, an
//! empty POST first to check the URL, then one long chunked POST to the
//! track's `Streams(<name>)`: the headers (`ftyp`, the Live Server
//! Manifest, `moov`, byte-identical every time), then each fragment as it
//! is cut. The failure rules:
//! - a TCP error, no answer, or a receiver that stops reading: reconnect to
//!   the same URL with backoff, without a cap; the new POST carries the
//!   headers again, then the last [`RESEND`] fragments of the track (the
//!   receiver drops what it already has: the timeline goes on where it was);
//! - `404`/`415` (to either POST): this track stops, the rest of the box
//!   goes on; any other answer is retried like a TCP error.
//!
//! Telemetry is the CMAF tracks' ([`TrackStatus`]): `segments_sent` and
//! `bytes_sent` count what was handed to the connection.

use crate::egress::cmaf::http::{self, ChannelBody, Connection, HttpError};
use crate::egress::cmaf::segmenter::Segment;
use crate::egress::cmaf::track::{Stop, TRACK_CHANNEL, TrackInput, TrackPlan, TrackState, TrackStatus, Verdict, failed, verdict, wait_taking};
use crate::egress::status::error_chain;
use bytes::Bytes;
use std::collections::VecDeque;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::{debug, info, instrument};

/// Fragments sent again on a new POST after a reconnect.
pub const RESEND: usize = 2;
/// Chunks the long POST's body holds before the receiver counts as stalled.
const BODY_QUEUE: usize = 8;

/// Starts the poster; it ends once `rx`'s senders are gone and its stream is closed.
pub fn spawn(plan: TrackPlan) -> (mpsc::Sender<TrackInput>, JoinHandle<()>, watch::Receiver<TrackStatus>) {
    let (tx, rx) = mpsc::channel(TRACK_CHANNEL);
    let (status_tx, status_rx) = watch::channel(TrackStatus::new(&plan.name));
    let poster = Poster { plan, status: status_tx, header: None, recent: VecDeque::new(), open: true, failed_at: None, progressed: false };
    (tx, tokio::spawn(poster.run(rx)), status_rx)
}

/// One of the last fragments, and whether a POST has carried it.
struct Recent {
    segment: Segment,
    written: bool,
}

struct Poster {
    plan: TrackPlan,
    status: watch::Sender<TrackStatus>,
    header: Option<Bytes>,
    recent: VecDeque<Recent>,
    /// The output still sends.
    open: bool,
    /// When the last connection failed (for the resend time in the log).
    failed_at: Option<Instant>,
    /// The last POST carried a new fragment: the backoff starts over.
    progressed: bool,
}

impl Poster {
    fn accept(&mut self, input: TrackInput) {
        match input {
            TrackInput::Header(h) => self.header = Some(h),
            TrackInput::Segment(segment) => {
                self.recent.push_back(Recent { segment, written: false });
                if self.recent.len() > RESEND
                    && let Some(old) = self.recent.pop_front()
                    && !old.written
                {
                    self.status.send_modify(|s| s.segments_skipped += 1);
                }
            }
        }
    }

    /// Takes the output's next input; false once it has ended.
    async fn next(&mut self, rx: &mut mpsc::Receiver<TrackInput>) -> bool {
        match rx.recv().await {
            Some(i) => {
                self.accept(i);
                true
            }
            None => {
                self.open = false;
                false
            }
        }
    }

    #[instrument(name = "smooth_track", skip_all, fields(egress = %self.plan.label, track = %self.plan.name, url = %self.plan.url))]
    async fn run(mut self, mut rx: mpsc::Receiver<TrackInput>) {
        let mut schedule = self.plan.backoff.schedule();
        loop {
            let outcome = self.session(&mut rx).await;
            match outcome {
                Ok(true) => schedule.reset(),
                Ok(false) => break,
                Err(Stop::Failed(why)) => return failed(&self.status, why, &mut rx).await,
                Err(Stop::Retry) => {
                    if !self.open && self.recent.iter().all(|r| r.written) {
                        break;
                    }
                    if std::mem::take(&mut self.progressed) {
                        schedule.reset();
                    }
                    let until = Instant::now() + schedule.next_delay();
                    let mut open = self.open;
                    wait_taking(until, &mut rx, &mut open, |i| self.accept(i)).await;
                    self.open = open;
                }
            }
        }
        self.status.send_modify(|s| s.state = TrackState::Stopped);
    }

    /// One connection: the check, then the long POST. `Ok(true)`: the
    /// headers changed, a new POST starts at once; `Ok(false)`: the stream is over.
    async fn session(&mut self, rx: &mut mpsc::Receiver<TrackInput>) -> Result<bool, Stop> {
        let mut conn: Connection<ChannelBody> = match http::connect(&self.plan.url, self.plan.tls.as_ref(), self.plan.connect_timeout).await {
            Ok(c) => c,
            Err(e) => return Err(self.transport_failed(e)),
        };
        // The empty POST: is there a publishing point, are the credentials taken?
        match conn.send(&self.plan.target, self.plan.content_type, ChannelBody::empty(), self.plan.answer_timeout).await {
            Ok(code) => self.answered(code)?,
            Err(e) => return Err(self.transport_failed(e)),
        }
        self.status.send_modify(|s| {
            if s.state == TrackState::Connecting {
                s.state = TrackState::Sending;
            }
        });
        while self.header.is_none() {
            if !self.next(rx).await {
                return Ok(false);
            }
        }
        self.stream(&mut conn, rx).await
    }

    /// The long POST on `conn`: headers, the fragments to resend, then each new one.
    async fn stream(&mut self, conn: &mut Connection<ChannelBody>, rx: &mut mpsc::Receiver<TrackInput>) -> Result<bool, Stop> {
        let (body_tx, body) = ChannelBody::channel(BODY_QUEUE);
        let answer = match conn.start(&self.plan.target, self.plan.content_type, body).await {
            Ok(a) => a,
            Err(e) => return Err(self.transport_failed(e)),
        };
        tokio::pin!(answer);
        let header = self.header.clone().expect("checked by the caller");
        let mut body_tx = Some(body_tx);
        let mut stalled = !self.write(&body_tx, header.clone(), None);
        let resent = self.recent.len();
        for i in 0..self.recent.len() {
            let (data, again) = (self.recent[i].segment.data.clone(), self.recent[i].written);
            stalled |= !self.write(&body_tx, data, Some(again));
            self.recent[i].written = true;
        }
        if let Some(at) = self.failed_at.take() {
            info!(resent, resend_ms = at.elapsed().as_millis() as u64, "reconnected: headers and the last fragments sent again");
        }
        loop {
            if stalled {
                return Err(self.transport_failed(HttpError::Stalled { url: self.plan.url.clone() }));
            }
            tokio::select! {
                a = &mut answer => {
                    return match a {
                        Ok(code) => {
                            self.answered(code)?;
                            if body_tx.is_some() {
                                // Answered before the stream ended: start it again.
                                Err(self.answer_failed(code))
                            } else {
                                Ok(false)
                            }
                        }
                        Err(e) => Err(self.transport_failed(e)),
                    };
                }
                input = rx.recv(), if body_tx.is_some() => match input {
                    Some(TrackInput::Segment(s)) => {
                        let data = s.data.clone();
                        self.accept(TrackInput::Segment(s));
                        stalled = !self.write(&body_tx, data, Some(false));
                        if let Some(r) = self.recent.back_mut() {
                            r.written = true;
                        }
                        self.progressed = true;
                    }
                    Some(TrackInput::Header(h)) => {
                        if h != header {
                            // New headers need a new POST: end this one.
                            info!("the encoder's configuration changed: starting the stream again");
                            self.header = Some(h);
                            return Ok(true);
                        }
                    }
                    None => {
                        // The stream is over: the body's last chunk goes out.
                        self.open = false;
                        body_tx = None;
                    }
                },
                _ = tokio::time::sleep(self.plan.answer_timeout), if body_tx.is_none() => {
                    return Err(self.transport_failed(HttpError::AnswerTimeout { url: self.plan.url.clone(), after: self.plan.answer_timeout }));
                }
            }
        }
    }

    /// Hands `data` to the POST's body; false when the receiver is not
    /// reading (the body is full). `again`: a fragment, sent before or not.
    fn write(&self, tx: &Option<mpsc::Sender<Bytes>>, data: Bytes, again: Option<bool>) -> bool {
        let Some(tx) = tx else { return true };
        let len = data.len() as u64;
        match tx.try_send(data) {
            Ok(()) => {
                self.status.send_modify(|s| {
                    s.state = TrackState::Sending;
                    s.bytes_sent += len;
                    if let Some(again) = again {
                        s.segments_sent += 1;
                        if again {
                            s.retransmitted_segments += 1;
                        }
                    }
                });
                debug!(bytes = len, fragment = again.is_some(), "written to the stream");
                true
            }
            // Closed: the connection broke; its answer says how.
            Err(mpsc::error::TrySendError::Closed(_)) => true,
            Err(mpsc::error::TrySendError::Full(_)) => false,
        }
    }

    /// An answer's status: fine, retried, or the end of this track.
    fn answered(&mut self, code: u16) -> Result<(), Stop> {
        self.status.send_modify(|s| s.last_http_status = Some(code));
        match verdict(code) {
            Verdict::Accepted => Ok(()),
            Verdict::Refused(why) => Err(Stop::Failed(format!("{}: {why}; track stopped", self.plan.url))),
            Verdict::Forbidden | Verdict::ResendHeader | Verdict::Retry => Err(self.answer_failed(code)),
        }
    }

    fn transport_failed(&mut self, e: HttpError) -> Stop {
        let text = error_chain(&e);
        info!(error = %text, "connection failed; reconnecting");
        self.failed_at.get_or_insert_with(Instant::now);
        self.status.send_modify(|s| {
            s.state = TrackState::Reconnecting;
            s.reconnects += 1;
            s.last_error = Some(text);
        });
        Stop::Retry
    }

    fn answer_failed(&mut self, code: u16) -> Stop {
        let text = format!("{} answered HTTP {code}", self.plan.url);
        info!(error = %text, "retrying");
        self.failed_at.get_or_insert_with(Instant::now);
        self.status.send_modify(|s| {
            s.state = TrackState::Reconnecting;
            s.last_error = Some(text);
        });
        Stop::Retry
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::egress::cmaf::track::tests::{segment, settle, track_plan};
    use std::sync::{Arc, Mutex};
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
    use tokio::net::TcpListener;

    /// (connection, body) of each request.
    type Seen = Arc<Mutex<Vec<(usize, Vec<u8>)>>>;

    /// A minimal HTTP/1.1 server: every request is answered `code`, except
    /// that the first chunked body is cut (the connection closed) once
    /// `cut` bytes of it have arrived.
    fn serve(listener: TcpListener, code: u16, cut: usize) -> Seen {
        let seen: Seen = Arc::default();
        let s = seen.clone();
        tokio::spawn(async move {
            let mut id = 0;
            let cut_done = Arc::new(Mutex::new(false));
            while let Ok((sock, _)) = listener.accept().await {
                let (s, cut_done) = (s.clone(), cut_done.clone());
                let conn = id;
                id += 1;
                tokio::spawn(async move {
                    let (r, mut w) = sock.into_split();
                    let mut r = BufReader::new(r);
                    loop {
                        let mut head = String::new();
                        loop {
                            let mut line = String::new();
                            if r.read_line(&mut line).await.unwrap_or(0) == 0 {
                                return;
                            }
                            if line == "\r\n" {
                                break;
                            }
                            head.push_str(&line.to_ascii_lowercase());
                        }
                        let mut body = Vec::new();
                        if head.contains("transfer-encoding: chunked") {
                            loop {
                                let mut size = String::new();
                                r.read_line(&mut size).await.unwrap();
                                let n = usize::from_str_radix(size.trim(), 16).unwrap();
                                let mut chunk = vec![0; n + 2];
                                r.read_exact(&mut chunk).await.unwrap();
                                body.extend_from_slice(&chunk[..n]);
                                let cut_now = {
                                    let mut done = cut_done.lock().unwrap();
                                    let now = !*done && body.len() >= cut;
                                    *done |= now;
                                    now
                                };
                                if cut_now {
                                    s.lock().unwrap().push((conn, body));
                                    return;
                                }
                                if n == 0 {
                                    break;
                                }
                            }
                        } else {
                            let len: usize = head.lines().find_map(|l| l.strip_prefix("content-length:")).map_or(0, |v| v.trim().parse().unwrap());
                            body.resize(len, 0);
                            r.read_exact(&mut body).await.unwrap();
                        }
                        s.lock().unwrap().push((conn, body));
                        if w.write_all(format!("HTTP/1.1 {code} X\r\nContent-Length: 0\r\n\r\n").as_bytes()).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        seen
    }

    fn plan(port: u16) -> TrackPlan {
        track_plan(&format!("http://127.0.0.1:{port}/live/ingest.isml"), "/live/ingest.isml/Streams(video-r)", 0)
    }

    fn bodies(seen: &Seen) -> Vec<(usize, String)> {
        seen.lock().unwrap().iter().map(|(c, b)| (*c, String::from_utf8_lossy(b).into_owned())).collect()
    }

    #[tokio::test]
    async fn a_stream_cut_mid_way_reconnects_and_sends_the_headers_and_the_last_two_fragments_again() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        // Cut once "hdr" + "seg1" + "seg2" have arrived.
        let seen = serve(listener, 200, 11);
        let (tx, task, status) = spawn(plan(port));
        tx.send(TrackInput::Header(Bytes::from_static(b"hdr"))).await.unwrap();
        tx.send(segment(1)).await.unwrap();
        tx.send(segment(2)).await.unwrap();
        // The new stream resends the last two; only then does a new fragment come
        // (one that came during the outage would push seg1 out of the last two).
        let s = settle(&status, |s| s.retransmitted_segments >= 2).await;
        assert_eq!((s.reconnects, s.retransmitted_segments), (1, 2), "{s:?}");
        tx.send(segment(3)).await.unwrap();
        drop(tx);
        task.await.unwrap();
        let b = bodies(&seen);
        assert_eq!(b, [(0, "".into()), (0, "hdrseg1seg2".into()), (1, "".into()), (1, "hdrseg1seg2seg3".into())], "check, stream, then again");
        let s = status.borrow().clone();
        assert_eq!((s.state, s.segments_sent, s.retransmitted_segments, s.last_http_status), (TrackState::Stopped, 5, 2, Some(200)), "{s:?}");
    }

    #[tokio::test]
    async fn a_404_to_the_check_stops_the_track_alone_and_keeps_reading_its_input() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = serve(listener, 404, usize::MAX);
        let (tx, task, status) = spawn(plan(port));
        let s = settle(&status, |s| s.state == TrackState::Failed).await;
        assert!(s.last_error.as_deref().unwrap().contains("404 Not Found"), "{s:?}");
        assert!(!s.last_error.as_deref().unwrap().contains("ingest.isml"), "the path is never shown: {s:?}");
        for n in 0..40 {
            tx.send(segment(n)).await.unwrap();
        }
        drop(tx);
        task.await.unwrap();
        assert_eq!(bodies(&seen), [(0, "".into())], "only the check POST");
    }
}

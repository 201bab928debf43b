//! SRT output: one actor per (destination, rung) sending MPEG-TS over SRT
//! (libsrt, see [`ffi`]). As caller it dials the receiver; as listener it
//! waits on its port for a receiver to pull. Each connection gets a fresh
//! muxer ([`mux`]) that starts at a keyframe with the encoder's own
//! timestamps, so a reconnect continues the timeline and never bursts old
//! media: while no connection is up the channel is drained and discarded.
//! The rungs of one destination start on the same IDR ([`super::resume`]);
//! an unreachable receiver is tried again within half a second, a refusal
//! with the capped backoff.
//!
//! A refused handshake says why on this output only (wrong passphrase,
//! encryption on one side only, stream id refused); secrets (passphrase,
//! stream id) never reach logs or [`EgressStatus`].

mod ffi;
mod mux;
pub mod probe;

use super::Media;
use super::failover::FailoverMember;
use super::resume::ResumeMember;
use super::status::{EgressState, EgressStatus, SrtStats};
use crate::backoff::Backoff;
use crate::config::url::SrtUrl;
use crate::config::{Secret, SrtMode};
use bytes::Bytes;
use ffi::{Socket, SrtError};
use mux::{TsEvent, TsMuxer};
use serde::Serialize;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;
use thiserror::Error;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::{info, instrument, warn};

/// A connection that stayed up this long proves the path healthy: the
/// next failure starts the backoff from its initial delay again.
const STABLE: Duration = Duration::from_secs(10);
/// How often the sender's statistics are read into the status (and the
/// receiver's acknowledgements checked).
const STATS_EVERY: Duration = Duration::from_millis(250);
/// How long a clean close waits for the muxer's and libsrt's last packets.
const DRAIN: Duration = Duration::from_millis(600);
/// The longest a clean close lingers for the receiver's latency window.
const LINGER_MAX: Duration = Duration::from_millis(1500);
/// A send that cannot hand its data to libsrt for this long fails the connection.
const SEND_TIMEOUT_MS: i32 = 3000;

/// Bound on one probe of a failover standby endpoint.
const STANDBY_PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// A caller's handshake takes two round trips (induction, conclusion);
/// once a connection has shown the path's round trip, an attempt while the
/// receiver is gone waits this many of them (plus [`ATTEMPT_SLACK`]), within
/// [`ATTEMPT_MIN`] and the configured connect timeout, and the next one
/// follows at once. libsrt resends an unanswered handshake only once a
/// second, so a long attempt started just before the receiver came back
/// would keep it waiting that long.
const ATTEMPT_RTTS: u32 = 4;
const ATTEMPT_SLACK: Duration = Duration::from_millis(150);
const ATTEMPT_MIN: Duration = Duration::from_millis(250);

/// How long one connect attempt may take while the receiver, reached before
/// over a path with round trip `rtt_ms`, does not answer.
fn quick_attempt(rtt_ms: f64, connect_timeout: Duration) -> Duration {
    let rtt = Duration::from_secs_f64(rtt_ms.max(0.0) / 1000.0);
    (rtt * ATTEMPT_RTTS + ATTEMPT_SLACK).clamp(ATTEMPT_MIN, connect_timeout.max(ATTEMPT_MIN))
}

/// How long the receiver may stay silent while we send before the
/// connection counts as lost: a live receiver acknowledges every 10 ms, so
/// no acknowledgement for its latency plus half a second means it is gone
/// (killed, rebooted, its link down), and the sooner that is known the
/// sooner a restarted receiver gets the stream back. libsrt itself gives up
/// only after about 5 s (16 expiry periods), whatever its peer-idle option
/// says; that is the upper bound here too.
fn peer_idle_ms(latency_ms: u32) -> i32 {
    (latency_ms.saturating_add(500)).clamp(1500, 5000) as i32
}

/// One SRT output, frozen at session start. `Debug` and `Serialize` hide
/// the passphrase and the stream id.
#[derive(Clone, PartialEq, Serialize)]
pub struct SrtPlan {
    pub destination: String,
    pub rung: String,
    pub endpoint: super::failover::Endpoint,
    pub label: String,
    #[serde(serialize_with = "super::plan::display")]
    pub url: SrtUrl,
    pub mode: SrtMode,
    #[serde(skip)]
    pub streamid: Option<Secret>,
    /// The stream id as shown (`{key}` and literal text hidden).
    #[serde(rename = "streamid")]
    pub streamid_redacted: Option<String>,
    #[serde(skip)]
    pub passphrase: Option<Secret>,
    /// AES key length in bytes when encrypted.
    pub pbkeylen: u32,
    pub latency_ms: u32,
    #[serde(skip)]
    pub format: super::sources::TrackFormat,
    #[serde(skip)]
    pub backoff: Backoff,
    /// Bound on the handshake of a caller.
    #[serde(skip)]
    pub connect_timeout: Duration,
}

impl std::fmt::Debug for SrtPlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SrtPlan")
            .field("label", &self.label)
            .field("url", &self.url)
            .field("mode", &self.mode)
            .field("streamid", &self.streamid_redacted)
            .field("encrypted", &self.passphrase.is_some())
            .field("pbkeylen", &self.pbkeylen)
            .field("latency_ms", &self.latency_ms)
            .finish()
    }
}

impl SrtPlan {
    /// One line for `check-config`.
    pub fn describe(&self) -> String {
        let mode = match self.mode {
            SrtMode::Caller => "",
            SrtMode::Listener => " (listening)",
        };
        let streamid = self.streamid_redacted.as_deref().map(|s| format!(" streamid `{s}`")).unwrap_or_default();
        let crypto = if self.passphrase.is_some() { format!("AES-{}", self.pbkeylen * 8) } else { "unencrypted".into() };
        format!("{} -> {}{mode}{streamid}, MPEG-TS, latency {} ms, {crypto}", self.label, self.url, self.latency_ms)
    }
}

/// Why a connection attempt or a running connection failed. Never holds a
/// secret: texts are fieldcast's or libsrt's fixed ones, URLs redacted.
#[derive(Debug, Error)]
pub enum SrtOutputError {
    #[error(transparent)]
    Library(#[from] ffi::LoadError),
    #[error("cannot resolve the host of {url}")]
    Resolve { url: SrtUrl },
    #[error("setting up the SRT socket failed: {0}")]
    Setup(SrtError),
    #[error("no answer from {url} within {after:?} (is the receiver listening?)")]
    NoAnswer { url: SrtUrl, after: Duration },
    #[error("the receiver at {url} refused the passphrase (wrong passphrase)")]
    BadPassphrase { url: SrtUrl },
    #[error("the receiver at {url} and this output disagree on encryption (a passphrase is set on one side only)")]
    Unsecure { url: SrtUrl },
    #[error("the receiver at {url} rejected the stream id (code {code}{})", reject_name(*.code).map(|n| format!(", {n}")).unwrap_or_default())]
    StreamIdRejected { url: SrtUrl, code: i32 },
    #[error("the receiver at {url} refused the connection: {reason}")]
    Rejected {
        url: SrtUrl,
        reason: String,
        /// The refusal follows from a setting (API, version, congestion
        /// control, the peer's decision), not from a moment's load.
        permanent: bool,
    },
    #[error("connecting to {url} failed: {source}")]
    Connect { url: SrtUrl, source: SrtError },
    #[error("cannot listen on {url}: {source}")]
    Listen { url: SrtUrl, source: SrtError },
    #[error("the connection was lost: {0}")]
    Lost(SrtError),
    #[error("the connection broke")]
    Broken,
    #[error("the receiver went silent (no acknowledgement for {after:?})")]
    Silent { after: Duration },
    #[error("{0}")]
    Muxer(String),
}

impl SrtOutputError {
    /// A refusal the receiver will repeat until someone changes a setting.
    pub fn is_refusal(&self) -> bool {
        matches!(
            self,
            SrtOutputError::BadPassphrase { .. }
                | SrtOutputError::Unsecure { .. }
                | SrtOutputError::StreamIdRejected { .. }
                | SrtOutputError::Rejected { permanent: true, .. }
        )
    }
}

/// Whether libsrt's reject reason (`SRT_REJ_*`) comes from a setting that
/// will not change by itself: the peer's own decision (2), a rogue or
/// malformed handshake (4), an internal error (6), the SRT version (8), the
/// message/stream API (12), congestion control (13), packet filter (14),
/// groups (15), crypto mode (17). Load, backlog, closing, timeouts and
/// unknown reasons are worth a quick retry.
fn permanent_rejection(reason: i32) -> bool {
    matches!(reason, 2 | 4 | 6 | 8 | 12..=15 | 17)
}

/// Names of the receiver's access-control codes (SRT's `SRT_REJX_*`).
fn reject_name(code: i32) -> Option<&'static str> {
    Some(match code {
        1400 => "bad request",
        1401 => "unauthorized",
        1402 => "overloaded",
        1403 => "forbidden",
        1404 => "not found",
        1405 => "bad mode",
        1406 => "unacceptable",
        1409 => "conflict",
        1415 => "media type not supported",
        1423 => "locked",
        _ => return None,
    })
}

/// Starts the output for `plan`, reading media from `rx`; it ends once
/// every sender of `rx` is dropped.
pub fn spawn(
    plan: SrtPlan,
    rx: mpsc::Receiver<Media>,
    member: ResumeMember,
    standby: Option<FailoverMember>,
) -> (JoinHandle<()>, watch::Receiver<EgressStatus>) {
    let mut initial = EgressStatus::new(plan.label.clone());
    initial.srt = Some(SrtStats::default());
    let (status_tx, status_rx) = watch::channel(initial);
    (tokio::spawn(run(plan, rx, status_tx, member, standby)), status_rx)
}

/// Codec configurations, kept across connections (sent once by the pipeline).
#[derive(Default)]
struct Configs {
    video: Option<Bytes>,
    audio: Option<Bytes>,
}

impl Configs {
    /// Keeps a configuration; true when `media` was one.
    fn keep(&mut self, media: &Media) -> bool {
        match media {
            Media::VideoConfig(c) => self.video = Some(c.clone()),
            Media::AudioConfig(c) => self.audio = Some(c.clone()),
            _ => return false,
        }
        true
    }
}

#[instrument(name = "srt_egress", skip_all, fields(egress = %plan.label, url = %plan.url))]
async fn run(
    plan: SrtPlan,
    mut rx: mpsc::Receiver<Media>,
    status: watch::Sender<EgressStatus>,
    mut member: ResumeMember,
    standby: Option<FailoverMember>,
) {
    let plan = Arc::new(plan);
    let mut configs = Configs::default();
    let mut schedule = plan.backoff.schedule();
    let mut listener: Option<Arc<Socket>> = None;
    // Once the path's round trip is known: how long an attempt waits while
    // the receiver is gone (see [`quick_attempt`]).
    let mut quick: Option<Duration> = None;
    loop {
        if let Some(f) = standby.as_ref().filter(|f| !f.is_active()) {
            status.send_modify(|s| s.state = EgressState::Standby);
            // Probed with the handshake's first step only (see `probe`): a
            // listener that serves one caller is never taken by the probe.
            let wait = async {
                while super::standby::due(f, &status).await {
                    let addr = resolve(&plan.url).map_err(|e| e.to_string());
                    let result = match addr {
                        Ok(a) => probe::listener_answers(a, plan.connect_timeout.min(STANDBY_PROBE_TIMEOUT)).await.map_err(|e| e.to_string()),
                        Err(e) => Err(e),
                    };
                    super::standby::report(f, &plan.backoff, result);
                }
            };
            tokio::select! {
                () = wait => info!("this endpoint is now the active one"),
                () = discard_until_closed(&mut rx, &mut configs, &status, &mut member) => break,
            }
        }
        let connected = tokio::select! {
            r = connect(&plan, &mut listener, quick.unwrap_or(plan.connect_timeout)) => r,
            // The pipeline is gone while we were connecting: nothing left to send.
            () = discard_until_closed(&mut rx, &mut configs, &status, &mut member) => break,
        };
        let was_up = connected.is_ok();
        let failure = match connected {
            Ok(socket) => {
                let since = Instant::now();
                if let Some(f) = &standby {
                    f.up();
                }
                member.set_ready(true, std::time::Instant::now());
                let streamed = stream(&plan, socket, &mut rx, &mut configs, &status, &mut member).await;
                member.set_ready(false, std::time::Instant::now());
                quick = status.borrow().srt.as_ref().map(|s| quick_attempt(s.rtt_ms, plan.connect_timeout));
                match streamed {
                    Ok(()) => break,
                    Err(e) => {
                        if since.elapsed() >= STABLE {
                            schedule.reset();
                        }
                        e
                    }
                }
            }
            Err(e) => e,
        };
        if standby.as_ref().is_some_and(|f| f.failed(was_up)) {
            warn!(failed = %plan.endpoint.as_str(), "the active endpoint has been failing for the failover delay: switching the destination to the other one");
        }
        let delay = match failure {
            // A connection just lost (the receiver restarting, or the path
            // back already): try again at once; an attempt that found
            // nobody was itself the wait: the next one at once too.
            _ if was_up && !failure.is_refusal() => Duration::ZERO,
            SrtOutputError::NoAnswer { .. } if quick.is_some() => Duration::ZERO,
            _ => crate::backoff::retry_delay(failure.is_refusal(), &mut schedule),
        };
        if delay.is_zero() {
            schedule.reset();
        }
        let message = super::status::error_chain(&failure);
        if failure.is_refusal() {
            warn!(error = %message, retry_in = ?delay, "SRT output refused by the receiver; retrying will not help until a setting changes");
        } else {
            warn!(error = %message, retry_in = ?delay, "SRT output failed; reconnecting");
        }
        status.send_modify(|s| {
            s.state = EgressState::Reconnecting;
            s.reconnects += 1;
            s.last_error = Some(message);
            if let Some(srt) = &mut s.srt {
                srt.reconnects += 1;
            }
        });
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = discard_until_closed(&mut rx, &mut configs, &status, &mut member) => break,
        }
    }
    // Wakes a thread still waiting in `accept` and frees the port.
    if let Some(l) = listener {
        l.close();
    }
    status.send_modify(|s| s.state = EgressState::Stopped);
    info!("media channel closed; SRT output stopped");
}

fn resolve(url: &SrtUrl) -> Result<SocketAddr, SrtOutputError> {
    let host = if url.host().is_empty() { "0.0.0.0" } else { url.host() };
    (host, url.port()).to_socket_addrs().ok().and_then(|mut a| a.next()).ok_or_else(|| SrtOutputError::Resolve { url: url.clone() })
}

/// The options every socket of this output gets before connecting.
fn configure(plan: &SrtPlan, s: &Socket) -> Result<(), SrtError> {
    s.set_int(ffi::SRTO_TRANSTYPE, ffi::SRTT_LIVE)?;
    s.set_bool(ffi::SRTO_SENDER, true)?;
    s.set_int(ffi::SRTO_LATENCY, plan.latency_ms as i32)?;
    s.set_int(ffi::SRTO_CONNTIMEO, plan.connect_timeout.as_millis().min(i32::MAX as u128) as i32)?;
    s.set_int(ffi::SRTO_SNDTIMEO, SEND_TIMEOUT_MS)?;
    s.set_int(ffi::SRTO_PEERIDLETIMEO, peer_idle_ms(plan.latency_ms))?;
    if let Some(p) = &plan.passphrase {
        s.set_str(ffi::SRTO_PASSPHRASE, p.expose())?;
        s.set_int(ffi::SRTO_PBKEYLEN, plan.pbkeylen as i32)?;
    }
    if let Some(id) = &plan.streamid {
        s.set_str(ffi::SRTO_STREAMID, id.expose())?;
    }
    Ok(())
}

/// One attempt: a caller's handshake, or a listener's next receiver.
async fn connect(plan: &Arc<SrtPlan>, listener: &mut Option<Arc<Socket>>, timeout: Duration) -> Result<Arc<Socket>, SrtOutputError> {
    match plan.mode {
        SrtMode::Caller => {
            let plan = plan.clone();
            tokio::task::spawn_blocking(move || call(&plan, timeout)).await.unwrap_or(Err(SrtOutputError::Broken)).map(Arc::new)
        }
        SrtMode::Listener => {
            let l = match listener {
                Some(l) => l.clone(),
                None => {
                    let p = plan.clone();
                    let l = Arc::new(tokio::task::spawn_blocking(move || listen(&p)).await.unwrap_or(Err(SrtOutputError::Broken))?);
                    *listener = Some(l.clone());
                    l
                }
            };
            let url = plan.url.clone();
            // Accept blocks until a receiver comes; dropping this future (the
            // channel closed) leaves the thread waiting until the listener
            // socket is closed with the actor.
            let accepted = tokio::task::spawn_blocking(move || l.accept()).await.unwrap_or(Err(SrtError { code: -1, text: "accept failed".into() }));
            accepted.map(Arc::new).map_err(|source| SrtOutputError::Listen { url, source })
        }
    }
}

/// One caller's handshake, bounded by `timeout`.
fn call(plan: &SrtPlan, timeout: Duration) -> Result<Socket, SrtOutputError> {
    let addr = resolve(&plan.url)?;
    let socket = Socket::new()?;
    configure(plan, &socket).map_err(SrtOutputError::Setup)?;
    socket.set_int(ffi::SRTO_CONNTIMEO, timeout.as_millis().min(i32::MAX as u128) as i32).map_err(SrtOutputError::Setup)?;
    match socket.connect(&addr, timeout) {
        Ok(()) => Ok(socket),
        Err(e) => Err(classify(plan, &socket, e, timeout)),
    }
}

fn listen(plan: &SrtPlan) -> Result<Socket, SrtOutputError> {
    let addr = resolve(&plan.url)?;
    let socket = Socket::new()?;
    configure(plan, &socket).map_err(SrtOutputError::Setup)?;
    let err = |source| SrtOutputError::Listen { url: plan.url.clone(), source };
    socket.bind(&addr).map_err(err)?;
    socket.listen().map_err(err)?;
    info!("listening for a receiver");
    Ok(socket)
}

/// Why a caller's connect failed, from libsrt's error and reject reason.
fn classify(plan: &SrtPlan, socket: &Socket, e: SrtError, timeout: Duration) -> SrtOutputError {
    let url = plan.url.clone();
    let reason = socket.reject_reason();
    match reason {
        ffi::SRT_REJ_BADSECRET => SrtOutputError::BadPassphrase { url },
        ffi::SRT_REJ_UNSECURE => SrtOutputError::Unsecure { url },
        ffi::SRT_REJ_TIMEOUT => SrtOutputError::NoAnswer { url, after: timeout },
        r if r >= ffi::SRT_REJC_PREDEFINED => SrtOutputError::StreamIdRejected { url, code: r },
        ffi::SRT_REJ_PEER => SrtOutputError::Rejected { url, reason: Socket::reject_reason_text(reason), permanent: true },
        _ if e.code == ffi::SRT_ENOSERVER => SrtOutputError::NoAnswer { url, after: timeout },
        _ if e.code == ffi::SRT_ECONNREJ => {
            SrtOutputError::Rejected { url, reason: Socket::reject_reason_text(reason), permanent: permanent_rejection(reason) }
        }
        _ => SrtOutputError::Connect { url, source: e },
    }
}

/// Runs one connection until the channel closes (`Ok`) or it fails.
async fn stream(
    plan: &Arc<SrtPlan>,
    socket: Arc<Socket>,
    rx: &mut mpsc::Receiver<Media>,
    configs: &mut Configs,
    status: &watch::Sender<EgressStatus>,
    member: &mut ResumeMember,
) -> Result<(), SrtOutputError> {
    status.send_modify(|s| s.state = EgressState::Publishing);
    info!("connected; media starts at the destination's next common keyframe");
    let (events_tx, mut events) = mpsc::unbounded_channel();
    let (bytes_before, acks_before) = {
        let s = status.borrow();
        (s.bytes_sent, s.peer_progress)
    };
    let mut muxer: Option<TsMuxer> = None;
    let mut started = false;
    let mut stats = tokio::time::interval(STATS_EVERY);
    let mut silence = Silence::new(Duration::from_millis(peer_idle_ms(plan.latency_ms) as u64));
    let result = loop {
        tokio::select! {
            ev = events.recv() => match ev {
                Some(TsEvent::SendFailed(e)) => break Err(lost(e)),
                Some(TsEvent::Failed(m)) => break Err(SrtOutputError::Muxer(m)),
                Some(TsEvent::Finished) | None => {}
            },
            _ = stats.tick() => {
                let sock = socket.clone();
                let (up, perf) = tokio::task::spawn_blocking(move || (sock.connected(), sock.stats())).await.unwrap_or((false, None));
                if let Some(p) = perf {
                    status.send_modify(|s| {
                        s.bytes_sent = bytes_before + p.byteSentTotal;
                        s.peer_progress = acks_before + p.pktRecvACKTotal.max(0) as u64;
                        if let Some(srt) = &mut s.srt {
                            update_stats(srt, &p);
                        }
                    });
                    if let Some(after) = silence.check(p.pktSentTotal, i64::from(p.pktRecvACKTotal), Instant::now()) {
                        break Err(SrtOutputError::Silent { after });
                    }
                }
                if !up {
                    break Err(SrtOutputError::Broken);
                }
            }
            media = rx.recv() => {
                let Some(media) = media else { break Ok(()) };
                if configs.keep(&media) {
                    continue;
                }
                let (video, audio) = match (&configs.video, &configs.audio) {
                    (Some(v), Some(a)) => (v.clone(), a.clone()),
                    _ => {
                        status.send_modify(|s| s.media_discarded += 1);
                        continue;
                    }
                };
                let accepted = match media {
                    Media::Video(v) => {
                        if muxer.as_ref().is_some_and(TsMuxer::over_limit) {
                            started = false;
                        }
                        let may_start = member.observe(v.pts_ns, v.keyframe, std::time::Instant::now());
                        if !started && !may_start {
                            false
                        } else {
                            if muxer.is_none() {
                                let (p, s, tx) = (plan.clone(), socket.clone(), events_tx.clone());
                                let built = tokio::task::spawn_blocking(move || TsMuxer::start(&p.label, &p.format, &video, &audio, s, tx))
                                    .await
                                    .unwrap_or_else(|_| Err("the SRT muxer could not be started".into()));
                                match built {
                                    Ok(m) => muxer = Some(m),
                                    Err(m) => break Err(SrtOutputError::Muxer(m)),
                                }
                            }
                            if !started {
                                info!(pts_ms = v.pts_ns / 1_000_000, "first video frame sent (a keyframe)");
                            }
                            started = true;
                            let m = muxer.as_ref().expect("built above");
                            let ok = m.sources.push_video(v.pts_ns, v.dts_ns, v.keyframe, v.data);
                            if ok {
                                status.send_modify(|s| s.video_frames_sent += 1);
                            }
                            ok
                        }
                    }
                    Media::Audio(a) => match &muxer {
                        Some(m) if started => {
                            let ok = m.sources.push_audio(a.pts_ns, a.data);
                            if ok {
                                status.send_modify(|s| s.audio_frames_sent += 1);
                            }
                            ok
                        }
                        _ => false,
                    },
                    Media::VideoConfig(_) | Media::AudioConfig(_) => true,
                };
                if !accepted {
                    status.send_modify(|s| s.media_discarded += 1);
                }
            }
        }
    };
    if result.is_ok()
        && let Some(m) = &muxer
    {
        // A clean end: the muxer's last packets, then what libsrt still holds
        // (live mode drops unsent data on close), bounded.
        m.sources.finish();
        let _ = tokio::time::timeout(DRAIN, async {
            while let Some(ev) = events.recv().await {
                if matches!(ev, TsEvent::Finished | TsEvent::SendFailed(_) | TsEvent::Failed(_)) {
                    break;
                }
            }
        })
        .await;
        let deadline = Instant::now() + DRAIN;
        while Instant::now() < deadline && socket.connected() && socket.stats().is_some_and(|p| p.pktSndBuf > 0) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // The receiver delivers each packet `latency` after it was sent and
        // drops what it still holds when the connection closes: linger that
        // long (bounded, the session's stop waits 3 s for an output).
        let linger = Duration::from_millis(u64::from(plan.latency_ms) + 100).min(LINGER_MAX);
        tokio::time::sleep(linger).await;
    }
    let sock = socket.clone();
    let sent = tokio::task::spawn_blocking(move || {
        if let Some(m) = muxer {
            m.close();
        }
        sock.stats().map(|p| p.byteSentTotal)
    })
    .await;
    if let Ok(Some(b)) = sent {
        status.send_modify(|s| s.bytes_sent = bytes_before + b);
    }
    // The socket closes when the last reference (here) goes.
    drop(socket);
    result
}

/// Watches the receiver's acknowledgements while we send: `check` says how
/// long it has been silent once that passes the limit.
struct Silence {
    limit: Duration,
    sent: i64,
    acks: i64,
    since: Option<Instant>,
}

impl Silence {
    fn new(limit: Duration) -> Silence {
        Silence { limit, sent: 0, acks: 0, since: None }
    }

    fn check(&mut self, sent: i64, acks: i64, now: Instant) -> Option<Duration> {
        let sending = sent > self.sent;
        if acks > self.acks || !sending {
            self.since = None;
        } else {
            self.since.get_or_insert(now);
        }
        (self.sent, self.acks) = (sent, acks);
        self.since.map(|t| now - t).filter(|d| *d >= self.limit)
    }
}

fn update_stats(srt: &mut SrtStats, p: &ffi::PerfMon) {
    srt.rtt_ms = (p.msRTT * 10.0).round() / 10.0;
    srt.send_buffer_ms = p.msSndBuf.max(0) as u32;
    srt.send_buffer_bytes = p.byteSndBuf.max(0) as u64;
    srt.packets_sent = p.pktSentTotal.max(0) as u64;
    srt.packets_retransmitted = p.pktRetransTotal.max(0) as u64;
    srt.packets_lost = p.pktSndLossTotal.max(0) as u64;
    srt.packets_dropped = p.pktSndDropTotal.max(0) as u64;
    srt.send_rate_kbps = (p.mbpsSendRate * 1000.0).round().max(0.0) as u64;
}

fn lost(e: SrtError) -> SrtOutputError {
    if e.code == ffi::SRT_ECONNLOST || e.code == ffi::SRT_ENOCONN { SrtOutputError::Broken } else { SrtOutputError::Lost(e) }
}

/// Reads the channel while no connection is up, keeping codec
/// configurations and discarding media; returns when every sender is gone.
async fn discard_until_closed(
    rx: &mut mpsc::Receiver<Media>,
    configs: &mut Configs,
    status: &watch::Sender<EgressStatus>,
    member: &mut ResumeMember,
) {
    while let Some(media) = rx.recv().await {
        if let Media::Video(v) = &media {
            member.observe(v.pts_ns, v.keyframe, std::time::Instant::now());
        }
        if !configs.keep(&media) {
            status.send_modify(|s| s.media_discarded += 1);
        }
    }
}

/// Whether libsrt is installed here (tests skip SRT without it).
pub fn available() -> bool {
    ffi::available()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_from_a_setting_back_off_and_passing_trouble_is_retried_at_once() {
        let url = SrtUrl::parse("srt://127.0.0.1:9000").unwrap();
        let rejected = |reason: i32| SrtOutputError::Rejected { url: url.clone(), reason: String::new(), permanent: permanent_rejection(reason) };
        // Peer's decision, rogue, internal, version, message API, congestion, filter, group, crypto.
        for reason in [2, 4, 6, 8, 12, 13, 14, 15, 17] {
            assert!(rejected(reason).is_refusal(), "reason {reason}");
        }
        // Unknown, system, resources, backlog, closing, rendezvous cookie, timeout.
        for reason in [0, 1, 3, 5, 7, 9, 16] {
            assert!(!rejected(reason).is_refusal(), "reason {reason}");
        }
        assert!(SrtOutputError::BadPassphrase { url: url.clone() }.is_refusal());
        assert!(SrtOutputError::StreamIdRejected { url: url.clone(), code: 1403 }.is_refusal());
        assert!(!SrtOutputError::NoAnswer { url: url.clone(), after: Duration::from_secs(1) }.is_refusal());
        assert!(!SrtOutputError::Broken.is_refusal());
    }

    #[test]
    fn a_receiver_that_stops_acknowledging_what_we_send_is_given_up_after_the_limit() {
        let t = Instant::now();
        let ms = |n| t + Duration::from_millis(n);
        let mut s = Silence::new(Duration::from_millis(1500));
        assert_eq!(s.check(100, 10, ms(0)), None);
        // Acknowledgements keep coming: never silent.
        assert_eq!(s.check(200, 20, ms(1000)), None);
        assert_eq!(s.check(300, 30, ms(3000)), None);
        // They stop while we send: silent from the first tick without one.
        assert_eq!(s.check(400, 30, ms(3250)), None);
        assert_eq!(s.check(500, 30, ms(4500)), None);
        assert_eq!(s.check(600, 30, ms(4750)), Some(Duration::from_millis(1500)));
        // Nothing sent (no media): no verdict, and the count starts over.
        let mut idle = Silence::new(Duration::from_millis(1500));
        idle.check(100, 10, ms(0));
        assert_eq!(idle.check(100, 10, ms(5000)), None);
        assert_eq!(idle.check(200, 10, ms(5250)), None);
        assert_eq!(idle.check(300, 11, ms(7000)), None);
    }

    #[test]
    fn an_attempt_while_the_receiver_is_gone_waits_a_few_round_trips_within_bounds() {
        let five = Duration::from_secs(5);
        assert_eq!(quick_attempt(0.1, five), ATTEMPT_MIN, "loopback");
        assert_eq!(quick_attempt(50.0, five), Duration::from_millis(350));
        assert_eq!(quick_attempt(300.0, five), Duration::from_millis(1350));
        assert_eq!(quick_attempt(3000.0, five), five, "never past the configured connect timeout");
        assert_eq!(quick_attempt(10.0, Duration::from_millis(100)), ATTEMPT_MIN);
    }

    #[test]
    fn a_silent_receiver_is_given_up_after_its_latency_and_half_a_second_within_libsrts_bounds() {
        assert_eq!(peer_idle_ms(20), 1500);
        assert_eq!(peer_idle_ms(500), 1500);
        assert_eq!(peer_idle_ms(2000), 2500);
        assert_eq!(peer_idle_ms(10_000), 5000);
    }
}

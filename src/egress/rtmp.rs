//! RTMP/RTMPS publisher: one actor (tokio task) per (destination, rung) that
//! owns its connection, publishes the rung's media channel, and reconnects by
//! itself after any failure, continuing the same timeline.
//!
//! A publish is: TCP (+TLS) -> handshake -> `connect(app, tcUrl)` ->
//! `publish(stream, "live")` -> at the next keyframe `@setDataFrame/onMetaData`
//! (stamped with that keyframe's timestamp) -> AVC and AAC sequence headers
//! -> media. While no publish is up
//! (connecting, backing off) the channel is drained and discarded, so a
//! reconnect never bursts old media: it resumes at the next keyframe with the
//! pipeline's running-time timestamps.
//!
//! Secrets (token in the app path, the stream name, the tcUrl) never reach
//! logs or [`EgressStatus`]: logs show the target label and the redacted URL.

mod chunk_repair;
mod connection;
mod feed;
mod redact;
mod restamp;
mod standby;
mod transport;

pub use transport::{TlsConfigError, TransportError, tls_config};

use super::Media;
use super::failover::FailoverMember;
use super::resume::ResumeMember;
use super::status::{EgressState, EgressStatus, error_chain};
use crate::backoff::Backoff;
use crate::config::{Secret, Target};
use crate::config::url::{RtmpScheme as Scheme, RtmpUrl};
use connection::{Connection, Request};
use feed::{Feed, Outgoing};
use redact::Redactor;
use rml_rtmp::handshake::HandshakeError;
use rml_rtmp::sessions::{ClientSessionError, StreamMetadata};
use serde::Serialize;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use thiserror::Error;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_rustls::rustls::ClientConfig;
use tracing::{error, info, instrument, warn};

/// A publish that stayed up this long proves the path healthy: the next
/// failure starts the backoff from its initial delay again.
const STABLE_PUBLISH: Duration = Duration::from_secs(10);
/// A write that makes no progress this long means the server is gone.
const WRITE_STALL: Duration = Duration::from_secs(10);
/// FLV codec ids declared in onMetaData.
const FLV_CODEC_AVC: u32 = 7;
const FLV_CODEC_AAC: u32 = 10;

/// What `onMetaData` declares. Bitrates are kbit/s and must be truthful:
/// channels flag a track whose measured rate is off by 2x.
#[derive(Clone, Debug, PartialEq)]
pub struct PublishMetadata {
    pub width: u32,
    pub height: u32,
    pub framerate: f64,
    pub video_kbps: u32,
    pub audio_kbps: u32,
    pub audio_sample_rate: u32,
    pub audio_channels: u32,
}

/// Metadata a channel would reject.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum MetadataError {
    #[error("videodatarate is 0; ingest requires a non-zero, truthful video bitrate")]
    ZeroVideoBitrate,
    #[error("audiodatarate is 0; ingest requires a non-zero, truthful audio bitrate")]
    ZeroAudioBitrate,
}

impl PublishMetadata {
    pub fn validate(&self) -> Result<(), MetadataError> {
        if self.video_kbps == 0 {
            return Err(MetadataError::ZeroVideoBitrate);
        }
        if self.audio_kbps == 0 {
            return Err(MetadataError::ZeroAudioBitrate);
        }
        Ok(())
    }

    fn stream_metadata(&self) -> StreamMetadata {
        StreamMetadata {
            video_width: Some(self.width),
            video_height: Some(self.height),
            video_codec_id: Some(FLV_CODEC_AVC),
            video_frame_rate: Some(self.framerate as f32),
            video_bitrate_kbps: Some(self.video_kbps),
            audio_codec_id: Some(FLV_CODEC_AAC),
            audio_bitrate_kbps: Some(self.audio_kbps),
            audio_sample_rate: Some(self.audio_sample_rate),
            audio_channels: Some(self.audio_channels),
            audio_is_stereo: Some(self.audio_channels == 2),
            encoder: Some(concat!("fieldcast ", env!("CARGO_PKG_VERSION")).to_owned()),
        }
    }
}

/// One RTMP publish: one rung to one destination, frozen at session start
/// with everything its actor needs. `Debug` and `Serialize` hide the stream
/// name and the URL's token.
#[derive(Clone, PartialEq, Serialize)]
pub struct RtmpPlan {
    pub destination: String,
    pub rung: String,
    /// Which of the destination's ingest endpoints this output pushes to.
    pub endpoint: super::failover::Endpoint,
    /// Shown in logs and status, e.g. `primary/1080p`. Holds no secret.
    pub label: String,
    #[serde(serialize_with = "super::plan::display")]
    pub url: RtmpUrl,
    /// The stream name (key) to publish.
    #[serde(skip)]
    pub stream_name: Secret,
    /// The stream name with any `{key}` hidden, for logs and `check-config`.
    #[serde(rename = "stream_name")]
    pub stream_name_redacted: String,
    /// The channel's caps the ladder was checked against.
    pub target: Target,
    #[serde(skip)]
    pub metadata: PublishMetadata,
    #[serde(skip)]
    pub backoff: Backoff,
    /// Bound on TCP + TLS + handshake + connect + publish.
    #[serde(skip)]
    pub connect_timeout: Duration,
    /// Extra PEM CA certificates trusted for `rtmps://`, beside the web roots.
    pub ca_file: Option<PathBuf>,
}

impl std::fmt::Debug for RtmpPlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RtmpPlan")
            .field("label", &self.label)
            .field("url", &self.url)
            .field("stream_name", &self.stream_name_redacted)
            .field("metadata", &self.metadata)
            .field("backoff", &self.backoff)
            .field("connect_timeout", &self.connect_timeout)
            .field("ca_file", &self.ca_file)
            .finish()
    }
}

/// Why a publish attempt or a running publish failed. Displays never
/// include secrets: URLs are [`RtmpUrl`]s (redacted by `Display`), server
/// text passes through the target's redactor.
#[derive(Debug, Error)]
pub enum EgressError {
    #[error(transparent)]
    Transport(#[from] TransportError),
    #[error("RTMPS configuration")]
    TlsConfig(#[from] TlsConfigError),
    #[error("no accepted publish on {url} within {after:?}")]
    ConnectTimeout { url: RtmpUrl, after: Duration },
    #[error("RTMP handshake failed")]
    Handshake(#[source] HandshakeError),
    #[error("RTMP session error")]
    Session(#[source] ClientSessionError),
    #[error("server rejected the connect: {description}")]
    ConnectRejected { description: String },
    #[error("server status {code}")]
    ServerStatus { code: String },
    #[error("server closed the connection {stage}")]
    Closed { stage: Stage },
    #[error("socket error")]
    Io(#[source] std::io::Error),
    #[error("server stopped reading: a write made no progress for {after:?}")]
    WriteStalled { after: Duration },
}

/// Where in a publish's life something happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    Handshake,
    /// After `connect` (a refused app or token).
    Connect,
    /// After `publish` (a refused stream name).
    Publish,
    Publishing,
}

impl std::fmt::Display for Stage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Stage::Handshake => "during the RTMP handshake",
            Stage::Connect => "after connect (application or token refused?)",
            Stage::Publish => "after publish (stream name refused?)",
            Stage::Publishing => "while publishing",
        })
    }
}

/// Starts the publisher for `target`, reading media from `rx`. The task ends
/// (status [`EgressState::Stopped`]) once every sender of `rx` is dropped.
pub fn spawn(
    target: RtmpPlan,
    rx: mpsc::Receiver<Media>,
    member: ResumeMember,
    standby: Option<FailoverMember>,
) -> (JoinHandle<()>, watch::Receiver<EgressStatus>) {
    spawn_declared(target, rx, member, standby, None)
}

/// As [`spawn`]; `declared` carries a new target video bitrate (kbit/s)
/// after a live `configure`: the running publish declares it in a new
/// `onMetaData` before its next frame, and every later publish starts with it.
pub fn spawn_declared(
    target: RtmpPlan,
    rx: mpsc::Receiver<Media>,
    member: ResumeMember,
    standby: Option<FailoverMember>,
    declared: Option<watch::Receiver<u32>>,
) -> (JoinHandle<()>, watch::Receiver<EgressStatus>) {
    let (status_tx, status_rx) = watch::channel(EgressStatus::new(target.label.clone()));
    (tokio::spawn(run(target, rx, status_tx, member, standby, declared)), status_rx)
}

/// The next declared video bitrate; never, without a sender.
async fn next_declared(declared: &mut Option<watch::Receiver<u32>>) -> u32 {
    if let Some(d) = declared
        && d.changed().await.is_ok()
    {
        return *d.borrow_and_update();
    }
    std::future::pending().await
}

pub use crate::backoff::UNREACHABLE_RETRY;

impl EgressError {
    /// A refusal (bad key, app or token, TLS trust, protocol) will not fix
    /// itself and gets the long backoff; anything else means the server is
    /// (still) unreachable and is retried at once and often.
    pub fn is_refusal(&self) -> bool {
        match self {
            EgressError::Transport(TransportError::Tcp { .. }) => false,
            EgressError::Transport(_) | EgressError::TlsConfig(_) => true,
            EgressError::ConnectRejected { .. } | EgressError::ServerStatus { .. } | EgressError::Session(_) => true,
            EgressError::Closed { stage: Stage::Connect | Stage::Publish } => true,
            EgressError::Closed { .. }
            | EgressError::ConnectTimeout { .. }
            | EgressError::Handshake(_)
            | EgressError::Io(_)
            | EgressError::WriteStalled { .. } => false,
        }
    }
}

fn retry_delay(failure: &EgressError, schedule: &mut crate::backoff::BackoffSchedule) -> Duration {
    crate::backoff::retry_delay(failure.is_refusal(), schedule)
}

#[instrument(name = "rtmp_egress", skip_all, fields(egress = %target.label, url = %target.url))]
async fn run(
    mut target: RtmpPlan,
    mut rx: mpsc::Receiver<Media>,
    status: watch::Sender<EgressStatus>,
    mut member: ResumeMember,
    standby: Option<FailoverMember>,
    mut declared: Option<watch::Receiver<u32>>,
) {
    if let Err(e) = target.metadata.validate() {
        error!(error = %e, "refusing to publish");
        status.send_modify(|s| {
            s.state = EgressState::Stopped;
            s.last_error = Some(e.to_string());
        });
        return;
    }
    let redactor = Redactor::new(&target.url, target.stream_name.expose());
    let mut feed = Feed::default();
    let mut schedule = target.backoff.schedule();
    let mut tls = None;
    loop {
        if let Some(f) = standby.as_ref().filter(|f| !f.is_active()) {
            status.send_modify(|s| s.state = EgressState::Standby);
            tokio::select! {
                () = standby::wait(&target, f, &mut tls, &status, &redactor) => info!("this endpoint is now the active one"),
                () = discard_until_closed(&mut rx, &mut feed, &status, &mut member) => break,
            }
        }
        let connected = tokio::select! {
            r = connect(&target, &mut tls, &redactor) => r,
            // The pipeline is gone while we were connecting: nothing left to publish.
            () = discard_until_closed(&mut rx, &mut feed, &status, &mut member) => break,
        };
        let was_up = connected.is_ok();
        let failure = match connected {
            Ok(conn) => {
                let since = Instant::now();
                if let Some(f) = &standby {
                    f.up();
                }
                member.set_ready(true, std::time::Instant::now());
                if let Some(d) = &mut declared {
                    target.metadata.video_kbps = *d.borrow_and_update();
                }
                let published = publish(conn, &mut target.metadata, &mut rx, &mut feed, &status, &mut member, &mut declared).await;
                member.set_ready(false, std::time::Instant::now());
                match published {
                    Ok(()) => break,
                    Err(e) => {
                        if since.elapsed() >= STABLE_PUBLISH {
                            schedule.reset();
                        }
                        e
                    }
                }
            }
            Err(e) => e,
        };
        if standby.as_ref().is_some_and(|f| f.failed(was_up)) {
            warn!(failed = %target.endpoint.as_str(), "the active endpoint has been failing for the failover delay: switching the destination to the other one");
        }
        let delay = retry_delay(&failure, &mut schedule);
        let message = redactor.apply(&error_chain(&failure));
        if failure.is_refusal() {
            warn!(error = %message, retry_in = ?delay, "the server refused the publish: this will not fix itself until the URL, key or credentials change; retrying with backoff");
        } else {
            warn!(error = %message, retry_in = ?delay, "publish failed; reconnecting");
        }
        status.send_modify(|s| {
            s.state = EgressState::Reconnecting;
            s.reconnects += 1;
            s.last_error = Some(message);
        });
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = discard_until_closed(&mut rx, &mut feed, &status, &mut member) => break,
        }
    }
    status.send_modify(|s| s.state = EgressState::Stopped);
    info!("media channel closed; egress stopped");
}

/// One attempt, from TCP connect to an accepted publish, bounded by the connect timeout.
async fn connect(
    target: &RtmpPlan,
    tls: &mut Option<Arc<ClientConfig>>,
    redactor: &Redactor,
) -> Result<Connection, EgressError> {
    if target.url.scheme() == Scheme::Rtmps && tls.is_none() {
        *tls = Some(tls_config(target.ca_file.as_deref())?);
    }
    let request = Request {
        url: &target.url,
        stream_name: target.stream_name.expose(),
        tls: tls.as_ref(),
        write_timeout: WRITE_STALL,
        redactor,
    };
    tokio::time::timeout(target.connect_timeout, Connection::publish(request))
        .await
        .map_err(|_| EgressError::ConnectTimeout { url: target.url.clone(), after: target.connect_timeout })?
}

/// Runs an accepted publish until the channel closes (`Ok`, after closing
/// the publish cleanly) or the connection fails (`Err`).
async fn publish(
    mut conn: Connection,
    metadata: &mut PublishMetadata,
    rx: &mut mpsc::Receiver<Media>,
    feed: &mut Feed,
    status: &watch::Sender<EgressStatus>,
    member: &mut ResumeMember,
    declared: &mut Option<watch::Receiver<u32>>,
) -> Result<(), EgressError> {
    let bytes_before = status.borrow().bytes_sent;
    conn.set_metadata(metadata.stream_metadata());
    feed.begin_publish();
    status.send_modify(|s| {
        s.state = EgressState::Publishing;
        s.bytes_sent = bytes_before + conn.bytes_written;
    });
    info!("publishing; media starts at the next keyframe");
    let mut out = Vec::new();
    let mut first_video_sent = false;
    let result = loop {
        tokio::select! {
            // Server traffic (pings, acks, error statuses, a close) is handled
            // as it arrives, not only when media is flowing.
            read = conn.readable() => {
                let handled = match read {
                    Ok(n) => conn.handle_read(n).await,
                    Err(e) => Err(EgressError::Io(e)),
                };
                if let Err(e) = handled {
                    break Err(e);
                }
            }
            // A live `configure` changed the target: declared again before the next frame.
            kbps = next_declared(declared) => {
                metadata.video_kbps = kbps;
                conn.set_metadata(metadata.stream_metadata());
                feed.declare_again();
                info!(video_kbps = kbps, "new target bitrate: onMetaData sent again");
            }
            media = rx.recv() => {
                let Some(media) = media else { break Ok(()) };
                let may_start = observe(member, &media);
                let accepted = feed.accept_gated(media, may_start, &mut out);
                let video = out.iter().filter(|o| matches!(o, Outgoing::Video(_))).count() as u64;
                let audio = out.iter().filter(|o| matches!(o, Outgoing::Audio(_))).count() as u64;
                let sent = async {
                    for item in out.drain(..) {
                        conn.send(&item).await?;
                    }
                    Ok::<_, EgressError>(())
                }
                .await;
                if let Err(e) = sent {
                    break Err(e);
                }
                if video > 0 && !first_video_sent {
                    first_video_sent = true;
                    let pts_ms = feed.start_ns().unwrap_or(0) / 1_000_000;
                    info!(pts_ms, "first video frame sent (a keyframe)");
                }
                let (queued, acknowledged) = (conn.unsent_bytes(), conn.acknowledged_bytes());
                status.send_modify(|s| {
                    s.bytes_sent = bytes_before + conn.bytes_written;
                    s.queued_bytes = queued;
                    s.peer_progress = bytes_before + acknowledged;
                    s.video_frames_sent += video;
                    s.audio_frames_sent += audio;
                    s.media_discarded += u64::from(!accepted);
                });
            }
        }
    };
    feed.end_publish();
    status.send_modify(|s| s.queued_bytes = 0);
    if result.is_ok() {
        let written = conn.close().await;
        status.send_modify(|s| s.bytes_sent = bytes_before + written);
    }
    result
}

/// Tells the destination's gate about a video frame; whether a publish
/// waiting to start may start on it.
fn observe(member: &mut ResumeMember, media: &Media) -> bool {
    match media {
        Media::Video(v) => member.observe(v.pts_ns, v.keyframe, std::time::Instant::now()),
        _ => true,
    }
}

/// Reads the channel while no publish is up, keeping codec configurations
/// and discarding media; returns when every sender is gone.
async fn discard_until_closed(
    rx: &mut mpsc::Receiver<Media>,
    feed: &mut Feed,
    status: &watch::Sender<EgressStatus>,
    member: &mut ResumeMember,
) {
    let mut out = Vec::new();
    while let Some(media) = rx.recv().await {
        observe(member, &media);
        if !feed.accept(media, &mut out) {
            status.send_modify(|s| s.media_discarded += 1);
        }
        debug_assert!(out.is_empty(), "nothing is sent without a publish");
        out.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metadata() -> PublishMetadata {
        PublishMetadata {
            width: 1920,
            height: 1080,
            framerate: 29.97,
            video_kbps: 5500,
            audio_kbps: 128,
            audio_sample_rate: 48_000,
            audio_channels: 2,
        }
    }

    #[test]
    fn onmetadata_declares_avc_aac_bitrates_and_the_encoder() {
        let m = metadata().stream_metadata();
        assert_eq!((m.video_codec_id, m.audio_codec_id), (Some(7), Some(10)));
        assert_eq!((m.video_bitrate_kbps, m.audio_bitrate_kbps), (Some(5500), Some(128)));
        assert_eq!((m.video_width, m.video_height, m.video_frame_rate), (Some(1920), Some(1080), Some(29.97)));
        assert_eq!((m.audio_sample_rate, m.audio_channels, m.audio_is_stereo), (Some(48_000), Some(2), Some(true)));
        assert_eq!(m.encoder.as_deref(), Some(concat!("fieldcast ", env!("CARGO_PKG_VERSION"))));
    }

    #[test]
    fn zero_bitrates_are_refused_because_channels_reject_them() {
        assert_eq!(metadata().validate(), Ok(()));
        let no_video = PublishMetadata { video_kbps: 0, ..metadata() };
        assert_eq!(no_video.validate(), Err(MetadataError::ZeroVideoBitrate));
        let no_audio = PublishMetadata { audio_kbps: 0, ..metadata() };
        assert_eq!(no_audio.validate(), Err(MetadataError::ZeroAudioBitrate));
    }

    #[test]
    fn a_target_debug_shows_neither_token_nor_stream_key() {
        let target = RtmpPlan {
            endpoint: crate::egress::failover::Endpoint::Primary,
            destination: "primary".into(),
            rung: "1080p".into(),
            label: "primary/1080p".into(),
            url: RtmpUrl::parse("rtmps://h:2935/live/t0ken").unwrap(),
            stream_name: Secret::new("key-123"),
            stream_name_redacted: "***".into(),
            target: Target::Any,
            metadata: metadata(),
            backoff: Backoff::default(),
            connect_timeout: Duration::from_secs(10),
            ca_file: None,
        };
        let shown = format!("{target:?}");
        assert!(shown.contains("primary/1080p") && shown.contains("rtmps://h:2935/live/***"), "{shown}");
        assert!(!shown.contains("t0ken") && !shown.contains("key-123"), "{shown}");
    }

    #[test]
    fn an_unreachable_server_is_retried_within_half_a_second_and_a_refusal_backs_off() {
        let url = RtmpUrl::parse("rtmp://h/live").unwrap();
        let down = [
            EgressError::Transport(TransportError::Tcp { url: url.clone(), source: std::io::ErrorKind::ConnectionRefused.into() }),
            EgressError::ConnectTimeout { url: url.clone(), after: Duration::from_secs(10) },
            EgressError::Closed { stage: Stage::Handshake },
            EgressError::Closed { stage: Stage::Publishing },
            EgressError::Io(std::io::ErrorKind::ConnectionReset.into()),
            EgressError::WriteStalled { after: WRITE_STALL },
        ];
        let refused = [
            EgressError::ServerStatus { code: "NetStream.Publish.BadName".into() },
            EgressError::ConnectRejected { description: "bad token".into() },
            EgressError::Closed { stage: Stage::Publish },
            EgressError::Closed { stage: Stage::Connect },
            EgressError::Transport(TransportError::ServerName { host: "h".into() }),
        ];
        let backoff = Backoff { initial: Duration::from_secs(1), max: Duration::from_secs(30) };
        let mut schedule = backoff.schedule();
        for e in &down {
            assert!(!e.is_refusal(), "{e}");
            for _ in 0..20 {
                assert!(retry_delay(e, &mut schedule) <= UNREACHABLE_RETRY, "{e}");
            }
        }
        let delays: Vec<Duration> = refused.iter().map(|e| retry_delay(e, &mut schedule)).collect();
        assert!(refused.iter().all(EgressError::is_refusal));
        assert!(delays.last().unwrap() >= &Duration::from_secs(4), "refusals back off: {delays:?}");
    }

    #[test]
    fn errors_print_their_whole_chain() {
        let url = RtmpUrl::parse("rtmp://h/live/t0ken").unwrap();
        let source = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        let error = EgressError::Transport(TransportError::Tcp { url, source });
        assert_eq!(error_chain(&error), "TCP connect to rtmp://h:1935/live/*** failed: connection refused");
        let closed = EgressError::Closed { stage: Stage::Connect };
        assert_eq!(closed.to_string(), "server closed the connection after connect (application or token refused?)");
    }
}

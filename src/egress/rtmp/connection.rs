//! One RTMP connection publishing one stream over rml_rtmp's sans-IO session:
//! handshake, `connect`, `createStream` + `publish`, then media messages out
//! and server messages (acks, pings, status codes) in.

use super::chunk_repair::ChunkRepair;
use super::feed::Outgoing;
use super::redact::Redactor;
use super::transport::{self, Io};
use super::{EgressError, Stage};
use crate::config::url::RtmpUrl;
use rml_rtmp::handshake::{Handshake, HandshakeProcessResult, PeerType};
use rml_rtmp::sessions::{
    ClientSession, ClientSessionConfig, ClientSessionEvent, ClientSessionResult, PublishRequestType, StreamMetadata,
};
use rml_rtmp::time::RtmpTimestamp;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::rustls::ClientConfig;
use tracing::{debug, trace};

/// Sent as `flashVer`: the string hardware and software encoders (OBS too)
/// send, which ingest servers recognise. nginx-rtmp keeps only 31 bytes.
const FLASH_VERSION: &str = "FMLE/3.0 (compatible; FMSc/1.0)";
const READ_BUFFER: usize = 16 * 1024;

/// Steps of the setup the server confirms.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Milestone {
    Connected,
    Publishing,
}

/// What to publish where; borrowed from the target for one connection.
pub(crate) struct Request<'a> {
    pub url: &'a RtmpUrl,
    pub stream_name: &'a str,
    pub tls: Option<&'a Arc<ClientConfig>>,
    /// Bound on any single write; a server that stops reading is a dead server.
    pub write_timeout: Duration,
    pub redactor: &'a Redactor,
}

/// A connection whose publish the server has accepted.
pub(crate) struct Connection {
    io: Box<dyn Io>,
    session: ClientSession,
    read_buf: Box<[u8]>,
    write_timeout: Duration,
    redactor: Redactor,
    metadata: Option<StreamMetadata>,
    /// Bytes written to the socket (handshake included).
    pub bytes_written: u64,
    queue: transport::SendQueue,
    /// What the server sends goes through it before rml_rtmp reads it.
    repair: ChunkRepair,
    repairs_logged: u64,
}

impl Connection {
    /// Opens the transport and runs the whole setup up to `NetStream.Publish.Start`.
    /// The caller bounds it with the connect timeout.
    pub async fn publish(req: Request<'_>) -> Result<Connection, EgressError> {
        let (mut io, queue) = transport::open(req.url, req.tls).await?;
        let (remaining, handshake_bytes) = handshake(&mut io).await?;

        let mut config = ClientSessionConfig::new();
        config.flash_version = FLASH_VERSION.to_owned();
        config.tc_url = Some(req.url.tc_url());
        let (session, initial) = ClientSession::new(config).map_err(EgressError::Session)?;
        let mut conn = Connection {
            io,
            session,
            read_buf: vec![0; READ_BUFFER].into_boxed_slice(),
            write_timeout: req.write_timeout,
            redactor: req.redactor.clone(),
            metadata: None,
            bytes_written: handshake_bytes,
            queue,
            repair: ChunkRepair::default(),
            repairs_logged: 0,
        };
        conn.apply(initial).await?;
        let results = conn.server_bytes(&remaining)?;
        let mut seen = conn.apply(results).await?;

        let connect = conn.session.request_connection(req.url.app().to_owned()).map_err(EgressError::Session)?;
        conn.apply(vec![connect]).await?;
        conn.await_milestone(Milestone::Connected, &mut seen).await?;

        let publish = conn
            .session
            .request_publishing(req.stream_name.to_owned(), PublishRequestType::Live)
            .map_err(EgressError::Session)?;
        conn.apply(vec![publish]).await?;
        conn.await_milestone(Milestone::Publishing, &mut seen).await?;
        Ok(conn)
    }

    /// Bytes written but not sent yet (the socket's send queue, beyond what is in flight).
    pub fn unsent_bytes(&self) -> u64 {
        self.queue.bytes().unwrap_or(0)
    }

    /// Bytes the peer has acknowledged on this connection: moves while the
    /// peer takes data, however slowly; stops when it is gone.
    pub fn acknowledged_bytes(&self) -> u64 {
        self.bytes_written.saturating_sub(self.queue.unacknowledged().unwrap_or(0))
    }

    /// What `onMetaData` says for this publish; sent when the feed asks
    /// ([`Outgoing::Metadata`]), at the first keyframe.
    pub fn set_metadata(&mut self, metadata: StreamMetadata) {
        self.metadata = Some(metadata);
    }

    /// One message. Nothing is marked droppable: dropping happens upstream,
    /// per GOP, never inside the chunk stream.
    pub async fn send(&mut self, item: &Outgoing) -> Result<(), EgressError> {
        let result = match item {
            Outgoing::Metadata { timestamp } => {
                let Some(metadata) = &self.metadata else { return Ok(()) };
                // rml_rtmp stamps it on the session's own clock (ms since the
                // connection began): restamp it on the media's.
                self.session.publish_metadata(metadata).map(|result| match result {
                    ClientSessionResult::OutboundResponse(mut packet) => {
                        if !super::restamp::restamp(&mut packet.bytes, *timestamp) {
                            debug!("onMetaData spans several chunks; sent on the session clock");
                        }
                        ClientSessionResult::OutboundResponse(packet)
                    }
                    other => other,
                })
            }
            Outgoing::VideoHeader(tag) | Outgoing::Video(tag) => {
                self.session.publish_video_data(tag.body.clone(), RtmpTimestamp::new(tag.timestamp), false)
            }
            Outgoing::AudioHeader(tag) | Outgoing::Audio(tag) => {
                self.session.publish_audio_data(tag.body.clone(), RtmpTimestamp::new(tag.timestamp), false)
            }
        }
        .map_err(EgressError::Session)?;
        self.apply(vec![result]).await.map(drop)
    }

    /// Waits for bytes from the server. Cancel-safe (nothing is consumed
    /// unless it completes), so it can sit in a `select!` beside the media channel.
    pub async fn readable(&mut self) -> std::io::Result<usize> {
        self.io.read(&mut self.read_buf).await
    }

    /// Handles what [`readable`](Self::readable) read: answers pings and
    /// acknowledgements, and turns server-side failures into errors.
    pub async fn handle_read(&mut self, n: usize) -> Result<(), EgressError> {
        if n == 0 {
            return Err(EgressError::Closed { stage: Stage::Publishing });
        }
        let results = self.server_bytes_read(n)?;
        self.apply(results).await.map(drop)
    }

    /// Ends the publish (`deleteStream`) and closes the connection, best
    /// effort. Returns the bytes written over the connection's life.
    pub async fn close(mut self) -> u64 {
        let result = async {
            let results = self.session.stop_publishing().map_err(EgressError::Session)?;
            self.apply(results).await?;
            tokio::time::timeout(self.write_timeout, self.io.shutdown()).await.ok();
            Ok::<_, EgressError>(())
        }
        .await;
        if let Err(e) = result {
            debug!(error = %self.redactor.apply(&e.to_string()), "closing the publish failed");
        }
        self.bytes_written
    }

    async fn await_milestone(&mut self, want: Milestone, seen: &mut Vec<Milestone>) -> Result<(), EgressError> {
        let stage = match want {
            Milestone::Connected => Stage::Connect,
            Milestone::Publishing => Stage::Publish,
        };
        while !seen.contains(&want) {
            let n = self.readable().await.map_err(EgressError::Io)?;
            if n == 0 {
                return Err(EgressError::Closed { stage });
            }
            let results = self.server_bytes_read(n)?;
            seen.extend(self.apply(results).await?);
        }
        Ok(())
    }

    /// Hands bytes from the server to the session, through the header repair.
    fn server_bytes(&mut self, bytes: &[u8]) -> Result<Vec<ClientSessionResult>, EgressError> {
        let repaired = self.repair.feed(bytes);
        self.give_session(repaired)
    }

    fn server_bytes_read(&mut self, n: usize) -> Result<Vec<ClientSessionResult>, EgressError> {
        let repaired = self.repair.feed(&self.read_buf[..n]);
        self.give_session(repaired)
    }

    fn give_session(&mut self, bytes: Vec<u8>) -> Result<Vec<ClientSessionResult>, EgressError> {
        if self.repair.repaired > self.repairs_logged {
            debug!(headers = self.repair.repaired, "server chunk headers without a previous header read as zeros");
            self.repairs_logged = self.repair.repaired;
        }
        self.session.handle_input(&bytes).map_err(EgressError::Session)
    }

    /// Sends what the session produced, in order, and interprets its events.
    async fn apply(&mut self, results: Vec<ClientSessionResult>) -> Result<Vec<Milestone>, EgressError> {
        let mut milestones = Vec::new();
        for result in results {
            match result {
                ClientSessionResult::OutboundResponse(packet) => self.write(&packet.bytes).await?,
                ClientSessionResult::RaisedEvent(event) => milestones.extend(self.on_event(event)?),
                ClientSessionResult::UnhandleableMessageReceived(payload) => {
                    trace!(type_id = payload.type_id, "ignored server message");
                }
            }
        }
        Ok(milestones)
    }

    fn on_event(&self, event: ClientSessionEvent) -> Result<Option<Milestone>, EgressError> {
        match event {
            ClientSessionEvent::ConnectionRequestAccepted => Ok(Some(Milestone::Connected)),
            ClientSessionEvent::PublishRequestAccepted => Ok(Some(Milestone::Publishing)),
            ClientSessionEvent::ConnectionRequestRejected { description } => {
                Err(EgressError::ConnectRejected { description: self.redactor.apply(&description) })
            }
            ClientSessionEvent::UnhandleableOnStatusCode { code } => {
                let code = self.redactor.apply(&code);
                if is_failure_status(&code) {
                    Err(EgressError::ServerStatus { code })
                } else {
                    debug!(%code, "server status");
                    Ok(None)
                }
            }
            ClientSessionEvent::UnhandleableAmf0Command { command_name, .. } if command_name == "close" => {
                Err(EgressError::Closed { stage: Stage::Publishing })
            }
            ClientSessionEvent::UnhandleableAmf0Command { command_name, .. } => {
                debug!(command = %self.redactor.apply(&command_name), "server command ignored");
                Ok(None)
            }
            ClientSessionEvent::AcknowledgementReceived { bytes_received } => {
                trace!(bytes_received, "server acknowledged");
                Ok(None)
            }
            _ => Ok(None),
        }
    }

    async fn write(&mut self, bytes: &[u8]) -> Result<(), EgressError> {
        let write = async {
            self.io.write_all(bytes).await?;
            self.io.flush().await
        };
        match tokio::time::timeout(self.write_timeout, write).await {
            Err(_) => Err(EgressError::WriteStalled { after: self.write_timeout }),
            Ok(Err(e)) => Err(EgressError::Io(e)),
            Ok(Ok(())) => {
                self.bytes_written += bytes.len() as u64;
                Ok(())
            }
        }
    }
}

/// A cheap check that the server at `url` is there: TCP (and TLS) connect
/// and the RTMP handshake, then close. Nothing is published, no key is sent.
/// The caller bounds it with a timeout.
pub(crate) async fn probe(url: &RtmpUrl, tls: Option<&Arc<ClientConfig>>) -> Result<(), EgressError> {
    let (mut io, _queue) = transport::open(url, tls).await?;
    handshake(&mut io).await?;
    let _ = io.shutdown().await;
    Ok(())
}

/// The RTMP handshake (C0/C1, S0/S1/S2, C2). Returns the bytes the server
/// sent after S2 (the start of the chunk stream) and the bytes written.
async fn handshake(io: &mut Box<dyn Io>) -> Result<(Vec<u8>, u64), EgressError> {
    let mut handshake = Handshake::new(PeerType::Client);
    let c0c1 = handshake.generate_outbound_p0_and_p1().map_err(EgressError::Handshake)?;
    io.write_all(&c0c1).await.map_err(EgressError::Io)?;
    let mut written = c0c1.len() as u64;
    let mut buf = [0u8; 4096];
    loop {
        let n = io.read(&mut buf).await.map_err(EgressError::Io)?;
        if n == 0 {
            return Err(EgressError::Closed { stage: Stage::Handshake });
        }
        match handshake.process_bytes(&buf[..n]).map_err(EgressError::Handshake)? {
            HandshakeProcessResult::InProgress { response_bytes } => {
                io.write_all(&response_bytes).await.map_err(EgressError::Io)?;
                written += response_bytes.len() as u64;
            }
            HandshakeProcessResult::Completed { response_bytes, remaining_bytes } => {
                io.write_all(&response_bytes).await.map_err(EgressError::Io)?;
                io.flush().await.map_err(EgressError::Io)?;
                return Ok((remaining_bytes, written + response_bytes.len() as u64));
            }
        }
    }
}

/// `onStatus` codes that end a publish (rml_rtmp only interprets `*.Start`;
/// every other code surfaces as an event, without its `level`).
fn is_failure_status(code: &str) -> bool {
    const FAILURES: [&str; 8] =
        ["BadName", "Denied", "Failed", "Rejected", "Closed", "Error", "Unauthorized", "InvalidArg"];
    FAILURES.iter().any(|f| code.contains(f))
}

#[cfg(test)]
mod tests {
    use super::is_failure_status;

    #[test]
    fn refusals_and_failures_end_a_publish_but_informational_codes_do_not() {
        for code in [
            "NetStream.Publish.BadName",
            "NetConnection.Connect.Rejected",
            "NetStream.Failed",
            "NetConnection.Connect.Closed",
        ] {
            assert!(is_failure_status(code), "{code}");
        }
        for code in ["NetStream.Publish.Start", "NetStream.Unpublish.Success", "NetStream.Data.Start"] {
            assert!(!is_failure_status(code), "{code}");
        }
    }
}

//! What every output actor reports, whatever its protocol: a state, counters
//! and the latest failure (redacted), plus an optional protocol-specific
//! part. Read by the supervisor (health) and telemetry through a `watch`.

use serde::Serialize;

#[derive(Clone, Copy, Debug, Serialize, PartialEq, Eq)]
pub enum EgressState {
    /// First connection attempt.
    Connecting,
    /// Connected and sending (for a listener: a receiver is pulling).
    Publishing,
    /// Backing off or reconnecting after a failure.
    Reconnecting,
    /// The media channel closed (or the output was refused); the actor has ended.
    Stopped,
    /// A failover backup (or a primary after the switch) waiting to be the active endpoint.
    Standby,
}

/// Telemetry of one output actor. Never holds a secret.
#[derive(Clone, Debug, Serialize)]
pub struct EgressStatus {
    /// `destination/rung`, e.g. `primary/1080p`.
    pub label: String,
    pub state: EgressState,
    /// Bytes written on connections that reached the publishing state.
    pub bytes_sent: u64,
    pub video_frames_sent: u64,
    pub audio_frames_sent: u64,
    /// Media items discarded while not publishing or waiting for a keyframe.
    pub media_discarded: u64,
    /// Failures followed by a new attempt.
    pub reconnects: u32,
    /// The latest failure, redacted.
    pub last_error: Option<String>,
    /// Bytes handed to the connection and not sent yet (RTMP: the TCP
    /// socket's unsent queue); what adaptive bitrate watches.
    pub queued_bytes: u64,
    /// A counter that moves whenever the peer takes data (RTMP: bytes that
    /// left the socket's queue; SRT: acknowledgements received; CMAF: body
    /// bytes written): adaptive bitrate tells a congested output (slow,
    /// moving) from one whose receiver is gone (not moving) by it.
    #[serde(skip)]
    pub peer_progress: u64,
    /// Not a failure: e.g. a failover standby whose endpoint is down.
    pub warning: Option<OutputWarning>,
    /// SRT outputs only: the sender's own statistics.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub srt: Option<SrtStats>,
    /// CMAF outputs only: each track's poster.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cmaf: Option<CmafStats>,
}

/// A CMAF output's tracks (its rung's video, and the audio on the
/// destination's first rung).
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct CmafStats {
    pub tracks: Vec<super::cmaf::track::TrackStatus>,
}

/// An SRT sender's statistics: the wire type itself, filled in by the
/// SRT output and passed to telemetry as it is.
pub use crate::status::wire::SrtStats;

pub use crate::status::wire::OutputWarning;

impl EgressStatus {
    /// The status of an output that has not tried to connect yet.
    pub fn new(label: impl Into<String>) -> EgressStatus {
        EgressStatus {
            label: label.into(),
            state: EgressState::Connecting,
            bytes_sent: 0,
            video_frames_sent: 0,
            audio_frames_sent: 0,
            media_discarded: 0,
            reconnects: 0,
            last_error: None,
            queued_bytes: 0,
            peer_progress: 0,
            warning: None,
            srt: None,
            cmaf: None,
        }
    }
}

/// An error and its sources, `: `-separated, for logs and status.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        text.push_str(": ");
        text.push_str(&e.to_string());
        source = e.source();
    }
    text
}

//! The status [`Snapshot`] of one tick: rates are measured over the
//! interval since the previous tick from the pipeline's own counters (bytes
//! and frames out of each encoder, frames into the capture), so they are
//! what was produced, not what was configured.

use crate::egress::EgressState;
use crate::egress::record::RecordState;
use crate::session::Session;
use crate::status::wire::{AudioLevel, CmafStats, CmafTrack, CmafTrackState, Destination, Input, OutputState, Recording, RecordingState, Rung, SystemSample};
use crate::status::{Reason, Snapshot, StateName};
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::{Instant, SystemTime};

/// Counters at the previous tick, for one session.
struct Mark {
    at: Instant,
    session_started: Instant,
    captured: u64,
    rungs: HashMap<String, (u64, u64)>,
}

/// The one rate window: every reader of the snapshot shares it.
pub struct Reporter {
    mark: Option<Mark>,
    process_start: Instant,
}

impl Default for Reporter {
    fn default() -> Self {
        Reporter { mark: None, process_start: Instant::now() }
    }
}

impl Reporter {
    pub fn report(&mut self, state: StateName, reason: Option<Reason>, session: Option<&Session>, system: SystemSample) -> Snapshot {
        let now = Instant::now();
        let mut out = Snapshot {
            at: SystemTime::now(),
            uptime_s: round1(self.process_start.elapsed().as_secs_f64()),
            state,
            reason,
            input: None,
            ladder_factor: None,
            rungs: Vec::new(),
            destinations: Vec::new(),
            recording: Vec::new(),
            system,
        };
        let Some(s) = session else {
            self.mark = None;
            return out;
        };
        // A new session restarts the counters.
        let mark = self.mark.take().filter(|m| m.session_started == s.started);
        let secs = now.duration_since(mark.as_ref().map_or(s.started, |m| m.at)).as_secs_f64().max(1e-3);
        let stats = &s.pipeline.stats;
        let captured = stats.captured_frames.load(Ordering::Relaxed);
        let fps = s.plan.format.fps.as_f64();
        let signal = stats.input_signal();
        // Frames the live source should have delivered but did not.
        let expected = (now.duration_since(s.started).as_secs_f64() * fps) as u64;
        out.input = Some(Input {
            signal: signal.signal,
            since: signal.since.map(|t| humantime::format_rfc3339_millis(t).to_string()),
            slate: signal.slate,
            kind: s.plan.source_kind.to_string(),
            width: s.plan.format.width,
            height: s.plan.format.height,
            configured_fps: round2(fps),
            fps: round2((captured - mark.as_ref().map_or(0, |m| m.captured)) as f64 / secs),
            frames_captured: captured,
            frames_missing: expected.saturating_sub(captured + 2 * fps as u64),
            frames_repeated: stats.frames_repeated.load(Ordering::Relaxed),
            frames_skipped: stats.frames_skipped.load(Ordering::Relaxed),
            slate_frames: stats.slate_frames.load(Ordering::Relaxed),
            audio: stats
                .audio
                .levels()
                .iter()
                .enumerate()
                .map(|(c, l)| AudioLevel { channel: c as u32, peak_dbfs: round1(l.peak_dbfs), rms_dbfs: round1(l.rms_dbfs) })
                .collect(),
        });
        out.ladder_factor = Some(s.pipeline.bitrates.factor());
        let rates = s.pipeline.bitrates.rates();
        let mut rung_marks = HashMap::new();
        for r in &s.plan.rungs {
            let Some(st) = stats.rung(&r.name) else { continue };
            let (frames, bytes) = (st.frames.load(Ordering::Relaxed), st.bytes.load(Ordering::Relaxed));
            let (f0, b0) = mark.as_ref().and_then(|m| m.rungs.get(&r.name).copied()).unwrap_or((0, 0));
            let dropped: u64 = s
                .egress
                .iter()
                .filter(|e| e.rung == r.name)
                .map(|e| e.sender.stats.dropped.load(Ordering::Relaxed) + e.status.borrow().media_discarded)
                .sum();
            out.rungs.push(Rung {
                name: r.name.clone(),
                width: r.width,
                height: r.height,
                target_kbps: r.bitrate_bps / 1000,
                current_kbps: rates.iter().find(|x| x.rung == r.name).map_or(r.bitrate_bps, |x| x.current_bps) / 1000,
                bitrate_kbps: round1((bytes - b0) as f64 * 8.0 / 1000.0 / secs),
                fps: round2((frames - f0) as f64 / secs),
                frames,
                bytes,
                keyframes: st.keyframes.load(Ordering::Relaxed),
                frames_dropped: dropped,
                encoder_queue: s.pipeline.encoder_queue_level(&r.name),
            });
            rung_marks.insert(r.name.clone(), (frames, bytes));
        }
        out.destinations = s
            .egress
            .iter()
            .map(|e| {
                let st = e.status.borrow();
                Destination {
                    name: e.destination.clone(),
                    rung: e.rung.clone(),
                    endpoint: e.endpoint.as_str().to_string(),
                    state: egress_state(st.state, st.last_error.is_some()),
                    bytes_sent: st.bytes_sent,
                    video_frames_sent: st.video_frames_sent,
                    reconnects: st.reconnects,
                    frames_dropped: st.media_discarded + e.sender.stats.dropped.load(Ordering::Relaxed),
                    send_queue_bytes: st.queued_bytes,
                    last_error: st.last_error.clone(),
                    warning: st.warning,
                    srt: st.srt.clone(),
                    cmaf: st.cmaf.as_ref().map(cmaf_stats),
                }
            })
            .collect();
        out.recording = s
            .recorders
            .iter()
            .map(|r| {
                let st = r.status.borrow();
                Recording {
                    rung: st.rung.clone(),
                    state: match st.state {
                        RecordState::Starting => RecordingState::Starting,
                        RecordState::Recording => RecordingState::Recording,
                        RecordState::Failed => RecordingState::Failed,
                        RecordState::Stopped => RecordingState::Stopped,
                    },
                    files: st.files,
                    failures: st.failures,
                    frames_dropped: st.media_discarded + r.sender.stats.dropped.load(Ordering::Relaxed),
                    last_error: st.last_error.clone(),
                }
            })
            .collect();
        self.mark = Some(Mark { at: now, session_started: s.started, captured, rungs: rung_marks });
        out
    }
}

fn cmaf_stats(s: &crate::egress::status::CmafStats) -> CmafStats {
    use crate::egress::cmaf::track::TrackState;
    CmafStats {
        tracks: s
            .tracks
            .iter()
            .map(|t| CmafTrack {
                track: t.track.clone(),
                state: match t.state {
                    TrackState::Connecting => CmafTrackState::Connecting,
                    TrackState::Sending => CmafTrackState::Sending,
                    TrackState::Reconnecting => CmafTrackState::Reconnecting,
                    TrackState::Stopped => CmafTrackState::Stopped,
                    TrackState::Failed => CmafTrackState::Failed,
                },
                segments_sent: t.segments_sent,
                bytes_sent: t.bytes_sent,
                last_http_status: t.last_http_status,
                reconnects: t.reconnects,
                retransmitted_segments: t.retransmitted_segments,
                segments_skipped: t.segments_skipped,
                last_error: t.last_error.clone(),
            })
            .collect(),
    }
}

/// The dashboard's words for an egress state.
pub fn egress_state(s: EgressState, failed: bool) -> OutputState {
    match s {
        EgressState::Publishing => OutputState::Connected,
        EgressState::Connecting => OutputState::Connecting,
        EgressState::Reconnecting => OutputState::Reconnecting,
        EgressState::Stopped if failed => OutputState::Error,
        EgressState::Stopped => OutputState::Stopped,
        EgressState::Standby => OutputState::Standby,
    }
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

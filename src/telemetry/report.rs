//! The `telemetry` message: rates are measured over the interval since the
//! previous report from the pipeline's own counters (bytes and frames out of
//! each encoder, frames into the capture), so they are what was produced,
//! not what was configured.

use super::system::SystemSampler;
use crate::egress::EgressState;
use crate::session::Session;
use crate::supervisor::State;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::{Instant, SystemTime};

/// Counters at the previous report, for one session.
struct Mark {
    at: Instant,
    session_started: Instant,
    captured: u64,
    rungs: HashMap<String, (u64, u64)>,
}

pub struct Reporter {
    system: SystemSampler,
    mark: Option<Mark>,
    process_start: Instant,
}

impl Default for Reporter {
    fn default() -> Self {
        Reporter { system: SystemSampler::new(), mark: None, process_start: Instant::now() }
    }
}

impl Reporter {
    pub fn report(&mut self, state: &State, session: Option<&Session>, disk: Option<&Path>) -> Value {
        let now = Instant::now();
        let mut out = json!({
            "ts": humantime::format_rfc3339_millis(SystemTime::now()).to_string(),
            "uptime_s": round1(self.process_start.elapsed().as_secs_f64()),
            "state": state.name(),
            "reason": state.reason(),
            "input": null,
            "rungs": [],
            "destinations": [],
            "recording": [],
            "system": self.system.sample(disk),
        });
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
        out["input"] = json!({
            "signal": signal.signal,
            "since": signal.since.map(|t| humantime::format_rfc3339_millis(t).to_string()),
            "slate": signal.slate,
            "kind": s.plan.source_kind,
            "width": s.plan.format.width,
            "height": s.plan.format.height,
            "configured_fps": round2(fps),
            "fps": round2((captured - mark.as_ref().map_or(0, |m| m.captured)) as f64 / secs),
            "frames_captured": captured,
            "frames_missing": expected.saturating_sub(captured + 2 * fps as u64),
            "frames_repeated": stats.frames_repeated.load(Ordering::Relaxed),
            "frames_skipped": stats.frames_skipped.load(Ordering::Relaxed),
            "slate_frames": stats.slate_frames.load(Ordering::Relaxed),
        });
        let mut rung_marks = HashMap::new();
        let mut rungs = Vec::new();
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
            rungs.push(json!({
                "name": r.name,
                "width": r.width,
                "height": r.height,
                "target_kbps": r.bitrate_bps / 1000,
                "bitrate_kbps": round1((bytes - b0) as f64 * 8.0 / 1000.0 / secs),
                "fps": round2((frames - f0) as f64 / secs),
                "frames": frames,
                "bytes": bytes,
                "keyframes": st.keyframes.load(Ordering::Relaxed),
                "frames_dropped": dropped,
                "encoder_queue": s.pipeline.encoder_queue_level(&r.name),
            }));
            rung_marks.insert(r.name.clone(), (frames, bytes));
        }
        out["rungs"] = Value::Array(rungs);
        out["destinations"] = Value::Array(
            s.egress
                .iter()
                .map(|e| {
                    let st = e.status.borrow();
                    json!({
                        "name": e.destination,
                        "rung": e.rung,
                        "endpoint": e.endpoint.as_str(),
                        "state": egress_state(st.state, st.last_error.is_some()),
                        "bytes_sent": st.bytes_sent,
                        "video_frames_sent": st.video_frames_sent,
                        "reconnects": st.reconnects,
                        "frames_dropped": st.media_discarded + e.sender.stats.dropped.load(Ordering::Relaxed),
                        "last_error": st.last_error,
                        "srt": st.srt,
                    })
                })
                .collect(),
        );
        out["recording"] = Value::Array(
            s.recorders
                .iter()
                .map(|r| {
                    let st = r.status.borrow();
                    json!({
                        "rung": st.rung,
                        "state": st.state,
                        "files": st.files,
                        "failures": st.failures,
                        "frames_dropped": st.media_discarded + r.sender.stats.dropped.load(Ordering::Relaxed),
                        "last_error": st.last_error,
                    })
                })
                .collect(),
        );
        self.mark = Some(Mark { at: now, session_started: s.started, captured, rungs: rung_marks });
        out
    }
}

/// The dashboard's words for an egress state.
pub fn egress_state(s: EgressState, failed: bool) -> &'static str {
    match s {
        EgressState::Publishing => "connected",
        EgressState::Connecting => "connecting",
        EgressState::Reconnecting => "reconnecting",
        EgressState::Stopped if failed => "error",
        EgressState::Stopped => "stopped",
        EgressState::Standby => "standby",
    }
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

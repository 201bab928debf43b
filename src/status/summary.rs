//! A standalone box (no `[mqtt]`) still has telemetry: every
//! [`EVERY`] the latest snapshot goes to the journal as one line, e.g.
//! `summary: live; input 30.0/30 fps; 720p 2987 kbps 30.0 fps; primary/720p connected; cpu 43% rss 139 MB`.

use super::wire::{OutputState, OutputWarning};
use super::{Latest, Snapshot};
use std::fmt::Write;
use std::time::Duration;
use tracing::info;

pub const EVERY: Duration = Duration::from_secs(30);

/// Logs a summary of the latest snapshot every `every`, until the sender goes.
pub fn spawn(mut latest: Latest, every: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        loop {
            tick.tick().await;
            if latest.has_changed().is_err() {
                return;
            }
            let line = latest.borrow_and_update().as_deref().map(line);
            if let Some(line) = line {
                info!(target: "fieldcast::summary", "summary: {line}");
            }
        }
    })
}

/// The snapshot in one line.
pub fn line(s: &Snapshot) -> String {
    let mut out = s.state.as_str().to_string();
    if let Some(r) = &s.reason {
        let _ = write!(out, " ({r})");
    }
    if let Some(i) = &s.input {
        let lost = match (i.signal, i.slate) {
            (true, _) => "",
            (false, false) => ", lost (repeating the last frame)",
            (false, true) => ", lost (slate on the air)",
        };
        let _ = write!(out, "; input {:.1}/{} fps{lost}", i.fps, i.configured_fps);
    }
    for r in &s.rungs {
        let _ = write!(out, "; {} {:.0} kbps {:.1} fps", r.name, r.bitrate_kbps, r.fps);
        if r.frames_dropped > 0 {
            let _ = write!(out, " ({} dropped)", r.frames_dropped);
        }
    }
    for d in &s.destinations {
        let state = match d.state {
            OutputState::Connecting => "connecting",
            OutputState::Connected => "connected",
            OutputState::Reconnecting => "reconnecting",
            OutputState::Error => "error",
            OutputState::Stopped => "stopped",
            OutputState::Standby => "standby",
        };
        let _ = write!(out, "; {}/{} {state}", d.name, d.rung);
        if d.warning == Some(OutputWarning::StandbyDown) {
            let _ = write!(out, " (endpoint down)");
        }
    }
    for r in &s.recording {
        let state = format!("{:?}", r.state).to_lowercase();
        let _ = write!(out, "; recording {} {state} ({} files)", r.rung, r.files);
    }
    let sys = &s.system;
    if let Some(cpu) = sys.process_cpu_percent {
        let _ = write!(out, "; cpu {cpu:.0}%");
    }
    if let Some(rss) = sys.rss_bytes {
        let _ = write!(out, " rss {} MB", rss / 1_000_000);
    }
    if let Some(t) = sys.temperature_c {
        let _ = write!(out, " {t:.0} °C");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::wire::*;
    use super::super::{Reason, Snapshot, StateName};
    use super::*;

    #[test]
    fn a_summary_line_says_state_input_rungs_outputs_and_the_machine() {
        let s = Snapshot {
            at: std::time::SystemTime::UNIX_EPOCH,
            uptime_s: 60.0,
            state: StateName::Degraded,
            reason: Some(Reason::InputEnded),
            input: Some(Input {
                signal: true,
                since: None,
                slate: false,
                kind: "v4l2".into(),
                width: 1280,
                height: 720,
                configured_fps: 30.0,
                fps: 29.97,
                frames_captured: 900,
                frames_missing: 0,
                frames_repeated: 0,
                frames_skipped: 0,
                slate_frames: 0,
                audio: Vec::new(),
            }),
            ladder_factor: Some(1.0),
            rungs: vec![Rung { name: "720p".into(), width: 1280, height: 720, target_kbps: 3000, current_kbps: 3000, bitrate_kbps: 2987.4, fps: 30.0, frames: 900, bytes: 1, keyframes: 15, frames_dropped: 0, encoder_queue: Some(0) }],
            destinations: vec![Destination { name: "primary".into(), rung: "720p".into(), endpoint: "primary".into(), state: OutputState::Reconnecting, bytes_sent: 0, video_frames_sent: 0, reconnects: 1, frames_dropped: 0, send_queue_bytes: 0, last_error: None, warning: None, srt: None, cmaf: None }],
            recording: vec![],
            system: SystemSample { process_cpu_percent: Some(43.2), rss_bytes: Some(139_000_000), ..Default::default() },
        };
        assert_eq!(
            line(&s),
            "degraded (input ended: reopening it); input 30.0/30 fps; 720p 2987 kbps 30.0 fps; primary/720p reconnecting; cpu 43% rss 139 MB"
        );
    }
}

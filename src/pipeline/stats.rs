//! Counters the pipeline keeps while it runs: frames captured and when the
//! last one arrived (a stalled capture stops the watchdog), and per rung the
//! encoded frames, bytes and keyframes. Telemetry reads them; nothing here
//! blocks a streaming thread.

use gstreamer as gst;
use gstreamer::prelude::*;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

#[derive(Debug, Default)]
pub struct RungStats {
    pub frames: AtomicU64,
    pub bytes: AtomicU64,
    pub keyframes: AtomicU64,
    pub last_pts_ns: AtomicU64,
}

impl RungStats {
    pub fn on_frame(&self, pts_ns: u64, bytes: usize, keyframe: bool) {
        self.frames.fetch_add(1, Ordering::Relaxed);
        self.bytes.fetch_add(bytes as u64, Ordering::Relaxed);
        if keyframe {
            self.keyframes.fetch_add(1, Ordering::Relaxed);
        }
        self.last_pts_ns.store(pts_ns, Ordering::Relaxed);
    }
}

#[derive(Debug)]
pub struct PipelineStats {
    started: Instant,
    pub captured_frames: AtomicU64,
    /// Nanoseconds after `started` when the last frame was captured (0 = none yet).
    last_capture_ns: AtomicU64,
    rungs: Vec<(String, Arc<RungStats>)>,
}

impl PipelineStats {
    pub fn new(names: impl Iterator<Item = String>) -> PipelineStats {
        PipelineStats {
            started: Instant::now(),
            captured_frames: AtomicU64::new(0),
            last_capture_ns: AtomicU64::new(0),
            rungs: names.map(|n| (n, Arc::new(RungStats::default()))).collect(),
        }
    }

    pub fn rung(&self, name: &str) -> Option<Arc<RungStats>> {
        self.rungs.iter().find(|(n, _)| n == name).map(|(_, s)| s.clone())
    }

    pub fn rungs(&self) -> impl Iterator<Item = (&str, &RungStats)> {
        self.rungs.iter().map(|(n, s)| (n.as_str(), s.as_ref()))
    }

    fn on_capture(&self) {
        self.captured_frames.fetch_add(1, Ordering::Relaxed);
        let now = self.started.elapsed().as_nanos() as u64;
        self.last_capture_ns.store(now.max(1), Ordering::Relaxed);
    }

    /// Time since the last captured frame, `None` before the first.
    pub fn since_last_capture(&self) -> Option<std::time::Duration> {
        let last = self.last_capture_ns.load(Ordering::Relaxed);
        (last != 0).then(|| self.started.elapsed().saturating_sub(std::time::Duration::from_nanos(last)))
    }
}

pub fn install_capture_probe(pad: &gst::Pad, stats: Arc<PipelineStats>) {
    pad.add_probe(gst::PadProbeType::BUFFER, move |_, _| {
        stats.on_capture();
        gst::PadProbeReturn::Ok
    });
}

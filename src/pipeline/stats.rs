//! Counters the pipeline keeps while it runs: frames captured from the real
//! source and when the last one arrived (slate frames never count), the
//! capture actor's heartbeat (a wedged capture stops the watchdog), what the output's frame clock filled
//! in (repeated frames, slate frames) and whether the input is lost, and per
//! rung the encoded frames, bytes and keyframes. Telemetry reads them;
//! nothing here blocks a streaming thread.

use gstreamer as gst;
use gstreamer::prelude::*;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

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
    /// Nanoseconds after `started` when the capture actor last turned (0 = not yet).
    capture_beat_ns: AtomicU64,
    /// Output frames that repeated the previous one (the capture had none in time).
    pub frames_repeated: AtomicU64,
    /// Output frames that were the slate.
    pub slate_frames: AtomicU64,
    /// Captured frames the output never used (the capture ran ahead of the output clock).
    pub frames_skipped: AtomicU64,
    /// Unix milliseconds when the input was lost; 0 while it delivers.
    lost_at_ms: AtomicU64,
    slate_on: AtomicBool,
    /// The shared audio's level per channel over the last second.
    pub audio: super::level::AudioMeter,
    /// Where the output timeline carried filler (input lost).
    pub filler: super::filler::FillerSpans,
    /// The output timeline against the Unix epoch (set by the frame clock).
    pub epoch: super::epoch::EpochOrigin,
    rungs: Vec<(String, Arc<RungStats>)>,
}

/// Whether the real input delivers, as status shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InputSignal {
    pub signal: bool,
    /// When the input was lost (while it is).
    pub since: Option<SystemTime>,
    /// The slate is on the air.
    pub slate: bool,
}

impl PipelineStats {
    pub fn new(names: impl Iterator<Item = String>) -> PipelineStats {
        PipelineStats {
            started: Instant::now(),
            captured_frames: AtomicU64::new(0),
            last_capture_ns: AtomicU64::new(0),
            capture_beat_ns: AtomicU64::new(0),
            frames_repeated: AtomicU64::new(0),
            slate_frames: AtomicU64::new(0),
            frames_skipped: AtomicU64::new(0),
            lost_at_ms: AtomicU64::new(0),
            slate_on: AtomicBool::new(false),
            audio: Default::default(),
            filler: Default::default(),
            epoch: Default::default(),
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

    /// The capture actor is turning: delivering, waiting for frames, or
    /// reopening the source. Called from its own thread only.
    pub(super) fn capture_heartbeat(&self) {
        let now = self.started.elapsed().as_nanos() as u64;
        self.capture_beat_ns.store(now.max(1), Ordering::Relaxed);
    }

    /// Time since the capture actor last turned, `None` before it started.
    /// A capture stuck in a driver (or a read that never returns) stops
    /// beating; one that is reopening a lost source does not.
    pub fn since_capture_heartbeat(&self) -> Option<std::time::Duration> {
        let last = self.capture_beat_ns.load(Ordering::Relaxed);
        (last != 0).then(|| self.started.elapsed().saturating_sub(std::time::Duration::from_nanos(last)))
    }

    /// Time since the last captured frame, `None` before the first.
    pub fn since_last_capture(&self) -> Option<std::time::Duration> {
        let last = self.last_capture_ns.load(Ordering::Relaxed);
        (last != 0).then(|| self.started.elapsed().saturating_sub(std::time::Duration::from_nanos(last)))
    }
}

impl PipelineStats {
    pub(super) fn set_lost(&self, at: SystemTime) {
        let ms = at.duration_since(UNIX_EPOCH).map_or(1, |d| d.as_millis() as u64).max(1);
        self.lost_at_ms.store(ms, Ordering::Relaxed);
    }

    pub(super) fn set_back(&self) {
        self.lost_at_ms.store(0, Ordering::Relaxed);
        self.slate_on.store(false, Ordering::Relaxed);
    }

    pub(super) fn set_slate(&self, on: bool) {
        self.slate_on.store(on, Ordering::Relaxed);
    }

    pub fn input_signal(&self) -> InputSignal {
        let ms = self.lost_at_ms.load(Ordering::Relaxed);
        InputSignal {
            signal: ms == 0,
            since: (ms != 0).then(|| UNIX_EPOCH + std::time::Duration::from_millis(ms)),
            slate: self.slate_on.load(Ordering::Relaxed),
        }
    }
}

/// Counts the real source's frames (on the capture's own branch, before
/// the output's frame clock: slate and repeated frames never pass here).
pub fn install_capture_probe(pad: &gst::Pad, stats: Arc<PipelineStats>) {
    pad.add_probe(gst::PadProbeType::BUFFER, move |_, _| {
        stats.on_capture();
        gst::PadProbeReturn::Ok
    });
}

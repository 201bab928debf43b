//! Where keyframes get aligned. Every rung's encoder has the same fixed GOP
//! in frames and sees the same frames (one capture, one tee); on top of that
//! a clock on the capture side asks all of them for an IDR at the same
//! running time (a downstream force-key-unit event through the tee), so a
//! rung re-aligns after anything that shifted its frame count. Boards whose
//! encoder ignores the event still align through the fixed GOP.

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_video as gst_video;
use std::sync::Mutex;

/// Decides which captured frames must be IDRs: the first, then one at every
/// `t0 + k * gop`, where `t0` is the first frame's running time. Anchoring on
/// the first frame makes the forced IDRs land exactly where each encoder's own
/// fixed GOP puts them.
///
/// Epoch-anchored (an `epoch_aligned` destination): the first frame is still
/// an IDR (an encoder starts with one), then one at every running time whose
/// time since 1970 is a whole number of GOPs (a short first GOP); the
/// encoders' own fixed GOP counts on from each forced IDR.
#[derive(Debug, Clone)]
pub struct KeyframeClock {
    gop_ns: u64,
    half_frame_ns: u64,
    next_ns: Option<u64>,
    count: u32,
}

impl KeyframeClock {
    pub fn new(gop_ns: u64, frame_ns: u64) -> KeyframeClock {
        KeyframeClock { gop_ns, half_frame_ns: frame_ns / 2, next_ns: None, count: 0 }
    }

    /// Feeds one frame's running time; true if that frame must be a keyframe.
    pub fn is_due(&mut self, t: u64) -> bool {
        self.is_due_on(t, None)
    }

    /// [`is_due`](Self::is_due) with the grid anchored on the epoch:
    /// `epoch_offset_ns` turns running time into time since 1970 (read at the
    /// first frame; `None` anchors on the first frame).
    pub fn is_due_on(&mut self, t: u64, epoch_offset_ns: Option<u64>) -> bool {
        let due = match self.next_ns {
            None => {
                self.next_ns = Some(match epoch_offset_ns {
                    // The first boundary more than half a frame after this frame.
                    Some(off) => super::epoch::next_boundary(t + self.half_frame_ns + 1, off, self.gop_ns),
                    None => t + self.gop_ns,
                });
                true
            }
            Some(next) if t + self.half_frame_ns >= next => {
                // After a capture gap, skip to the next boundary on the same grid.
                let mut n = next;
                while n <= t + self.half_frame_ns {
                    n += self.gop_ns;
                }
                self.next_ns = Some(n);
                true
            }
            Some(_) => false,
        };
        if due {
            self.count += 1;
        }
        due
    }

    pub fn count(&self) -> u32 {
        self.count
    }
}

/// Installs the clock on the capture tee's sink pad: before each due frame, a
/// force-key-unit event (all headers) is sent into the tee, which carries it
/// to every rung ahead of that frame.
///
/// `epoch`: anchor the grid on the Unix epoch (an `epoch_aligned` destination).
pub fn install(tee_sink: &gst::Pad, gop_ns: u64, frame_ns: u64, epoch: Option<super::epoch::EpochOrigin>) {
    let clock = Mutex::new(KeyframeClock::new(gop_ns, frame_ns));
    tee_sink.add_probe(gst::PadProbeType::BUFFER, move |pad, info| {
        let Some(buffer) = info.buffer() else { return gst::PadProbeReturn::Ok };
        let Some(pts) = buffer.pts() else { return gst::PadProbeReturn::Ok };
        let running = pad
            .sticky_event::<gst::event::Segment>(0)
            .and_then(|ev| ev.segment().downcast_ref::<gst::ClockTime>().and_then(|s| s.to_running_time(pts)))
            .unwrap_or(pts);
        let (due, count) = {
            let mut c = clock.lock().expect("keyframe clock lock");
            (c.is_due_on(running.nseconds(), epoch.as_ref().and_then(|e| e.offset_ns())), c.count())
        };
        if due {
            // No running time: "at the next frame", which is this one (the
            // event is serialized ahead of it). With a running time set,
            // GstVideoEncoder 1.22 compares it against its own offset frame
            // times (x264enc shifts by 1000 h) and honours only the first.
            let event = gst_video::DownstreamForceKeyUnitEvent::builder()
                .all_headers(true)
                .count(count)
                .build();
            pad.send_event(event);
        }
        gst::PadProbeReturn::Ok
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    /// Frame indices that the clock makes keyframes, for frames at `t0 + i * frame`.
    fn keyframes(t0: u64, frame_ns: u64, gop_frames: u64, frames: u64, skip: &[u64]) -> Vec<u64> {
        let mut c = KeyframeClock::new(gop_frames * frame_ns, frame_ns);
        (0..frames).filter(|i| !skip.contains(i)).filter(|i| c.is_due(t0 + i * frame_ns)).collect()
    }

    #[test]
    fn keyframes_fall_every_gop_counted_from_the_first_frame() {
        assert_eq!(keyframes(137 * MS, 33_333_333, 60, 250, &[]), [0, 60, 120, 180, 240]);
    }

    #[test]
    fn fractional_frame_rates_do_not_drift_off_the_gop() {
        // 29.97 fps: frame = 33_366_666.67 ns, truncated; GOP of 60 frames = 2.002 s.
        let frame = 1_000_000_000u64 * 1001 / 30000;
        let gop = 60 * 1_000_000_000u64 * 1001 / 30000;
        let mut c = KeyframeClock::new(gop, frame);
        let kf: Vec<u64> = (0..3600u64).filter(|i| c.is_due(i * 1_000_000_000 * 1001 / 30000)).collect();
        assert_eq!(kf, (0..60).map(|k| k * 60).collect::<Vec<_>>());
    }

    #[test]
    fn anchored_on_the_epoch_the_idrs_fall_on_whole_gops_since_1970_after_a_short_first_one() {
        use crate::config::Fps;
        use crate::pipeline::{epoch, pacer::slot_ns};
        for fps in [Fps { num: 30, den: 1 }, Fps { num: 30000, den: 1001 }] {
            let (frame, gop) = (slot_ns(0, 1, fps), slot_ns(0, 60, fps));
            // Slot 0 at running time 0.7 s; 1970 + ~56 years + 0.37 s there.
            let start = 700 * MS;
            let off = epoch::snapped_offset(start, 1_796_212_800_370_000_000, fps);
            let mut c = KeyframeClock::new(gop, frame);
            let kf: Vec<u64> = (0..400u64).filter(|k| c.is_due_on(slot_ns(start, *k, fps), Some(off))).collect();
            assert_eq!(kf[0], 0, "{fps:?}: the first frame");
            assert!(kf[1] > 0 && kf[1] <= 60, "{fps:?}: a short first GOP: {kf:?}");
            assert!(kf[1..].windows(2).all(|w| w[1] - w[0] == 60), "{fps:?}: then every 60 frames: {kf:?}");
            for k in &kf[1..] {
                // Time since 1970 of that frame, to the nearest 90 kHz tick, is a whole GOP.
                let t = u128::from(slot_ns(start, *k, fps)) + u128::from(off);
                let ticks = (t * 90_000 + 500_000_000) / 1_000_000_000;
                let gop_ticks = (u128::from(gop) * 90_000 + 500_000_000) / 1_000_000_000;
                assert_eq!(ticks % gop_ticks, 0, "{fps:?}: frame {k}");
            }
        }
    }

    #[test]
    fn after_a_capture_gap_the_next_keyframe_stays_on_the_same_grid() {
        // Frames 50..130 never arrive: frame 130 is the first after the gap, so it
        // becomes a keyframe, and the grid (multiples of 60) continues at 180.
        assert_eq!(keyframes(0, 33 * MS, 60, 200, &(50..130).collect::<Vec<_>>()), [0, 130, 180]);
    }
}

//! The session's timeline against the Unix epoch. The frame clock records,
//! once, which instant since 1970-01-01T00:00:00Z its first slot is, snapped
//! to the frame grid counted from the epoch: then every output frame's
//! running time plus [`EpochOrigin::offset_ns`] is a whole number of frame
//! periods since 1970. An `epoch_aligned` CMAF or Smooth destination uses it
//! twice: the keyframe clock puts the IDRs (segment starts) at K x the GOP
//! since 1970, and the segments carry that time as their `tfdt`, so two
//! encoders fed the same signal, with clocks in step (NTP), cut the same
//! segments with the same times (DASH-IF Live Media Ingest, redundant
//! encoders).

use crate::config::Fps;
use std::sync::{Arc, OnceLock};

/// Shared by the frame clock (which sets it), the keyframe clock and the
/// outputs (which read it). Cloning shares it.
#[derive(Clone, Debug, Default)]
pub struct EpochOrigin(Arc<OnceLock<u64>>);

impl EpochOrigin {
    /// Slot 0 of the frame clock, at running time `start_ns`, falls at
    /// `unix_ns` since 1970: the offset is taken once (later calls are ignored).
    pub fn record(&self, start_ns: u64, unix_ns: u128, fps: Fps) {
        let _ = self.0.set(snapped_offset(start_ns, unix_ns, fps));
    }

    /// Running time + this = time since 1970 on the frame grid; `None`
    /// before the frame clock's first slot.
    pub fn offset_ns(&self) -> Option<u64> {
        self.0.get().copied()
    }
}

/// Frame `m` since 1970, in nanoseconds (exact for fractional rates: computed, never accumulated).
fn frame_time_ns(m: u128, fps: Fps) -> u128 {
    m * 1_000_000_000 * u128::from(fps.den) / u128::from(fps.num)
}

/// The offset that puts running time `start_ns` on the frame of the epoch's
/// grid nearest `unix_ns` (at most half a frame away).
pub fn snapped_offset(start_ns: u64, unix_ns: u128, fps: Fps) -> u64 {
    let per = 1_000_000_000 * u128::from(fps.den);
    let m = (unix_ns * u128::from(fps.num) + per / 2) / per;
    (frame_time_ns(m, fps) - u128::from(start_ns)) as u64
}

/// The first instant at or after `t_ns` (running time) whose time since 1970
/// is a whole number of `period_ns`, in running time.
pub fn next_boundary(t_ns: u64, offset_ns: u64, period_ns: u64) -> u64 {
    let since_epoch = u128::from(t_ns) + u128::from(offset_ns);
    let k = since_epoch.div_ceil(u128::from(period_ns));
    (k * u128::from(period_ns) - u128::from(offset_ns)) as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::pacer::slot_ns;

    const NOW: u128 = 1_796_212_800_123_456_789; // 2026-12-02, a little after noon
    const FPS30: Fps = Fps { num: 30, den: 1 };
    const NTSC: Fps = Fps { num: 30000, den: 1001 };

    #[test]
    fn every_slot_lands_on_a_whole_frame_since_1970_at_whole_and_fractional_rates() {
        for fps in [FPS30, NTSC, Fps { num: 25, den: 1 }, Fps { num: 60000, den: 1001 }] {
            let start = 1_234_567_891;
            let off = snapped_offset(start, NOW, fps);
            let at_start = u128::from(start) + u128::from(off);
            assert!(at_start.abs_diff(NOW) * 2 <= 1_000_000_000 * u128::from(fps.den) / u128::from(fps.num), "{fps:?}: within half a frame");
            for k in [0u64, 1, 59, 60, 86_400 * 30, 10_000_019] {
                let t = u128::from(slot_ns(start, k, fps)) + u128::from(off);
                // t x fps is a whole number of frames, give or take the 2 ns the integer times may round off.
                let per = 1_000_000_000 * u128::from(fps.den);
                let r = (t * u128::from(fps.num)) % per;
                assert!(r.min(per - r) <= 2 * u128::from(fps.num), "{fps:?}: slot {k} is {t} ns since 1970, {r} off the frame grid");
            }
        }
    }

    #[test]
    fn two_boxes_a_few_milliseconds_apart_agree_on_the_grid() {
        // Box A's slot 0 at running time 5 s, box B's at 0.2 s; B's clock 4 ms ahead.
        let (a, b) = (snapped_offset(5_000_000_000, NOW, FPS30), snapped_offset(200_000_000, NOW + 4_000_000, FPS30));
        let (ka, kb) = (next_boundary(5_000_000_000, a, 2_000_000_000), next_boundary(200_000_000, b, 2_000_000_000));
        assert_eq!(u128::from(ka) + u128::from(a), u128::from(kb) + u128::from(b), "the same segment boundary since 1970");
        assert_eq!((u128::from(ka) + u128::from(a)) % 2_000_000_000, 0);
        assert!(ka >= 5_000_000_000 && ka - 5_000_000_000 < 2_000_000_000);
    }

    #[test]
    fn the_origin_is_recorded_once() {
        let o = EpochOrigin::default();
        assert_eq!(o.offset_ns(), None);
        o.record(0, NOW, FPS30);
        let first = o.offset_ns().unwrap();
        o.record(0, NOW + 10_000_000_000, FPS30);
        assert_eq!(o.offset_ns(), Some(first));
        assert_eq!(o.clone().offset_ns(), Some(first), "clones share it");
    }
}

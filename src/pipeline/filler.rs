//! Where the output timeline carried filler: the frames the pacer made
//! while the input was lost (the last frame repeated, then the slate), as
//! spans of running time. The appsinks look an encoded frame's PTS up here,
//! so every output can tell replacement content from the real picture
//! (CMAF labels such segments with the `slat` brand). Written by the pacer
//! thread, read by the streaming threads: one short lock, no I/O.

use std::collections::VecDeque;
use std::sync::Mutex;

/// Spans older than this many are forgotten (each is one input loss).
const KEEP: usize = 32;

#[derive(Debug, Default)]
pub struct FillerSpans {
    /// `[start, end)` in running-time nanoseconds, oldest first.
    spans: Mutex<VecDeque<(u64, u64)>>,
}

impl FillerSpans {
    /// The output frame at `pts_ns`, lasting `duration_ns`, is filler.
    pub fn mark(&self, pts_ns: u64, duration_ns: u64) {
        let end = pts_ns + duration_ns.max(1);
        let mut spans = self.spans.lock().unwrap_or_else(|p| p.into_inner());
        match spans.back_mut() {
            // The next frame of the same loss (the clock may have skipped slots).
            Some(last) if pts_ns >= last.0 && pts_ns <= last.1 + duration_ns => last.1 = last.1.max(end),
            _ => {
                spans.push_back((pts_ns, end));
                if spans.len() > KEEP {
                    spans.pop_front();
                }
            }
        }
    }

    /// Whether the instant `pts_ns` lies in a filler span.
    pub fn covers(&self, pts_ns: u64) -> bool {
        let spans = self.spans.lock().unwrap_or_else(|p| p.into_inner());
        spans.iter().rev().any(|&(start, end)| start <= pts_ns && pts_ns < end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const F: u64 = 33_333_333;

    #[test]
    fn consecutive_filler_frames_make_one_span_and_only_its_instants_are_covered() {
        let s = FillerSpans::default();
        for k in 10..20 {
            s.mark(k * F, F);
        }
        assert!(!s.covers(10 * F - 1));
        assert!(s.covers(10 * F) && s.covers(15 * F + 7) && s.covers(20 * F - 1));
        assert!(!s.covers(20 * F));
        assert_eq!(s.spans.lock().unwrap().len(), 1);
    }

    #[test]
    fn a_second_loss_is_a_second_span_and_the_gap_between_is_real_picture() {
        let s = FillerSpans::default();
        s.mark(10 * F, F);
        s.mark(11 * F, F);
        s.mark(40 * F, F);
        assert!(s.covers(11 * F) && s.covers(40 * F));
        assert!(!s.covers(12 * F) && !s.covers(39 * F));
        assert_eq!(s.spans.lock().unwrap().len(), 2);
    }

    #[test]
    fn only_the_newest_spans_are_kept() {
        let s = FillerSpans::default();
        for k in 0..(KEEP as u64 + 5) {
            s.mark(k * 10 * F, F);
        }
        assert!(!s.covers(0));
        assert!(s.covers((KEEP as u64 + 4) * 10 * F));
        assert_eq!(s.spans.lock().unwrap().len(), KEEP);
    }
}

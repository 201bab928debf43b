//! Whether the input really arrives, in real time: `live` must not be
//! claimed while nothing reaches the channel (input lost) or while the box
//! delivers a fraction of the frames it promised (a source beyond what it
//! can capture and scale). Judged from the capture's own counters, pure.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// No frame for this long: the input is lost (telemetry's `signal` agrees).
pub const INPUT_LOSS: Duration = Duration::from_secs(2);
/// The capture rate is judged over this window...
const WINDOW: Duration = Duration::from_secs(5);
/// ...and must reach this share of the configured frame rate.
const REAL_TIME: f64 = 0.9;

/// The capture counter over the last [`WINDOW`], for one session.
#[derive(Debug, Default)]
pub struct RateWindow {
    session: Option<Instant>,
    samples: VecDeque<(Instant, u64)>,
}

impl RateWindow {
    /// What is wrong with the input now, as a status reason; `None` when it is fine.
    /// `since_last`: time since the last captured frame (`None` before the first).
    pub fn judge(
        &mut self,
        session_started: Instant,
        now: Instant,
        captured: u64,
        since_last: Option<Duration>,
        fps: f64,
    ) -> Option<String> {
        if self.session != Some(session_started) {
            *self = RateWindow { session: Some(session_started), samples: VecDeque::new() };
        }
        self.samples.push_back((now, captured));
        while self.samples.len() > 2 && now.duration_since(self.samples[1].0) >= WINDOW {
            self.samples.pop_front();
        }
        if since_last.is_some_and(|s| s >= INPUT_LOSS) {
            // Gone is gone: the rate window starts again once frames return.
            self.samples.clear();
            return Some("input: no signal".into());
        }
        let (t0, c0) = *self.samples.front()?;
        let span = now.duration_since(t0);
        if span < WINDOW {
            return None;
        }
        let measured = (captured - c0) as f64 / span.as_secs_f64();
        (measured < fps * REAL_TIME).then(|| format!("not real time: capturing {measured:.0} of {fps:.0} fps"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `fps_in` frames a second for `secs`, judged every 0.5 s like the health tick.
    fn run(w: &mut RateWindow, start: Instant, t: &mut Duration, captured: &mut u64, fps_in: f64, secs: f64) -> Vec<Option<String>> {
        let mut out = Vec::new();
        for _ in 0..(secs * 2.0) as u32 {
            *t += Duration::from_millis(500);
            *captured += (fps_in / 2.0) as u64;
            let since = if fps_in > 0.0 { Some(Duration::from_millis(10)) } else { Some(*t - Duration::from_secs(1)) };
            out.push(w.judge(start, start + *t, *captured, since, 30.0));
        }
        out
    }

    #[test]
    fn a_box_that_keeps_real_time_is_fine_and_one_that_does_not_says_its_measured_rate() {
        let (mut w, start, mut t, mut c) = (RateWindow::default(), Instant::now(), Duration::ZERO, 0);
        assert!(run(&mut w, start, &mut t, &mut c, 30.0, 20.0).iter().all(Option::is_none));
        let slow = run(&mut w, start, &mut t, &mut c, 8.0, 20.0);
        assert_eq!(slow.last().unwrap().as_deref(), Some("not real time: capturing 8 of 30 fps"));
        // Back to real time: fine again once the window has passed.
        let back = run(&mut w, start, &mut t, &mut c, 30.0, 10.0);
        assert_eq!(back.last().unwrap(), &None);
    }

    #[test]
    fn no_frame_for_two_seconds_is_input_loss_and_a_new_session_starts_a_new_window() {
        let mut w = RateWindow::default();
        let start = Instant::now();
        assert_eq!(w.judge(start, start + Duration::from_secs(9), 300, Some(Duration::from_millis(2500)), 30.0).as_deref(), Some("input: no signal"));
        assert_eq!(w.judge(start, start + Duration::from_secs(9), 300, Some(Duration::from_millis(100)), 30.0), None);
        // Within the first window nothing is judged slow (start-up).
        let next = start + Duration::from_secs(60);
        assert_eq!(w.judge(next, next + Duration::from_secs(1), 1, Some(Duration::ZERO), 30.0), None);
        assert_eq!(w.judge(next, next + Duration::from_secs(3), 2, Some(Duration::ZERO), 30.0), None);
    }
}

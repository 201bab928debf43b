//! Whether the input really arrives in real time: `live` must not be
//! claimed while the box delivers a fraction of the frames it promised (a
//! source beyond what it can capture and scale). A lost input is not
//! judged here: the outputs carry the slate, the box stays `live` and
//! status says `input.signal: false` (see [`input_signal`]). Judged from the
//! capture's own counters, pure.

use crate::status::reason::InputProblem;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// No frame for this long (the default `input_loss_ms`): lost, not slow;
/// the rate window starts again once frames return.
pub const INPUT_LOSS: Duration = Duration::from_millis(500);
/// The capture rate is judged over this window...
const WINDOW: Duration = Duration::from_secs(8);
/// ...and must reach this share of the configured frame rate.
const REAL_TIME: f64 = 0.8;

/// The capture counter over the last [`WINDOW`], for one session.
#[derive(Debug, Default)]
pub struct RateWindow {
    session: Option<Instant>,
    samples: VecDeque<(Instant, u64)>,
}

impl RateWindow {
    /// What is wrong with the input now; `None` when it is fine.
    /// `since_last`: time since the last captured frame (`None` before the first).
    pub fn judge(
        &mut self,
        session_started: Instant,
        now: Instant,
        captured: u64,
        since_last: Option<Duration>,
        fps: f64,
    ) -> Option<InputProblem> {
        if self.session != Some(session_started) {
            *self = RateWindow { session: Some(session_started), samples: VecDeque::new() };
        }
        self.samples.push_back((now, captured));
        while self.samples.len() > 2 && now.duration_since(self.samples[1].0) >= WINDOW {
            self.samples.pop_front();
        }
        if since_last.is_some_and(|s| s >= INPUT_LOSS) {
            // Lost (the slate is on air): not slow; the rate window starts
            // again once frames return.
            self.samples.clear();
            return None;
        }
        let (t0, c0) = *self.samples.front()?;
        // Up to the newest frame, not to now: the onset of a loss is not slowness.
        let end = now.checked_sub(since_last.unwrap_or_default()).unwrap_or(now);
        let span = end.saturating_duration_since(t0);
        if now.duration_since(t0) < WINDOW || span < WINDOW / 2 {
            return None;
        }
        let measured = (captured - c0) as f64 / span.as_secs_f64();
        (measured < fps * REAL_TIME)
            .then(|| InputProblem::NotRealTime { capturing: measured.round() as u32, fps: fps.round() as u32 })
    }
}

/// The input as status shows it: `{signal, since, slate}`.
pub fn input_signal(i: &crate::pipeline::stats::InputSignal) -> crate::status::wire::InputSignal {
    crate::status::wire::InputSignal {
        signal: i.signal,
        since: i.since.map(|t| humantime::format_rfc3339_millis(t).to_string()),
        slate: i.slate,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `fps_in` frames a second for `secs`, judged every 0.5 s like the health tick.
    fn run(w: &mut RateWindow, start: Instant, t: &mut Duration, captured: &mut u64, fps_in: f64, secs: f64) -> Vec<Option<InputProblem>> {
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
        assert_eq!(slow.last().unwrap().map(|p| p.to_string()).as_deref(), Some("not real time: capturing 8 of 30 fps"));
        // Back to real time: fine again once the window has passed.
        let back = run(&mut w, start, &mut t, &mut c, 30.0, 10.0);
        assert_eq!(back.last().unwrap(), &None);
    }

    #[test]
    fn a_lost_input_is_not_called_slow_and_a_new_session_starts_a_new_window() {
        let mut w = RateWindow::default();
        let start = Instant::now();
        assert_eq!(w.judge(start, start + Duration::from_secs(9), 300, Some(Duration::from_millis(2500)), 30.0), None);
        // The onset of a loss (frames stopped 0.4 s ago, in real time until then) is not slow either.
        let mut w = RateWindow::default();
        for i in 0..=12u64 {
            let since = if i < 12 { Duration::ZERO } else { Duration::from_millis(400) };
            let captured = if i < 12 { i * 15 } else { 11 * 15 + 3 };
            assert_eq!(w.judge(start, start + Duration::from_millis(500 * i), captured, Some(since), 30.0), None, "at {i}");
        }
        assert_eq!(w.judge(start, start + Duration::from_secs(9), 300, Some(Duration::from_millis(100)), 30.0), None);
        // Within the first window nothing is judged slow (start-up).
        let next = start + Duration::from_secs(60);
        assert_eq!(w.judge(next, next + Duration::from_secs(1), 1, Some(Duration::ZERO), 30.0), None);
        assert_eq!(w.judge(next, next + Duration::from_secs(3), 2, Some(Duration::ZERO), 30.0), None);
    }
}

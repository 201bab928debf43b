//! Adaptive bitrate: one factor for the whole ladder, from how much media
//! the outputs hold back. Pure ([`Policy::on_sample`]: time and queue
//! levels in, a new factor out), unit-tested; [`spawn`] samples the
//! session's outputs and sets the factor on the running encoders.
//!
//! The policy follows OBS's dynamic bitrate: react once about 200 ms of
//! media is queued on any output; step the whole ladder down together (so
//! the rungs keep their ratios and the channel keeps every rung); climb
//! back 10% of the targets every 4 s while every queue stays empty; never
//! below `min_ratio` of the targets.

use std::time::Duration;

/// An output holding back this much media is congested.
pub const CONGESTED: Duration = Duration::from_millis(200);
/// Every output under this is calm (room to climb).
pub const CALM: Duration = Duration::from_millis(50);
/// A step down multiplies the factor by this.
pub const STEP_DOWN: f64 = 0.7;
/// While still congested, the next step down comes after this (the
/// encoders' 1 s VBV and the socket's backlog need about that to show the
/// lower rate; measured with 1 s, the queue still grew a second after each
/// step and the ladder went down to `min_ratio` where 0.49 had room), and
/// only if the queue did not shrink meanwhile (a draining queue needs no more).
pub const DOWN_HOLD: Duration = Duration::from_secs(2);
/// Calm this long: one climb of [`STEP_UP`] of the targets.
pub const UP_EVERY: Duration = Duration::from_secs(4);
pub const STEP_UP: f64 = 0.1;
/// How often the outputs are sampled.
pub const SAMPLE_EVERY: Duration = Duration::from_millis(250);

#[derive(Clone, Debug)]
pub struct Policy {
    min_ratio: f64,
    factor: f64,
    /// When the last step down was made, and the worst queue then.
    last_down: Option<(Duration, Duration)>,
    /// Since when every queue has been calm (and no climb since).
    calm_since: Option<Duration>,
}

impl Policy {
    pub fn new(min_ratio: f64) -> Policy {
        Policy { min_ratio, factor: 1.0, last_down: None, calm_since: None }
    }

    pub fn factor(&self) -> f64 {
        self.factor
    }

    /// One sample: `now` (any monotonic origin) and how much media each
    /// output holds back. Returns the new factor when it changes.
    pub fn on_sample(&mut self, now: Duration, queued: &[Duration]) -> Option<f64> {
        let worst = queued.iter().copied().max().unwrap_or_default();
        if worst >= CONGESTED {
            self.calm_since = None;
            let due = match self.last_down {
                None => true,
                Some((at, then)) => now.saturating_sub(at) >= DOWN_HOLD && worst >= then,
            };
            // A shrinking queue after a step: the lower rate fits, let it drain.
            if let Some((at, then)) = self.last_down
                && now.saturating_sub(at) >= DOWN_HOLD
                && worst < then
            {
                self.last_down = Some((now, worst));
            }
            if !due || self.factor <= self.min_ratio {
                return None;
            }
            self.last_down = Some((now, worst));
            return self.set((self.factor * STEP_DOWN).max(self.min_ratio));
        }
        if worst > CALM {
            // Neither: hold.
            self.calm_since = None;
            return None;
        }
        self.last_down = None;
        let since = *self.calm_since.get_or_insert(now);
        if self.factor >= 1.0 || now.saturating_sub(since) < UP_EVERY {
            return None;
        }
        self.calm_since = Some(now);
        self.set((self.factor + STEP_UP).min(1.0))
    }

    fn set(&mut self, factor: f64) -> Option<f64> {
        // Two decimals: what telemetry shows is what the encoders got.
        let factor = (factor * 100.0).round() / 100.0;
        if (factor - self.factor).abs() < f64::EPSILON {
            return None;
        }
        self.factor = factor;
        Some(factor)
    }
}

/// How long `bytes` take to send at `bits_per_second`.
pub fn as_time(bytes: u64, bits_per_second: u64) -> Duration {
    Duration::from_secs_f64(bytes as f64 * 8.0 / bits_per_second.max(1) as f64)
}

/// One output, as the sampler sees it.
pub struct Watched {
    pub label: String,
    pub rung: String,
    pub status: tokio::sync::watch::Receiver<super::EgressStatus>,
    pub sender: super::MediaSender,
}

/// Samples every output each [`SAMPLE_EVERY`] and sets the ladder's factor
/// on the running encoders. `audio_bps` and `items_per_s` (video frames plus
/// audio frames a second) turn queued bytes (at the rung's target rate) and
/// channel items into time.
/// Abort the task before closing the outputs: it holds their senders.
pub fn spawn(
    outputs: Vec<Watched>,
    bitrates: std::sync::Arc<crate::pipeline::bitrate::LiveBitrates>,
    min_ratio: f64,
    audio_bps: u64,
    items_per_s: f64,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut policy = Policy::new(min_ratio);
        let start = tokio::time::Instant::now();
        let mut every = tokio::time::interval(SAMPLE_EVERY);
        loop {
            every.tick().await;
            let rates = bitrates.rates();
            let queued: Vec<Duration> = outputs
                .iter()
                .map(|o| {
                    let st = o.status.borrow();
                    // At the target rate, not the current one: the same backlog
                    // must not look longer because the ladder stepped down.
                    let rate = rates.iter().find(|r| r.rung == o.rung).map_or(1_000_000, |r| r.target_bps) + audio_bps;
                    let socket = match &st.srt {
                        // Sent, not yet acknowledged, beyond one round trip.
                        Some(srt) => Duration::from_secs_f64((f64::from(srt.send_buffer_ms) - srt.rtt_ms).max(0.0) / 1000.0),
                        None => as_time(st.queued_bytes, rate),
                    };
                    socket + Duration::from_secs_f64(o.sender.queued() as f64 / items_per_s.max(1.0))
                })
                .collect();
            let Some(factor) = policy.on_sample(start.elapsed(), &queued) else { continue };
            let (worst, held) = outputs.iter().zip(&queued).max_by_key(|(_, q)| **q).map(|(o, q)| (o.label.as_str(), *q)).unwrap_or(("", Duration::ZERO));
            match bitrates.set_factor(factor) {
                Ok(()) => tracing::info!(
                    factor,
                    worst_output = %worst,
                    queued_ms = held.as_millis() as u64,
                    "adaptive bitrate: the ladder at {:.0}% of its targets",
                    factor * 100.0
                ),
                Err(e) => {
                    tracing::warn!(error = %e, "adaptive bitrate: the encoders refused a new bitrate; adaptation off for this session");
                    return;
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: fn(u64) -> Duration = Duration::from_millis;

    /// Feeds `samples` (ms of media queued on the worst output), one every
    /// 250 ms from t = 0; returns (t in ms, new factor) for every change.
    fn run(policy: &mut Policy, from_ms: u64, samples: &[u64]) -> Vec<(u64, f64)> {
        let mut out = Vec::new();
        for (i, q) in samples.iter().enumerate() {
            let t = from_ms + 250 * i as u64;
            if let Some(f) = policy.on_sample(MS(t), &[MS(0), MS(*q)]) {
                out.push((t, f));
            }
        }
        out
    }

    #[test]
    fn a_growing_queue_steps_the_ladder_down_at_once_and_again_each_second_while_it_still_grows() {
        let mut p = Policy::new(0.25);
        let changes = run(&mut p, 0, &[0, 100, 250, 400, 500, 600, 700, 800, 900, 1000, 1100, 1200, 1300]);
        // Crossed 200 ms at t = 500: down at once; still growing two seconds later: down again.
        assert_eq!(changes, [(500, 0.7), (2500, 0.49)]);
    }

    #[test]
    fn a_queue_that_drains_after_a_step_gets_no_second_step() {
        let mut p = Policy::new(0.25);
        let changes = run(&mut p, 0, &[300, 350, 320, 330, 310, 300, 290, 280, 270, 260, 250, 240, 230, 220, 210, 205, 204]);
        assert_eq!(changes, [(0, 0.7)]);
    }

    #[test]
    fn never_below_min_ratio_however_long_the_congestion() {
        let mut p = Policy::new(0.25);
        let growing: Vec<u64> = (0..80).map(|i| 200 + 50 * i).collect();
        let changes = run(&mut p, 0, &growing);
        assert_eq!(changes.iter().map(|c| c.1).collect::<Vec<_>>(), [0.7, 0.49, 0.34, 0.25]);
        assert_eq!(p.factor(), 0.25);
        let mut high = Policy::new(0.8);
        run(&mut high, 0, &growing);
        assert_eq!(high.factor(), 0.8);
    }

    #[test]
    fn empty_queues_climb_back_ten_percent_every_four_seconds_up_to_the_targets() {
        let mut p = Policy::new(0.25);
        run(&mut p, 0, &[300, 400, 500, 600, 700, 800, 900, 1000, 1100]);
        assert_eq!(p.factor(), 0.49);
        // Calm from t = 3000: +0.1 at 7000, 11000, ... capped at 1.0.
        let calm = vec![0; 4 * 30];
        let changes = run(&mut p, 3000, &calm);
        assert_eq!(changes, [(7000, 0.59), (11000, 0.69), (15000, 0.79), (19000, 0.89), (23000, 0.99), (27000, 1.0)]);
        assert!(run(&mut p, 33000, &calm).is_empty(), "at the targets: stays");
    }

    #[test]
    fn a_queue_between_calm_and_congested_holds_the_factor() {
        let mut p = Policy::new(0.25);
        run(&mut p, 0, &[300]);
        let changes = run(&mut p, 250, &[100; 40]);
        assert!(changes.is_empty(), "{changes:?}");
        // Calm again resets the 4 s.
        let changes = run(&mut p, 10_250, &[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(changes, [(14_250, 0.8)]);
    }

    #[test]
    fn congestion_while_climbing_steps_down_from_where_it_is() {
        let mut p = Policy::new(0.25);
        run(&mut p, 0, &[300]);
        run(&mut p, 250, &[0; 17]);
        assert_eq!(p.factor(), 0.8);
        assert_eq!(run(&mut p, 5000, &[250]), [(5000, 0.56)]);
    }

    #[test]
    fn queued_bytes_become_time_at_the_output_rate() {
        assert_eq!(as_time(125_000, 1_000_000), MS(1000));
        assert_eq!(as_time(0, 0), MS(0));
    }
}

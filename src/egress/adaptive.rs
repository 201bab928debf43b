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
//!
//! Only congestion a lower bitrate can relieve moves the ladder: an output
//! counts as congested when its backlog is over [`CONGESTED`] on two
//! samples in a row *and* its peer kept taking data in between. A receiver
//! that is gone (killed, unplugged, black-holed) takes nothing, so its
//! growing backlog is "stalled", not congestion: it is that output's own
//! trouble (its loss detection and reconnect), and the ladder every other
//! output carries stays where it is.

use std::time::Duration;

/// An output holding back this much media is congested.
pub const CONGESTED: Duration = Duration::from_millis(200);
/// Every output under this is calm (room to climb).
pub const CALM: Duration = Duration::from_millis(50);
/// A step down multiplies the factor by this.
pub const STEP_DOWN: f64 = 0.7;
/// While still congested, the next step down comes after this, and only
/// if the queue did not shrink meanwhile (a draining queue needs no more).
/// Measured with 2 s under a link at 63% of the ladder: the backlog built
/// past 3.5 s before the steps caught up; with 1 s the ladder reaches its
/// floor sooner (it went to `min_ratio` with 2 s too).
pub const DOWN_HOLD: Duration = Duration::from_secs(1);
/// Calm this long: one climb of [`STEP_UP`] of the targets.
pub const UP_EVERY: Duration = Duration::from_secs(4);
pub const STEP_UP: f64 = 0.1;
/// How often the outputs are sampled. The third backed-up sample decides
/// (see `Track::observe`), so congestion moves the ladder 250 ms after the
/// backlog passed [`CONGESTED`]; the second one comes late enough that
/// statistics read up to 250 ms late (SRT's) no longer show a dead
/// receiver's last acknowledgements.
pub const SAMPLE_EVERY: Duration = Duration::from_millis(125);

/// One output at one sample.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Sample {
    /// Media the output holds back (socket and channel), as time.
    pub queued: Duration,
    /// A counter that moves whenever its peer takes data
    /// ([`super::EgressStatus::peer_progress`]).
    pub progress: u64,
}

impl Sample {
    /// An output with nothing held back (or not publishing at all).
    pub const IDLE: Sample = Sample { queued: Duration::ZERO, progress: 0 };
}

/// How many samples back the peer's progress is looked for: a congested
/// TCP peer recovering from loss can go a few hundred ms without an
/// acknowledgement; one that took nothing for a second is gone.
const PROGRESS_WINDOW: usize = 8;

/// What the policy remembers of one output.
#[derive(Clone, Debug, Default)]
struct Track {
    /// Consecutive samples over [`CONGESTED`].
    backed_for: usize,
    /// Its progress counter at the last samples, newest last.
    history: std::collections::VecDeque<u64>,
}

impl Track {
    /// Whether the output is congested (backed up, its peer taking data).
    /// The third backed-up sample decides, and only progress after the
    /// second one counts: the first could still show the last
    /// acknowledgements of a receiver that died as its backlog began.
    fn observe(&mut self, s: &Sample) -> Verdict {
        self.history.push_back(s.progress);
        if self.history.len() > PROGRESS_WINDOW + 1 {
            self.history.pop_front();
        }
        if s.queued < CONGESTED {
            self.backed_for = 0;
            return if s.queued > CALM { Verdict::Busy } else { Verdict::Calm };
        }
        self.backed_for += 1;
        if self.backed_for < 3 {
            return Verdict::Busy;
        }
        let back = PROGRESS_WINDOW.min(self.backed_for - 2);
        let then = self.history[self.history.len() - 1 - back];
        if s.progress != then { Verdict::Congested } else { Verdict::Stalled }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Verdict {
    Calm,
    /// Too busy to climb, not (yet) a reason to step down.
    Busy,
    Congested,
    /// Backed up while its peer takes nothing: not the ladder's business.
    Stalled,
}

#[derive(Clone, Debug)]
pub struct Policy {
    min_ratio: f64,
    factor: f64,
    tracks: Vec<Track>,
    /// The congested output with the most held back at the last sample.
    worst: Option<usize>,
    /// When the last step down was made, and the worst queue then.
    last_down: Option<(Duration, Duration)>,
    /// Since when every queue has been calm (and no climb since).
    calm_since: Option<Duration>,
}

impl Policy {
    pub fn new(min_ratio: f64) -> Policy {
        Policy { min_ratio, factor: 1.0, tracks: Vec::new(), worst: None, last_down: None, calm_since: None }
    }

    pub fn factor(&self) -> f64 {
        self.factor
    }

    /// Which output (its index in the samples) was the most congested at
    /// the last sample, if any was.
    pub fn worst(&self) -> Option<usize> {
        self.worst
    }

    /// One sample: `now` (any monotonic origin) and each output, in the
    /// same order every time. Returns the new factor when it changes.
    pub fn on_sample(&mut self, now: Duration, outputs: &[Sample]) -> Option<f64> {
        self.tracks.resize_with(outputs.len(), Track::default);
        let (mut congested, mut busy) = (None::<(Duration, usize)>, false);
        for (i, (o, track)) in outputs.iter().zip(self.tracks.iter_mut()).enumerate() {
            match track.observe(o) {
                Verdict::Congested => congested = congested.max(Some((o.queued, i))),
                Verdict::Busy => busy = true,
                Verdict::Calm | Verdict::Stalled => {}
            }
        }
        self.worst = congested.map(|(_, i)| i);
        if let Some((worst, _)) = congested {
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
        if busy {
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
            let samples: Vec<Sample> = outputs
                .iter()
                .map(|o| {
                    let st = o.status.borrow();
                    if st.state != super::EgressState::Publishing {
                        // Not connected: its channel is drained, nothing to relieve.
                        return Sample::IDLE;
                    }
                    // At the target rate, not the current one: the same backlog
                    // must not look longer because the ladder stepped down.
                    let rate = rates.iter().find(|r| r.rung == o.rung).map_or(1_000_000, |r| r.target_bps) + audio_bps;
                    let socket = match &st.srt {
                        // Sent, not yet acknowledged, beyond one round trip.
                        Some(srt) => Duration::from_secs_f64((f64::from(srt.send_buffer_ms) - srt.rtt_ms).max(0.0) / 1000.0),
                        None => as_time(st.queued_bytes, rate),
                    };
                    let queued = socket + Duration::from_secs_f64(o.sender.queued() as f64 / items_per_s.max(1.0));
                    Sample { queued, progress: st.peer_progress }
                })
                .collect();
            let Some(factor) = policy.on_sample(start.elapsed(), &samples) else { continue };
            let (worst, held) = policy.worst().map_or(("", Duration::ZERO), |i| (outputs[i].label.as_str(), samples[i].queued));
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

    /// One sample of the watched output: ms queued, and whether its peer
    /// took data since the previous sample.
    #[derive(Clone, Copy)]
    enum S {
        Moving(u64),
        Stalled(u64),
    }
    use S::{Moving, Stalled};

    /// Feeds one sample every 250 ms (twice the service's spacing: the
    /// policy counts samples, its holds are in time) from `from_ms`, each a calm output and
    /// `samples[i]`; returns (t in ms, new factor) for every change.
    fn run_with(policy: &mut Policy, from_ms: u64, samples: &[S]) -> Vec<(u64, f64)> {
        thread_local!(static PROGRESS: std::cell::Cell<u64> = const { std::cell::Cell::new(1) });
        let mut out = Vec::new();
        let mut progress = PROGRESS.get();
        for (i, s) in samples.iter().enumerate() {
            let t = from_ms + 250 * i as u64;
            let queued = match *s {
                Moving(q) => {
                    progress += 1;
                    q
                }
                Stalled(q) => q,
            };
            if let Some(f) = policy.on_sample(MS(t), &[Sample::IDLE, Sample { queued: MS(queued), progress }]) {
                out.push((t, f));
            }
        }
        PROGRESS.set(progress);
        out
    }

    /// The same, the output's peer taking data throughout (`samples`: ms queued).
    fn run(policy: &mut Policy, from_ms: u64, samples: &[u64]) -> Vec<(u64, f64)> {
        run_with(policy, from_ms, &samples.iter().map(|q| Moving(*q)).collect::<Vec<_>>())
    }

    #[test]
    fn a_growing_queue_steps_the_ladder_down_on_its_third_sample_and_again_every_second_while_it_still_grows() {
        let mut p = Policy::new(0.25);
        let changes = run(&mut p, 0, &[0, 100, 250, 400, 500, 600, 700, 800, 900, 1000, 1100, 1200, 1300]);
        // Over 200 ms from t = 500, still at 1000 with the peer taking data: down; still growing a second later: down again.
        assert_eq!(changes, [(1000, 0.7), (2000, 0.49), (3000, 0.34)]);
    }

    #[test]
    fn a_backlog_seen_on_one_or_two_samples_only_holds_the_factor() {
        let mut p = Policy::new(0.25);
        for _ in 0..10 {
            assert!(run(&mut p, 0, &[0, 0, 400, 0, 300, 300, 0]).is_empty());
        }
        assert_eq!(p.factor(), 1.0);
    }

    #[test]
    fn a_queue_that_drains_after_a_step_gets_no_second_step() {
        let mut p = Policy::new(0.25);
        let changes = run(&mut p, 0, &[300, 350, 320, 330, 310, 300, 290, 280, 270, 260, 250, 240, 230, 220, 210, 205, 204]);
        assert_eq!(changes, [(500, 0.7)]);
    }

    #[test]
    fn an_output_whose_peer_takes_nothing_never_moves_the_ladder_however_long_its_backlog_grows() {
        // A receiver killed or cut off: what is sent is never taken.
        let mut p = Policy::new(0.25);
        let growing: Vec<S> = (0..80).map(|i| Stalled(200 + 50 * i)).collect();
        assert!(run_with(&mut p, 0, &growing).is_empty());
        // The race at the moment it dies: the first backed-up samples
        // still show its last acknowledgements (statistics read up to
        // 250 ms late), the next ones none.
        let mut p = Policy::new(0.25);
        let dying = [Moving(0), Moving(240), Moving(490), Stalled(740), Stalled(990), Stalled(1240), Stalled(1490), Moving(0), Moving(0)];
        assert!(run_with(&mut p, 0, &dying).is_empty());
        assert_eq!(p.factor(), 1.0);
    }

    #[test]
    fn a_congested_peer_acknowledging_in_bursts_is_congested_and_one_silent_for_the_whole_window_no_longer() {
        // TCP recovering from loss: an acknowledgement every third sample.
        let mut p = Policy::new(0.25);
        let bursts: Vec<S> = (0..12).map(|i| if i % 3 == 0 { Moving(300 + 100 * i) } else { Stalled(300 + 100 * i) }).collect();
        let changes = run_with(&mut p, 0, &bursts);
        assert_eq!(changes, [(750, 0.7), (1750, 0.49), (2750, 0.34)]);
        // Then it dies with its backlog still growing: a second without
        // progress and it no longer holds the ladder down (the other
        // output is calm: the ladder climbs).
        let dead: Vec<S> = (0..40).map(|i| Stalled(1500 + 100 * i)).collect();
        let changes = run_with(&mut p, 3000, &dead);
        assert_eq!(changes, [(3750, 0.25), (8250, 0.35), (12250, 0.45)]);
    }

    #[test]
    fn a_stalled_output_neither_hides_another_outputs_congestion_nor_stops_the_climb() {
        let mut p = Policy::new(0.25);
        let both = |p: &mut Policy, t: u64, stuck: u64, other: Sample| p.on_sample(MS(t), &[Sample { queued: MS(stuck), progress: 7 }, other]);
        let busy = |n: u64| Sample { queued: MS(300), progress: n };
        assert_eq!(both(&mut p, 0, 3000, busy(1)), None);
        assert_eq!(both(&mut p, 250, 3250, busy(2)), None);
        assert_eq!(both(&mut p, 500, 3500, busy(3)), Some(0.7));
        assert_eq!(p.worst(), Some(1));
        // The congested one clears; the stalled one stays stalled: climbs back.
        let changes: Vec<(u64, f64)> = (0..50)
            .filter_map(|i| {
                let t = 750 + 250 * i;
                both(&mut p, t, 3750 + 250 * i, Sample::IDLE).map(|f| (t, f))
            })
            .collect();
        assert_eq!(changes, [(4750, 0.8), (8750, 0.9), (12_750, 1.0)]);
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
        run(&mut p, 0, &[300, 400, 500, 600, 700, 800, 900]);
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
        run(&mut p, 0, &[300, 300, 300]);
        assert_eq!(p.factor(), 0.7);
        let changes = run(&mut p, 750, &[100; 40]);
        assert!(changes.is_empty(), "{changes:?}");
        // Calm again resets the 4 s.
        let changes = run(&mut p, 10_750, &[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(changes, [(14_750, 0.8)]);
    }

    #[test]
    fn congestion_while_climbing_steps_down_from_where_it_is() {
        let mut p = Policy::new(0.25);
        run(&mut p, 0, &[300, 300, 300]);
        run(&mut p, 750, &[0; 17]);
        assert_eq!(p.factor(), 0.8);
        assert_eq!(run(&mut p, 5000, &[250, 250, 250]), [(5500, 0.56)]);
    }

    #[test]
    fn queued_bytes_become_time_at_the_output_rate() {
        assert_eq!(as_time(125_000, 1_000_000), MS(1000));
        assert_eq!(as_time(0, 0), MS(0));
    }
}

//! Reconnect pacing shared by every output (publishes, SRT, the recording)
//! and the MQTT link: capped exponential backoff with jitter.

use rand::Rng;
use std::time::Duration;

/// How fast a publisher retries after a failure: the first delay is about
/// `initial`, each further failure doubles it, never beyond `max`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Backoff {
    pub initial: Duration,
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff { initial: Duration::from_millis(250), max: Duration::from_secs(10) }
    }
}

impl Backoff {
    /// A fresh retry sequence following this policy.
    pub fn schedule(&self) -> BackoffSchedule {
        BackoffSchedule { policy: self.clone(), step: self.first_step() }
    }

    fn first_step(&self) -> Duration {
        self.initial.min(self.max)
    }
}

/// The state of one retry sequence.
#[derive(Clone, Debug)]
pub struct BackoffSchedule {
    policy: Backoff,
    step: Duration,
}

impl BackoffSchedule {
    /// The delay before the next attempt, then doubles the step (capped).
    ///
    /// "Equal jitter": the delay is uniform in `[step/2, step]`, so every
    /// rung (and every appliance) that lost the same server does not come
    /// back in lockstep, yet each wait still grows.
    pub fn next_delay(&mut self) -> Duration {
        let step = self.step;
        self.step = step.saturating_mul(2).min(self.policy.max);
        let half = step / 2;
        let jitter_ns = rand::thread_rng().gen_range(0..=(step - half).as_nanos() as u64);
        half + Duration::from_nanos(jitter_ns)
    }

    /// Back to the initial delay, after a connection proved healthy.
    pub fn reset(&mut self) {
        self.step = self.policy.first_step();
    }

    /// Sleeps for [`next_delay`](Self::next_delay) and returns how long that was.
    pub async fn wait(&mut self) -> Duration {
        let delay = self.next_delay();
        tokio::time::sleep(delay).await;
        delay
    }
}

/// While a server cannot be reached, a new attempt at least this often
/// (jittered in its upper half): a channel that comes back is reached again
/// within half a second. Refusals take the capped backoff instead.
pub const UNREACHABLE_RETRY: Duration = Duration::from_millis(400);

/// The wait before an output's next attempt: a `refusal` (bad key or
/// passphrase, TLS trust, a rejected stream id: it will not fix itself)
/// takes the capped backoff; an unreachable server a short jittered wait
/// (and the refusal sequence starts over).
pub fn retry_delay(refusal: bool, schedule: &mut BackoffSchedule) -> Duration {
    if refusal {
        schedule.next_delay()
    } else {
        schedule.reset();
        let half = UNREACHABLE_RETRY / 2;
        half + Duration::from_nanos(rand::thread_rng().gen_range(0..=half.as_nanos() as u64))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::time::Instant;

    fn policy(initial_ms: u64, max_ms: u64) -> Backoff {
        Backoff { initial: Duration::from_millis(initial_ms), max: Duration::from_millis(max_ms) }
    }

    #[tokio::test(start_paused = true)]
    async fn waits_double_from_the_initial_delay_up_to_the_cap_with_jitter() {
        let mut schedule = policy(250, 4000).schedule();
        let steps = [250, 500, 1000, 2000, 4000, 4000, 4000];
        for step in steps {
            let before = Instant::now();
            let reported = schedule.wait().await;
            let waited = before.elapsed();
            // Tokio timers have millisecond granularity: a sleep ends on the next tick.
            let tick = Duration::from_millis(1);
            assert!(waited >= reported && waited <= reported + tick, "slept {waited:?} for {reported:?}");
            let step = Duration::from_millis(step);
            assert!(reported >= step / 2 && reported <= step, "{reported:?} not within [{:?}, {step:?}]", step / 2);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn reset_starts_again_from_the_initial_delay() {
        let mut schedule = policy(100, 10_000).schedule();
        for _ in 0..6 {
            schedule.wait().await;
        }
        assert!(schedule.next_delay() >= Duration::from_millis(3200));
        schedule.reset();
        let before = Instant::now();
        schedule.wait().await;
        assert!(before.elapsed() <= Duration::from_millis(101));
    }

    #[test]
    fn jitter_spreads_delays_and_an_initial_above_the_cap_is_capped() {
        let delays: std::collections::HashSet<_> =
            (0..50).map(|_| policy(1000, 1000).schedule().next_delay()).collect();
        assert!(delays.len() > 10, "delays should differ: {delays:?}");
        assert!(delays.iter().all(|d| *d >= Duration::from_millis(500) && *d <= Duration::from_secs(1)));
        let mut capped = policy(5000, 2000).schedule();
        assert!(capped.next_delay() <= Duration::from_secs(2));
        assert_eq!(policy(0, 0).schedule().next_delay(), Duration::ZERO);
    }
}

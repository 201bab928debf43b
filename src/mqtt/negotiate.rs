//! `protocol = "auto"`: which MQTT version the next connection attempt uses.

use super::link::{Protocol, V5Verdict};
use std::time::Duration;

/// MQTT 5 attempts in a row without an answer after which a broker that
/// once spoke 5 is no longer believed to (it may have been replaced).
pub const FORGET_AFTER: u32 = 10;
/// A 3.1.1 connection made on a guess (MQTT 5 got no answer) tries 5 again
/// after this long, then twice as long each time, up to [`REPROBE_MAX`].
pub const REPROBE_FIRST: Duration = Duration::from_secs(30);
pub const REPROBE_MAX: Duration = Duration::from_secs(30 * 60);

/// What `auto` has learned about this broker since the process started.
#[derive(Debug, Default)]
pub struct Memory {
    /// The broker has accepted an MQTT 5 connection.
    spoke_v5: bool,
    /// MQTT 5 attempts in a row that got no answer.
    unanswered: u32,
    /// Re-probes of 5 from a guessed 3.1.1 connection so far.
    reprobes: u32,
}

impl Memory {
    pub fn connected(&mut self, p: Protocol) {
        if p == Protocol::V5 {
            *self = Memory { spoke_v5: true, ..Memory::default() };
        }
    }

    /// The next attempt after a failed one. A broker that has spoken 5 is
    /// stalled, not old, when a connect times out: it keeps getting 5.
    pub fn failed(&mut self, settled: bool, current: Protocol, verdict: V5Verdict) -> NextAttempt {
        if current == Protocol::V5 && verdict == V5Verdict::Inconclusive {
            self.unanswered += 1;
            if self.unanswered >= FORGET_AFTER {
                self.spoke_v5 = false;
            }
        }
        next_attempt(settled, current, verdict, self.spoke_v5)
    }

    /// A 3.1.1 connection made on a guess is up: how long until 5 is tried
    /// again (30 s, doubling to 30 min: a 3.1.1-only broker that chokes on
    /// 5 costs a connect timeout each time).
    pub fn reprobe_in(&mut self) -> Duration {
        let d = REPROBE_FIRST.saturating_mul(1 << self.reprobes.min(10)).min(REPROBE_MAX);
        self.reprobes += 1;
        d
    }
}

/// What the next connection attempt uses after a failed one.
#[derive(Debug, PartialEq, Eq)]
pub enum NextAttempt {
    /// The same protocol, after the backoff.
    Same,
    /// MQTT 3.1.1 at once. `settled`: for good, since the broker refused 5;
    /// otherwise for this connection only (MQTT 5 got no answer at all).
    V311Now { settled: bool },
    /// MQTT 5 again, after the backoff: 3.1.1 was a guess and the connection
    /// it made (or tried) is gone, so a broker that merely hiccuped on 5 gets
    /// 5 back.
    BackToV5,
}

/// MQTT 5 first; 3.1.1 when 5 gets no answer (unless the broker has spoken
/// 5: then it is stalled, and gets 5 again), and for good when the broker
/// refuses 5 outright. `settled`: the protocol is fixed (by the config, or
/// by an earlier refusal).
pub fn next_attempt(settled: bool, current: Protocol, verdict: V5Verdict, spoke_v5: bool) -> NextAttempt {
    match (settled, current, verdict) {
        (true, ..) => NextAttempt::Same,
        (false, Protocol::V5, V5Verdict::Refused) => NextAttempt::V311Now { settled: true },
        (false, Protocol::V5, V5Verdict::Inconclusive) if spoke_v5 => NextAttempt::Same,
        (false, Protocol::V5, V5Verdict::Inconclusive) => NextAttempt::V311Now { settled: false },
        (false, Protocol::V5, V5Verdict::Silent) => NextAttempt::Same,
        (false, Protocol::V311, _) => NextAttempt::BackToV5,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_prefers_5_and_settles_on_3_1_1_only_when_the_broker_refuses_5() {
        use NextAttempt::*;
        use Protocol::{V311, V5};
        use V5Verdict::{Inconclusive, Refused, Silent};
        let table = [
            // (settled, protocol, verdict) -> next
            ((false, V5, Silent), Same),
            ((false, V5, Refused), V311Now { settled: true }),
            ((false, V5, Inconclusive), V311Now { settled: false }),
            ((false, V311, Silent), BackToV5),
            ((false, V311, Inconclusive), BackToV5),
            ((true, V311, Silent), Same),
            ((true, V5, Refused), Same),
            ((true, V5, Inconclusive), Same),
        ];
        for ((settled, protocol, verdict), want) in table {
            assert_eq!(next_attempt(settled, protocol, verdict, false), want, "{settled} {protocol:?} {verdict:?}");
        }
        // A broker that has spoken 5 is stalled when it does not answer: 5 again.
        assert_eq!(next_attempt(false, V5, Inconclusive, true), Same);
        assert_eq!(next_attempt(false, V5, Refused, true), V311Now { settled: true }, "a refusal is conclusive");
    }

    #[test]
    fn a_broker_that_spoke_5_keeps_getting_5_until_it_stops_answering_for_long() {
        use Protocol::{V311, V5};
        let mut m = Memory::default();
        assert_eq!(m.failed(false, V5, V5Verdict::Inconclusive), NextAttempt::V311Now { settled: false }, "never spoke 5: guess 3.1.1");
        m.connected(V311);
        assert_eq!(m.failed(false, V311, V5Verdict::Silent), NextAttempt::BackToV5);
        m.connected(V5);
        for i in 1..FORGET_AFTER {
            assert_eq!(m.failed(false, V5, V5Verdict::Inconclusive), NextAttempt::Same, "stall {i}");
            assert_eq!(m.failed(false, V5, V5Verdict::Silent), NextAttempt::Same, "network failures do not count");
        }
        assert_eq!(m.failed(false, V5, V5Verdict::Inconclusive), NextAttempt::V311Now { settled: false }, "forgotten after {FORGET_AFTER}");
        m.connected(V5);
        assert_eq!(m.failed(false, V5, V5Verdict::Inconclusive), NextAttempt::Same, "remembered again");
    }

    #[test]
    fn a_guessed_3_1_1_connection_re_probes_5_soon_then_less_often() {
        let mut m = Memory::default();
        let waits: Vec<u64> = (0..10).map(|_| m.reprobe_in().as_secs()).collect();
        assert_eq!(waits, [30, 60, 120, 240, 480, 960, 1800, 1800, 1800, 1800]);
        m.connected(Protocol::V5);
        assert_eq!(m.reprobe_in(), REPROBE_FIRST, "5 worked: start over");
    }
}

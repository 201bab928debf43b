//! `protocol = "auto"`: which MQTT version the next connection attempt uses.

use super::link::{Protocol, V5Verdict};

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

/// MQTT 5 first; 3.1.1 when 5 gets no answer, and for good when the broker
/// refuses 5 outright. `settled`: the protocol is fixed (by the config, or
/// by an earlier refusal).
pub fn next_attempt(settled: bool, current: Protocol, verdict: V5Verdict) -> NextAttempt {
    match (settled, current, verdict) {
        (true, ..) => NextAttempt::Same,
        (false, Protocol::V5, V5Verdict::Refused) => NextAttempt::V311Now { settled: true },
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
            assert_eq!(next_attempt(settled, protocol, verdict), want, "{settled} {protocol:?} {verdict:?}");
        }
    }
}

//! Primary and backup ingest in `failover` mode: the outputs of one
//! destination push to the active endpoint only; once the active one has
//! been failing for `after` (every rung's attempts count, none succeeded),
//! all of them switch to the other. They switch back only when that one
//! fails the same way: a primary that comes back never causes a flap.
//!
//! The standby endpoint is probed while it waits (RTMP: TCP connect and
//! handshake, then close), by one of its outputs at a time: a standby that
//! is down is a warning on those outputs, never a degradation, so a dead
//! backup is known before it is needed. Pure: every decision takes `now`.

use crate::backoff::{Backoff, BackoffSchedule};
use serde::Serialize;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How often a reachable standby is probed again.
pub const PROBE_EVERY: Duration = Duration::from_secs(3);
/// The shortest wait between probes of a standby that is down (the shared
/// backoff grows from its own first step, but never probes faster than this).
pub const PROBE_MIN_RETRY: Duration = Duration::from_secs(1);
/// How long a claimed probe may take before another output may try: a probe
/// cancelled half-way (its output stopped) does not stop the probing.
const PROBE_LEASE: Duration = Duration::from_secs(10);

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Endpoint {
    Primary,
    Backup,
}

impl Endpoint {
    pub fn other(self) -> Endpoint {
        match self {
            Endpoint::Primary => Endpoint::Backup,
            Endpoint::Backup => Endpoint::Primary,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Endpoint::Primary => "primary",
            Endpoint::Backup => "backup",
        }
    }
}

#[derive(Debug)]
struct State {
    active: Endpoint,
    /// When the active endpoint started failing (no output of it up since).
    failing_since: Option<Instant>,
    /// Outputs of the active endpoint that are up.
    up: usize,
    switches: u32,
    probe: Probe,
}

/// What is known of the standby endpoint (the one that is not active).
#[derive(Debug, Default)]
struct Probe {
    /// The last probe failed.
    down: bool,
    /// When the next probe is due; `None`: at once.
    next_at: Option<Instant>,
    /// The backoff while the standby stays down.
    failing: Option<BackoffSchedule>,
}

/// A change of the standby's reachability, to log once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StandbyChange {
    WentDown,
    CameBack,
}

/// One destination's failover state, shared by its outputs.
#[derive(Clone, Debug)]
pub struct Failover {
    state: Arc<Mutex<State>>,
    after: Duration,
}

impl Failover {
    pub fn new(after: Duration) -> Failover {
        Failover {
            state: Arc::new(Mutex::new(State {
                active: Endpoint::Primary,
                failing_since: None,
                up: 0,
                switches: 0,
                probe: Probe::default(),
            })),
            after,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn active(&self) -> Endpoint {
        self.lock().active
    }

    pub fn switches(&self) -> u32 {
        self.lock().switches
    }

    /// An output of `endpoint` failed (an attempt, or a running publish).
    /// Returns true when this failure made the destination switch.
    pub fn failed(&self, endpoint: Endpoint, was_up: bool, now: Instant) -> bool {
        let mut s = self.lock();
        if endpoint != s.active {
            return false;
        }
        if was_up {
            s.up = s.up.saturating_sub(1);
        }
        if s.up > 0 {
            // Other rungs still publish there: not an endpoint failure yet.
            return false;
        }
        let since = *s.failing_since.get_or_insert(now);
        if now.duration_since(since) >= self.after {
            s.active = s.active.other();
            s.failing_since = None;
            s.switches += 1;
            // The standby is another endpoint now: nothing is known of it yet.
            s.probe = Probe::default();
            return true;
        }
        false
    }

    /// An output of `endpoint` is publishing.
    pub fn up(&self, endpoint: Endpoint) {
        let mut s = self.lock();
        if endpoint == s.active {
            s.up += 1;
            s.failing_since = None;
        }
    }
}

impl Failover {
    /// Whether the standby endpoint (not the active one) was down at its last probe.
    pub fn standby_down(&self) -> bool {
        self.lock().probe.down
    }

    /// Asks to probe `endpoint` now: true for one caller when it is the
    /// standby and a probe is due (that caller then reports [`probed`](Self::probed)).
    pub fn claim_probe(&self, endpoint: Endpoint, now: Instant) -> bool {
        let mut s = self.lock();
        if endpoint == s.active || s.probe.next_at.is_some_and(|t| now < t) {
            return false;
        }
        s.probe.next_at = Some(now + PROBE_LEASE);
        true
    }

    /// The result of a probe of `endpoint`; a change worth a log line, if any.
    /// A result for an endpoint that became the active one meanwhile is dropped.
    pub fn probed(
        &self,
        endpoint: Endpoint,
        reachable: bool,
        backoff: &Backoff,
        now: Instant,
    ) -> Option<StandbyChange> {
        let mut s = self.lock();
        if endpoint == s.active {
            return None;
        }
        let was_down = s.probe.down;
        s.probe.down = !reachable;
        if reachable {
            s.probe.failing = None;
            s.probe.next_at = Some(now + PROBE_EVERY);
        } else {
            let delay = s.probe.failing.get_or_insert_with(|| backoff.schedule()).next_delay();
            s.probe.next_at = Some(now + delay.max(PROBE_MIN_RETRY));
        }
        match (was_down, reachable) {
            (false, false) => Some(StandbyChange::WentDown),
            (true, true) => Some(StandbyChange::CameBack),
            _ => None,
        }
    }
}

/// One output's side of its destination's failover.
#[derive(Clone, Debug)]
pub struct FailoverMember {
    failover: Failover,
    pub endpoint: Endpoint,
}

impl Failover {
    pub fn member(&self, endpoint: Endpoint) -> FailoverMember {
        FailoverMember { failover: self.clone(), endpoint }
    }
}

impl FailoverMember {
    pub fn is_active(&self) -> bool {
        self.failover.active() == self.endpoint
    }

    /// Reports a failure; true when it switched the destination to the other endpoint.
    pub fn failed(&self, was_up: bool) -> bool {
        self.failover.failed(self.endpoint, was_up, Instant::now())
    }

    pub fn up(&self) {
        self.failover.up(self.endpoint);
    }

    /// Returns once this output's endpoint is the active one.
    pub async fn until_active(&self) {
        while !self.is_active() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub fn standby_down(&self) -> bool {
        self.failover.standby_down()
    }

    pub fn claim_probe(&self) -> bool {
        self.failover.claim_probe(self.endpoint, Instant::now())
    }

    pub fn probed(&self, reachable: bool, backoff: &Backoff) -> Option<StandbyChange> {
        self.failover.probed(self.endpoint, reachable, backoff, Instant::now())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const AFTER: Duration = Duration::from_secs(3);

    #[test]
    fn the_active_endpoint_switches_only_after_failing_for_the_whole_delay() {
        let f = Failover::new(AFTER);
        let t = Instant::now();
        f.up(Endpoint::Primary);
        f.up(Endpoint::Primary);
        // One rung drops: the other still publishes there, no endpoint failure.
        assert!(!f.failed(Endpoint::Primary, true, t));
        assert!(!f.failed(Endpoint::Primary, true, t + Duration::from_millis(100)));
        // Now nothing is up: retries every 0.4 s for 3 s, then the switch.
        let mut switched_at = None;
        for i in 1..=10u64 {
            let at = t + Duration::from_millis(100 + 400 * i);
            if f.failed(Endpoint::Primary, false, at) {
                switched_at = Some(at);
                break;
            }
        }
        assert_eq!(f.active(), Endpoint::Backup);
        let after = switched_at.unwrap().duration_since(t + Duration::from_millis(100));
        assert!(after >= AFTER && after < AFTER + Duration::from_millis(500), "{after:?}");
        // Late failures of the old active change nothing.
        assert!(!f.failed(Endpoint::Primary, false, t + Duration::from_secs(60)));
        assert_eq!((f.active(), f.switches()), (Endpoint::Backup, 1));
    }

    #[test]
    fn a_primary_that_comes_back_causes_no_switch_and_a_success_resets_the_clock() {
        let f = Failover::new(AFTER);
        let t = Instant::now();
        f.failed(Endpoint::Primary, false, t);
        f.up(Endpoint::Primary);
        f.failed(Endpoint::Primary, true, t + Duration::from_secs(2));
        assert!(!f.failed(Endpoint::Primary, false, t + Duration::from_secs(4)), "the clock restarted at the success");
        assert!(f.failed(Endpoint::Primary, false, t + Duration::from_secs(5)));
        // On the backup: the primary's outputs report up (it came back): ignored.
        f.up(Endpoint::Primary);
        f.up(Endpoint::Backup);
        assert_eq!(f.active(), Endpoint::Backup);
        // Only the backup failing for the delay switches back.
        assert!(!f.failed(Endpoint::Backup, true, t + Duration::from_secs(10)));
        assert!(f.failed(Endpoint::Backup, false, t + Duration::from_secs(13)));
        assert_eq!((f.active(), f.switches()), (Endpoint::Primary, 2));
    }

    const BACKOFF: Backoff = Backoff { initial: Duration::from_secs(2), max: Duration::from_secs(8) };

    #[test]
    fn one_output_at_a_time_probes_the_standby_and_only_the_standby() {
        let f = Failover::new(AFTER);
        let t = Instant::now();
        assert!(!f.claim_probe(Endpoint::Primary, t), "the active endpoint is not probed");
        assert!(f.claim_probe(Endpoint::Backup, t));
        assert!(!f.claim_probe(Endpoint::Backup, t + Duration::from_secs(1)), "another rung waits for that probe");
        assert_eq!(f.probed(Endpoint::Backup, true, &BACKOFF, t + Duration::from_secs(1)), None);
        assert!(!f.standby_down());
        assert!(!f.claim_probe(Endpoint::Backup, t + Duration::from_secs(2)));
        assert!(f.claim_probe(Endpoint::Backup, t + Duration::from_secs(1) + PROBE_EVERY));
        // A probe that never reports (its output ended) frees the claim after the lease.
        assert!(f.claim_probe(Endpoint::Backup, t + Duration::from_secs(12) + PROBE_EVERY));
    }

    #[test]
    fn a_standby_going_down_and_coming_back_is_one_change_each_with_backoff_between() {
        let f = Failover::new(AFTER);
        let mut t = Instant::now();
        assert!(f.claim_probe(Endpoint::Backup, t));
        assert_eq!(f.probed(Endpoint::Backup, false, &BACKOFF, t), Some(StandbyChange::WentDown));
        assert!(f.standby_down());
        let mut waits = Vec::new();
        for _ in 0..4 {
            let next = (1..=20u64)
                .map(|ms| t + Duration::from_millis(ms * 500))
                .find(|at| f.claim_probe(Endpoint::Backup, *at));
            let at = next.expect("probed again within 10 s");
            waits.push(at.duration_since(t));
            assert_eq!(f.probed(Endpoint::Backup, false, &BACKOFF, at), None, "still down: no new change");
            t = at;
        }
        // Jittered in [step/2, step] and doubling to the cap: 1-2 s, then 2-4, 4-8, 4-8 s.
        assert!(waits[0] >= PROBE_MIN_RETRY && waits[0] <= Duration::from_millis(2500), "{waits:?}");
        assert!(waits[3] >= Duration::from_secs(4) && waits[3] <= Duration::from_millis(8500), "{waits:?}");
        assert!(f.claim_probe(Endpoint::Backup, t + Duration::from_secs(9)));
        assert_eq!(
            f.probed(Endpoint::Backup, true, &BACKOFF, t + Duration::from_secs(9)),
            Some(StandbyChange::CameBack)
        );
        assert!(!f.standby_down());
    }

    #[test]
    fn a_switch_forgets_what_was_known_of_the_old_standby() {
        let f = Failover::new(AFTER);
        let t = Instant::now();
        assert!(f.claim_probe(Endpoint::Backup, t));
        f.probed(Endpoint::Backup, false, &BACKOFF, t);
        f.failed(Endpoint::Primary, false, t);
        assert!(f.failed(Endpoint::Primary, false, t + AFTER));
        assert!(!f.standby_down(), "the primary is the standby now, not probed yet");
        // A late result about the backup (now active) changes nothing.
        assert_eq!(f.probed(Endpoint::Backup, false, &BACKOFF, t + AFTER), None);
        assert!(!f.standby_down());
        assert!(f.claim_probe(Endpoint::Primary, t + AFTER));
    }
}

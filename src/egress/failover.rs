//! Primary and backup ingest in `failover` mode: the outputs of one
//! destination push to the active endpoint only; once the active one has
//! been failing for `after` (every rung's attempts count, none succeeded),
//! all of them switch to the other. They switch back only when that one
//! fails the same way: a primary that comes back never causes a flap.
//! Pure: every decision takes `now`.

use serde::Serialize;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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
}

/// One destination's failover state, shared by its outputs.
#[derive(Clone, Debug)]
pub struct Failover {
    state: Arc<Mutex<State>>,
    after: Duration,
}

impl Failover {
    pub fn new(after: Duration) -> Failover {
        Failover { state: Arc::new(Mutex::new(State { active: Endpoint::Primary, failing_since: None, up: 0, switches: 0 })), after }
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
}

//! Where the outputs of one destination (a publish per rung) start their
//! media after a (re)connect: all at the same IDR of the keyframe grid, so
//! the channel never holds an incomplete ladder for a GOP.
//!
//! Every member reports the video it sees (publishing or not) and whether
//! its publish is accepted. When the last member becomes ready, the gate
//! fixes the start: the first keyframe after the newest frame any member
//! has seen. No member has passed that keyframe yet, and keyframes carry
//! the same PTS on every rung, so they all start on it. A member that
//! waits longer than [`MAX_WAIT`] for the others (one rung refused, say)
//! starts alone at its next keyframe.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a ready member waits for the rest of its destination.
pub const MAX_WAIT: Duration = Duration::from_millis(1500);

#[derive(Debug, Default)]
struct State {
    members: usize,
    ready: Vec<bool>,
    /// Newest video PTS any member has seen (`None` before the first frame).
    newest_pts: Option<u64>,
    /// All members ready: start at the first keyframe after this PTS
    /// (`Some(None)`: at the very first keyframe).
    start_after: Option<Option<u64>>,
}

/// One destination's gate; [`member`](ResumeGate::member) hands out one per output.
#[derive(Clone, Debug, Default)]
pub struct ResumeGate(Arc<Mutex<State>>);

impl ResumeGate {
    pub fn member(&self) -> ResumeMember {
        let mut s = lock(&self.0);
        s.members += 1;
        s.ready.push(false);
        ResumeMember { gate: self.clone(), id: s.members - 1, ready_since: None }
    }
}

fn lock(m: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    // A panic elsewhere must not wedge every output: the state stays usable.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The gates of a session, one per destination.
#[derive(Debug, Default)]
pub struct ResumeGates(std::collections::HashMap<String, ResumeGate>);

impl ResumeGates {
    pub fn member(&mut self, destination: &str) -> ResumeMember {
        self.0.entry(destination.to_owned()).or_default().member()
    }
}

/// One output's view of its destination's gate.
#[derive(Debug)]
pub struct ResumeMember {
    gate: ResumeGate,
    id: usize,
    ready_since: Option<Instant>,
}

impl ResumeMember {
    /// This output's publish is accepted (`true`) or lost (`false`).
    pub fn set_ready(&mut self, ready: bool, now: Instant) {
        let mut s = lock(&self.gate.0);
        s.ready[self.id] = ready;
        self.ready_since = ready.then_some(now);
        if !ready {
            // Someone left: the next start is decided when all are back.
            s.start_after = None;
        } else if s.ready.iter().all(|r| *r) {
            s.start_after = Some(s.newest_pts);
        }
    }

    /// Every video frame this output sees; returns whether media may start
    /// on it (call only for keyframes when waiting to start, but report all).
    pub fn observe(&mut self, pts_ns: u64, keyframe: bool, now: Instant) -> bool {
        let mut s = lock(&self.gate.0);
        let may_start = keyframe
            && (s.start_after.is_some_and(|after| after.is_none_or(|after| pts_ns > after))
                || s.members == 1
                || self.ready_since.is_some_and(|t| now.duration_since(t) >= MAX_WAIT));
        s.newest_pts = Some(s.newest_pts.map_or(pts_ns, |n| n.max(pts_ns)));
        may_start
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOP: u64 = 1_000_000_000;
    const FRAME: u64 = 33_333_333;

    #[test]
    fn rungs_ready_at_different_moments_start_on_the_same_keyframe() {
        let gate = ResumeGate::default();
        let (mut a, mut b, mut c) = (gate.member(), gate.member(), gate.member());
        let t = Instant::now();
        // Each rung's actor runs a little behind or ahead of the others.
        for f in 0..10u64 {
            a.observe(f * FRAME, f == 0, t);
            b.observe(f * FRAME, f == 0, t);
        }
        a.set_ready(true, t);
        // a alone may not start on the next keyframe: the others are not up.
        assert!(!a.observe(GOP, true, t));
        b.set_ready(true, t);
        for f in 31..40u64 {
            a.observe(f * FRAME, false, t);
        }
        // c becomes ready while a is ahead (at 1.3 s) and b behind (0.3 s).
        c.set_ready(true, t);
        // b reaches the keyframe at 1 s: a has passed it, so nobody starts there.
        assert!(!b.observe(GOP, true, t));
        assert!(!c.observe(GOP, true, t));
        // All start at 2 s.
        assert!(a.observe(2 * GOP, true, t));
        assert!(b.observe(2 * GOP, true, t));
        assert!(c.observe(2 * GOP, true, t));
    }

    #[test]
    fn a_member_waits_for_the_others_at_most_max_wait_and_a_single_one_never_waits() {
        let gate = ResumeGate::default();
        let (mut a, _b) = (gate.member(), gate.member());
        let t = Instant::now();
        a.set_ready(true, t);
        assert!(!a.observe(GOP, true, t + Duration::from_millis(500)));
        assert!(!a.observe(GOP + FRAME, false, t + MAX_WAIT), "only on a keyframe");
        assert!(a.observe(2 * GOP, true, t + MAX_WAIT));

        let mut only = ResumeGate::default().member();
        only.set_ready(true, t);
        assert!(only.observe(GOP, true, t));
    }

    #[test]
    fn a_member_that_reconnects_alone_joins_at_the_next_keyframe_after_the_others() {
        let gate = ResumeGate::default();
        let (mut a, mut b) = (gate.member(), gate.member());
        let t = Instant::now();
        a.set_ready(true, t);
        b.set_ready(true, t);
        assert!(a.observe(0, true, t) && b.observe(0, true, t));
        // b's connection drops; a keeps publishing (its decisions are made).
        b.set_ready(false, t);
        a.observe(3 * GOP + 5 * FRAME, false, t);
        b.observe(3 * GOP, true, t);
        b.set_ready(true, t);
        assert!(!b.observe(3 * GOP + 6 * FRAME, false, t));
        assert!(b.observe(4 * GOP, true, t));
    }
}

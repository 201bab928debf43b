//! Long work off the supervisor loop: a session's start and stop each run in
//! their own task and post their outcome back, so the loop keeps answering
//! signals, the watchdog and MQTT while they run. Each has a deadline that
//! the loop sees as an event ([`Next::StartTimedOut`], [`Next::StopTimedOut`]).
//! Each start has a generation: a result that arrives after the loop moved
//! on (the start timed out, or was superseded) comes back as [`Next::Late`],
//! so whatever it made is stopped instead of leaked.

use std::future::Future;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;

enum Posted<T> {
    Started { generation: u64, outcome: T },
    Stopped { generation: u64 },
}

/// What the loop learns from [`Work::next`].
#[derive(Debug, PartialEq)]
pub enum Next<T> {
    /// The current start finished.
    Started(T),
    /// A start given up earlier finished after all.
    Late(T),
    /// The current start did not finish in time; it is given up.
    StartTimedOut,
    /// The current stop finished.
    Stopped,
    /// The current stop did not finish in time; it is given up.
    StopTimedOut,
}

pub struct Work<T> {
    tx: mpsc::UnboundedSender<Posted<T>>,
    rx: mpsc::UnboundedReceiver<Posted<T>>,
    generation: u64,
    /// The start in flight: its generation and deadline.
    start: Option<(u64, Instant)>,
    /// The stop in flight: its generation (`None` while it waits for the
    /// start in flight to hand over what it made) and deadline.
    stop: Option<(Option<u64>, Instant)>,
}

impl<T: Send + 'static> Default for Work<T> {
    fn default() -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        Work { tx, rx, generation: 0, start: None, stop: None }
    }
}

impl<T: Send + 'static> Work<T> {
    /// Runs `job` as the current start, given up after `timeout`.
    pub fn start(&mut self, timeout: Duration, job: impl Future<Output = T> + Send + 'static) {
        self.generation += 1;
        let generation = self.generation;
        self.start = Some((generation, Instant::now() + timeout));
        let tx = self.tx.clone();
        tokio::spawn(async move {
            let outcome = job.await;
            let _ = tx.send(Posted::Started { generation, outcome });
        });
    }

    /// Runs `job` as the current stop, given up `bound` after the stop
    /// began (when it first waited for a start, that wait counts too).
    pub fn stop(&mut self, bound: Duration, job: impl Future<Output = ()> + Send + 'static) {
        self.generation += 1;
        let generation = self.generation;
        let deadline = self.stop.map_or_else(|| Instant::now() + bound, |(_, d)| d);
        self.stop = Some((Some(generation), deadline));
        let tx = self.tx.clone();
        tokio::spawn(async move {
            job.await;
            let _ = tx.send(Posted::Stopped { generation });
        });
    }

    /// A stop begins while a start is in flight: the stop waits for it
    /// (its outcome still comes as [`Next::Started`]), bounded by `bound`.
    pub fn stop_after_start(&mut self, bound: Duration) {
        self.stop = Some((None, Instant::now() + bound));
    }

    /// Ends the current stop (nothing was left to stop).
    pub fn stop_done(&mut self) {
        self.stop = None;
    }

    pub fn starting(&self) -> bool {
        self.start.is_some()
    }

    pub fn stopping(&self) -> bool {
        self.stop.is_some()
    }

    /// Cancel safe (for `select!`): nothing is lost when it is dropped unfinished.
    pub async fn next(&mut self) -> Next<T> {
        loop {
            let start_due = self.start.map(|(_, d)| d);
            let stop_due = self.stop.map(|(_, d)| d);
            tokio::select! {
                posted = self.rx.recv() => match posted.expect("Work holds a sender") {
                    Posted::Started { generation, outcome } => {
                        if self.start.is_some_and(|(g, _)| g == generation) {
                            self.start = None;
                            return Next::Started(outcome);
                        }
                        return Next::Late(outcome);
                    }
                    Posted::Stopped { generation } => {
                        if self.stop.is_some_and(|(g, _)| g == Some(generation)) {
                            self.stop = None;
                            return Next::Stopped;
                        }
                        // A stop given up earlier: nothing waits for it any more.
                    }
                },
                _ = sleep_until(start_due) => {
                    self.start = None;
                    return Next::StartTimedOut;
                }
                _ = sleep_until(stop_due) => {
                    self.stop = None;
                    // A start it waited for is given up with it.
                    self.start = None;
                    return Next::StopTimedOut;
                }
            }
        }
    }
}

async fn sleep_until(t: Option<Instant>) {
    match t {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TIMEOUT: Duration = Duration::from_secs(30);
    const BOUND: Duration = Duration::from_secs(12);

    #[tokio::test(start_paused = true)]
    async fn a_start_that_hangs_times_out_and_its_late_result_is_handed_back_to_be_stopped() {
        let mut w = Work::default();
        let t0 = Instant::now();
        w.start(TIMEOUT, async {
            tokio::time::sleep(Duration::from_secs(100)).await;
            "stale session"
        });
        assert_eq!(w.next().await, Next::StartTimedOut);
        assert_eq!(t0.elapsed(), TIMEOUT);
        assert!(!w.starting());
        // The retry starts and finishes; the first start comes back later, as Late.
        w.start(TIMEOUT, async { "new session" });
        assert_eq!(w.next().await, Next::Started("new session"));
        assert_eq!(w.next().await, Next::Late("stale session"));
        assert_eq!(t0.elapsed(), Duration::from_secs(100));
    }

    #[tokio::test(start_paused = true)]
    async fn a_start_that_never_returns_still_times_out() {
        let mut w: Work<()> = Work::default();
        w.start(TIMEOUT, std::future::pending());
        let t0 = Instant::now();
        assert_eq!(w.next().await, Next::StartTimedOut);
        assert_eq!(t0.elapsed(), TIMEOUT);
    }

    #[tokio::test(start_paused = true)]
    async fn a_stop_is_bounded_and_the_loop_keeps_turning_while_it_runs() {
        let mut w: Work<()> = Work::default();
        let t0 = Instant::now();
        // A session that takes 10 s to stop.
        w.stop(BOUND, tokio::time::sleep(Duration::from_secs(10)));
        let (sig_tx, mut sig_rx) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(3)).await;
            sig_tx.send("SIGTERM").unwrap();
        });
        let mut watchdog = tokio::time::interval(Duration::from_millis(500));
        let (mut pings, mut answered) = (0, None);
        loop {
            tokio::select! {
                n = w.next() => { assert_eq!(n, Next::Stopped); break; }
                _ = watchdog.tick() => pings += 1,
                Some(_) = sig_rx.recv() => answered = Some(t0.elapsed()),
            }
        }
        assert_eq!(t0.elapsed(), Duration::from_secs(10));
        assert!(pings >= 19, "the watchdog was fed every 0.5 s during the stop: {pings}");
        assert_eq!(answered, Some(Duration::from_secs(3)), "the signal was answered during the stop");
        // One that never ends is given up at the bound.
        let t1 = Instant::now();
        w.stop(BOUND, std::future::pending());
        assert_eq!(w.next().await, Next::StopTimedOut);
        assert_eq!(t1.elapsed(), BOUND);
    }

    #[tokio::test(start_paused = true)]
    async fn a_stop_during_a_start_waits_for_it_within_the_same_bound() {
        let mut w = Work::default();
        let t0 = Instant::now();
        w.start(TIMEOUT, async {
            tokio::time::sleep(Duration::from_secs(4)).await;
            "session"
        });
        w.stop_after_start(BOUND);
        assert_eq!(w.next().await, Next::Started("session"));
        assert!(w.stopping());
        // Stopping what the start made: the deadline is still 12 s from the stop request.
        w.stop(BOUND, std::future::pending());
        assert_eq!(w.next().await, Next::StopTimedOut);
        assert_eq!(t0.elapsed(), BOUND);
        // A start that hangs while a stop waits for it: given up at the stop's bound.
        let mut w: Work<()> = Work::default();
        let t1 = Instant::now();
        w.start(TIMEOUT, std::future::pending());
        w.stop_after_start(BOUND);
        assert_eq!(w.next().await, Next::StopTimedOut);
        assert_eq!(t1.elapsed(), BOUND);
        assert!(!w.starting() && !w.stopping());
    }
}

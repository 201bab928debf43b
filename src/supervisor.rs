//! The supervisor: a typed state machine ([`Machine::step`], pure, unit
//! tested) and the async loop that feeds it events (signals, pipeline and
//! egress status, timers) and executes the actions it returns.

use crate::board::BoardProfile;
use crate::config::Config;
use crate::egress::rtmp::EgressState;
use crate::exit;
use crate::pipeline::actor::PipelineEvent;
use crate::session::Session;
use crate::sys;
use serde::Serialize;
use std::time::Duration;
use tracing::{error, info, warn};

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "lowercase")]
pub enum State {
    Idle,
    Starting,
    Live,
    Degraded { reason: String },
    Stopping,
    Error { reason: String },
}

#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    StartRequested,
    StopRequested,
    /// SIGTERM/SIGINT or the run's time limit: stop and exit.
    Shutdown,
    SessionStarted,
    /// The session could not start; `permanent` when only a config change helps.
    SessionFailed { reason: String, permanent: bool },
    PipelineFailed { reason: String },
    SourceEnded,
    /// Some publish is not up (`Some(reason)`), or all are (`None`).
    EgressHealth(Option<String>),
    SessionStopped,
    RetryDue,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    StartSession,
    StopSession,
    ScheduleRetry(Duration),
    Exit(i32),
}

/// Why a command was refused in the current state.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("`{command}` is not possible while {state}")]
pub struct Refusal {
    pub command: &'static str,
    pub state: &'static str,
}

#[derive(Debug)]
pub struct Machine {
    pub state: State,
    failures: u32,
    /// After the session stops: exit, or retry.
    then: Option<After>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum After {
    Exit(i32),
    Retry,
    Idle,
}

pub const RETRY_INITIAL: Duration = Duration::from_secs(1);
pub const RETRY_MAX: Duration = Duration::from_secs(30);

impl Default for Machine {
    fn default() -> Self {
        Machine { state: State::Idle, failures: 0, then: None }
    }
}

impl State {
    pub fn name(&self) -> &'static str {
        match self {
            State::Idle => "idle",
            State::Starting => "starting",
            State::Live => "live",
            State::Degraded { .. } => "degraded",
            State::Stopping => "stopping",
            State::Error { .. } => "error",
        }
    }
}

impl Machine {
    fn retry_delay(&self) -> Duration {
        let exp = RETRY_INITIAL.saturating_mul(1u32 << self.failures.min(10));
        exp.min(RETRY_MAX)
    }

    /// Checks a command against the state without changing it.
    pub fn accepts(&self, ev: &Event) -> Result<(), Refusal> {
        let refuse = |command| Err(Refusal { command, state: self.state.name() });
        match (&self.state, ev) {
            (State::Stopping, Event::StartRequested) => refuse("start"),
            (State::Idle, Event::StopRequested) => refuse("stop"),
            _ => Ok(()),
        }
    }

    pub fn step(&mut self, ev: Event) -> Vec<Action> {
        use State::*;
        match (&self.state, ev) {
            (Idle | Error { .. }, Event::StartRequested | Event::RetryDue) => {
                self.state = Starting;
                vec![Action::StartSession]
            }
            (Starting, Event::SessionStarted) => {
                self.state = Live;
                vec![]
            }
            (Starting, Event::SessionFailed { reason, permanent }) => {
                self.failures += 1;
                self.state = Error { reason };
                if permanent { vec![Action::Exit(exit::CONFIG)] } else { vec![Action::ScheduleRetry(self.retry_delay())] }
            }
            (Live | Degraded { .. }, Event::EgressHealth(None)) => {
                self.state = Live;
                self.failures = 0;
                vec![]
            }
            (Live | Degraded { .. }, Event::EgressHealth(Some(reason))) => {
                self.state = Degraded { reason };
                vec![]
            }
            (Live | Degraded { .. } | Starting, Event::PipelineFailed { reason }) => {
                self.failures += 1;
                self.state = Stopping;
                self.then = Some(After::Retry);
                warn!(%reason, "pipeline failed; restarting it");
                vec![Action::StopSession]
            }
            (Live | Degraded { .. }, Event::SourceEnded) => {
                self.state = Stopping;
                self.then = Some(After::Exit(exit::OK));
                vec![Action::StopSession]
            }
            (Live | Degraded { .. } | Starting, Event::StopRequested) => {
                self.state = Stopping;
                self.then = Some(After::Idle);
                vec![Action::StopSession]
            }
            (Live | Degraded { .. } | Starting, Event::Shutdown) => {
                self.state = Stopping;
                self.then = Some(After::Exit(exit::OK));
                vec![Action::StopSession]
            }
            (Stopping, Event::Shutdown) => {
                self.then = Some(After::Exit(exit::OK));
                vec![]
            }
            (Idle | Error { .. }, Event::Shutdown) => vec![Action::Exit(exit::OK)],
            (Stopping, Event::SessionStopped) => match self.then.take() {
                Some(After::Exit(code)) => vec![Action::Exit(code)],
                Some(After::Retry) => {
                    self.state = Error { reason: "pipeline failed".into() };
                    vec![Action::ScheduleRetry(self.retry_delay())]
                }
                _ => {
                    self.state = Idle;
                    vec![]
                }
            },
            // Anything else changes nothing (e.g. health while idle).
            _ => vec![],
        }
    }
}

/// A capture silent for this long is a stall: the watchdog stops being fed.
pub const STALL_AFTER: Duration = Duration::from_secs(5);
/// A start (device probe, pipeline build) that takes longer is hung.
pub const START_TIMEOUT: Duration = Duration::from_secs(30);
/// Time a new session has to deliver its first frame.
pub const STARTUP_GRACE: Duration = Duration::from_secs(15);

/// Whether the watchdog may be fed: the loop is turning and, if a session
/// runs, its capture is delivering frames. Idle or retrying counts as
/// healthy (the loop itself is alive and doing its job).
fn healthy(session: &Option<Session>, starting_since: Option<std::time::Instant>) -> bool {
    if starting_since.is_some_and(|t| t.elapsed() > START_TIMEOUT) {
        return false;
    }
    match session {
        None => true,
        Some(s) => match s.pipeline.stats.since_last_capture() {
            Some(silent) => silent < STALL_AFTER,
            None => s.started.elapsed() < STARTUP_GRACE,
        },
    }
}

fn status_line(state: &State) -> String {
    match state {
        State::Degraded { reason } | State::Error { reason } => format!("{}: {reason}", state.name()),
        s => s.name().to_string(),
    }
}

/// Summarises egress states into one health event.
fn egress_health(session: &Session) -> Option<String> {
    let down: Vec<String> = session
        .egress
        .iter()
        .filter(|e| e.status.borrow().state != EgressState::Publishing)
        .map(|e| format!("{} {:?}", e.label, e.status.borrow().state).to_lowercase())
        .collect();
    (!down.is_empty()).then(|| down.join(", "))
}

/// Runs until shutdown; returns the exit code.
pub async fn run(config: Config, board: BoardProfile, limit: Option<Duration>) -> i32 {
    let mut machine = Machine::default();
    let mut session: Option<Session> = None;
    let mut pending = machine.step(Event::StartRequested);
    let deadline = limit.map(|d| tokio::time::Instant::now() + d);
    let mut retry_at: Option<tokio::time::Instant> = None;
    let mut health = tokio::time::interval(Duration::from_millis(500));
    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
    let mut last_health: Option<Option<String>> = None;
    let mut shown = State::Idle;
    let mut ready_sent = false;
    // systemd's watchdog: fed from this loop, only while healthy.
    let mut watchdog = sys::watchdog_interval().map(tokio::time::interval);
    let mut stall_logged = false;
    let mut starting_since: Option<std::time::Instant> = None;
    loop {
        // Execute actions; some produce events right away.
        while let Some(action) = (!pending.is_empty()).then(|| pending.remove(0)) {
            match action {
                Action::StartSession => match start_session(&config, &board, &mut starting_since).await {
                    Ok(s) => {
                        session = Some(s);
                        pending.extend(machine.step(Event::SessionStarted));
                    }
                    Err(e) => {
                        error!(error = %e, "cannot start the stream");
                        let permanent = e.is_config();
                        if permanent {
                            eprintln!("config error: {e}");
                        }
                        pending.extend(machine.step(Event::SessionFailed { reason: e.to_string(), permanent }));
                    }
                },
                Action::StopSession => {
                    if let Some(s) = session.take() {
                        s.stop().await;
                    }
                    pending.extend(machine.step(Event::SessionStopped));
                }
                Action::ScheduleRetry(d) => {
                    info!(delay_ms = d.as_millis() as u64, "retrying");
                    retry_at = Some(tokio::time::Instant::now() + d);
                }
                Action::Exit(code) => {
                    sys::notify_stopping();
                    return code;
                }
            }
            if machine.state != shown {
                shown = machine.state.clone();
                info!(state = shown.name(), "state");
                sys::notify_status(&status_line(&shown));
                if shown == State::Stopping {
                    sys::notify_stopping();
                }
                if !ready_sent && matches!(shown, State::Live | State::Degraded { .. }) {
                    ready_sent = true;
                    sys::notify_ready();
                }
            }
        }
        let event = tokio::select! {
            _ = tokio::signal::ctrl_c() => Event::Shutdown,
            _ = sigterm.recv() => Event::Shutdown,
            _ = sleep_until(deadline) => Event::Shutdown,
            _ = sleep_until(retry_at) => {
                retry_at = None;
                Event::RetryDue
            }
            ev = next_pipeline_event(&mut session) => match ev {
                PipelineEvent::Error { element, message } => Event::PipelineFailed { reason: format!("{element}: {message}") },
                PipelineEvent::Eos => Event::SourceEnded,
                PipelineEvent::Playing | PipelineEvent::Warning { .. } => continue,
            },
            _ = tick(&mut watchdog) => {
                if healthy(&session, starting_since) {
                    sys::notify_watchdog();
                    stall_logged = false;
                } else if !stall_logged {
                    stall_logged = true;
                    error!(silent_s = STALL_AFTER.as_secs(), "capture stalled: no longer feeding the watchdog");
                }
                continue;
            }
            _ = health.tick() => {
                let Some(s) = &session else { continue };
                let h = egress_health(s);
                if last_health.as_ref() == Some(&h) {
                    continue;
                }
                last_health = Some(h.clone());
                Event::EgressHealth(h)
            }
        };
        pending = machine.step(event);
    }
}

/// Starts a session off the runtime's workers: probing a device or opening a
/// pipe can block, and the loop must keep answering signals meanwhile.
async fn start_session(
    config: &Config,
    board: &BoardProfile,
    starting_since: &mut Option<std::time::Instant>,
) -> Result<Session, crate::session::SessionError> {
    *starting_since = Some(std::time::Instant::now());
    let (c, b) = (config.clone(), board.clone());
    let result = tokio::task::spawn_blocking(move || Session::start(&c, &b)).await.expect("session start panicked");
    *starting_since = None;
    result
}

async fn tick(interval: &mut Option<tokio::time::Interval>) {
    match interval {
        Some(i) => {
            i.tick().await;
        }
        None => std::future::pending().await,
    }
}

async fn sleep_until(t: Option<tokio::time::Instant>) {
    match t {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

async fn next_pipeline_event(session: &mut Option<Session>) -> PipelineEvent {
    match session {
        Some(s) => match s.events.recv().await {
            Some(e) => e,
            None => std::future::pending().await,
        },
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn live() -> Machine {
        let mut m = Machine::default();
        assert_eq!(m.step(Event::StartRequested), [Action::StartSession]);
        assert_eq!(m.step(Event::SessionStarted), []);
        assert_eq!(m.state, State::Live);
        m
    }

    #[test]
    fn a_publish_going_down_degrades_and_recovering_returns_to_live() {
        let mut m = live();
        m.step(Event::EgressHealth(Some("primary/1080p reconnecting".into())));
        assert_eq!(m.state, State::Degraded { reason: "primary/1080p reconnecting".into() });
        m.step(Event::EgressHealth(None));
        assert_eq!(m.state, State::Live);
    }

    #[test]
    fn a_pipeline_failure_stops_then_retries_with_growing_capped_delays() {
        let mut m = live();
        assert_eq!(m.step(Event::PipelineFailed { reason: "v4l2src: device lost".into() }), [Action::StopSession]);
        assert_eq!(m.step(Event::SessionStopped), [Action::ScheduleRetry(Duration::from_secs(2))]);
        assert_eq!(m.step(Event::RetryDue), [Action::StartSession]);
        assert_eq!(
            m.step(Event::SessionFailed { reason: "no device".into(), permanent: false }),
            [Action::ScheduleRetry(Duration::from_secs(4))]
        );
        for _ in 0..10 {
            m.step(Event::RetryDue);
            m.step(Event::SessionFailed { reason: "no device".into(), permanent: false });
        }
        assert_eq!(m.retry_delay(), RETRY_MAX);
    }

    #[test]
    fn a_config_problem_exits_with_the_config_code_instead_of_retrying() {
        let mut m = Machine::default();
        m.step(Event::StartRequested);
        assert_eq!(m.step(Event::SessionFailed { reason: "rung too big".into(), permanent: true }), [Action::Exit(exit::CONFIG)]);
    }

    #[test]
    fn shutdown_stops_the_session_before_exiting_cleanly() {
        let mut m = live();
        assert_eq!(m.step(Event::Shutdown), [Action::StopSession]);
        assert_eq!(m.state, State::Stopping);
        assert_eq!(m.step(Event::SessionStopped), [Action::Exit(exit::OK)]);
        assert_eq!(Machine::default().step(Event::Shutdown), [Action::Exit(exit::OK)]);
    }

    #[test]
    fn commands_that_make_no_sense_are_refused_with_the_state() {
        let m = Machine::default();
        assert_eq!(m.accepts(&Event::StopRequested), Err(Refusal { command: "stop", state: "idle" }));
        let mut m = live();
        m.step(Event::StopRequested);
        assert_eq!(m.accepts(&Event::StartRequested).unwrap_err().to_string(), "`start` is not possible while stopping");
        assert_eq!(m.step(Event::SessionStopped), []);
        assert_eq!(m.state, State::Idle);
    }
}

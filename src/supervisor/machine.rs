//! The supervisor's state machine: pure, so every transition is unit tested.
//! `step(event) -> actions`; the loop in `mod.rs` executes the actions.
//! Commands are checked first with [`Machine::accepts`]: one that makes no
//! sense in the current state gets a typed [`Refusal`].

use crate::exit;
use serde::Serialize;
use std::time::Duration;
use tracing::warn;

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

    pub fn reason(&self) -> Option<&str> {
        match self {
            State::Degraded { reason } | State::Error { reason } => Some(reason),
            _ => None,
        }
    }

    /// A session exists (or is being made).
    pub fn running(&self) -> bool {
        matches!(self, State::Starting | State::Live | State::Degraded { .. })
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    StartRequested,
    StopRequested,
    /// Stop then start again (a command, or a new config while running).
    RestartRequested,
    /// SIGTERM/SIGINT or the run's time limit: stop and exit.
    Shutdown,
    SessionStarted,
    /// The session could not start; `permanent` when only a config change helps.
    SessionFailed { reason: String, permanent: bool },
    PipelineFailed { reason: String },
    /// A file or FIFO source ended; `reopen` unless the config says it is a one-shot.
    SourceEnded { reopen: bool },
    /// A start found no input to open (a FIFO with no feeder): wait and retry.
    InputAbsent,
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
    CancelRetry,
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
    /// What follows the session stopping.
    then: Option<After>,
    /// Standalone, a config the board cannot run exits 78 (systemd will not
    /// restart it). Under remote control the box stays reachable in `error`
    /// and waits for a new config instead.
    exit_on_config_error: bool,
}

#[derive(Debug, Clone, PartialEq)]
enum After {
    Exit(i32),
    /// Retry after a pipeline failure; the reason stays visible in `error`.
    Retry(String),
    Idle,
    Start,
    /// The input ended: wait in `error` and reopen it soon.
    ReopenInput,
}

/// The reason shown while a file or FIFO input has ended and is being reopened.
pub const INPUT_ENDED: &str = "input ended: reopening it";

pub const RETRY_INITIAL: Duration = Duration::from_secs(1);
pub const RETRY_MAX: Duration = Duration::from_secs(30);

impl Default for Machine {
    fn default() -> Self {
        Machine::new(true)
    }
}

impl Machine {
    pub fn new(exit_on_config_error: bool) -> Machine {
        Machine { state: State::Idle, failures: 0, then: None, exit_on_config_error }
    }

    fn retry_delay(&self) -> Duration {
        let exp = RETRY_INITIAL.saturating_mul(1u32 << self.failures.min(10));
        exp.min(RETRY_MAX)
    }

    /// Checks a command against the state without changing it.
    pub fn accepts(&self, ev: &Event) -> Result<(), Refusal> {
        let refuse = |command| Err(Refusal { command, state: self.state.name() });
        match (&self.state, ev) {
            (State::Stopping, Event::StartRequested) => refuse("start"),
            (State::Stopping, Event::RestartRequested) => refuse("restart"),
            (State::Idle, Event::StopRequested) => refuse("stop"),
            (State::Idle, Event::RestartRequested) => refuse("restart"),
            _ => Ok(()),
        }
    }

    pub fn step(&mut self, ev: Event) -> Vec<Action> {
        use State::*;
        match (&self.state, ev) {
            (Idle, Event::StartRequested) | (Error { .. }, Event::StartRequested | Event::RetryDue | Event::RestartRequested) => {
                self.state = Starting;
                vec![Action::CancelRetry, Action::StartSession]
            }
            (Starting, Event::SessionStarted) => {
                self.state = Live;
                vec![]
            }
            (Starting, Event::SessionFailed { reason, permanent }) => {
                self.failures += 1;
                self.state = Error { reason };
                match (permanent, self.exit_on_config_error) {
                    (true, true) => vec![Action::Exit(exit::CONFIG)],
                    // Retrying cannot help; wait for a new config or a command.
                    (true, false) => vec![],
                    (false, _) => vec![Action::ScheduleRetry(self.retry_delay())],
                }
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
                warn!(%reason, "pipeline failed; restarting it");
                self.then = Some(After::Retry(reason));
                vec![Action::StopSession]
            }
            (Live | Degraded { .. }, Event::SourceEnded { reopen: true }) => self.stop_then(After::ReopenInput),
            // A one-shot file: standalone, the run is over; under fleet
            // control the box stays reachable and waits for the next `start`.
            (Live | Degraded { .. }, Event::SourceEnded { reopen: false }) if self.exit_on_config_error => {
                self.stop_then(After::Exit(exit::OK))
            }
            (Live | Degraded { .. }, Event::SourceEnded { reopen: false }) => self.stop_then(After::Idle),
            // Not a failure of the box: no growing backoff, the feeder may be back any moment.
            (Starting, Event::InputAbsent) => {
                self.state = Error { reason: INPUT_ENDED.into() };
                vec![Action::ScheduleRetry(RETRY_INITIAL)]
            }
            (Live | Degraded { .. } | Starting, Event::StopRequested) => self.stop_then(After::Idle),
            (Live | Degraded { .. } | Starting, Event::RestartRequested) => self.stop_then(After::Start),
            (Live | Degraded { .. } | Starting, Event::Shutdown) => self.stop_then(After::Exit(exit::OK)),
            (Error { .. }, Event::StopRequested) => {
                self.state = Idle;
                vec![Action::CancelRetry]
            }
            (Stopping, Event::Shutdown) => {
                self.then = Some(After::Exit(exit::OK));
                vec![]
            }
            (Idle | Error { .. }, Event::Shutdown) => vec![Action::Exit(exit::OK)],
            (Stopping, Event::SessionStopped) => match self.then.take() {
                Some(After::Exit(code)) => vec![Action::Exit(code)],
                Some(After::Retry(reason)) => {
                    self.state = Error { reason: format!("pipeline failed: {reason}") };
                    vec![Action::ScheduleRetry(self.retry_delay())]
                }
                Some(After::Start) => {
                    self.state = Starting;
                    vec![Action::StartSession]
                }
                Some(After::ReopenInput) => {
                    self.state = Error { reason: INPUT_ENDED.into() };
                    vec![Action::ScheduleRetry(RETRY_INITIAL)]
                }
                Some(After::Idle) | None => {
                    self.state = Idle;
                    vec![]
                }
            },
            // Anything else changes nothing (e.g. start while live, health while idle).
            _ => vec![],
        }
    }

    fn stop_then(&mut self, after: After) -> Vec<Action> {
        self.state = State::Stopping;
        self.then = Some(after);
        vec![Action::StopSession]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn live() -> Machine {
        let mut m = Machine::default();
        assert_eq!(m.step(Event::StartRequested), [Action::CancelRetry, Action::StartSession]);
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
        assert_eq!(m.state, State::Error { reason: "pipeline failed: v4l2src: device lost".into() });
        assert_eq!(m.step(Event::RetryDue), [Action::CancelRetry, Action::StartSession]);
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
    fn under_remote_control_a_config_problem_waits_in_error_for_a_new_config() {
        let mut m = Machine::new(false);
        m.step(Event::StartRequested);
        assert_eq!(m.step(Event::SessionFailed { reason: "rung too big".into(), permanent: true }), []);
        assert_eq!(m.state, State::Error { reason: "rung too big".into() });
        assert_eq!(m.step(Event::RestartRequested), [Action::CancelRetry, Action::StartSession]);
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
    fn an_input_that_ends_is_reopened_unless_it_is_a_one_shot() {
        for standalone in [true, false] {
            let mut m = Machine::new(standalone);
            m.step(Event::StartRequested);
            m.step(Event::SessionStarted);
            assert_eq!(m.step(Event::SourceEnded { reopen: true }), [Action::StopSession]);
            assert_eq!(m.step(Event::SessionStopped), [Action::ScheduleRetry(RETRY_INITIAL)]);
            assert_eq!(m.state, State::Error { reason: INPUT_ENDED.into() });
            // The feeder is not back yet: wait again, without a growing delay.
            assert_eq!(m.step(Event::RetryDue), [Action::CancelRetry, Action::StartSession]);
            for _ in 0..20 {
                assert_eq!(m.step(Event::InputAbsent), [Action::ScheduleRetry(RETRY_INITIAL)]);
                m.step(Event::RetryDue);
            }
            assert_eq!(m.step(Event::SessionStarted), []);
            assert_eq!(m.state, State::Live);
            // A one-shot file: standalone the run ends cleanly, under fleet control the box goes idle.
            m.step(Event::SourceEnded { reopen: false });
            let after = m.step(Event::SessionStopped);
            if standalone {
                assert_eq!(after, [Action::Exit(exit::OK)]);
            } else {
                assert_eq!((after, &m.state), (vec![], &State::Idle));
            }
        }
    }

    #[test]
    fn restart_stops_then_starts_again() {
        let mut m = live();
        assert_eq!(m.step(Event::RestartRequested), [Action::StopSession]);
        assert_eq!(m.step(Event::SessionStopped), [Action::StartSession]);
        assert_eq!(m.state, State::Starting);
    }

    #[test]
    fn stop_while_waiting_to_retry_cancels_the_retry_and_stays_idle() {
        let mut m = live();
        m.step(Event::PipelineFailed { reason: "x".into() });
        m.step(Event::SessionStopped);
        assert_eq!(m.step(Event::StopRequested), [Action::CancelRetry]);
        assert_eq!(m.state, State::Idle);
        assert_eq!(m.step(Event::RetryDue), []);
        assert_eq!(m.state, State::Idle);
    }

    #[test]
    fn start_while_live_changes_nothing() {
        let mut m = live();
        assert_eq!(m.accepts(&Event::StartRequested), Ok(()));
        assert_eq!(m.step(Event::StartRequested), []);
        assert_eq!(m.state, State::Live);
    }

    #[test]
    fn commands_that_make_no_sense_are_refused_with_the_state() {
        let m = Machine::default();
        assert_eq!(m.accepts(&Event::StopRequested), Err(Refusal { command: "stop", state: "idle" }));
        assert_eq!(m.accepts(&Event::RestartRequested), Err(Refusal { command: "restart", state: "idle" }));
        let mut m = live();
        m.step(Event::StopRequested);
        assert_eq!(m.accepts(&Event::StartRequested).unwrap_err().to_string(), "`start` is not possible while stopping");
        assert_eq!(m.step(Event::SessionStopped), []);
        assert_eq!(m.state, State::Idle);
    }
}

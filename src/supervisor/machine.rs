//! The supervisor's state machine: pure, so every transition is unit tested.
//! `step(event) -> actions`; the loop in `mod.rs` executes the actions.
//! Commands are checked first with [`Machine::accepts`]: one that makes no
//! sense in the current state gets a typed [`Refusal`]. Nothing here logs
//! or waits: the loop says what happened.

pub use crate::status::reason::{Health, Reason};
pub use crate::status::StateName;
use crate::exit;
use std::time::Duration;

#[derive(Clone, Debug, PartialEq)]
pub enum State {
    Idle,
    Starting,
    Live,
    Degraded { reason: Reason },
    Stopping,
    Error { reason: Reason },
}

impl State {
    pub fn kind(&self) -> StateName {
        match self {
            State::Idle => StateName::Idle,
            State::Starting => StateName::Starting,
            State::Live => StateName::Live,
            State::Degraded { .. } => StateName::Degraded,
            State::Stopping => StateName::Stopping,
            State::Error { .. } => StateName::Error,
        }
    }

    pub fn name(&self) -> &'static str {
        self.kind().as_str()
    }

    pub fn reason(&self) -> Option<&Reason> {
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
    /// The session could not start (`error`: what went wrong); `permanent`
    /// when only a config change helps.
    SessionFailed { error: String, permanent: bool },
    /// The start did not finish within [`super::START_TIMEOUT`]: abandoned.
    StartTimedOut,
    PipelineFailed { element: String, message: String },
    /// A file or FIFO source ended; `reopen` unless the config says it is a one-shot.
    SourceEnded { reopen: bool },
    /// A start found no input to open (a FIFO with no feeder): wait and retry.
    InputAbsent,
    /// What is wrong with the input and the outputs now (empty: nothing).
    Health(Health),
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
    Retry(Reason),
    Idle,
    Start,
    /// The input ended: wait in `error` and reopen it soon.
    ReopenInput,
}

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
            (Starting, Event::SessionFailed { error, permanent }) => {
                self.failures += 1;
                self.state = Error { reason: Reason::Start(error) };
                match (permanent, self.exit_on_config_error) {
                    (true, true) => vec![Action::Exit(exit::CONFIG)],
                    // Retrying cannot help; wait for a new config or a command.
                    (true, false) => vec![],
                    (false, _) => vec![Action::ScheduleRetry(self.retry_delay())],
                }
            }
            (Starting, Event::StartTimedOut) => {
                self.failures += 1;
                self.state = Error { reason: Reason::StartTimedOut { after_s: super::START_TIMEOUT.as_secs() } };
                vec![Action::ScheduleRetry(self.retry_delay())]
            }
            (Live | Degraded { .. }, Event::Health(h)) if h.is_ok() => {
                self.state = Live;
                self.failures = 0;
                vec![]
            }
            (Live | Degraded { .. }, Event::Health(h)) => {
                self.state = Degraded { reason: Reason::Health(h) };
                vec![]
            }
            (Live | Degraded { .. } | Starting, Event::PipelineFailed { element, message }) => {
                self.failures += 1;
                self.state = Stopping;
                self.then = Some(After::Retry(Reason::PipelineFailed { element, message }));
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
                self.state = Error { reason: Reason::InputEnded };
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
                    self.state = Error { reason };
                    vec![Action::ScheduleRetry(self.retry_delay())]
                }
                Some(After::Start) => {
                    self.state = Starting;
                    vec![Action::StartSession]
                }
                Some(After::ReopenInput) => {
                    self.state = Error { reason: Reason::InputEnded };
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
        let down = Health {
            input: None,
            outputs: vec![super::super::OutputDown::Publish { label: "primary/1080p".into(), state: crate::egress::EgressState::Reconnecting }],
        };
        m.step(Event::Health(down.clone()));
        assert_eq!(m.state, State::Degraded { reason: Reason::Health(down) });
        assert_eq!(m.state.reason().unwrap().to_string(), "primary/1080p reconnecting");
        m.step(Event::Health(Health::default()));
        assert_eq!(m.state, State::Live);
    }

    #[test]
    fn a_pipeline_failure_stops_then_retries_with_growing_capped_delays() {
        let mut m = live();
        assert_eq!(m.step(Event::PipelineFailed { element: "v4l2src".into(), message: "device lost".into() }), [Action::StopSession]);
        assert_eq!(m.step(Event::SessionStopped), [Action::ScheduleRetry(Duration::from_secs(2))]);
        assert_eq!(m.state.reason().unwrap().to_string(), "pipeline failed: v4l2src: device lost");
        assert_eq!(m.step(Event::RetryDue), [Action::CancelRetry, Action::StartSession]);
        assert_eq!(
            m.step(Event::SessionFailed { error: "no device".into(), permanent: false }),
            [Action::ScheduleRetry(Duration::from_secs(4))]
        );
        for _ in 0..10 {
            m.step(Event::RetryDue);
            m.step(Event::SessionFailed { error: "no device".into(), permanent: false });
        }
        assert_eq!(m.retry_delay(), RETRY_MAX);
    }

    #[test]
    fn a_config_problem_exits_with_the_config_code_instead_of_retrying() {
        let mut m = Machine::default();
        m.step(Event::StartRequested);
        assert_eq!(m.step(Event::SessionFailed { error: "rung too big".into(), permanent: true }), [Action::Exit(exit::CONFIG)]);
    }

    #[test]
    fn under_remote_control_a_config_problem_waits_in_error_for_a_new_config() {
        let mut m = Machine::new(false);
        m.step(Event::StartRequested);
        assert_eq!(m.step(Event::SessionFailed { error: "rung too big".into(), permanent: true }), []);
        assert_eq!(m.state, State::Error { reason: Reason::Start("rung too big".into()) });
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
            assert_eq!(m.state, State::Error { reason: Reason::InputEnded });
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
    fn a_start_that_hangs_is_given_up_and_retried_with_backoff() {
        let mut m = Machine::default();
        m.step(Event::StartRequested);
        assert_eq!(m.step(Event::StartTimedOut), [Action::ScheduleRetry(Duration::from_secs(2))]);
        assert_eq!(m.state, State::Error { reason: Reason::StartTimedOut { after_s: 30 } });
        assert_eq!(m.step(Event::RetryDue), [Action::CancelRetry, Action::StartSession]);
        // A stop asked for while starting: the loop stops what the start makes.
        assert_eq!(m.step(Event::StopRequested), [Action::StopSession]);
        assert_eq!(m.step(Event::StartTimedOut), []);
        assert_eq!(m.step(Event::SessionStopped), []);
        assert_eq!(m.state, State::Idle);
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
        m.step(Event::PipelineFailed { element: "x".into(), message: "y".into() });
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

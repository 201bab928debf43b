//! The supervisor: a typed state machine ([`machine`], pure, unit tested) and
//! the async loop that owns the session (pipeline + egress actors) and, under
//! fleet control, the MQTT actor ([`remote`]). It feeds the machine events
//! (signals, commands, pipeline and egress status, timers) and executes the
//! actions it returns.

mod commands;
mod input_health;
mod machine;
mod remote;
mod trial;

pub use machine::{Action, Event, Machine, Refusal, State, RETRY_INITIAL, RETRY_MAX};

use crate::board::BoardProfile;
use crate::config::Config;
use crate::egress::record::RecordState;
use crate::egress::EgressState;
use crate::pipeline::actor::PipelineEvent;
use crate::session::Session;
use crate::sys;
use remote::Remote;
use std::time::{Duration, Instant};
use tracing::{error, info};

/// A capture silent for this long is a stall: the watchdog stops being fed.
pub const STALL_AFTER: Duration = Duration::from_secs(5);
/// A start (device probe, pipeline build) that takes longer is hung.
pub const START_TIMEOUT: Duration = Duration::from_secs(30);
/// Time a new session has to deliver its first frame.
pub const STARTUP_GRACE: Duration = Duration::from_secs(15);

/// What `run` starts from.
pub struct Setup {
    /// The config file's merged table (remote overlays are laid over it).
    pub base: toml::Table,
    pub config: Config,
    pub board: BoardProfile,
    /// Stop cleanly after this long (demos, benchmarks).
    pub limit: Option<Duration>,
}

struct Supervisor {
    machine: Machine,
    config: Config,
    board: BoardProfile,
    session: Option<Session>,
    remote: Option<Remote>,
    retry_at: Option<tokio::time::Instant>,
    starting_since: Option<Instant>,
    shown: State,
    ready_sent: bool,
    last_health: Option<Option<String>>,
    stall_logged: bool,
    /// A remote config change not yet proven live (see [`trial`]).
    trial: Option<trial::Trial>,
    input_rate: input_health::RateWindow,
}

/// Runs until shutdown; returns the exit code.
pub async fn run(setup: Setup) -> i32 {
    let Setup { base, config, board, limit } = setup;
    let (remote, config, start) = match &config.mqtt {
        Some(_) => match Remote::open(base, config, &board) {
            Ok((r, c, start)) => (Some(r), c, start),
            Err(code) => return code,
        },
        None => (None, config, true),
    };
    let mut sup = Supervisor {
        machine: Machine::new(remote.is_none()),
        config,
        board,
        session: None,
        remote,
        retry_at: None,
        starting_since: None,
        shown: State::Idle,
        ready_sent: false,
        last_health: None,
        stall_logged: false,
        trial: None,
        input_rate: input_health::RateWindow::default(),
    };
    let first = if start { sup.machine.step(Event::StartRequested) } else { Vec::new() };
    sup.run(first, limit).await
}

impl Supervisor {
    async fn run(&mut self, mut pending: Vec<Action>, limit: Option<Duration>) -> i32 {
        let deadline = limit.map(|d| tokio::time::Instant::now() + d);
        let mut health = tokio::time::interval(Duration::from_millis(500));
        let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
        // systemd's watchdog: fed from this loop, only while healthy.
        let mut watchdog = sys::watchdog_interval().map(tokio::time::interval);
        let mut telemetry = self.remote.as_ref().map(|r| tokio::time::interval(r.telemetry_every()));
        loop {
            if let Some(code) = self.execute(&mut pending).await {
                if let Some(r) = self.remote.take() {
                    r.close(&self.machine.state).await;
                }
                return code;
            }
            let event = tokio::select! {
                _ = tokio::signal::ctrl_c() => Event::Shutdown,
                _ = sigterm.recv() => Event::Shutdown,
                _ = sleep_until(deadline) => Event::Shutdown,
                _ = sleep_until(self.retry_at) => {
                    self.retry_at = None;
                    Event::RetryDue
                }
                ev = next_pipeline_event(&mut self.session) => match ev {
                    PipelineEvent::Error { element, message } => Event::PipelineFailed { reason: format!("{element}: {message}") },
                    PipelineEvent::Eos => Event::SourceEnded { reopen: reopens(&self.config) },
                    PipelineEvent::Playing | PipelineEvent::Warning { .. } => continue,
                },
                msg = remote::next_inbound(&mut self.remote) => {
                    pending = self.on_inbound(msg).await;
                    continue;
                }
                _ = tick(&mut telemetry) => {
                    self.publish_telemetry();
                    continue;
                }
                _ = tick(&mut watchdog) => {
                    self.feed_watchdog();
                    continue;
                }
                _ = health.tick() => {
                    self.watch_input();
                    let Some(s) = &self.session else { continue };
                    let stats = &s.pipeline.stats;
                    let input = self.input_rate.judge(
                        s.started,
                        Instant::now(),
                        stats.captured_frames.load(std::sync::atomic::Ordering::Relaxed),
                        stats.since_last_capture(),
                        s.plan.format.fps.as_f64(),
                    );
                    let h = match (input, egress_health(s)) {
                        (Some(i), Some(o)) => Some(format!("{i}, {o}")),
                        (i, o) => i.or(o),
                    };
                    if self.last_health.as_ref() == Some(&h) {
                        continue;
                    }
                    self.last_health = Some(h.clone());
                    Event::EgressHealth(h)
                }
            };
            pending = self.machine.step(event);
        }
    }

    /// Executes actions (some produce events, hence more actions) until none
    /// are left, then answers commands that waited for the outcome.
    async fn execute(&mut self, pending: &mut Vec<Action>) -> Option<i32> {
        loop {
            if let Some(code) = self.execute_batch(pending).await {
                return Some(code);
            }
            let more = self.check_trial();
            if more.is_empty() {
                return None;
            }
            pending.extend(more);
        }
    }

    async fn execute_batch(&mut self, pending: &mut Vec<Action>) -> Option<i32> {
        while !pending.is_empty() {
            let action = pending.remove(0);
            match action {
                Action::StartSession if !self.input_present().await => {
                    info!("no feeder on the input FIFO yet; waiting");
                    pending.extend(self.machine.step(Event::InputAbsent));
                }
                Action::StartSession => match self.start_session().await {
                    Ok(s) => {
                        self.session = Some(s);
                        self.last_health = None;
                        pending.extend(self.machine.step(Event::SessionStarted));
                    }
                    Err(e) => {
                        error!(error = %e, "cannot start the stream");
                        let permanent = e.is_config();
                        if permanent && self.remote.is_none() {
                            eprintln!("config error: {e}");
                        }
                        pending.extend(self.machine.step(Event::SessionFailed { reason: e.to_string(), permanent }));
                    }
                },
                Action::StopSession => {
                    if let Some(s) = self.session.take() {
                        s.stop().await;
                    }
                    pending.extend(self.machine.step(Event::SessionStopped));
                }
                Action::ScheduleRetry(d) => {
                    info!(delay_ms = d.as_millis() as u64, "retrying");
                    self.retry_at = Some(tokio::time::Instant::now() + d);
                }
                Action::CancelRetry => self.retry_at = None,
                Action::Exit(code) => {
                    sys::notify_stopping();
                    return Some(code);
                }
            }
            self.show_state();
        }
        self.show_state();
        if let Some(r) = &mut self.remote {
            r.settle(&self.machine.state);
        }
        None
    }

    /// Logs, tells systemd and the fleet about a state change.
    fn show_state(&mut self) {
        if self.machine.state == self.shown {
            return;
        }
        let previous = std::mem::replace(&mut self.shown, self.machine.state.clone());
        info!(state = self.shown.name(), reason = self.shown.reason(), "state");
        sys::notify_status(&status_line(&self.shown));
        if self.shown == State::Stopping {
            sys::notify_stopping();
        }
        if !self.ready_sent && !matches!(self.shown, State::Starting | State::Stopping) {
            self.ready_sent = true;
            sys::notify_ready();
        }
        if let Some(r) = &mut self.remote {
            r.state_changed(&previous, &self.shown);
        }
    }

    /// Tells the fleet when the input is lost or back (the box stays `live`:
    /// the outputs carry the slate).
    fn watch_input(&mut self) {
        let now = self.session.as_ref().map(|s| s.pipeline.stats.input_signal());
        if let Some(r) = &mut self.remote
            && r.input != now
        {
            r.input_changed(&self.machine.state, now);
        }
    }

    fn feed_watchdog(&mut self) {
        if healthy(&self.session, self.starting_since) {
            sys::notify_watchdog();
            self.stall_logged = false;
        } else if !self.stall_logged {
            self.stall_logged = true;
            error!(silent_s = STALL_AFTER.as_secs(), "capture stalled: no longer feeding the watchdog");
        }
    }

    /// Whether the input can be opened without blocking: a FIFO needs a
    /// feeder (asked without blocking, bounded); anything else is left to the probe.
    async fn input_present(&self) -> bool {
        match &self.config.source {
            crate::config::Source::File { path, .. } => {
                crate::pipeline::fifo::feeder_present(path, crate::pipeline::fifo::FEEDER_WAIT).await
            }
            _ => true,
        }
    }

    /// Starts a session off the runtime's workers: probing a device or opening a
    /// pipe can block, and the loop must keep answering signals meanwhile.
    async fn start_session(&mut self) -> Result<Session, crate::session::SessionError> {
        self.starting_since = Some(Instant::now());
        let (c, b) = (self.config.clone(), self.board.clone());
        let result = tokio::task::spawn_blocking(move || Session::start(&c, &b)).await.expect("session start panicked");
        self.starting_since = None;
        result
    }
}

/// Whether the watchdog may be fed: the loop is turning and, if a session
/// runs, its capture is delivering frames. Idle or retrying counts as
/// healthy (the loop itself is alive and doing its job).
fn healthy(session: &Option<Session>, starting_since: Option<Instant>) -> bool {
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

/// Whether the end of the source is followed by reopening it.
fn reopens(config: &Config) -> bool {
    !matches!(config.source, crate::config::Source::File { at_end: crate::config::AtEnd::Stop, .. })
}

fn status_line(state: &State) -> String {
    match state.reason() {
        Some(reason) => format!("{}: {reason}", state.name()),
        None => state.name().to_string(),
    }
}

/// Summarises the outputs (publishes and recordings) into one health event:
/// `None` when all are up, else what is down, e.g.
/// `primary/720p reconnecting, recording: 720p: no space left on the device`.
fn egress_health(session: &Session) -> Option<String> {
    let mut down: Vec<String> = session
        .egress
        .iter()
        // A failover standby is waiting on purpose: not a degradation.
        .filter(|e| !matches!(e.status.borrow().state, EgressState::Publishing | EgressState::Standby))
        .map(|e| format!("{} {:?}", e.label, e.status.borrow().state).to_lowercase())
        .collect();
    for r in &session.recorders {
        let st = r.status.borrow();
        if st.state == RecordState::Failed {
            down.push(format!("recording: {}: {}", r.rung, st.last_error.as_deref().unwrap_or("failed")));
        }
    }
    (!down.is_empty()).then(|| down.join(", "))
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

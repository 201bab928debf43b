//! The supervisor: a typed state machine ([`machine`], pure, unit tested) and
//! the async loop that owns the session (pipeline + egress actors), the
//! saved remote state and, under fleet control, the MQTT actor ([`remote`]);
//! commands come from MQTT or the local HTTP API, handled alike. It feeds the machine events
//! (signals, commands, pipeline and egress status, timers) and executes the
//! actions it returns.

mod commands;
mod input_health;
mod jobs;
mod machine;
mod remote;
mod trial;
mod work;

pub use machine::{Action, Event, Machine, Refusal, State, RETRY_INITIAL, RETRY_MAX};
pub use crate::status::reason::{Health, InputProblem, OutputDown, Reason};
pub use input_health::INPUT_LOSS;

use crate::board::BoardProfile;
use crate::config::Config;
use crate::egress::record::RecordState;
use crate::egress::EgressState;
use crate::pipeline::actor::PipelineEvent;
use crate::session::{Session, SessionError};
use crate::status::{Snapshot, summary, wire::SystemSample};
use crate::sys;
use crate::telemetry::report::Reporter;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::sync::watch;
use remote::Remote;
use std::time::{Duration, Instant};
use tracing::{error, info, warn};
use work::{Next, Work};

/// A capture actor that has not turned for this long is stuck: the watchdog
/// stops being fed.
pub const STALL_AFTER: Duration = Duration::from_secs(5);
/// A start (device probe, pipeline build) that takes longer is hung: it is
/// given up (whatever it makes later is stopped) and tried again.
pub const START_TIMEOUT: Duration = Duration::from_secs(30);
/// Time a new session has to deliver its first frame.
pub const STARTUP_GRACE: Duration = Duration::from_secs(15);
/// A whole stop (pipeline drained, every output closed) is given up after
/// this long, well inside the unit's `TimeoutStopSec=20` (see
/// `Session::stop` for the parts).
pub const STOP_BOUND: Duration = Duration::from_secs(12);

/// How often a standalone box takes its status snapshot (under fleet
/// control: every `mqtt.telemetry_seconds`).
pub const STATUS_EVERY: Duration = Duration::from_secs(5);

/// What `run` starts from.
pub struct Setup {
    /// The config file's merged table (remote overlays are laid over it).
    pub base: toml::Table,
    pub config: Config,
    pub board: BoardProfile,
    /// Stop cleanly after this long (demos, benchmarks).
    pub limit: Option<Duration>,
}

/// How a start ended, posted back to the loop.
enum Started {
    /// A FIFO input has no feeder yet.
    InputAbsent,
    Running(Box<Session>),
    Failed(SessionError),
    /// The start's thread panicked.
    Panicked,
}

struct Supervisor {
    machine: Machine,
    config: Config,
    board: BoardProfile,
    session: Option<Session>,
    remote: Option<Remote>,
    retry_at: Option<tokio::time::Instant>,
    /// Session starts and stops in flight (off the loop).
    work: Work<Started>,
    /// A fleet message's blocking part in flight, and the messages waiting for it.
    jobs: jobs::Jobs,
    shown: State,
    ready_sent: bool,
    last_health: Option<Health>,
    stall_logged: bool,
    /// A remote config change not yet proven live (see [`trial`]).
    trial: Option<trial::Trial>,
    input_rate: input_health::RateWindow,
    /// The status snapshot: built once per tick, read by telemetry and the journal summary.
    reporter: Reporter,
    status: watch::Sender<Option<Arc<Snapshot>>>,
    system: watch::Receiver<SystemSample>,
    /// The path whose disk the system sampler reports (recordings, else the state).
    disk: watch::Sender<PathBuf>,
}

/// A command to handle: from the MQTT actor, or from the local HTTP API.
pub(super) enum Inbox {
    Mqtt(crate::mqtt::Inbound),
    Local(crate::control::local::LocalCommand),
}

/// Runs until shutdown; returns the exit code.
pub async fn run(setup: Setup) -> i32 {
    let Setup { base, config, board, limit } = setup;
    let standalone = config.mqtt.is_none();
    let http = config.http.clone();
    let (commands, local) = crate::control::local::Commands::channel();
    let (remote, config, start) = match Remote::open(base, config, &board, local) {
        Ok((r, c, start)) => (r, c, start),
        Err(code) => return code,
    };
    let every = remote.telemetry_every();
    let (disk, disk_rx) = watch::channel(disk_path(&config));
    let (status, latest) = watch::channel(None);
    if standalone {
        // A standalone box has telemetry too: in the journal.
        drop(summary::spawn(latest.clone(), summary::EVERY));
    } else {
        remote.spawn_telemetry(latest.clone());
    }
    match http {
        Some(h) => crate::http::spawn(h, crate::http::Sources { latest, status: remote.status_watch(), commands }),
        // Nothing sends local commands: the supervisor's end stays quiet.
        None => {
            if !matches!(crate::http::activation::passed(), crate::http::activation::Passed::None) {
                tracing::warn!("systemd passed a listening socket (fieldcast.socket) but [http] is disabled: its connections are never answered; disable the socket unit too");
            }
            drop(commands)
        }
    }
    let remote = Some(remote);
    let mut sup = Supervisor {
        machine: Machine::new(standalone),
        config,
        board,
        session: None,
        remote,
        retry_at: None,
        work: Work::default(),
        jobs: jobs::Jobs::default(),
        shown: State::Idle,
        ready_sent: false,
        last_health: None,
        stall_logged: false,
        trial: None,
        input_rate: input_health::RateWindow::default(),
        reporter: Reporter::default(),
        status,
        system: crate::telemetry::system::spawn(every, disk_rx),
        disk,
    };
    let first = if start { sup.machine.step(Event::StartRequested) } else { Vec::new() };
    sup.run(first, limit).await
}

impl Supervisor {
    /// One `select!`; nothing in it awaits long work (starts and stops run
    /// in [`work`], blocking calls on blocking threads), so every branch is
    /// answered within moments, whatever the session is doing.
    async fn run(&mut self, mut pending: Vec<Action>, limit: Option<Duration>) -> i32 {
        let deadline = limit.map(|d| tokio::time::Instant::now() + d);
        let mut health = tokio::time::interval(Duration::from_millis(500));
        let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
        // systemd's watchdog: fed from this loop, only while healthy.
        let mut watchdog = sys::watchdog_interval().map(tokio::time::interval);
        let mut snapshot = tokio::time::interval(self.remote.as_ref().map_or(STATUS_EVERY, Remote::telemetry_every));
        loop {
            if let Some(code) = self.execute(&mut pending) {
                if let Some(r) = self.remote.take() {
                    r.close().await;
                }
                return code;
            }
            let event = tokio::select! {
                // Shutdown is answered in any state, also while a start or stop runs.
                _ = tokio::signal::ctrl_c() => Event::Shutdown,
                _ = sigterm.recv() => Event::Shutdown,
                _ = sleep_until(deadline) => Event::Shutdown,
                _ = sleep_until(self.retry_at) => {
                    self.retry_at = None;
                    Event::RetryDue
                }
                // A start or stop finished, or ran out of time.
                next = self.work.next() => match self.on_work(next) {
                    Some(ev) => ev,
                    None => continue,
                },
                ev = next_pipeline_event(&mut self.session) => match ev {
                    PipelineEvent::Error { element, message } => {
                        warn!(%element, %message, "pipeline failed; restarting it");
                        Event::PipelineFailed { element, message }
                    }
                    PipelineEvent::Eos => Event::SourceEnded { reopen: reopens(&self.config) },
                    PipelineEvent::Playing | PipelineEvent::Warning { .. } => continue,
                },
                // Fleet control: commands, desired config, link up/down.
                // ... and commands from the local HTTP API, by the same path.
                msg = remote::next_inbox(&mut self.remote) => {
                    pending = self.on_inbound(msg);
                    continue;
                }
                // A command's probe, save or snapshot finished: the command goes on.
                (done, acks) = self.jobs.next() => {
                    pending = self.on_job(done, acks);
                    continue;
                }
                // The status snapshot of this tick, for every reader at once.
                _ = snapshot.tick() => {
                    self.take_snapshot();
                    continue;
                }
                _ = tick(&mut watchdog) => {
                    self.feed_watchdog();
                    continue;
                }
                // The input's rate and the outputs' states, judged twice a second.
                _ = health.tick() => {
                    self.watch_input();
                    let Some(h) = self.judge_health() else { continue };
                    if self.last_health.as_ref() == Some(&h) {
                        continue;
                    }
                    self.last_health = Some(h.clone());
                    Event::Health(h)
                }
            };
            pending = self.machine.step(event);
        }
    }

    /// What the input and the outputs say now; `None` without a session.
    fn judge_health(&mut self) -> Option<Health> {
        let s = self.session.as_ref()?;
        let stats = &s.pipeline.stats;
        let input = self.input_rate.judge(
            s.started,
            Instant::now(),
            stats.captured_frames.load(std::sync::atomic::Ordering::Relaxed),
            stats.since_last_capture(),
            s.plan.format.fps.as_f64(),
        );
        Some(Health { input, outputs: outputs_down(s) })
    }

    /// Turns what [`work`] reports into a machine event (`None`: nothing for the machine).
    fn on_work(&mut self, next: Next<Started>) -> Option<Event> {
        match next {
            Next::Started(outcome) if self.work.stopping() => {
                // A stop was asked for while this start ran: stop what it made.
                match outcome {
                    Started::Running(s) => {
                        info!("the session started after a stop was asked for; stopping it");
                        self.work.stop(STOP_BOUND, stop_session(*s));
                        None
                    }
                    _ => {
                        self.work.stop_done();
                        Some(Event::SessionStopped)
                    }
                }
            }
            Next::Started(Started::InputAbsent) => {
                info!("no feeder on the input FIFO yet; waiting");
                Some(Event::InputAbsent)
            }
            Next::Started(Started::Running(s)) => {
                self.session = Some(*s);
                self.last_health = None;
                Some(Event::SessionStarted)
            }
            Next::Started(Started::Failed(e)) => {
                error!(error = %e, "cannot start the stream");
                let permanent = e.is_config();
                if permanent && self.config.mqtt.is_none() {
                    eprintln!("config error: {e}");
                }
                Some(Event::SessionFailed { error: e.to_string(), permanent })
            }
            Next::Started(Started::Panicked) => {
                error!("the session start panicked");
                Some(Event::SessionFailed { error: "the start failed unexpectedly".into(), permanent: false })
            }
            Next::Late(Started::Running(s)) => {
                warn!("a start given up earlier finished after all; stopping what it made");
                tokio::spawn(stop_session(*s));
                None
            }
            Next::Late(_) => None,
            Next::StartTimedOut if self.work.stopping() => {
                // A stop waited for this start: nothing of it is left to stop.
                warn!(timeout_s = START_TIMEOUT.as_secs(), "the start hung; the stop goes on without it");
                self.work.stop_done();
                Some(Event::SessionStopped)
            }
            Next::StartTimedOut => {
                error!(timeout_s = START_TIMEOUT.as_secs(), "the start hung; giving it up");
                Some(Event::StartTimedOut)
            }
            Next::Stopped => Some(Event::SessionStopped),
            Next::StopTimedOut => {
                warn!(bound_s = STOP_BOUND.as_secs(), "the session did not stop in time; going on without it");
                Some(Event::SessionStopped)
            }
        }
    }

    /// Executes actions (some produce events, hence more actions) until none
    /// are left, then answers commands that waited for the outcome. Never
    /// waits: starts and stops are handed to [`work`].
    fn execute(&mut self, pending: &mut Vec<Action>) -> Option<i32> {
        loop {
            if let Some(code) = self.execute_batch(pending) {
                return Some(code);
            }
            let more = self.check_trial();
            if more.is_empty() {
                break;
            }
            pending.extend(more);
        }
        // Replies wait until no start or stop is in flight.
        if !self.work.starting() && !self.work.stopping()
            && let Some(r) = &mut self.remote
        {
            r.settle(&self.machine.state);
        }
        None
    }

    fn execute_batch(&mut self, pending: &mut Vec<Action>) -> Option<i32> {
        while !pending.is_empty() {
            let action = pending.remove(0);
            match action {
                Action::StartSession => self.begin_start(),
                Action::StopSession => {
                    if let Some(s) = self.session.take() {
                        self.work.stop(STOP_BOUND, stop_session(s));
                    } else if self.work.starting() {
                        // What the start makes is stopped when it comes (bounded as any stop).
                        self.work.stop_after_start(STOP_BOUND);
                    } else {
                        pending.extend(self.machine.step(Event::SessionStopped));
                    }
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
        None
    }

    /// Starts a session off the loop: the FIFO check (bounded), then the
    /// device probe and the build on a blocking thread. The outcome comes
    /// back through [`work`]; [`START_TIMEOUT`] gives it up.
    fn begin_start(&mut self) {
        let (config, board) = (self.config.clone(), self.board.clone());
        self.work.start(START_TIMEOUT, async move {
            if !input_present(&config).await {
                return Started::InputAbsent;
            }
            match tokio::task::spawn_blocking(move || Session::start(&config, &board)).await {
                Ok(Ok(s)) => Started::Running(Box::new(s)),
                Ok(Err(e)) => Started::Failed(e),
                Err(_) => Started::Panicked,
            }
        });
    }

    /// Logs, tells systemd and the fleet about a state change.
    fn show_state(&mut self) {
        if self.machine.state == self.shown {
            return;
        }
        let previous = std::mem::replace(&mut self.shown, self.machine.state.clone());
        let reason = self.shown.reason().map(ToString::to_string);
        info!(state = self.shown.name(), reason = reason.as_deref(), "state");
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

    /// Builds this tick's status snapshot and shares it.
    fn take_snapshot(&mut self) {
        self.disk.send_if_modified(|p| {
            let now = disk_path(&self.config);
            let changed = *p != now;
            *p = now;
            changed
        });
        let system = self.system.borrow().clone();
        let state = &self.machine.state;
        let snapshot = self.reporter.report(state.kind(), state.reason().cloned(), self.session.as_ref(), system);
        self.status.send_replace(Some(Arc::new(snapshot)));
    }

    fn feed_watchdog(&mut self) {
        if healthy(&self.session) {
            sys::notify_watchdog();
            self.stall_logged = false;
        } else if !self.stall_logged {
            self.stall_logged = true;
            error!(stuck_s = STALL_AFTER.as_secs(), "the capture is stuck (it stopped turning, not only delivering): no longer feeding the watchdog, so systemd restarts the service");
        }
    }
}

/// The filesystem whose space the status reports: the recordings', else the state's.
fn disk_path(config: &Config) -> PathBuf {
    config.recording.as_ref().map_or_else(|| config.state_dir.clone(), |r| r.dir.clone())
}

/// Stops a session, then hands the freed heap back (on a blocking thread:
/// `malloc_trim` can take a while on a big heap).
async fn stop_session(s: Session) {
    s.stop().await;
    let _ = tokio::task::spawn_blocking(crate::memory::release_free_memory).await;
}

/// Whether the input can be opened without blocking: a FIFO needs a
/// feeder (asked without blocking, bounded); anything else is left to the probe.
async fn input_present(config: &Config) -> bool {
    match &config.source {
        crate::config::Source::File { path, .. } => {
            crate::pipeline::fifo::feeder_present(path, crate::pipeline::fifo::FEEDER_WAIT).await
        }
        _ => true,
    }
}

/// Whether the watchdog may be fed: the loop is turning and, if a session
/// runs, its capture actor is turning too: delivering frames, or waiting
/// for a lost source and reopening it (the slate is on the air meanwhile;
/// slate frames themselves never count). A capture stuck where it cannot
/// return (a driver, a read that never ends) stops beating, and systemd
/// restarts the service. Idle, retrying, starting or stopping counts as
/// healthy: the loop itself is alive, and starts and stops are bounded
/// ([`START_TIMEOUT`], [`STOP_BOUND`]).
fn healthy(session: &Option<Session>) -> bool {
    match session {
        None => true,
        Some(s) => match s.pipeline.stats.since_capture_heartbeat() {
            Some(quiet) => quiet < STALL_AFTER,
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

/// The outputs (publishes and recordings) that are not up.
fn outputs_down(session: &Session) -> Vec<OutputDown> {
    let mut down: Vec<OutputDown> = session
        .egress
        .iter()
        // A failover standby is waiting on purpose: not a degradation.
        .filter(|e| !matches!(e.status.borrow().state, EgressState::Publishing | EgressState::Standby))
        .map(|e| OutputDown::Publish { label: e.label.clone(), state: e.status.borrow().state })
        .collect();
    for r in &session.recorders {
        let st = r.status.borrow();
        if st.state == RecordState::Failed {
            down.push(OutputDown::Recording { rung: r.rung.clone(), why: st.last_error.clone().unwrap_or_else(|| "failed".into()) });
        }
    }
    down
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

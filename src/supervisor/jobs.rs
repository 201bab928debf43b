//! The blocking part of a fleet message (probing a new source, saving the
//! state with its fsyncs, encoding a snapshot) runs off the loop; its result
//! comes back as a [`JobDone`] and the command goes on from there. One job
//! at a time: messages that arrive meanwhile wait their turn, in order, so
//! every command still sees the state the previous one left.

use super::remote::ReplyTo;
use crate::config::Config;
use crate::control::command::Command;
use crate::control::error::CommandError;
use crate::persist::{Saved, Store};
use crate::pipeline::snapshot::Jpeg;
use std::collections::VecDeque;
use std::future::Future;
use tokio::sync::mpsc;
use tracing::error;

/// Where a config change came from.
pub(super) enum Origin {
    Command { cmd: Command, to: ReplyTo },
    Desired { version: u64 },
}

/// A config change that passed its checks and was saved.
pub(super) struct Checked {
    pub(super) config: Config,
    pub(super) saved: Saved,
    pub(super) changed: bool,
    /// New rung bitrates only, for the session that was running when it
    /// was checked: set live instead of restarting.
    pub(super) live: Option<LiveChange>,
}

/// A change the running session takes without a restart (`pipeline::diff`).
pub(super) struct LiveChange {
    pub(super) changes: Vec<crate::pipeline::diff::BitrateChange>,
    pub(super) plan: crate::pipeline::plan::Plan,
    /// Which session it was planned against (its start).
    pub(super) session: std::time::Instant,
}

pub(super) enum JobDone {
    /// `start`, `stop`, `restart`: the desired run state was saved (or not).
    Run { cmd: Command, to: ReplyTo, saved: Result<Saved, CommandError> },
    /// `configure` or `config/desired`: checked against the board and the source, and saved.
    Config { origin: Origin, result: Result<Box<Checked>, CommandError> },
    /// `snapshot`: the image and when it was taken.
    Snapshot { cmd: Command, to: ReplyTo, result: Result<(Jpeg, String), CommandError> },
    /// A save no one waits for (a rejected desired version, a rollback).
    Saved,
    /// The job panicked: no reply can be made.
    Lost,
}

#[derive(Default)]
pub(super) struct Jobs {
    channel: Option<(mpsc::UnboundedSender<JobDone>, mpsc::UnboundedReceiver<JobDone>)>,
    busy: bool,
    /// The message that started the job is acknowledged to the broker when it ends.
    unacked: bool,
    pub(super) queued: VecDeque<super::Inbox>,
}

impl Jobs {
    pub(super) fn busy(&self) -> bool {
        self.busy
    }

    /// A job runs whose end acknowledges the message that started it.
    pub(super) fn holds_ack(&self) -> bool {
        self.busy && self.unacked
    }

    /// Runs `job` beside the loop; `acks`: it was started by a message
    /// whose acknowledgement waits for it.
    pub(super) fn spawn(&mut self, acks: bool, job: impl Future<Output = JobDone> + Send + 'static) {
        debug_assert!(!self.busy, "one job at a time");
        let tx = self.channel.get_or_insert_with(mpsc::unbounded_channel).0.clone();
        self.busy = true;
        self.unacked |= acks;
        let task = tokio::spawn(job);
        tokio::spawn(async move {
            let done = task.await.unwrap_or_else(|_| {
                error!("a command's background work panicked");
                JobDone::Lost
            });
            let _ = tx.send(done);
        });
    }

    /// Runs `f` on a blocking thread as the job.
    pub(super) fn spawn_blocking(&mut self, acks: bool, f: impl FnOnce() -> JobDone + Send + 'static) {
        self.spawn(acks, async move { tokio::task::spawn_blocking(f).await.unwrap_or(JobDone::Lost) });
    }

    /// Saves `saved` as a job no one waits for (the loop has already taken it as current).
    pub(super) fn save_later(&mut self, store: &Store, saved: Saved) {
        let store = store.clone();
        self.spawn_blocking(false, move || {
            if let Err(e) = store.save(&saved) {
                error!(error = %e, "cannot save remote state");
            }
            JobDone::Saved
        });
    }

    /// The job's result. Returns whether its message is now to be acknowledged.
    /// Cancel safe.
    pub(super) async fn next(&mut self) -> (JobDone, bool) {
        match &mut self.channel {
            Some((_, rx)) => {
                let done = rx.recv().await.expect("Jobs holds a sender");
                self.busy = false;
                (done, std::mem::take(&mut self.unacked))
            }
            None => std::future::pending().await,
        }
    }
}

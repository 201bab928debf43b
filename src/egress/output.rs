//! The session's handle on one output actor, whatever its protocol: one
//! [`spawn`] from an [`OutputPlan`], a sender the pipeline feeds, a status
//! to read, and a bounded close.

use super::plan::OutputPlan;
use super::resume::ResumeGates;
use super::status::EgressStatus;
use super::{MediaSender, rtmp, srt};
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::warn;

/// Items an output's channel holds: about two seconds of video and audio.
pub const OUTPUT_CHANNEL: usize = 256;

pub struct OutputHandle {
    /// `destination/rung`.
    pub label: String,
    pub destination: String,
    pub rung: String,
    pub status: watch::Receiver<EgressStatus>,
    /// Feeds the actor; the pipeline holds clones (see `pipeline::build::Taps`).
    pub sender: MediaSender,
    task: JoinHandle<()>,
}

/// Starts the actor `plan` describes, with its own media channel; the
/// outputs of one destination share a gate from `gates` so that they resume
/// on the same keyframe.
pub fn spawn(plan: &OutputPlan, gates: &mut ResumeGates) -> OutputHandle {
    let (sender, rx) = MediaSender::channel(OUTPUT_CHANNEL);
    let (task, status) = match plan {
        OutputPlan::Rtmp(p) => rtmp::spawn(p.clone(), rx, gates.member(plan.destination())),
        // SRT outputs do not share a resume gate yet: each resumes at its own next keyframe.
        OutputPlan::Srt(p) => srt::spawn(p.clone(), rx),
    };
    OutputHandle {
        label: plan.label().to_owned(),
        destination: plan.destination().to_owned(),
        rung: plan.rung().to_owned(),
        status,
        sender,
        task,
    }
}

impl OutputHandle {
    /// Ends the actor at once (a session that failed to start).
    pub fn abort(&self) {
        self.task.abort();
    }

    /// Closes the media channel (this handle's sender; the pipeline's must
    /// be gone already) and waits up to `bound` for the actor to finish.
    pub async fn close(self, bound: Duration) {
        let OutputHandle { label, sender, task, .. } = self;
        drop(sender);
        if tokio::time::timeout(bound, task).await.is_err() {
            warn!(%label, "output did not close in time");
        }
    }
}

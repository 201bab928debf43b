//! The session's handle on one output actor, whatever its protocol: one
//! [`spawn`] from an [`OutputPlan`], a sender the pipeline feeds, a status
//! to read, and a bounded close.

use super::plan::OutputPlan;
use super::failover::Failover;
use super::resume::ResumeGates;
use super::smooth::manifest::Books;
use crate::pipeline::epoch::EpochOrigin;
use super::status::EgressStatus;
use super::{MediaSender, cmaf, rtmp, srt};
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::warn;

/// Items an output's channel holds: about six seconds of video and audio
/// (encoded: a few MB at most). When an uplink drops suddenly below the
/// ladder, the backlog built before adaptive bitrate's steps catch up has
/// been measured at 3.7 s (a link at 63% of the ladder): a channel of half
/// this dropped frames there, one run in three.
pub const OUTPUT_CHANNEL: usize = 512;

pub struct OutputHandle {
    /// `destination/rung`.
    pub label: String,
    pub destination: String,
    pub rung: String,
    /// `primary`, or `backup` for a destination's backup ingest.
    pub endpoint: super::failover::Endpoint,
    pub status: watch::Receiver<EgressStatus>,
    /// Feeds the actor; the pipeline holds clones (see `pipeline::build::Taps`).
    pub sender: MediaSender,
    /// The video bitrate it declares (kbit/s; `onMetaData`), for an output
    /// that declares one (RTMP): a live `configure` sends the new target.
    pub declared: Option<watch::Sender<u32>>,
    task: JoinHandle<()>,
}

/// Starts the actor `plan` describes, with its own media channel; the
/// outputs of one destination share a gate from `gates` so that they resume
/// on the same keyframe.
///
/// `failover`: the destination's shared failover state when it pushes to a
/// primary and a backup in `failover` mode (each endpoint then resumes on
/// its own gate: a standby must not hold the active one back).
///
/// `books`: the session's Smooth manifest books (one per destination: its
/// outputs share the codec configurations their manifests list).
///
/// `epoch`: the session's timeline origin (an `epoch_aligned` CMAF or Smooth output stamps by it).
pub fn spawn(plan: &OutputPlan, gates: &mut ResumeGates, books: &mut Books, epoch: &EpochOrigin, failover: Option<&Failover>) -> OutputHandle {
    let (sender, rx) = MediaSender::channel(OUTPUT_CHANNEL);
    let gate = match failover {
        Some(_) => format!("{}@{}", plan.destination(), plan.endpoint().as_str()),
        None => plan.destination().to_owned(),
    };
    let standby = failover.map(|f| f.member(plan.endpoint()));
    let (task, status, declared) = match plan {
        OutputPlan::Rtmp(p) => {
            let (declared, declared_rx) = watch::channel(p.metadata.video_kbps);
            let (task, status) = rtmp::spawn_declared(p.clone(), rx, gates.member(&gate), standby, Some(declared_rx));
            (task, status, Some(declared))
        }
        OutputPlan::Srt(p) => {
            let (task, status) = srt::spawn(p.clone(), rx, gates.member(&gate), standby);
            (task, status, None)
        }
        // CMAF destinations have no backup endpoint (refused by the config);
        // a live bitrate change is not applied to their headers (`btrt`).
        OutputPlan::Cmaf(p) => {
            let (task, status) = cmaf::spawn(p.clone(), rx, None, epoch);
            (task, status, None)
        }
        OutputPlan::Smooth(p) => {
            let (task, status) = cmaf::spawn(p.clone(), rx, Some(books.book(&p.destination, &p.channel)), epoch);
            (task, status, None)
        }
    };
    OutputHandle {
        label: plan.label().to_owned(),
        destination: plan.destination().to_owned(),
        rung: plan.rung().to_owned(),
        endpoint: plan.endpoint(),
        status,
        sender,
        declared,
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

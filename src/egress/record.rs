//! Local recording as one output among the others: an actor per recorded
//! rung, fed from the same media channel as a publish, writing segmented
//! files through its own small pipeline ([`muxer`]).
//!
//! One failure, one blast radius: when the disk fills or the folder
//! vanishes, this actor stops its recorder, reports `failed` with a reason
//! (no path, no value), keeps draining its channel so the encoder never
//! waits, and retries with the shared capped backoff once there is room
//! again. Each retry continues the file numbering, never overwriting what
//! was recorded before the failure.

mod files;
mod muxer;

pub use files::check_dir;

use crate::backoff::Backoff;
use super::Media;
use crate::config::RecordFormat;
use bytes::Bytes;
use muxer::{MuxEvent, Muxer};
use serde::Serialize;
use std::path::PathBuf;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tracing::{info, instrument, warn};

/// How long a stop waits for the last file to be finalised.
const FINISH_TIMEOUT: Duration = Duration::from_secs(5);

/// What one recorded rung needs, frozen at session start.
#[derive(Clone, Debug)]
pub struct RecordTarget {
    pub rung: String,
    /// The session's folder (`<recording dir>/<UTC start>`), made on first use.
    pub dir: PathBuf,
    pub format: RecordFormat,
    pub segment: Duration,
    pub tracks: super::sources::TrackFormat,
    /// Video plus audio, for judging whether the disk has room again.
    pub bitrate_bps: u64,
    pub backoff: Backoff,
    pub guard: DiskGuard,
}

/// Keeps the recording from filling the disk: below `min_free_bytes` it
/// deletes the oldest segments (`rotate`) or stops, before the disk is full.
#[derive(Clone, Debug)]
pub struct DiskGuard {
    /// The recording folder (all sessions' folders are inside).
    pub root: PathBuf,
    pub min_free_bytes: u64,
    pub rotate: bool,
}

/// How often the guard looks at the disk while recording.
const GUARD_EVERY: Duration = Duration::from_secs(1);

/// Why a recorder run ended.
enum Ended {
    /// The channel closed: the session is over.
    Closed,
    /// The recorder failed (already torn down).
    Failed(String),
    /// The disk guard stopped it (its last file finished cleanly).
    Guarded(String),
}

#[derive(Clone, Copy, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum RecordState {
    /// Waiting for the codec configurations and the first keyframe.
    Starting,
    Recording,
    /// The recorder failed; retrying when there is room (see `last_error`).
    Failed,
    Stopped,
}

/// Telemetry of one recorded rung. Never holds a path or a value.
#[derive(Clone, Debug, Serialize)]
pub struct RecordStatus {
    pub rung: String,
    pub state: RecordState,
    /// Segment files opened in this session.
    pub files: u32,
    pub failures: u32,
    pub last_error: Option<String>,
    /// Media items not recorded (while failed, or the disk was slower than real time).
    pub media_discarded: u64,
}

/// Starts the recorder for `target`, reading `rx`; ends once every sender is dropped.
pub fn spawn(target: RecordTarget, rx: mpsc::Receiver<Media>) -> (JoinHandle<()>, watch::Receiver<RecordStatus>) {
    let (tx, status) = watch::channel(RecordStatus {
        rung: target.rung.clone(),
        state: RecordState::Starting,
        files: 0,
        failures: 0,
        last_error: None,
        media_discarded: 0,
    });
    (tokio::spawn(run(target, rx, tx)), status)
}

/// The timeline of one recorder run: timestamps start at 0 from its first keyframe.
struct Run {
    muxer: Muxer,
    events: mpsc::UnboundedReceiver<MuxEvent>,
    base_ns: Option<u64>,
    need_keyframe: bool,
}

#[derive(Default)]
struct Configs {
    video: Option<Bytes>,
    audio: Option<Bytes>,
}

#[instrument(name = "recording", skip_all, fields(rung = %target.rung))]
async fn run(target: RecordTarget, mut rx: mpsc::Receiver<Media>, status: watch::Sender<RecordStatus>) {
    let mut configs = Configs::default();
    let mut schedule = target.backoff.schedule();
    'session: loop {
        // Wait for both codec configurations (sent once, at caps negotiation).
        while configs.video.is_none() || configs.audio.is_none() {
            match rx.recv().await {
                Some(Media::VideoConfig(c)) => configs.video = Some(c),
                Some(Media::AudioConfig(c)) => configs.audio = Some(c),
                Some(_) => status.send_modify(|s| s.media_discarded += 1),
                None => break 'session,
            }
        }
        let failure = match guard_reason(&target) {
            // Not even started: below the guard already.
            Some(reason) => reason,
            None => match open(&target, &configs).await {
                Ok(mut run) => {
                    status.send_modify(|s| s.state = RecordState::Recording);
                    match record(&target, &mut run, &mut rx, &mut configs, &status).await {
                        Ended::Closed => {
                            finish(run).await;
                            break 'session;
                        }
                        Ended::Guarded(reason) => {
                            finish(run).await;
                            reason
                        }
                        Ended::Failed(reason) => {
                            let muxer = run.muxer;
                            let _ = tokio::task::spawn_blocking(move || muxer.close()).await;
                            reason
                        }
                    }
                }
                Err(reason) => reason,
            },
        };
        let delay = schedule.next_delay();
        warn!(error = %failure, retry_in = ?delay, "recording failed; the stream goes on without it");
        status.send_modify(|s| {
            s.state = RecordState::Failed;
            s.failures += 1;
            s.last_error = Some(failure);
        });
        // Retry once the backoff has passed and the disk has room again;
        // meanwhile drain the channel so the encoder never waits for us.
        let mut due = tokio::time::Instant::now() + delay;
        loop {
            tokio::select! {
                () = tokio::time::sleep_until(due) => {
                    if files::has_room(&target) && guard_reason(&target).is_none() {
                        break;
                    }
                    due = tokio::time::Instant::now() + schedule.next_delay();
                }
                media = rx.recv() => match media {
                    Some(Media::VideoConfig(c)) => configs.video = Some(c),
                    Some(Media::AudioConfig(c)) => configs.audio = Some(c),
                    Some(_) => status.send_modify(|s| s.media_discarded += 1),
                    None => break 'session,
                },
            }
        }
        info!("retrying the recording");
    }
    status.send_modify(|s| s.state = RecordState::Stopped);
}

/// Makes the folder and starts a recorder continuing the file numbering.
async fn open(target: &RecordTarget, configs: &Configs) -> Result<Run, String> {
    let (t, video, audio) = (target.clone(), configs.video.clone().expect("video config"), configs.audio.clone().expect("audio config"));
    let (tx, events) = mpsc::unbounded_channel();
    let started = tokio::task::spawn_blocking(move || {
        std::fs::create_dir_all(&t.dir).map_err(|e| format!("cannot create the recording folder: {}", files::io_reason(&e)))?;
        let index = files::next_index(&t.dir, &t.rung, t.format.extension());
        Muxer::start(&t, &t.dir, index, &video, &audio, tx)
    })
    .await
    .map_err(|_| "the recorder could not be started".to_string())??;
    Ok(Run { muxer: started, events, base_ns: None, need_keyframe: true })
}

/// The guard's verdict now: `Some(reason)` when the recording must not go on.
/// With `rotate`, the oldest segments are deleted first to make room.
fn guard_reason(target: &RecordTarget) -> Option<String> {
    let g = &target.guard;
    if g.min_free_bytes == 0 {
        return None;
    }
    let free = files::free_bytes(&target.dir)?;
    if free >= g.min_free_bytes {
        return None;
    }
    if g.rotate {
        let freed = files::rotate(&g.root, g.min_free_bytes - free);
        if freed > 0 {
            info!(freed_bytes = freed, "disk guard: deleted the oldest segments");
        }
        if files::free_bytes(&target.dir).is_some_and(|f| f >= g.min_free_bytes) {
            return None;
        }
    }
    Some(format!("stopped: under {} MB free on the disk", g.min_free_bytes / 1_000_000))
}

/// Feeds the recorder until the channel closes, it fails, or the guard stops it.
async fn record(
    target: &RecordTarget,
    run: &mut Run,
    rx: &mut mpsc::Receiver<Media>,
    configs: &mut Configs,
    status: &watch::Sender<RecordStatus>,
) -> Ended {
    let mut guard = tokio::time::interval(GUARD_EVERY);
    loop {
        tokio::select! {
            ev = run.events.recv() => match ev {
                Some(MuxEvent::FileOpened) => status.send_modify(|s| s.files += 1),
                Some(MuxEvent::Failed(reason)) => return Ended::Failed(reason),
                Some(MuxEvent::Finished) | None => return Ended::Failed("the recorder ended unexpectedly".into()),
            },
            _ = guard.tick() => {
                if let Some(reason) = guard_reason(target) {
                    return Ended::Guarded(reason);
                }
            }
            media = rx.recv() => {
                let Some(media) = media else { return Ended::Closed };
                if !feed(run, media, configs) {
                    status.send_modify(|s| s.media_discarded += 1);
                }
            }
        }
    }
}

/// Hands one item to the muxer; false when it was not recorded.
fn feed(run: &mut Run, media: Media, configs: &mut Configs) -> bool {
    match media {
        // A new configuration mid-run would need new caps; the muxer keeps
        // the first (the pipeline only renegotiates at a new session today).
        Media::VideoConfig(c) => configs.video = Some(c),
        Media::AudioConfig(c) => configs.audio = Some(c),
        Media::Video(v) => {
            // Start on a keyframe; and when the disk is slower than real
            // time, skip to the next GOP instead of queueing without bound.
            if (run.need_keyframe && !v.keyframe) || run.muxer.over_limit() {
                run.need_keyframe = true;
                return false;
            }
            run.need_keyframe = false;
            let base = *run.base_ns.get_or_insert(v.dts_ns.min(v.pts_ns));
            return run.muxer.sources.push_video(v.pts_ns.saturating_sub(base), v.dts_ns.saturating_sub(base), v.keyframe, v.data);
        }
        Media::Audio(a) => {
            let Some(base) = run.base_ns else { return false };
            if run.need_keyframe || a.pts_ns < base {
                return false;
            }
            return run.muxer.sources.push_audio(a.pts_ns - base, a.data);
        }
    }
    true
}

/// Ends the tracks and waits (bounded) for the last file's trailer.
async fn finish(mut run: Run) {
    run.muxer.sources.finish();
    let drained = tokio::time::timeout(FINISH_TIMEOUT, async {
        while let Some(ev) = run.events.recv().await {
            match ev {
                MuxEvent::Finished => return true,
                MuxEvent::Failed(reason) => {
                    warn!(error = %reason, "the last recording file could not be finalised");
                    return false;
                }
                MuxEvent::FileOpened => {}
            }
        }
        false
    })
    .await
    .unwrap_or(false);
    if !drained {
        warn!("the recorder did not finish in time");
    }
    let muxer = run.muxer;
    let _ = tokio::task::spawn_blocking(move || muxer.close()).await;
}

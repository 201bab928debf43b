//! The pipeline actor: owns the running `gst::Pipeline`, forwards what its
//! bus says as typed events, and stops it cleanly (EOS so recordings are
//! finalised, awaited with a timeout, then Null). Callers hold a cloneable
//! [`PipelineHandle`].

use super::build::Built;
use super::stats::PipelineStats;
use gstreamer as gst;
use gstreamer::prelude::*;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use thiserror::Error;
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, info, warn};

/// How long a stop waits for EOS to be delivered and drained (recordings
/// finalised) before Null...
pub const STOP_TIMEOUT: Duration = Duration::from_secs(4);
/// ...and then for NULL (a source stuck in a read can hold it forever).
pub const NULL_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Clone, Debug, PartialEq)]
pub enum PipelineEvent {
    /// The pipeline reached PLAYING.
    Playing,
    /// A fatal error from an element.
    Error { element: String, message: String },
    Warning { element: String, message: String },
    /// The source ended (a file source).
    Eos,
}

#[derive(Debug, Error)]
pub enum ActorError {
    #[error("the pipeline refused to start: {0}")]
    Start(String),
}

enum Command {
    Stop(oneshot::Sender<()>),
}

#[derive(Clone)]
pub struct PipelineHandle {
    tx: mpsc::Sender<Command>,
    pub stats: Arc<PipelineStats>,
    /// Every rung's encoder: bitrates set while playing.
    pub bitrates: Arc<super::bitrate::LiveBitrates>,
    /// The frame clock's input-loss handling, set while playing.
    pub input_loss: Arc<super::input::LiveInputLoss>,
    /// For reading element properties (queue levels, the snapshot frame);
    /// state changes go through the actor only.
    pipeline: gst::Pipeline,
}

impl PipelineHandle {
    /// Frames waiting in front of a rung's encoder (at most 12, and 7 MB:
    /// 3 of 1080p): a rising level means the encoder cannot keep up.
    pub fn encoder_queue_level(&self, rung: &str) -> Option<u32> {
        let q = self.pipeline.by_name(&format!("{}{rung}", super::build::ENCODER_QUEUE))?;
        Some(q.property::<u32>("current-level-buffers"))
    }

    /// The newest captured frame (raw), if any arrived yet.
    pub fn last_frame(&self) -> Option<gst::Sample> {
        let sink = self.pipeline.by_name(super::build::SNAPSHOT_SINK)?;
        sink.property::<Option<gst::Sample>>("last-sample")
    }

    /// Stops the pipeline: EOS, wait (bounded), Null. Returns when done.
    pub async fn stop(&self) {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Command::Stop(tx)).await.is_ok() {
            let _ = rx.await;
        }
    }
}

/// Starts the pipeline and its actor. Events arrive on the returned receiver.
pub fn spawn(built: Built) -> Result<(PipelineHandle, mpsc::Receiver<PipelineEvent>), ActorError> {
    let Built { pipeline, stats, eos_pads, mut input, bitrates } = built;
    let (event_tx, event_rx) = mpsc::channel(64);
    let (bus_tx, bus_rx) = mpsc::unbounded_channel::<BusEvent>();
    let done = Arc::new(AtomicBool::new(false));
    let bus = pipeline.bus().expect("a pipeline has a bus");
    let (bus_done, bus_stats) = (done.clone(), stats.clone());
    std::thread::Builder::new()
        .name("gst-bus".into())
        .spawn(move || bus_thread(bus, bus_tx, bus_done, bus_stats))
        .expect("spawn the bus thread");
    if let Err(e) = pipeline.set_state(gst::State::Playing) {
        done.store(true, Ordering::Release);
        let _ = pipeline.set_state(gst::State::Null);
        return Err(ActorError::Start(e.to_string()));
    }
    input.start(&pipeline);
    let input_loss = Arc::new(input.live_input_loss());
    let (tx, rx) = mpsc::channel(8);
    let handle = PipelineHandle { tx, stats, bitrates, input_loss, pipeline: pipeline.clone() };
    tokio::spawn(run(pipeline, eos_pads, input, rx, bus_rx, event_tx, done));
    Ok((handle, event_rx))
}

enum BusEvent {
    Public(PipelineEvent),
    Eos,
}

fn source_name(msg: &gst::Message) -> String {
    msg.src().map(|s| s.path_string().to_string()).unwrap_or_else(|| "pipeline".into())
}

fn bus_thread(bus: gst::Bus, tx: mpsc::UnboundedSender<BusEvent>, done: Arc<AtomicBool>, stats: Arc<super::stats::PipelineStats>) {
    while !done.load(Ordering::Acquire) {
        let Some(msg) = bus.timed_pop(gst::ClockTime::from_mseconds(100)) else { continue };
        let event = match msg.view() {
            gst::MessageView::Error(e) => {
                let detail = e.debug().map(|d| format!(" ({d})")).unwrap_or_default();
                BusEvent::Public(PipelineEvent::Error { element: source_name(&msg), message: format!("{}{detail}", e.error()) })
            }
            gst::MessageView::Warning(w) => {
                BusEvent::Public(PipelineEvent::Warning { element: source_name(&msg), message: w.error().to_string() })
            }
            gst::MessageView::Eos(_) => BusEvent::Eos,
            gst::MessageView::Element(e) => {
                if let Some(m) = e.structure().and_then(super::level::parse) {
                    stats.audio.push(m);
                }
                continue;
            }
            gst::MessageView::Application(a) if a.structure().is_some_and(|s| s.name() == super::build::SOURCE_ENDED) => {
                BusEvent::Public(PipelineEvent::Eos)
            }
            gst::MessageView::StateChanged(s)
                if msg.src().is_some_and(|src| src.type_() == gst::Pipeline::static_type())
                    && s.current() == gst::State::Playing =>
            {
                BusEvent::Public(PipelineEvent::Playing)
            }
            _ => continue,
        };
        if tx.send(event).is_err() {
            break;
        }
    }
}

#[tracing::instrument(name = "pipeline", skip_all)]
async fn run(
    pipeline: gst::Pipeline,
    eos_pads: Vec<gst::Pad>,
    mut input: super::input::InputRuntime,
    mut commands: mpsc::Receiver<Command>,
    mut bus: mpsc::UnboundedReceiver<BusEvent>,
    events: mpsc::Sender<PipelineEvent>,
    done: Arc<AtomicBool>,
) {
    let reply = loop {
        tokio::select! {
            cmd = commands.recv() => match cmd {
                Some(Command::Stop(reply)) => break Some(reply),
                // Every handle dropped: stop too.
                None => break None,
            },
            ev = bus.recv() => match ev {
                Some(BusEvent::Public(e)) => {
                    match &e {
                        PipelineEvent::Error { element, message } => warn!(%element, %message, "pipeline error"),
                        PipelineEvent::Eos => info!("source ended"),
                        _ => {}
                    }
                    let _ = events.send(e).await;
                }
                Some(BusEvent::Eos) => {
                    info!("source ended");
                    let _ = events.send(PipelineEvent::Eos).await;
                }
                None => break None,
            },
        }
    };
    // EOS through every branch so muxers write their trailers: delivered
    // and drained within one STOP_TIMEOUT.
    debug!("stopping: sending EOS");
    let deadline = tokio::time::Instant::now() + STOP_TIMEOUT;
    // Sending EOS can block behind a stalled streaming thread: never on a runtime worker.
    let (p, pads) = (pipeline.clone(), eos_pads.clone());
    let send = tokio::task::spawn_blocking(move || {
        // The frame clock stops first: its appsrc then ends the video.
        input.stop();
        p.send_event(gst::event::Eos::new());
        for pad in &pads {
            pad.send_event(gst::event::Eos::new());
        }
    });
    if tokio::time::timeout_at(deadline, send).await.is_err() {
        warn!("EOS could not be delivered (a streaming thread is stuck)");
    }
    let drained = tokio::time::timeout_at(deadline, async {
        while let Some(ev) = bus.recv().await {
            if matches!(ev, BusEvent::Eos) {
                return true;
            }
        }
        false
    })
    .await
    .unwrap_or(false);
    if !drained {
        warn!(timeout_s = STOP_TIMEOUT.as_secs(), "EOS did not drain in time; stopping hard");
    }
    done.store(true, Ordering::Release);
    let p = pipeline.clone();
    let null = tokio::task::spawn_blocking(move || p.set_state(gst::State::Null));
    if tokio::time::timeout(NULL_TIMEOUT, null).await.is_err() {
        warn!("the pipeline did not reach NULL in time; abandoning it");
    }
    drop(pipeline);
    info!("pipeline stopped");
    if let Some(r) = reply {
        let _ = r.send(());
    }
}

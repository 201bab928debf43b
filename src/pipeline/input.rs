//! The real input, kept apart from the encoders: the capture runs in its own
//! pipeline (source, convert, scale to the planned picture) whose frames
//! are taken off its sink's pad into a short [`Feed`]; the output pipeline starts
//! at an appsrc fed by the frame clock ([`super::pacer`]). So a capture that
//! stalls, fails (a device unplugged) or ends (a FIFO's feeder gone) never
//! stops the encoders or the publishes: the frame clock repeats the last
//! frame, then shows the slate, while the capture is reopened here (a new
//! format is scaled into the same ladder).

use super::build::BuildError;
use super::plan::Plan;
use super::stats::PipelineStats;
use crate::config::{AtEnd, Source};
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tracing::{info, warn};

/// Captured frames waiting for the frame clock: enough to ride out jitter,
/// few enough to add little latency; past it the oldest is skipped.
const FEED_DEPTH: usize = 3;
/// Between reopening attempts of a failed capture.
const REOPEN_INITIAL: Duration = Duration::from_millis(500);
const REOPEN_MAX: Duration = Duration::from_secs(5);
/// A capture that delivers nothing for this long, with no error and no end
/// (a camera gone silent, a driver that stopped, a pipe whose writer hangs),
/// is stopped and reopened. If stopping it never returns (a read stuck in
/// the kernel), the capture stops beating and the watchdog is no longer fed.
pub const SILENT_REOPEN: Duration = Duration::from_secs(2);
/// A newly opened capture's first frame may take this long (a device that
/// was just plugged back in negotiates first).
const FIRST_FRAME_GRACE: Duration = Duration::from_secs(5);

/// Frames from the capture to the frame clock.
#[derive(Default)]
pub struct Feed {
    frames: Mutex<VecDeque<gst::Buffer>>,
    /// The input ended for good (a one-shot file): the output ends too.
    ended: AtomicBool,
}

impl Feed {
    fn push(&self, b: gst::Buffer, stats: &PipelineStats) {
        let mut q = self.frames.lock().unwrap_or_else(|p| p.into_inner());
        if q.len() >= FEED_DEPTH {
            q.pop_front();
            stats.frames_skipped.fetch_add(1, Ordering::Relaxed);
        }
        q.push_back(b);
    }

    pub fn pop(&self) -> Option<gst::Buffer> {
        self.frames.lock().unwrap_or_else(|p| p.into_inner()).pop_front()
    }

    pub fn is_empty(&self) -> bool {
        self.frames.lock().unwrap_or_else(|p| p.into_inner()).is_empty()
    }

    pub fn ended(&self) -> bool {
        self.ended.load(Ordering::Acquire)
    }
}

/// The input side of a session: built with the output pipeline, started once
/// it plays, stopped before its EOS.
pub struct InputRuntime {
    plan: Plan,
    stats: Arc<PipelineStats>,
    appsrc: gst_app::AppSrc,
    /// The output pipeline's appsrc for a file's own audio.
    audio_bridge: Option<gst_app::AppSrc>,
    mute: Option<gst::Element>,
    slate: Option<super::slate::Slate>,
    updates: super::pacer::LossUpdates,
    stop: Arc<AtomicBool>,
    waiting: Arc<Mutex<Option<gst::SingleShotClockId>>>,
    threads: Vec<(&'static str, std::sync::mpsc::Receiver<()>)>,
}

impl InputRuntime {
    pub fn new(
        plan: &Plan,
        stats: Arc<PipelineStats>,
        appsrc: gst_app::AppSrc,
        audio_bridge: Option<gst_app::AppSrc>,
        mute: Option<gst::Element>,
    ) -> Result<InputRuntime, BuildError> {
        let slate = super::slate::build(plan)?;
        Ok(InputRuntime {
            plan: plan.clone(),
            stats,
            appsrc,
            audio_bridge,
            mute,
            slate: Some(slate),
            updates: Arc::default(),
            stop: Arc::new(AtomicBool::new(false)),
            waiting: Arc::default(),
            threads: Vec::new(),
        })
    }

    /// Where new input-loss handling reaches the running frame clock.
    pub fn live_input_loss(&self) -> LiveInputLoss {
        LiveInputLoss { updates: self.updates.clone(), current: Mutex::new(self.plan.input_loss.clone()) }
    }

    /// Starts the capture and the frame clock (the output pipeline is going to PLAYING).
    pub fn start(&mut self, output: &gst::Pipeline) {
        let feed = Arc::new(Feed::default());
        let setup = super::pacer::PacerSetup {
            appsrc: self.appsrc.clone(),
            pipeline: output.clone(),
            feed: feed.clone(),
            slate: self.slate.take().expect("started once"),
            mute: self.mute.clone(),
            stats: self.stats.clone(),
            fps: self.plan.format.fps,
            after: self.plan.input_loss.after,
            repeat: self.plan.input_loss.repeat,
            updates: self.updates.clone(),
            stop: self.stop.clone(),
            waiting: self.waiting.clone(),
        };
        self.threads.push(("frame clock", spawn("frame-clock", move || super::pacer::run(setup))));
        let capture = Capture {
            plan: self.plan.clone(),
            stats: self.stats.clone(),
            feed,
            audio_bridge: self.audio_bridge.clone(),
            stop: self.stop.clone(),
            silence_logged: std::cell::Cell::new(false),
        };
        self.threads.push(("capture", spawn("capture", move || capture.run())));
    }

    /// Stops the frame clock (which ends the output's video with EOS) and the
    /// capture, waiting a bounded time: a capture blocked reading a stalled
    /// FIFO is left to finish on its own.
    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(id) = self.waiting.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
            id.unschedule();
        }
        let deadline = Instant::now() + Duration::from_secs(2);
        for (name, done) in self.threads.drain(..) {
            if done.recv_timeout(deadline.saturating_duration_since(Instant::now())).is_err() {
                warn!(thread = name, "did not stop in time; leaving it");
            }
        }
        // Never started: the output still needs its EOS.
        let _ = self.appsrc.end_of_stream();
    }
}

/// Runs `f` on a named thread; the receiver hears when it returns.
fn spawn(name: &str, f: impl FnOnce() + Send + 'static) -> std::sync::mpsc::Receiver<()> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            f();
            let _ = tx.send(());
        })
        .expect("spawn an input thread");
    rx
}

struct Capture {
    plan: Plan,
    stats: Arc<PipelineStats>,
    feed: Arc<Feed>,
    audio_bridge: Option<gst_app::AppSrc>,
    stop: Arc<AtomicBool>,
    /// The silence warning was given; cleared when frames come back.
    silence_logged: std::cell::Cell<bool>,
}

/// How one run of the capture pipeline ended.
enum Ended {
    Stopped,
    Failed,
    Eos,
}

impl Capture {
    fn run(self) {
        let mut delay = REOPEN_INITIAL;
        let mut first = true;
        while !self.stop.load(Ordering::Acquire) {
            self.stats.capture_heartbeat();
            let format = if first { self.plan.format } else { self.reprobe() };
            let opened = if first { None } else { self.wait_for_feeder() };
            if self.stop.load(Ordering::Acquire) {
                break;
            }
            let ended = match self.build(format) {
                Ok(p) => {
                    let r = self.play(&p, opened);
                    // After an error or EOS the streaming threads are done: quick.
                    let _ = p.set_state(gst::State::Null);
                    r
                }
                Err(e) => {
                    warn!(error = %e, "cannot build the capture");
                    Ended::Failed
                }
            };
            first = false;
            match ended {
                Ended::Stopped => break,
                Ended::Eos if self.at_end() == AtEnd::Stop => {
                    // The frame clock sends what the feed still holds, then
                    // ends the video; the output sees that EOS at its capture
                    // tee and only then calls the source ended (a stop now
                    // would lose the frames still in the feed: the benchmark's
                    // channel got 299 of the file's 300).
                    info!("source ended");
                    self.feed.ended.store(true, Ordering::Release);
                    break;
                }
                Ended::Eos => {
                    info!("source ended: reopening it (the outputs carry the slate meanwhile)");
                    delay = REOPEN_INITIAL;
                }
                Ended::Failed => {
                    self.sleep(delay);
                    delay = (delay * 2).min(REOPEN_MAX);
                }
            }
        }
    }

    fn at_end(&self) -> AtEnd {
        match &self.plan.source {
            Source::File { at_end, .. } => *at_end,
            _ => AtEnd::Reopen,
        }
    }

    fn sleep(&self, d: Duration) {
        let until = Instant::now() + d;
        while !self.stop.load(Ordering::Acquire) && Instant::now() < until {
            self.stats.capture_heartbeat();
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The format a reopened device delivers now (it may have changed); a
    /// file or FIFO is not probed (a probe would steal a FIFO's data), its
    /// decoder negotiates whatever comes.
    fn reprobe(&self) -> super::plan::SourceFormat {
        match &self.plan.source {
            Source::V4l2 { .. } | Source::DeckLink { .. } => super::probe::resolve_format(&self.plan.source).unwrap_or(self.plan.format),
            _ => self.plan.format,
        }
    }

    /// A FIFO being reopened: waits (interruptibly) for a feeder, and keeps
    /// a reader open until the capture has opened it, so the feeder is not
    /// cut off in between.
    fn wait_for_feeder(&self) -> Option<std::fs::File> {
        let Source::File { path, .. } = &self.plan.source else { return None };
        if !super::fifo::is_fifo(path) {
            return None;
        }
        while !self.stop.load(Ordering::Acquire) {
            self.stats.capture_heartbeat();
            if let Some(f) = super::fifo::reader_with_feeder(path, Duration::from_millis(200)) {
                return Some(f);
            }
        }
        None
    }

    fn build(&self, format: super::plan::SourceFormat) -> Result<gst::Pipeline, BuildError> {
        let pipeline = gst::Pipeline::with_name("capture");
        let mut plan = self.plan.clone();
        plan.format = format;
        let (video, audio) = super::source::video(&pipeline, &plan, &self.stats)?;
        let convert = gst::ElementFactory::make("videoconvert").build()?;
        let scale = gst::ElementFactory::make("videoscale").property("add-borders", true).build()?;
        let f = self.plan.format;
        let caps = super::build::picture_caps(f.width, f.height, None);
        let filter = gst::ElementFactory::make("capsfilter").property("caps", caps).build()?;
        pipeline.add_many([&convert, &scale, &filter])?;
        gst::Element::link_many([&video, &convert, &scale, &filter]).map_err(|_| BuildError::Link("capture".into()))?;
        frames_out(&pipeline, &filter, self.feed.clone(), self.stats.clone())?;
        if let Some(audio) = audio {
            self.bridge_audio(&pipeline, &audio)?;
        }
        Ok(pipeline)
    }

    /// A file's own audio crosses to the output pipeline, stamped there on arrival.
    fn bridge_audio(&self, pipeline: &gst::Pipeline, from: &gst::Element) -> Result<(), BuildError> {
        let Some(bridge) = self.audio_bridge.clone() else { return Ok(()) };
        let sink = gst_app::AppSink::builder()
            .sync(false)
            .async_(false)
            .callbacks(
                gst_app::AppSinkCallbacks::builder()
                    .new_sample(move |sink| {
                        let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                        if let Some(caps) = sample.caps_owned()
                            && bridge.caps().as_ref() != Some(&caps)
                        {
                            bridge.set_caps(Some(&caps));
                        }
                        if let Some(b) = sample.buffer() {
                            let mut b = b.copy();
                            let m = b.make_mut();
                            m.set_pts(gst::ClockTime::NONE);
                            m.set_dts(gst::ClockTime::NONE);
                            let _ = bridge.push_buffer(b);
                        }
                        Ok(gst::FlowSuccess::Ok)
                    })
                    .build(),
            )
            .build();
        pipeline.add(&sink)?;
        from.link(&sink).map_err(|_| BuildError::Link("file audio".into()))
    }

    /// Whether this run of the capture has gone silent: nothing for
    /// [`SILENT_REOPEN`] since its last frame (or [`FIRST_FRAME_GRACE`]
    /// since it opened, if it has delivered none yet).
    fn silent(&self, opened_at: Instant, frames_at_open: u64) -> bool {
        let delivered = self.stats.captured_frames.load(Ordering::Relaxed) > frames_at_open;
        if delivered {
            let silent = self.stats.since_last_capture().is_some_and(|q| q >= SILENT_REOPEN);
            if !silent {
                self.silence_logged.set(false);
            }
            silent
        } else {
            opened_at.elapsed() >= FIRST_FRAME_GRACE
        }
    }

    /// Plays one capture pipeline until it fails, ends, goes silent or is stopped.
    fn play(&self, pipeline: &gst::Pipeline, feeder: Option<std::fs::File>) -> Ended {
        let bus = pipeline.bus().expect("a pipeline has a bus");
        if pipeline.set_state(gst::State::Playing).is_err() {
            warn!("the capture cannot start; retrying");
            return Ended::Failed;
        }
        let mut feeder = feeder;
        let opened_at = Instant::now();
        let frames_at_open = self.stats.captured_frames.load(Ordering::Relaxed);
        loop {
            self.stats.capture_heartbeat();
            if self.stop.load(Ordering::Acquire) {
                return Ended::Stopped;
            }
            if self.silent(opened_at, frames_at_open) {
                if !self.silence_logged.replace(true) {
                    warn!(silent_s = SILENT_REOPEN.as_secs(), "the capture delivers no frames: reopening it until it does (the outputs carry the slate meanwhile)");
                }
                return Ended::Failed;
            }
            // Our reader of a reopened FIFO goes once the capture holds it open.
            if feeder.is_some() && opened_at.elapsed() > Duration::from_secs(1) {
                feeder = None;
            }
            let Some(msg) = bus.timed_pop(gst::ClockTime::from_mseconds(100)) else { continue };
            match msg.view() {
                gst::MessageView::Error(e) => {
                    let element = msg.src().map(|s| s.path_string().to_string()).unwrap_or_default();
                    // GStreamer's own text names files and devices: say only what kind of failure.
                    warn!(%element, error = super::probe::error_kind(&e.error()), "the capture failed; reopening it (the outputs carry the slate meanwhile)");
                    return Ended::Failed;
                }
                gst::MessageView::Eos(_) => return Ended::Eos,
                _ => {}
            }
        }
    }
}

/// Where captured frames leave the capture: a probe on a fakesink's pad
/// takes each buffer out of the pipeline into `feed`, so the frame clock
/// holds its only reference, retimes it in place, and once the encoders are
/// done with it the picture goes back to the capture's pool. (An appsink
/// keeps its last sample until the next frame comes: the frame clock had to
/// copy each buffer, its memory still shared with the appsink's, the pool
/// discarded every picture it got back, and in the benchmark the capture
/// allocated a new 3 MB picture for each 1080p frame, 300 for 300; 4 to 9
/// for the whole run now.)
fn frames_out(pipeline: &gst::Pipeline, from: &gst::Element, feed: Arc<Feed>, stats: Arc<PipelineStats>) -> Result<(), BuildError> {
    let sink = gst::ElementFactory::make("fakesink")
        .property("sync", false)
        .property("async", false)
        .property("enable-last-sample", false)
        .build()?;
    pipeline.add(&sink)?;
    from.link(&sink).map_err(|_| BuildError::Link("capture".into()))?;
    let pad = sink.static_pad("sink").expect("fakesink sink");
    super::stats::install_capture_probe(&pad, stats.clone());
    pad.add_probe(gst::PadProbeType::BUFFER, move |_, info| match info.data.take() {
        Some(gst::PadProbeData::Buffer(b)) => {
            feed.push(b, &stats);
            gst::PadProbeReturn::Handled
        }
        other => {
            info.data = other;
            gst::PadProbeReturn::Ok
        }
    });
    Ok(())
}

/// Input-loss handling set while playing (a live `configure`): the timings
/// go to the frame clock's next slot; a new slate image is built into a
/// slate of its own first (its pipeline plays only while it is on air).
pub struct LiveInputLoss {
    updates: super::pacer::LossUpdates,
    current: Mutex<crate::config::InputLoss>,
}

impl LiveInputLoss {
    /// Hands `plan`'s input-loss handling to the frame clock; false when it
    /// is what runs already.
    pub fn set(&self, plan: &Plan) -> Result<bool, BuildError> {
        let mut current = self.current.lock().unwrap_or_else(|p| p.into_inner());
        let next = &plan.input_loss;
        if *current == *next {
            return Ok(false);
        }
        let slate = if current.slate_image != next.slate_image { Some(super::slate::build(plan)?) } else { None };
        let mut pending = self.updates.lock().unwrap_or_else(|p| p.into_inner());
        // An update the clock has not taken yet: its slate stays unless replaced.
        let slate = slate.or_else(|| pending.take().and_then(|u| u.slate));
        *pending = Some(super::pacer::LossUpdate { after: next.after, repeat: next.repeat, slate });
        *current = next.clone();
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_captured_frame_reaches_the_frame_clock_as_its_only_reference() {
        gst::init().unwrap();
        let pipeline = gst::Pipeline::new();
        let src = gst::ElementFactory::make("videotestsrc").property("is-live", true).property("num-buffers", 20i32).build().unwrap();
        let caps = super::super::build::picture_caps(320, 240, Some(crate::config::Fps { num: 30, den: 1 }));
        let filter = gst::ElementFactory::make("capsfilter").property("caps", caps).build().unwrap();
        pipeline.add_many([&src, &filter]).unwrap();
        src.link(&filter).unwrap();
        let (feed, stats) = (Arc::new(Feed::default()), Arc::new(PipelineStats::new(std::iter::empty())));
        frames_out(&pipeline, &filter, feed.clone(), stats.clone()).unwrap();
        pipeline.set_state(gst::State::Playing).unwrap();
        // Taken as soon as it arrives, as the frame clock would, long before the next frame.
        let (mut taken, mut shared) = (0, 0);
        let deadline = Instant::now() + Duration::from_secs(10);
        while taken < 20 && Instant::now() < deadline {
            match feed.pop() {
                Some(b) => {
                    taken += 1;
                    shared += usize::from(!b.is_writable());
                }
                None => std::thread::sleep(Duration::from_millis(1)),
            }
        }
        pipeline.set_state(gst::State::Null).unwrap();
        assert_eq!(taken, 20, "frames taken off the capture");
        assert_eq!(shared, 0, "frames still referenced elsewhere when the frame clock got them: each would be copied and lost to its pool");
        assert_eq!(stats.captured_frames.load(Ordering::Relaxed), 20);
    }
}

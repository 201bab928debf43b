//! The slate: what the outputs carry while the input is lost. A configured
//! PNG/JPEG (scaled, letterboxed, to the picture size), or a built-in card
//! saying "signal lost", the device id and a running clock. It is its own
//! small pipeline, playing only while the input is lost, whose newest frame
//! the frame clock takes; its frames never pass the capture's counters.
//! It is built on the first loss, not at start: the card's text brings in
//! pango, cairo and fontconfig (about 4 MB resident and a thread) that a box
//! whose input never drops never needs. What it is made of is checked at
//! start, so a missing element is still an error before anything plays.

use super::build::BuildError;
use super::plan::Plan;
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use std::sync::{mpsc, Arc, OnceLock};
use tracing::warn;

/// A handle on the slate pipeline; building, starting and stopping happen on
/// its own thread, so the frame clock never waits for a state change.
pub struct Slate {
    /// The slate pipeline's appsink, once built.
    sink: Arc<OnceLock<gst_app::AppSink>>,
    control: mpsc::Sender<bool>,
}

impl Slate {
    pub fn start(&self) {
        let _ = self.control.send(true);
    }

    pub fn stop(&self) {
        let _ = self.control.send(false);
    }

    /// The newest slate frame since the last call, if one came.
    pub fn newest(&self) -> Option<gst::Buffer> {
        let sample = self.sink.get()?.try_pull_sample(gst::ClockTime::ZERO)?;
        sample.buffer_owned()
    }
}

fn caps(plan: &Plan, with_rate: bool) -> gst::Caps {
    let f = plan.format;
    super::build::picture_caps(f.width, f.height, with_rate.then_some(f.fps))
}

fn make(factory: &str) -> Result<gst::Element, BuildError> {
    gst::ElementFactory::make(factory).build().map_err(|_| BuildError::MissingElement { element: factory.into(), package: None })
}

/// Text on the built-in card, when pango (gstreamer1.0-x) is there.
fn text(plan: &Plan) -> Vec<gst::Element> {
    let title = gst::ElementFactory::make("textoverlay")
        .property("text", format!("signal lost\n{}", plan.device_id))
        .property_from_str("halignment", "center")
        .property_from_str("valignment", "center")
        .property_from_str("line-alignment", "center")
        .property("font-desc", "Sans 36")
        .build();
    let clock = gst::ElementFactory::make("clockoverlay")
        .property("time-format", "%Y-%m-%d %H:%M:%S")
        .property_from_str("halignment", "center")
        .property_from_str("valignment", "bottom")
        .property("font-desc", "Sans 24")
        .property("shaded-background", true)
        .build();
    match (title, clock) {
        (Ok(t), Ok(c)) => vec![t, c],
        _ => {
            warn!("textoverlay is not installed (package gstreamer1.0-x): the slate is a plain card");
            Vec::new()
        }
    }
}

/// Elements every slate is made of; the card's text is optional.
const NEEDED: &[&str] = &["imagefreeze", "capsfilter", "videoconvert", "appsink"];
const NEEDED_FOR_IMAGE: &[&str] = &["filesrc", "decodebin", "videoscale"];
const NEEDED_FOR_CARD: &[&str] = &["videotestsrc"];

/// Checks the slate can be made here and starts its thread; the pipeline
/// itself is built on the first [`Slate::start`].
pub fn build(plan: &Plan) -> Result<Slate, BuildError> {
    let extra = if plan.input_loss.slate_image.is_some() { NEEDED_FOR_IMAGE } else { NEEDED_FOR_CARD };
    if let Some(missing) = NEEDED.iter().chain(extra).find(|f| gst::ElementFactory::find(f).is_none()) {
        return Err(BuildError::MissingElement { element: (*missing).into(), package: None });
    }
    let sink = Arc::new(OnceLock::new());
    let (control, rx) = mpsc::channel::<bool>();
    let (plan, cell) = (plan.clone(), sink.clone());
    std::thread::Builder::new()
        .name("slate".into())
        .spawn(move || control_loop(&plan, &cell, rx))
        .map_err(|_| BuildError::Link("slate thread".into()))?;
    Ok(Slate { sink, control })
}

fn assemble(plan: &Plan) -> Result<(gst::Pipeline, gst_app::AppSink), BuildError> {
    let pipeline = gst::Pipeline::with_name("slate");
    let sink = gst_app::AppSink::builder().sync(false).max_buffers(1).drop(true).caps(&caps(plan, true)).build();
    let freeze = gst::ElementFactory::make("imagefreeze").property("is-live", true).build()?;
    let rate = gst::ElementFactory::make("capsfilter").property("caps", caps(plan, true)).build()?;
    let convert = make("videoconvert")?;
    match &plan.input_loss.slate_image {
        Some(path) => {
            // filesrc ! decodebin ! videoconvert ! videoscale ! I420 WxH ! imagefreeze ! rate ! appsink
            let src = gst::ElementFactory::make("filesrc").property("location", path.to_string_lossy().as_ref()).build()?;
            let decode = make("decodebin")?;
            let scale = gst::ElementFactory::make("videoscale").property("add-borders", true).build()?;
            let size = gst::ElementFactory::make("capsfilter").property("caps", caps(plan, false)).build()?;
            pipeline.add_many([&src, &decode, &convert, &scale, &size, &freeze, &rate, sink.upcast_ref()])?;
            src.link(&decode).map_err(|_| BuildError::Link("slate image".into()))?;
            gst::Element::link_many([&convert, &scale, &size, &freeze, &rate, sink.upcast_ref()])
                .map_err(|_| BuildError::Link("slate image".into()))?;
            let to = convert.static_pad("sink").expect("videoconvert sink");
            decode.connect_pad_added(move |_, pad| {
                if !to.is_linked() {
                    let _ = pad.link(&to);
                }
            });
        }
        None => {
            // videotestsrc (one dark frame) ! imagefreeze ! text ! clock ! convert ! rate ! appsink
            let src = gst::ElementFactory::make("videotestsrc")
                .property_from_str("pattern", "solid-color")
                .property("foreground-color", 0xff1a2a3au32)
                .property("num-buffers", 1i32)
                .build()?;
            let size = gst::ElementFactory::make("capsfilter").property("caps", caps(plan, false)).build()?;
            let mut chain: Vec<gst::Element> = vec![src, size, freeze];
            chain.extend(text(plan));
            chain.extend([convert, rate, sink.clone().upcast()]);
            pipeline.add_many(chain.iter())?;
            gst::Element::link_many(chain.iter()).map_err(|_| BuildError::Link("slate card".into()))?;
        }
    }
    Ok((pipeline, sink))
}

/// Plays the slate pipeline while asked to (building it the first time);
/// Null otherwise and at the end (every handle dropped).
fn control_loop(plan: &Plan, sink: &OnceLock<gst_app::AppSink>, rx: mpsc::Receiver<bool>) {
    let mut pipeline: Option<gst::Pipeline> = None;
    let mut playing = false;
    while let Ok(mut on) = rx.recv() {
        // Only the newest request matters.
        while let Ok(next) = rx.try_recv() {
            on = next;
        }
        if on == playing {
            continue;
        }
        if pipeline.is_none() {
            match assemble(plan) {
                Ok((p, s)) => {
                    let _ = sink.set(s);
                    pipeline = Some(p);
                }
                Err(e) => {
                    warn!(error = %e, "the slate cannot be built; the last frame stays on instead");
                    continue;
                }
            }
        }
        let Some(p) = &pipeline else { continue };
        let state = if on { gst::State::Playing } else { gst::State::Null };
        if p.set_state(state).is_err() {
            warn!("the slate pipeline cannot start; the last frame stays on instead");
            let _ = p.set_state(gst::State::Null);
            playing = false;
            continue;
        }
        playing = on;
    }
    if let Some(p) = pipeline {
        let _ = p.set_state(gst::State::Null);
    }
}

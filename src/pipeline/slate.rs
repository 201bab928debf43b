//! The slate: what the outputs carry while the input is lost. A configured
//! PNG/JPEG (scaled, letterboxed, to the picture size), or a built-in card
//! saying "signal lost", the device id and a running clock. It is its own
//! small pipeline, playing only while the input is lost, whose newest frame
//! the frame clock takes; its frames never pass the capture's counters.

use super::build::BuildError;
use super::plan::Plan;
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use std::sync::mpsc;
use tracing::warn;

/// A handle on the slate pipeline; starting and stopping happen on its own
/// thread, so the frame clock never waits for a state change.
pub struct Slate {
    sink: gst_app::AppSink,
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
        let sample = self.sink.try_pull_sample(gst::ClockTime::ZERO)?;
        sample.buffer_owned()
    }
}

fn caps(plan: &Plan, with_rate: bool) -> gst::Caps {
    let f = plan.format;
    let mut b = gst::Caps::builder("video/x-raw")
        .field("format", "I420")
        .field("width", f.width as i32)
        .field("height", f.height as i32)
        .field("pixel-aspect-ratio", gst::Fraction::new(1, 1));
    if with_rate {
        b = b.field("framerate", gst::Fraction::new(f.fps.num as i32, f.fps.den as i32));
    }
    b.build()
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

pub fn build(plan: &Plan) -> Result<Slate, BuildError> {
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
    let (control, rx) = mpsc::channel::<bool>();
    std::thread::Builder::new()
        .name("slate".into())
        .spawn(move || control_loop(pipeline, rx))
        .map_err(|_| BuildError::Link("slate thread".into()))?;
    Ok(Slate { sink, control })
}

/// Plays the slate pipeline while asked to; Null otherwise and at the end
/// (every handle dropped).
fn control_loop(pipeline: gst::Pipeline, rx: mpsc::Receiver<bool>) {
    let mut playing = false;
    while let Ok(mut on) = rx.recv() {
        // Only the newest request matters.
        while let Ok(next) = rx.try_recv() {
            on = next;
        }
        if on == playing {
            continue;
        }
        let state = if on { gst::State::Playing } else { gst::State::Null };
        if pipeline.set_state(state).is_err() {
            warn!("the slate pipeline cannot start; the last frame stays on instead");
            let _ = pipeline.set_state(gst::State::Null);
            playing = false;
            continue;
        }
        playing = on;
    }
    let _ = pipeline.set_state(gst::State::Null);
}

//! The only code that creates GStreamer elements: a [`Plan`] in, a pipeline
//! out. One capture, a tee per picture size (the scaling cascade), one
//! encoder per rung, AAC encoded once and shared; each rung's encoded stream
//! leaves through an appsink to the output actors (publishes and the
//! recording, each with its own failure domain). No launch strings: URLs and
//! keys never touch GStreamer.

use super::keyframes;
use super::plan::{Plan, RungPlan};
use super::stats::{PipelineStats, RungStats};
use crate::board::EncoderSettings;
use crate::config::{AudioSource, Source};
use crate::egress::{AudioFrame, Media, MediaSender, VideoFrame};
use bytes::Bytes;
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use std::collections::HashMap;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::Mutex;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum BuildError {
    /// The element name, and where it comes from when that is known.
    #[error("GStreamer element `{element}` is not installed{}", package.map(|p| format!(" (package {p})")).unwrap_or_default())]
    MissingElement { element: String, package: Option<&'static str> },
    #[error("element `{element}` has no property `{property}` (check the board profile)")]
    NoProperty { element: String, property: String },
    #[error("element `{element}`: `{value}` is not a valid value for `{property}`")]
    BadValue { element: String, property: String, value: String },
    #[error("invalid caps `{0}` in the board profile")]
    BadCaps(String),
    #[error("cannot link {0}")]
    Link(String),
    #[error("GStreamer: {0}")]
    Gst(#[from] gst::glib::BoolError),
}

/// Where each rung's (and the audio's) encoded media goes.
#[derive(Default, Clone)]
pub struct Taps {
    /// Rung name -> the senders of every output (publish, recording) of that rung.
    pub video: HashMap<String, Vec<MediaSender>>,
    /// Every output gets the shared audio.
    pub audio: Vec<MediaSender>,
    /// The timeline's origin since 1970, which the frame clock records and
    /// `epoch_aligned` outputs stamp their segments by.
    pub epoch: super::epoch::EpochOrigin,
}

pub struct Built {
    pub pipeline: gst::Pipeline,
    pub stats: Arc<PipelineStats>,
    /// Where a stop injects EOS besides the sources: the capture tee.
    pub eos_pads: Vec<gst::Pad>,
    /// The real capture and the frame clock feeding the output's appsrc.
    pub input: super::input::InputRuntime,
    /// Every rung's encoder, for bitrate changes while playing.
    pub bitrates: Arc<super::bitrate::LiveBitrates>,
}

fn make(factory: &str) -> Result<gst::Element, BuildError> {
    gst::ElementFactory::make(factory).build().map_err(|_| BuildError::MissingElement { element: factory.into(), package: None })
}

fn make_named(factory: &str, name: &str) -> Result<gst::Element, BuildError> {
    gst::ElementFactory::make(factory).name(name).build().map_err(|_| BuildError::MissingElement { element: factory.into(), package: None })
}

/// Sets a property from its string form (enum nick, number, boolean), as
/// board profiles spell them, refusing unknown properties instead of panicking.
pub fn set_from_str(element: &gst::Element, property: &str, value: &str) -> Result<(), BuildError> {
    let factory = element.factory().map(|f| f.name().to_string()).unwrap_or_default();
    let pspec = element
        .find_property(property)
        .ok_or_else(|| BuildError::NoProperty { element: factory.clone(), property: property.into() })?;
    let v = gst::glib::Value::deserialize(value, pspec.value_type())
        .map_err(|_| BuildError::BadValue { element: factory, property: property.into(), value: value.into() })?;
    element.set_property_from_value(property, &v);
    Ok(())
}

fn capsfilter(caps: gst::Caps) -> Result<gst::Element, BuildError> {
    Ok(gst::ElementFactory::make("capsfilter").property("caps", caps).build()?)
}

/// A small queue: a few frames, no time or byte limit, never leaky (a rung
/// must never drop a frame the others encode).
fn queue(buffers: u32) -> Result<gst::Element, BuildError> {
    Ok(gst::ElementFactory::make("queue")
        .property("max-size-buffers", buffers)
        .property("max-size-time", 0u64)
        .property("max-size-bytes", 0u32)
        .build()?)
}

/// Raw pictures a queue in front of a scaler or an encoder may hold: up to
/// [`RAW_QUEUE_FRAMES`], and no more than [`RAW_QUEUE_BYTES`] of them (as
/// gst-launch's default queues are bounded).
/// Every picture held is one more the capture's pool must allocate, and
/// at start, while the encoders open, these queues fill.
fn raw_queue() -> Result<gst::Element, BuildError> {
    let q = queue(RAW_QUEUE_FRAMES)?;
    q.set_property("max-size-bytes", RAW_QUEUE_BYTES);
    Ok(q)
}

/// Deep enough to absorb encoder start-up (x264 init takes ~0.2 s natively,
/// far more under emulation) so the live capture never skips a frame one
/// rung would miss...
const RAW_QUEUE_FRAMES: u32 = 12;
/// ...of pictures up to 360p; 9 of 540p, 6 of 720p, 3 of 1080p, 1 of 4K (a
/// queue takes a picture while it holds less than this). Every picture these
/// queues hold at start, while the encoders open, is one the capture's pool
/// keeps for the whole run: at 12 MB (4 of 1080p) the pool grew to 5-7
/// pictures in some benchmark runs, at 7 MB it stays at 4, and the frame
/// clock never had to repeat a frame.
const RAW_QUEUE_BYTES: u32 = 7_000_000;

/// The colour space of every picture of the ladder, named in the caps of
/// the capture's output and of each scaler's. Caps without one let each size
/// take GStreamer's default for its height (BT.709 above 576 lines, BT.601
/// below): the 540p and 360p rungs were converted to BT.601 by their scaler
/// (a matrix on every pixel, more than half of the 540p scaler's CPU) and signalled so,
/// a ladder whose rungs disagreed on colour. A capture in another colour
/// space is converted once, in the capture.
pub const LADDER_COLORIMETRY: &str = "bt709";

/// Raw pictures of the ladder: I420, square pixels, BT.709, at `w`x`h` (and
/// the planned rate when `fps` is given).
pub fn picture_caps(w: u32, h: u32, fps: Option<crate::config::Fps>) -> gst::Caps {
    let mut b = gst::Caps::builder("video/x-raw")
        .field("format", "I420")
        .field("width", w as i32)
        .field("height", h as i32)
        .field("pixel-aspect-ratio", gst::Fraction::new(1, 1))
        .field("colorimetry", LADDER_COLORIMETRY);
    if let Some(f) = fps {
        b = b.field("framerate", gst::Fraction::new(f.num as i32, f.den as i32));
    }
    b.build()
}

fn raw_caps(w: u32, h: u32, plan: &Plan) -> gst::Caps {
    picture_caps(w, h, Some(plan.format.fps))
}

pub fn build(plan: &Plan, taps: &Taps) -> Result<Built, BuildError> {
    let pipeline = gst::Pipeline::with_name("fieldcast");
    let mut stats = PipelineStats::new(plan.rungs.iter().map(|r| r.name.clone()));
    stats.epoch = taps.epoch.clone();
    let stats = Arc::new(stats);
    // Node 0: the frame clock's output, I420 at the planned size and rate
    // (the capture itself runs in its own pipeline, see `input`).
    let appsrc = gst_app::AppSrc::builder()
        .name("frames")
        .caps(&raw_caps(plan.format.width, plan.format.height, plan))
        .format(gst::Format::Time)
        .is_live(true)
        .do_timestamp(false)
        .block(true)
        .build();
    appsrc.set_property("max-buffers", 2u64);
    let capture_tee = make_named("tee", "capture")?;
    pipeline.add_many([appsrc.upcast_ref(), &capture_tee])?;
    appsrc.link(&capture_tee).map_err(|_| BuildError::Link("capture".into()))?;
    let eos_pads = vec![capture_tee.static_pad("sink").expect("tee sink")];
    let frame_ns = plan.format.fps.frame_ns();
    let epoch = plan.epoch_aligned.then(|| stats.epoch.clone());
    keyframes::install(&capture_tee.static_pad("sink").expect("tee sink"), plan.gop.duration_ns, frame_ns, epoch);
    watch_capture_eos(&capture_tee);
    // A file's own audio arrives from the capture pipeline through an appsrc.
    let audio_bridge = (plan.audio.audio.source == AudioSource::File).then(|| {
        gst_app::AppSrc::builder().name("file_audio").format(gst::Format::Time).is_live(true).do_timestamp(true).build()
    });
    if let Some(b) = &audio_bridge {
        pipeline.add(b)?;
    }
    let audio_from_source = audio_bridge.as_ref().map(|b| b.clone().upcast::<gst::Element>());
    snapshot_tap(&pipeline, &capture_tee)?;

    // The cascade: each node scaled from its parent's tee.
    let mut tees: Vec<gst::Element> = vec![capture_tee];
    for (i, node) in plan.scalers.iter().enumerate().skip(1) {
        let parent = tees[node.from.expect("only node 0 has no parent")].clone();
        let q = raw_queue()?;
        // One thread per scaler: every core is busy encoding, and splitting
        // a frame across two threads cost 5-10% more CPU in the benchmark.
        let scale = gst::ElementFactory::make("videoscale").build()?;
        let f = capsfilter(raw_caps(node.width, node.height, plan))?;
        let tee = make_named("tee", &format!("scale{i}_{}x{}", node.width, node.height))?;
        pipeline.add_many([&q, &scale, &f, &tee])?;
        gst::Element::link_many([&parent, &q, &scale, &f, &tee]).map_err(|_| BuildError::Link(format!("scaler {i}")))?;
        tees.push(tee);
    }

    // Audio, encoded once.
    let audio_tee = super::source::audio(&pipeline, plan, audio_from_source)?;
    // Always consumed, even with no output: a tee with no branch stops the source.
    {
        let q = queue(50)?;
        let sink = audio_appsink(taps.audio.clone(), stats.clone());
        pipeline.add_many([&q, &sink])?;
        gst::Element::link_many([&audio_tee, &q, &sink]).map_err(|_| BuildError::Link("audio appsink".into()))?;
    }

    let mut encoders = Vec::new();
    for rung in &plan.rungs {
        let (rung_tee, enc) = encode_rung(&pipeline, rung, &tees[rung.scaler])?;
        encoders.push((rung.name.clone(), enc, rung.encoder.clone(), rung.bitrate_bps));
        let senders = taps.video.get(&rung.name).cloned().unwrap_or_default();
        let rung_stats = stats.rung(&rung.name).expect("stats for every rung");
        let q = queue(30)?;
        let sink = video_appsink(senders, rung_stats, stats.clone());
        pipeline.add_many([&q, &sink])?;
        gst::Element::link_many([&rung_tee, &q, &sink]).map_err(|_| BuildError::Link(format!("{} appsink", rung.name)))?;
    }
    let mute = pipeline.by_name(super::source::AUDIO_MUTE);
    let input = super::input::InputRuntime::new(plan, stats.clone(), appsrc, audio_bridge, mute)?;
    let bitrates = Arc::new(super::bitrate::LiveBitrates::new(encoders));
    Ok(Built { pipeline, stats, eos_pads, input, bitrates })
}

/// Name prefix of each rung's encoder input queue (its fill level is telemetry).
pub const ENCODER_QUEUE: &str = "encq_";
/// The sink keeping the latest captured frame, for snapshots.
pub const SNAPSHOT_SINK: &str = "snapshot";

/// A branch that only remembers the newest captured frame (`last-sample`):
/// a one-frame leaky queue into a fakesink, never holding up the capture.
fn snapshot_tap(pipeline: &gst::Pipeline, capture_tee: &gst::Element) -> Result<(), BuildError> {
    let q = gst::ElementFactory::make("queue")
        .property("max-size-buffers", 1u32)
        .property("max-size-time", 0u64)
        .property("max-size-bytes", 0u32)
        .property_from_str("leaky", "downstream")
        .build()?;
    let sink = gst::ElementFactory::make("fakesink")
        .name(SNAPSHOT_SINK)
        .property("sync", false)
        .property("async", false)
        .property("enable-last-sample", true)
        .build()?;
    pipeline.add_many([&q, &sink])?;
    gst::Element::link_many([capture_tee, &q, &sink]).map_err(|_| BuildError::Link("snapshot tap".into()))
}

/// Name of the bus message posted when the capture ends for good (a
/// one-shot file): live audio never ends by itself, so the pipeline would
/// never post EOS.
pub const SOURCE_ENDED: &str = "fieldcast-source-ended";

fn watch_capture_eos(tee: &gst::Element) {
    let pad = tee.static_pad("sink").expect("tee sink");
    pad.add_probe(gst::PadProbeType::EVENT_DOWNSTREAM, |pad, info| {
        if let Some(ev) = info.event()
            && ev.type_() == gst::EventType::Eos
            && let Some(parent) = pad.parent_element()
        {
            let _ = parent.post_message(gst::message::Application::new(gst::Structure::new_empty(SOURCE_ENDED)));
        }
        gst::PadProbeReturn::Ok
    });
}

/// One rung: queue, the board's input chain, the encoder set from its
/// resolved settings, h264parse re-inserting SPS/PPS at every IDR, AVC out.
fn encode_rung(pipeline: &gst::Pipeline, rung: &RungPlan, input: &gst::Element) -> Result<(gst::Element, gst::Element), BuildError> {
    let s: &EncoderSettings = &rung.encoder;
    let q = raw_queue()?;
    q.set_property("name", format!("{ENCODER_QUEUE}{}", rung.name));
    let mut elements: Vec<gst::Element> = vec![q];
    for factory in &s.input_chain {
        elements.push(make(factory)?);
    }
    if let Some(c) = &s.input_caps {
        elements.push(capsfilter(gst::Caps::from_str(c).map_err(|_| BuildError::BadCaps(c.clone()))?)?);
    }
    let enc = make_named(&s.element, &format!("enc_{}", rung.name))?;
    for (k, v) in &s.properties {
        set_from_str(&enc, k, v)?;
    }
    if !s.controls.is_empty() {
        let mut b = gst::Structure::builder("controls");
        for (k, v) in &s.controls {
            b = b.field(k.as_str(), *v as i32);
        }
        enc.set_property("extra-controls", b.build());
    }
    elements.push(enc.clone());
    let mut enc_caps = gst::Caps::builder("video/x-h264");
    if let Some(p) = &s.caps_profile {
        enc_caps = enc_caps.field("profile", p.as_str());
    }
    if let Some(l) = &s.caps_level {
        enc_caps = enc_caps.field("level", l.as_str());
    }
    elements.push(capsfilter(enc_caps.build())?);
    elements.push(gst::ElementFactory::make("h264parse").property("config-interval", -1i32).build()?);
    elements.push(capsfilter(
        gst::Caps::builder("video/x-h264").field("stream-format", "avc").field("alignment", "au").build(),
    )?);
    let tee = make_named("tee", &format!("rung_{}", rung.name))?;
    elements.push(tee.clone());
    let refs: Vec<&gst::Element> = elements.iter().collect();
    pipeline.add_many(refs.iter().copied())?;
    gst::Element::link_many(std::iter::once(input).chain(refs.iter().copied()))
        .map_err(|_| BuildError::Link(format!("rung {} through {}", rung.name, s.element)))?;
    Ok((tee, enc))
}

fn running_time(sample: &gst::Sample, t: Option<gst::ClockTime>) -> Option<u64> {
    let t = t?;
    let seg = sample.segment()?;
    let seg = seg.downcast_ref::<gst::ClockTime>()?;
    seg.to_running_time(t).map(|t| t.nseconds())
}

fn codec_data(sample: &gst::Sample) -> Option<Bytes> {
    let caps = sample.caps()?;
    let buf = caps.structure(0)?.get::<gst::Buffer>("codec_data").ok()?;
    let map = buf.map_readable().ok()?;
    Some(Bytes::copy_from_slice(map.as_slice()))
}

/// An appsink that hands every encoded buffer to `senders`: the codec
/// configuration first (and again whenever it changes), then each frame as
/// `frame(pts, dts, keyframe, data)` builds it, stamped with running time.
fn media_appsink(
    senders: Vec<MediaSender>,
    max_buffers: u32,
    config: fn(Bytes) -> Media,
    frame: impl Fn(u64, u64, bool, Bytes) -> Media + Send + Sync + 'static,
) -> gst::Element {
    let last_config: Mutex<Option<Bytes>> = Mutex::new(None);
    let sink = gst_app::AppSink::builder()
        .sync(false)
        // Never wait to preroll: with a non-live source (file) beside live
        // audio, a prerolling sink would deadlock the start.
        .async_(false)
        .enable_last_sample(false)
        .max_buffers(max_buffers)
        .callbacks(
            gst_app::AppSinkCallbacks::builder()
                .new_sample(move |sink| {
                    let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                    let Some(buffer) = sample.buffer() else { return Ok(gst::FlowSuccess::Ok) };
                    let Some(pts) = running_time(&sample, buffer.pts()) else { return Ok(gst::FlowSuccess::Ok) };
                    let dts = running_time(&sample, buffer.dts()).unwrap_or(pts);
                    if let Some(cd) = codec_data(&sample) {
                        let mut last = last_config.lock().expect("codec config lock");
                        if last.as_ref() != Some(&cd) {
                            *last = Some(cd.clone());
                            for s in &senders {
                                s.send(config(cd.clone()));
                            }
                        }
                    }
                    let map = buffer.map_readable().map_err(|_| gst::FlowError::Error)?;
                    let keyframe = !buffer.flags().contains(gst::BufferFlags::DELTA_UNIT);
                    let media = frame(pts, dts, keyframe, Bytes::copy_from_slice(map.as_slice()));
                    for s in &senders {
                        s.send(media.clone());
                    }
                    Ok(gst::FlowSuccess::Ok)
                })
                .build(),
        )
        .build();
    sink.upcast()
}

/// A rung's encoded frames to its outputs; `pipeline` says which were filler.
fn video_appsink(senders: Vec<MediaSender>, stats: Arc<RungStats>, pipeline: Arc<PipelineStats>) -> gst::Element {
    media_appsink(senders, 60, Media::VideoConfig, move |pts_ns, dts_ns, keyframe, data| {
        stats.on_frame(pts_ns, data.len(), keyframe);
        Media::Video(VideoFrame { pts_ns, dts_ns, keyframe, data, filler: pipeline.filler.covers(pts_ns) })
    })
}

fn audio_appsink(senders: Vec<MediaSender>, pipeline: Arc<PipelineStats>) -> gst::Element {
    media_appsink(senders, 100, Media::AudioConfig, move |pts_ns, _, _, data| {
        Media::Audio(AudioFrame { pts_ns, data, filler: pipeline.filler.covers(pts_ns) })
    })
}

/// The audio source for sources that carry none of their own.
pub(super) fn audio_source_element(source: &AudioSource, src: &Source) -> Result<Option<gst::Element>, BuildError> {
    Ok(Some(match source {
        AudioSource::Test => gst::ElementFactory::make("audiotestsrc")
            .property("is-live", true)
            .property_from_str("wave", "ticks")
            .property("volume", 0.3f64)
            .build()?,
        AudioSource::Silence => gst::ElementFactory::make("audiotestsrc")
            .property("is-live", true)
            .property_from_str("wave", "silence")
            .build()?,
        AudioSource::Alsa { device } => gst::ElementFactory::make("alsasrc")
            .property("device", device.as_str())
            .build()
            .map_err(|_| BuildError::MissingElement { element: "alsasrc".into(), package: Some("gstreamer1.0-alsa") })?,
        AudioSource::DeckLink => {
            let n = match src {
                Source::DeckLink { device_number, .. } => *device_number as i32,
                _ => 0,
            };
            gst::ElementFactory::make("decklinkaudiosrc")
                .property("device-number", n)
                .build()
                .map_err(|_| BuildError::MissingElement { element: "decklinkaudiosrc".into(), package: Some("gstreamer1.0-plugins-bad") })?
        }
        AudioSource::File => return Ok(None),
    }))
}

//! Capture chains (test pattern, V4L2, DeckLink, file) and the shared audio
//! chain (AAC-LC encoded once). Part of the builder: the only other file
//! that creates elements.

use super::build::{audio_source_element, BuildError};
use super::plan::Plan;
use super::stats::PipelineStats;
use crate::config::Source;
use gstreamer as gst;
use gstreamer::prelude::*;
use std::sync::Arc;

/// Patterns that do not move: rendered once and repeated live (rendering
/// SMPTE bars at 1080p costs ~11 ms a frame), with a running clock on top so
/// a crew sees it is live.
const STATIC_PATTERNS: &[&str] = &["smpte", "bars", "black", "colors", "gradient", "smpte100"];

fn link(pipeline: &gst::Pipeline, els: &[&gst::Element], what: &str) -> Result<(), BuildError> {
    pipeline.add_many(els.iter().copied())?;
    gst::Element::link_many(els.iter().copied()).map_err(|_| BuildError::Link(what.into()))
}

/// Builds the capture; returns the element raw video comes out of, and for
/// a file source the element its decoded audio comes out of.
pub fn video(pipeline: &gst::Pipeline, plan: &Plan, _stats: &Arc<PipelineStats>) -> Result<(gst::Element, Option<gst::Element>), BuildError> {
    let f = plan.format;
    let fraction = gst::Fraction::new(f.fps.num as i32, f.fps.den as i32);
    match &plan.source {
        Source::Test { pattern, .. } => {
            let caps = gst::Caps::builder("video/x-raw")
                .field("format", "I420")
                .field("width", f.width as i32)
                .field("height", f.height as i32)
                .field("framerate", fraction)
                .build();
            // A running clock shows the picture is live; without the pango
            // plugin (gstreamer1.0-x) the bars still go out, just without it.
            let overlay = match gst::ElementFactory::make("timeoverlay")
                .property("text", "fieldcast")
                .property_from_str("halignment", "center")
                .property_from_str("valignment", "bottom")
                .property("font-desc", "Sans 28")
                .property("shaded-background", true)
                .build()
            {
                Ok(o) => o,
                Err(_) => {
                    tracing::warn!("timeoverlay is not installed (package gstreamer1.0-x): test pattern without a clock");
                    gst::ElementFactory::make("identity").build()?
                }
            };
            let filter = gst::ElementFactory::make("capsfilter").property("caps", caps.clone()).build()?;
            if STATIC_PATTERNS.contains(&pattern.as_str()) {
                let src = gst::ElementFactory::make("videotestsrc").property_from_str("pattern", pattern).property("num-buffers", 1i32).build()?;
                let freeze = gst::ElementFactory::make("imagefreeze").property("is-live", true).build()?;
                // imagefreeze repeats at 25 fps unless told otherwise: the
                // frame clock then filled every sixth slot of a 30 fps
                // ladder with a repeated frame.
                let rate = gst::ElementFactory::make("capsfilter").property("caps", caps).build()?;
                link(pipeline, &[&src, &filter, &freeze, &rate, &overlay], "test pattern")?;
            } else {
                let src = gst::ElementFactory::make("videotestsrc").property_from_str("pattern", pattern).property("is-live", true).build()?;
                link(pipeline, &[&src, &filter, &overlay], "test pattern")?;
            }
            Ok((overlay, None))
        }
        Source::V4l2 { device, format, .. } => {
            let src = gst::ElementFactory::make("v4l2src")
                .property("device", device.to_string_lossy().as_ref())
                .build()
                .map_err(|_| BuildError::MissingElement { element: "v4l2src".into(), package: Some("gstreamer1.0-plugins-good") })?;
            let mjpeg = format.as_deref().is_some_and(|x| x.eq_ignore_ascii_case("mjpg") || x.eq_ignore_ascii_case("mjpeg"));
            let mut caps = gst::Caps::builder(if mjpeg { "image/jpeg" } else { "video/x-raw" })
                .field("width", f.width as i32)
                .field("height", f.height as i32)
                .field("framerate", fraction);
            if let (Some(fmt), false) = (format, mjpeg) {
                caps = caps.field("format", fmt.as_str());
            }
            let filter = gst::ElementFactory::make("capsfilter").property("caps", caps.build()).build()?;
            if mjpeg {
                let dec = gst::ElementFactory::make("jpegdec").build()?;
                link(pipeline, &[&src, &filter, &dec], "v4l2 mjpeg capture")?;
                Ok((dec, None))
            } else {
                link(pipeline, &[&src, &filter], "v4l2 capture")?;
                Ok((filter, None))
            }
        }
        Source::DeckLink { device_number, mode, connection } => {
            let src = gst::ElementFactory::make("decklinkvideosrc")
                .property("device-number", *device_number as i32)
                .build()
                .map_err(|_| BuildError::MissingElement { element: "decklinkvideosrc".into(), package: Some("gstreamer1.0-plugins-bad") })?;
            super::build::set_from_str(&src, "mode", mode)?;
            super::build::set_from_str(&src, "connection", connection)?;
            let deint = gst::ElementFactory::make("deinterlace").build()?;
            link(pipeline, &[&src, &deint], "decklink capture")?;
            Ok((deint, None))
        }
        Source::File { path, .. } => {
            let use_audio = plan.audio.audio.source == crate::config::AudioSource::File;
            let src = gst::ElementFactory::make("filesrc").property("location", path.to_string_lossy().as_ref()).build()?;
            if super::fifo::is_fifo(path) {
                // No more than a picture's luma, so a block never holds back a whole picture.
                let picture = (f.width as u64 * f.height as u64).clamp(4096, u64::from(FIFO_BLOCK_BYTES));
                src.set_property("blocksize", picture as u32);
            } else if !use_audio && is_y4m_file(path) {
                // Straight into the Y4M decoder, which only takes data pushed
                // to it, so the file is read in large blocks.
                src.set_property("blocksize", Y4M_BLOCK_BYTES);
                let dec = gst::ElementFactory::make("y4mdec")
                    .build()
                    .map_err(|_| BuildError::MissingElement { element: "y4mdec".into(), package: Some("gstreamer1.0-plugins-bad") })?;
                let vsync = gst::ElementFactory::make("clocksync").build()?;
                link(pipeline, &[&src, &dec, &vsync], "y4m file")?;
                return Ok((vsync, None));
            }
            let decode = gst::ElementFactory::make("decodebin").build()?;
            // Decoded media is paced to the clock, as a camera would deliver it.
            // With the file's audio, queues let one demuxer thread feed both
            // paced branches. With its video alone, the decoder's thread
            // waits at the clock itself: a queue there would keep two more
            // decoded pictures alive (6 MB at 1080p), buying nothing.
            let vsync = gst::ElementFactory::make("clocksync").build()?;
            let aq = gst::ElementFactory::make("queue").build()?;
            let aconv = gst::ElementFactory::make("audioconvert").build()?;
            let async_ = gst::ElementFactory::make("clocksync").build()?;
            link(pipeline, &[&src, &decode], "file source")?;
            let video_in = if use_audio {
                let vq = gst::ElementFactory::make("queue").build()?;
                link(pipeline, &[&vq, &vsync], "file video")?;
                vq
            } else {
                pipeline.add(&vsync)?;
                vsync.clone()
            };
            // The file's audio is used only when asked for; otherwise a pad
            // that appears is discarded (created on demand: a sink that never
            // sees data would never see EOS either).
            if use_audio {
                link(pipeline, &[&aq, &aconv, &async_], "file audio")?;
            }
            let aq2 = use_audio.then(|| aq.clone());
            let weak = pipeline.downgrade();
            decode.connect_pad_added(move |_, pad| {
                let caps = pad.current_caps().or_else(|| Some(pad.query_caps(None)));
                let name = caps.as_ref().and_then(|c| c.structure(0)).map(|s| s.name().to_string()).unwrap_or_default();
                let target = if name.starts_with("video/") {
                    Some(video_in.clone())
                } else if name.starts_with("audio/") {
                    aq2.clone().or_else(|| {
                        let p = weak.upgrade()?;
                        let sink = gst::ElementFactory::make("fakesink").property("sync", false).property("async", false).build().ok()?;
                        p.add(&sink).ok()?;
                        sink.sync_state_with_parent().ok()?;
                        Some(sink)
                    })
                } else {
                    None
                };
                if let Some(sink) = target.and_then(|t| t.static_pad("sink"))
                    && !sink.is_linked()
                {
                    let _ = pad.link(&sink);
                }
            });
            Ok((vsync, use_audio.then_some(async_)))
        }
    }
}

/// The blocks a raw Y4M file is read in. Through decodebin, its typefinder
/// pulls 4 KiB at a time: 760 reads, buffers and adapter pushes for each
/// 1080p picture, which cost more CPU than reading the bytes (benchmark:
/// the reading thread took 1.5 s of CPU for 10 s of 1080p30 at 4 KiB, 0.45 s
/// at 1 MiB, and 64 KiB already got most of it).
const Y4M_BLOCK_BYTES: u32 = 1 << 20;

/// The blocks a FIFO is read in: what a pipe holds (64 KiB on Linux), not
/// filesrc's default 4 KiB (benchmark, 1080p30 from `cat`: the reading
/// thread took 2.0 s of CPU in 10 s at 4 KiB, 0.74 s at 64 KiB). A read
/// waits for a whole block, so a larger one would hold back the tail of a
/// picture a feeder has already written.
const FIFO_BLOCK_BYTES: u32 = 64 << 10;

/// A regular file that starts with the YUV4MPEG2 signature (never asked
/// of a FIFO: peeking would eat its data).
fn is_y4m_file(path: &std::path::Path) -> bool {
    use std::io::Read;
    let mut head = [0u8; 10];
    std::fs::File::open(path).and_then(|mut f| f.read_exact(&mut head)).is_ok() && &head == b"YUV4MPEG2 "
}

/// The volume element that silences a separate audio source while the slate is on.
pub const AUDIO_MUTE: &str = "input_mute";

/// The shared audio: source -> 48 kHz (or 44.1) stereo -> level meter -> AAC-LC once -> tee.
pub fn audio(pipeline: &gst::Pipeline, plan: &Plan, from_source: Option<gst::Element>) -> Result<gst::Element, BuildError> {
    let a = &plan.audio;
    let src = match from_source {
        Some(e) => e,
        None => {
            let e = audio_source_element(&a.audio.source, &plan.source)?
                .ok_or_else(|| BuildError::Link("audio.source = file needs a file source".into()))?;
            pipeline.add(&e)?;
            e
        }
    };
    let conv = gst::ElementFactory::make("audioconvert").build()?;
    // Silent audio with the slate (the pacer mutes it), for a source beside the video.
    let mute = gst::ElementFactory::make("volume").name(AUDIO_MUTE).build()?;
    let resample = gst::ElementFactory::make("audioresample").build()?;
    let raw = gst::Caps::builder("audio/x-raw").field("rate", a.sample_rate as i32).field("channels", a.channels as i32).build();
    let raw_filter = gst::ElementFactory::make("capsfilter").property("caps", raw).build()?;
    // The meter, after the mute: what goes on the air (see `level`).
    let level = gst::ElementFactory::make("level")
        .name(super::level::LEVEL_ELEMENT)
        .property("interval", super::level::INTERVAL_NS)
        .property("post-messages", true)
        .build()?;
    // voaacenc is constant-rate (128 kbit/s even on silence), so the declared
    // audiodatarate stays truthful; avenc_aac drops to ~12 kbit/s on quiet input.
    let enc = match gst::ElementFactory::make("voaacenc").property("bitrate", a.bitrate_bps as i32).build() {
        Ok(e) => e,
        Err(_) => gst::ElementFactory::make("avenc_aac")
            .property("bitrate", a.bitrate_bps as i32)
            .build()
            .map_err(|_| BuildError::MissingElement { element: "voaacenc or avenc_aac".into(), package: Some("gstreamer1.0-plugins-bad or gstreamer1.0-libav") })?,
    };
    let parse = gst::ElementFactory::make("aacparse").build()?;
    let out = gst::Caps::builder("audio/mpeg").field("mpegversion", 4i32).field("stream-format", "raw").build();
    let out_filter = gst::ElementFactory::make("capsfilter").property("caps", out).build()?;
    let tee = gst::ElementFactory::make("tee").name("audio").build()?;
    pipeline.add_many([&conv, &mute, &resample, &raw_filter, &level, &enc, &parse, &out_filter, &tee])?;
    gst::Element::link_many([&src, &conv, &mute, &resample, &raw_filter, &level, &enc, &parse, &out_filter, &tee])
        .map_err(|_| BuildError::Link("audio chain".into()))?;
    Ok(tee)
}

//! An SRT output's own small GStreamer pipeline: two appsrcs (the rung's
//! H.264 and the shared AAC) -> `h264parse` (AVC to byte-stream, SPS/PPS
//! before every IDR) and `aacparse` -> `mpegtsmux alignment=7` -> appsink,
//! whose 1316-byte chunks (7 TS packets, one SRT live message each) go to
//! the output's SRT socket. Its bus is this output's alone: nothing here
//! reaches the encoding pipeline.
//!
//! Timestamps are the media's running time as the encoding pipeline made
//! it, so every connection of every rung carries one timeline.

use super::ffi::{Socket, SrtError};
use crate::egress::sources::{MediaSources, TrackFormat, element};
use bytes::Bytes;
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use std::sync::Arc;
use tokio::sync::mpsc;

/// One SRT live-mode message: 7 TS packets of 188 bytes.
pub const CHUNK: usize = 7 * 188;
/// What the appsrcs may hold before the output skips to the next keyframe.
const MAX_QUEUED_BYTES: u64 = 8 * 1024 * 1024;

/// What the muxer's side reports to its actor.
#[derive(Debug)]
pub(super) enum TsEvent {
    /// The SRT socket refused a send (connection lost).
    SendFailed(SrtError),
    /// The muxer pipeline failed (fixed text, no value).
    Failed(String),
    /// End of stream drained: everything muxed was handed to the socket.
    Finished,
}

pub(super) struct TsMuxer {
    pipeline: gst::Pipeline,
    pub(super) sources: MediaSources,
}

impl TsMuxer {
    /// Builds and starts the muxer, sending into `socket`. Blocking (state
    /// change): call off the runtime.
    pub(super) fn start(
        label: &str,
        format: &TrackFormat,
        video_config: &Bytes,
        audio_config: &Bytes,
        socket: Arc<Socket>,
        events: mpsc::UnboundedSender<TsEvent>,
    ) -> Result<TsMuxer, String> {
        let pipeline = gst::Pipeline::with_name(&format!("srt_{}", label.replace('/', "_")));
        let sources = MediaSources::build(format, video_config, audio_config, MAX_QUEUED_BYTES * 2);
        let (video, audio) = (&sources.video, &sources.audio);
        let parse = element("h264parse")?;
        parse.set_property("config-interval", -1i32);
        let aparse = element("aacparse")?;
        let mux = element("mpegtsmux")?;
        // 1316-byte output buffers: GStreamer 1.22's SRT path needs them (field notes).
        mux.set_property("alignment", 7i32);
        let sink = gst_app::AppSink::builder().sync(false).max_buffers(64).build();
        let sent_to = events.clone();
        sink.set_callbacks(
            gst_app::AppSinkCallbacks::builder()
                .new_sample(move |sink| {
                    let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                    let Some(buffer) = sample.buffer() else { return Ok(gst::FlowSuccess::Ok) };
                    let map = buffer.map_readable().map_err(|_| gst::FlowError::Error)?;
                    for chunk in map.chunks(CHUNK) {
                        if let Err(e) = socket.send(chunk) {
                            let _ = sent_to.send(TsEvent::SendFailed(e));
                            return Err(gst::FlowError::Error);
                        }
                    }
                    Ok(gst::FlowSuccess::Ok)
                })
                .build(),
        );
        pipeline
            .add_many([video.upcast_ref::<gst::Element>(), audio.upcast_ref(), &parse, &aparse, &mux, sink.upcast_ref()])
            .map_err(|_| "cannot assemble the SRT muxer".to_string())?;
        let linked = gst::Element::link_many([video.upcast_ref::<gst::Element>(), &parse, &mux, sink.upcast_ref()]).is_ok()
            && gst::Element::link_many([audio.upcast_ref::<gst::Element>(), &aparse, &mux]).is_ok();
        if !linked {
            return Err("cannot link the SRT muxer".to_string());
        }
        let bus = pipeline.bus().expect("a pipeline has a bus");
        bus.set_sync_handler(move |_, msg| {
            match msg.view() {
                gst::MessageView::Error(_) => {
                    let _ = events.send(TsEvent::Failed("the MPEG-TS muxer failed".into()));
                }
                gst::MessageView::Eos(_) => {
                    let _ = events.send(TsEvent::Finished);
                }
                _ => {}
            }
            gst::BusSyncReply::Drop
        });
        pipeline.set_state(gst::State::Playing).map_err(|_| "the SRT muxer refused to start".to_string())?;
        Ok(TsMuxer { pipeline, sources })
    }

    /// More queued than a slow link should hold: skip to the next keyframe.
    pub(super) fn over_limit(&self) -> bool {
        self.sources.queued_bytes() > MAX_QUEUED_BYTES
    }

    /// Tears the pipeline down. Blocking: call off the runtime.
    pub(super) fn close(self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

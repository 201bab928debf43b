//! The recorder's own small GStreamer pipeline: two appsrcs (the rung's
//! H.264 and the shared AAC, exactly as every publish gets them) into a
//! splitmuxsink. It is separate from the encoding pipeline on purpose: a
//! full disk or a vanished USB stick errors on this pipeline's bus only, and
//! the encoder and the publishes never notice.

use super::RecordTarget;
use crate::config::RecordFormat;
use crate::egress::sources::{MediaSources, element};
use bytes::Bytes;
use gstreamer as gst;
use gstreamer::prelude::*;
use tokio::sync::mpsc;

/// What the recorder's bus says, forwarded to its actor.
#[derive(Debug)]
pub(super) enum MuxEvent {
    /// A new segment file was opened.
    FileOpened,
    /// Fatal: why, already free of paths and values.
    Failed(String),
    /// EOS drained: the last file is finalised.
    Finished,
}

pub(super) struct Muxer {
    pipeline: gst::Pipeline,
    pub(super) sources: MediaSources,
}

/// How much the appsrcs may hold before the recorder drops to the next
/// keyframe instead (a disk slower than real time must not grow memory).
const MAX_QUEUED_BYTES: u64 = 32 * 1024 * 1024;

impl Muxer {
    /// Builds and starts the recorder, writing `<rung>-NNNNN.<ext>` files into
    /// `dir` from index `start_index`. Blocking (state change): call off the runtime.
    pub(super) fn start(
        target: &RecordTarget,
        dir: &std::path::Path,
        start_index: u32,
        video_config: &Bytes,
        audio_config: &Bytes,
        events: mpsc::UnboundedSender<MuxEvent>,
    ) -> Result<Muxer, String> {
        let pipeline = gst::Pipeline::with_name(&format!("record_{}", target.rung));
        let sources = MediaSources::build(&target.tracks, video_config, audio_config, MAX_QUEUED_BYTES * 2);
        let (video, audio) = (&sources.video, &sources.audio);
        let muxer = match target.format {
            RecordFormat::Mp4 => {
                let m = element("mp4mux")?;
                // Fragmented: a file cut short by power loss or a full disk still plays.
                m.set_property("fragment-duration", 1000u32);
                m
            }
            RecordFormat::Mkv => element("matroskamux")?,
        };
        let location = dir.join(format!("{}-%05d.{}", target.rung, target.format.extension()));
        let split = gst::ElementFactory::make("splitmuxsink")
            .property("location", location.to_string_lossy().as_ref())
            .property("start-index", start_index as i32)
            .property("max-size-time", target.segment.as_nanos() as u64)
            .property("muxer", &muxer)
            .property("async-finalize", false)
            .build()
            .map_err(|_| "GStreamer element `splitmuxsink` is not installed".to_string())?;
        let parse = element("h264parse")?;
        let aparse = element("aacparse")?;
        pipeline
            .add_many([video.upcast_ref::<gst::Element>(), audio.upcast_ref(), &parse, &aparse, &split])
            .map_err(|_| "cannot assemble the recorder".to_string())?;
        let link = |from: &gst::Element, to: &gst::Element, pad: &str| -> Result<(), String> {
            let sink = split.request_pad_simple(pad).ok_or_else(|| "splitmuxsink refused a pad".to_string())?;
            from.link(to).map_err(|_| "cannot link the recorder".to_string())?;
            to.static_pad("src").expect("parser src").link(&sink).map(drop).map_err(|_| "cannot link the recorder".to_string())
        };
        link(video.upcast_ref(), &parse, "video")?;
        link(audio.upcast_ref(), &aparse, "audio_%u")?;
        let bus = pipeline.bus().expect("a pipeline has a bus");
        bus.set_sync_handler(move |_, msg| {
            if let Some(ev) = mux_event(msg) {
                let _ = events.send(ev);
            }
            gst::BusSyncReply::Drop
        });
        pipeline.set_state(gst::State::Playing).map_err(|_| "the recorder refused to start".to_string())?;
        Ok(Muxer { pipeline, sources })
    }

    pub(super) fn over_limit(&self) -> bool {
        self.sources.queued_bytes() > MAX_QUEUED_BYTES
    }

    /// Tears the pipeline down. Blocking: call off the runtime.
    pub(super) fn close(self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

fn mux_event(msg: &gst::Message) -> Option<MuxEvent> {
    match msg.view() {
        gst::MessageView::Error(e) => Some(MuxEvent::Failed(reason(&e.error()))),
        gst::MessageView::Eos(_) => Some(MuxEvent::Finished),
        gst::MessageView::Element(e) if e.structure().is_some_and(|s| s.name() == "splitmuxsink-fragment-opened") => {
            Some(MuxEvent::FileOpened)
        }
        _ => None,
    }
}

/// A GStreamer error in words that hold no path (the recording folder is
/// the operator's value, and GStreamer's own text quotes file names).
pub(super) fn reason(error: &gst::glib::Error) -> String {
    use gst::ResourceError as R;
    match error.kind::<R>() {
        Some(R::NoSpaceLeft) => "no space left on the device".into(),
        Some(R::OpenWrite | R::OpenReadWrite) => "cannot open a file for writing".into(),
        Some(R::Write) => "writing a file failed".into(),
        Some(R::Close) => "closing a file failed".into(),
        Some(R::NotFound) => "the recording folder is gone".into(),
        Some(R::NotAuthorized) => "permission denied".into(),
        _ if error.kind::<gst::StreamError>().is_some() => "the muxer refused the stream".into(),
        _ => "the recorder failed".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorder_errors_are_named_by_kind_without_the_path_gstreamer_quotes() {
        gst::init().unwrap();
        let e = gst::glib::Error::new(gst::ResourceError::NoSpaceLeft, "Error while writing to file \"/media/SECRET/x.mp4\".");
        assert_eq!(reason(&e), "no space left on the device");
        let e = gst::glib::Error::new(gst::ResourceError::OpenWrite, "Could not open file \"/media/SECRET/x.mp4\" for writing.");
        assert_eq!(reason(&e), "cannot open a file for writing");
        let e = gst::glib::Error::new(gst::CoreError::Failed, "/media/SECRET");
        assert!(!reason(&e).contains("SECRET"));
    }
}

//! A live H.264 + AAC source for egress tests: a tiny GStreamer pipeline
//! (videotestsrc ! x264enc, audiotestsrc ! avenc_aac) whose appsinks feed
//! `Media` into egress channels, with running-time timestamps like the
//! real pipeline.

use bytes::Bytes;
use fieldcast::egress::{AudioFrame, Media, MediaSender, VideoFrame};
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use std::sync::{Arc, Mutex};

#[derive(Clone, Debug)]
pub struct SourceSpec {
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    pub video_kbps: u32,
    /// GOP length in frames (x264enc key-int-max).
    pub key_int: u32,
}

impl SourceSpec {
    /// What a publish of this source declares in `onMetaData` (128 kbit/s
    /// stereo 48 kHz AAC, as the source makes it).
    pub fn metadata(&self) -> fieldcast::egress::rtmp::PublishMetadata {
        fieldcast::egress::rtmp::PublishMetadata {
            width: self.width,
            height: self.height,
            framerate: self.fps as f64,
            video_kbps: self.video_kbps,
            audio_kbps: 128,
            audio_sample_rate: 48_000,
            audio_channels: 2,
        }
    }
}

impl Default for SourceSpec {
    fn default() -> Self {
        SourceSpec { width: 320, height: 240, fps: 30, video_kbps: 400, key_int: 30 }
    }
}

type Outputs = Arc<Mutex<Option<Vec<MediaSender>>>>;

pub struct TestSource {
    pipeline: gst::Pipeline,
    outputs: Outputs,
}

impl TestSource {
    /// Starts the pipeline; every item goes to every output.
    pub fn start(spec: &SourceSpec, outputs: Vec<MediaSender>) -> TestSource {
        gst::init().expect("gstreamer init");
        let SourceSpec { width, height, fps, video_kbps, key_int } = spec;
        // Strict CBR (HRD + filler), as ingest wants, so declared == measured bitrate.
        let launch = format!(
            "videotestsrc is-live=true pattern=ball ! video/x-raw,format=I420,width={width},height={height},framerate={fps}/1 \
             ! x264enc speed-preset=ultrafast tune=zerolatency key-int-max={key_int} bitrate={video_kbps} \
             option-string=nal-hrd=cbr:filler=1 \
             ! h264parse ! video/x-h264,stream-format=avc,alignment=au ! appsink name=video sync=false \
             audiotestsrc is-live=true ! audioconvert ! audioresample ! audio/x-raw,rate=48000,channels=2 \
             ! avenc_aac bitrate=128000 ! aacparse ! audio/mpeg,stream-format=raw ! appsink name=audio sync=false"
        );
        let pipeline = gst::parse::launch(&launch).expect("test pipeline").downcast::<gst::Pipeline>().unwrap();
        let outputs: Outputs = Arc::new(Mutex::new(Some(outputs)));
        for kind in ["video", "audio"] {
            let sink = pipeline.by_name(kind).unwrap().downcast::<gst_app::AppSink>().unwrap();
            let outputs = outputs.clone();
            let mut last_config: Option<Bytes> = None;
            let is_video = kind == "video";
            sink.set_callbacks(
                gst_app::AppSinkCallbacks::builder()
                    .new_sample(move |sink| {
                        let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                        let guard = outputs.lock().unwrap();
                        let Some(outputs) = guard.as_ref() else { return Err(gst::FlowError::Eos) };
                        if let Some(config) = codec_data(&sample).filter(|c| last_config.as_ref() != Some(c)) {
                            last_config = Some(config.clone());
                            let item = if is_video { Media::VideoConfig(config) } else { Media::AudioConfig(config) };
                            outputs.iter().for_each(|o| {
                                o.send(item.clone());
                            });
                        }
                        if let Some(item) = media(&sample, is_video) {
                            outputs.iter().for_each(|o| {
                                o.send(item.clone());
                            });
                        }
                        Ok(gst::FlowSuccess::Ok)
                    })
                    .build(),
            );
        }
        pipeline.set_state(gst::State::Playing).expect("pipeline to PLAYING");
        TestSource { pipeline, outputs }
    }

    /// Stops the pipeline and drops every sender, which closes the egress channels.
    pub fn stop(self) {
        drop(self);
    }
}

impl Drop for TestSource {
    fn drop(&mut self) {
        self.outputs.lock().unwrap().take();
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

fn codec_data(sample: &gst::Sample) -> Option<Bytes> {
    let buffer = sample.caps()?.structure(0)?.get::<gst::Buffer>("codec_data").ok()?;
    let map = buffer.map_readable().ok()?;
    Some(Bytes::copy_from_slice(map.as_slice()))
}

fn media(sample: &gst::Sample, is_video: bool) -> Option<Media> {
    let buffer = sample.buffer()?;
    let segment = sample.segment()?.downcast_ref::<gst::ClockTime>()?;
    let pts = segment.to_running_time(buffer.pts())?;
    let dts = buffer.dts().and_then(|d| segment.to_running_time(d)).unwrap_or(pts);
    let data = Bytes::copy_from_slice(buffer.map_readable().ok()?.as_slice());
    Some(if is_video {
        Media::Video(VideoFrame {
            pts_ns: pts.nseconds(),
            dts_ns: dts.nseconds(),
            keyframe: !buffer.flags().contains(gst::BufferFlags::DELTA_UNIT),
            data,
            filler: false,
        })
    } else {
        Media::Audio(AudioFrame { pts_ns: pts.nseconds(), data, filler: false })
    })
}

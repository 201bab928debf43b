//! The two appsrcs an output's own small pipeline is fed through (the
//! rung's H.264 and the shared AAC, from the media channel), shared by the
//! recorder and the SRT muxer: timestamps, durations and keyframe flags set
//! one way for both.

use crate::config::Fps;
use bytes::Bytes;
use gstreamer as gst;
use gstreamer_app as gst_app;

/// What an output's two appsrcs announce: the rung's picture and the shared audio.
#[derive(Clone, Debug, PartialEq)]
pub struct TrackFormat {
    pub width: u32,
    pub height: u32,
    pub fps: Fps,
    pub audio_rate: u32,
    pub audio_channels: u32,
}

/// An element of an output's own pipeline, or a message naming what is missing.
pub(crate) fn element(factory: &str) -> Result<gst::Element, String> {
    gst::ElementFactory::make(factory).build().map_err(|_| format!("GStreamer element `{factory}` is not installed"))
}

pub(crate) struct MediaSources {
    pub video: gst_app::AppSrc,
    pub audio: gst_app::AppSrc,
    frame_ns: u64,
    /// One AAC frame: 1024 samples.
    audio_frame_ns: u64,
}

impl MediaSources {
    /// The two appsrcs, announcing `format` with the encoders' own codec
    /// configurations (AVC and raw AAC, as every publish gets them), each
    /// holding at most `max_bytes`. Not live: the timestamps are the
    /// encoder's running time, not this pipeline's clock; the muxer
    /// interleaves by timestamp as data comes.
    pub fn build(format: &TrackFormat, video_config: &Bytes, audio_config: &Bytes, max_bytes: u64) -> MediaSources {
        let video_caps = gst::Caps::builder("video/x-h264")
            .field("stream-format", "avc")
            .field("alignment", "au")
            .field("codec_data", gst::Buffer::from_slice(video_config.clone()))
            .field("width", format.width as i32)
            .field("height", format.height as i32)
            .field("framerate", gst::Fraction::new(format.fps.num as i32, format.fps.den as i32))
            .build();
        let audio_caps = gst::Caps::builder("audio/mpeg")
            .field("mpegversion", 4i32)
            .field("stream-format", "raw")
            .field("framed", true)
            .field("codec_data", gst::Buffer::from_slice(audio_config.clone()))
            .field("rate", format.audio_rate as i32)
            .field("channels", format.audio_channels as i32)
            .build();
        let appsrc = |caps: gst::Caps| {
            gst_app::AppSrc::builder().caps(&caps).format(gst::Format::Time).is_live(false).block(false).max_bytes(max_bytes).build()
        };
        let audio_frame_ns = 1024 * 1_000_000_000 / u64::from(format.audio_rate.max(1));
        MediaSources { video: appsrc(video_caps), audio: appsrc(audio_caps), frame_ns: format.fps.frame_ns(), audio_frame_ns }
    }

    /// Bytes queued in front of the muxer (both tracks).
    pub fn queued_bytes(&self) -> u64 {
        self.video.current_level_bytes() + self.audio.current_level_bytes()
    }

    /// Pushes one access unit; false when the appsrc refused it.
    pub fn push_video(&self, pts_ns: u64, dts_ns: u64, keyframe: bool, data: Bytes) -> bool {
        let mut buffer = gst::Buffer::from_slice(data);
        {
            let b = buffer.get_mut().expect("a new buffer is writable");
            b.set_pts(gst::ClockTime::from_nseconds(pts_ns));
            b.set_dts(gst::ClockTime::from_nseconds(dts_ns));
            b.set_duration(gst::ClockTime::from_nseconds(self.frame_ns));
            if !keyframe {
                b.set_flags(gst::BufferFlags::DELTA_UNIT);
            }
        }
        self.video.push_buffer(buffer).is_ok()
    }

    pub fn push_audio(&self, pts_ns: u64, data: Bytes) -> bool {
        let mut buffer = gst::Buffer::from_slice(data);
        let b = buffer.get_mut().expect("a new buffer is writable");
        b.set_pts(gst::ClockTime::from_nseconds(pts_ns));
        b.set_duration(gst::ClockTime::from_nseconds(self.audio_frame_ns));
        self.audio.push_buffer(buffer).is_ok()
    }

    /// Ends both tracks so the muxer flushes; its EOS follows on the bus.
    pub fn finish(&self) {
        let _ = self.video.end_of_stream();
        let _ = self.audio.end_of_stream();
    }
}

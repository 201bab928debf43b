//! The two appsrcs an output's own small pipeline is fed through (the
//! rung's H.264 and the shared AAC, from the media channel), shared by the
//! recorder and the SRT muxer: timestamps, durations and keyframe flags set
//! one way for both.

use crate::config::Fps;
use bytes::Bytes;
use gstreamer as gst;
use gstreamer_app as gst_app;

pub(crate) struct MediaSources {
    pub video: gst_app::AppSrc,
    pub audio: gst_app::AppSrc,
    frame_ns: u64,
    /// One AAC frame: 1024 samples.
    audio_frame_ns: u64,
}

impl MediaSources {
    pub fn new(video: gst_app::AppSrc, audio: gst_app::AppSrc, fps: Fps, audio_rate: u32) -> MediaSources {
        let audio_frame_ns = 1024 * 1_000_000_000 / u64::from(audio_rate.max(1));
        MediaSources { video, audio, frame_ns: fps.frame_ns(), audio_frame_ns }
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

//! Egress: where encoded media leaves the pipeline. The pipeline hands every
//! encoded access unit to a [`MediaSender`]; each output (an RTMP publish per
//! destination and rung, a recorded rung) is an actor that owns its
//! connection or files and reads a bounded channel. An output is planned as
//! an [`OutputPlan`] and started by [`spawn`], whatever its protocol; it
//! reports an [`EgressStatus`], and its failure is its own.
//!
//! Back-pressure policy lives here, in one place: a sender never blocks the
//! GStreamer streaming thread. If an actor's channel is full (its socket is
//! slower than real time) the sender drops media until the next video
//! keyframe, so the channel never holds a backlog that would later be burst.

pub mod adaptive;
pub mod cmaf;
pub mod failover;
pub mod flv;
pub mod output;
pub mod plan;
pub mod record;
pub mod resume;
pub mod rtmp;
pub mod smooth;
pub mod sources;
pub mod srt;
pub mod standby;
pub mod status;

pub use output::{OutputHandle, spawn};
pub use plan::OutputPlan;
pub use status::{EgressState, EgressStatus};

use bytes::Bytes;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use tokio::sync::mpsc;

/// One item on an egress channel. Times are pipeline running time in
/// nanoseconds: one clock for every rung and the shared audio, so timestamps
/// of all publishes line up and continue across reconnects.
#[derive(Clone, Debug)]
pub enum Media {
    /// AVCDecoderConfigurationRecord (the `codec_data` of `video/x-h264,stream-format=avc`).
    VideoConfig(Bytes),
    /// AudioSpecificConfig (the `codec_data` of `audio/mpeg,mpegversion=4,stream-format=raw`).
    AudioConfig(Bytes),
    Video(VideoFrame),
    Audio(AudioFrame),
}

#[derive(Clone, Debug)]
pub struct VideoFrame {
    pub pts_ns: u64,
    pub dts_ns: u64,
    pub keyframe: bool,
    /// AVC access unit, length-prefixed NAL units.
    pub data: Bytes,
    /// Replacement content: made while the input was lost (the last frame
    /// repeated, or the slate).
    pub filler: bool,
}

#[derive(Clone, Debug)]
pub struct AudioFrame {
    pub pts_ns: u64,
    /// One raw AAC frame.
    pub data: Bytes,
    /// Played while the input was lost (the slate's silence).
    pub filler: bool,
}

/// Counters a sender keeps, readable from telemetry.
#[derive(Debug, Default)]
pub struct SenderStats {
    pub sent: AtomicU64,
    pub dropped: AtomicU64,
}

/// The pipeline side of an egress channel. Cloneable; `send` never blocks.
#[derive(Clone, Debug)]
pub struct MediaSender {
    tx: mpsc::Sender<Media>,
    /// Set when an item was dropped: drop everything until the next keyframe,
    /// so the receiver resumes on a decodable frame with no gap inside a GOP.
    need_keyframe: Arc<AtomicBool>,
    pub stats: Arc<SenderStats>,
}

impl MediaSender {
    /// A channel of `capacity` items (about one GOP of video plus its audio is enough).
    pub fn channel(capacity: usize) -> (MediaSender, mpsc::Receiver<Media>) {
        let (tx, rx) = mpsc::channel(capacity);
        let sender = MediaSender {
            tx,
            need_keyframe: Arc::new(AtomicBool::new(false)),
            stats: Arc::new(SenderStats::default()),
        };
        (sender, rx)
    }

    /// Items waiting in the channel for the actor (a rising level: the
    /// output cannot send as fast as the pipeline encodes).
    pub fn queued(&self) -> usize {
        self.tx.max_capacity() - self.tx.capacity()
    }

    /// Offers one item; returns false when it was dropped.
    pub fn send(&self, media: Media) -> bool {
        let is_config = matches!(media, Media::VideoConfig(_) | Media::AudioConfig(_));
        if !is_config && self.need_keyframe.load(Ordering::Acquire) {
            match &media {
                Media::Video(v) if v.keyframe => {}
                _ => {
                    self.stats.dropped.fetch_add(1, Ordering::Relaxed);
                    return false;
                }
            }
        }
        let keyframe = matches!(&media, Media::Video(v) if v.keyframe);
        match self.tx.try_send(media) {
            Ok(()) => {
                if keyframe {
                    self.need_keyframe.store(false, Ordering::Release);
                }
                self.stats.sent.fetch_add(1, Ordering::Relaxed);
                true
            }
            Err(_) => {
                self.need_keyframe.store(true, Ordering::Release);
                self.stats.dropped.fetch_add(1, Ordering::Relaxed);
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn video(pts_ms: u64, keyframe: bool) -> Media {
        Media::Video(VideoFrame {
            pts_ns: pts_ms * 1_000_000,
            dts_ns: pts_ms * 1_000_000,
            keyframe,
            data: Bytes::from_static(b"x"),
            filler: false,
        })
    }

    #[test]
    fn a_full_channel_drops_until_the_next_keyframe_instead_of_queueing_a_backlog() {
        let (tx, mut rx) = MediaSender::channel(2);
        assert!(tx.send(video(0, true)));
        assert!(tx.send(video(33, false)));
        assert!(!tx.send(video(66, false)), "channel full: dropped");
        rx.try_recv().unwrap();
        rx.try_recv().unwrap();
        // Room again, but a delta frame after a drop would not decode: still dropped.
        assert!(!tx.send(video(100, false)));
        assert!(!tx.send(Media::Audio(AudioFrame { pts_ns: 0, data: Bytes::new(), filler: false })));
        assert!(tx.send(video(2000, true)), "keyframe resumes the flow");
        assert!(tx.send(video(2033, false)));
        assert_eq!(tx.stats.dropped.load(Ordering::Relaxed), 3);
        assert_eq!(tx.stats.sent.load(Ordering::Relaxed), 4);
    }

    #[test]
    fn codec_configs_pass_even_while_waiting_for_a_keyframe() {
        let (tx, _rx) = MediaSender::channel(1);
        assert!(tx.send(video(0, true)));
        assert!(!tx.send(video(33, false)));
        drop(_rx);
        let (tx2, _rx2) = MediaSender::channel(4);
        tx2.need_keyframe.store(true, Ordering::Release);
        assert!(tx2.send(Media::VideoConfig(Bytes::from_static(b"c"))));
    }
}

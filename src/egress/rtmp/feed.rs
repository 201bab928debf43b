//! What a publish sends, decided without I/O: sequence headers before the
//! first frames, video starting at a keyframe, audio starting with it, and
//! everything discarded while no publish is up.

use crate::egress::flv::{self, Tag};
use crate::egress::{AudioFrame, Media, VideoFrame};
use bytes::Bytes;

/// One RTMP media message to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Outgoing {
    /// `@setDataFrame/onMetaData`, stamped with the publish's first media
    /// timestamp (ms) so it never lies behind the media it describes.
    Metadata { timestamp: u32 },
    VideoHeader(Tag),
    AudioHeader(Tag),
    Video(Tag),
    Audio(Tag),
}

/// The media state of one (destination, rung) across its publishes.
///
/// Codec configurations outlive a connection (the pipeline sends them once,
/// when caps are negotiated); everything else restarts with each publish.
#[derive(Debug, Default)]
pub(crate) struct Feed {
    video_config: Option<Bytes>,
    audio_config: Option<Bytes>,
    publish: Option<PublishState>,
}

#[derive(Debug, Default)]
struct PublishState {
    /// DTS of the keyframe this publish started at; `None` until then.
    start_ns: Option<u64>,
    metadata_sent: bool,
    video_header_sent: bool,
    audio_header_sent: bool,
}

impl Feed {
    /// A publish was accepted: the next video keyframe starts its media.
    pub fn begin_publish(&mut self) {
        self.publish = Some(PublishState::default());
    }

    /// DTS of the keyframe the current publish started at (ns of running time).
    pub fn start_ns(&self) -> Option<u64> {
        self.publish.as_ref().and_then(|p| p.start_ns)
    }

    /// `onMetaData` goes out again before the next video frame (a new
    /// declared bitrate); a publish that has not started sends it anyway.
    pub fn declare_again(&mut self) {
        if let Some(p) = &mut self.publish {
            p.metadata_sent = false;
        }
    }

    /// The publish ended (connection lost or closed): discard until the next one.
    pub fn end_publish(&mut self) {
        self.publish = None;
    }

    /// Takes one item from the channel and appends what to send to `out`.
    /// Returns false when the item was discarded (not publishing, waiting
    /// for a keyframe, or no decoder configuration for it yet).
    pub fn accept(&mut self, media: Media, out: &mut Vec<Outgoing>) -> bool {
        self.accept_gated(media, true, out)
    }

    /// As [`accept`](Self::accept); a publish waiting for its first keyframe
    /// starts only on one where `may_start` (its destination's other rungs
    /// start there too, see `egress::resume`).
    pub fn accept_gated(&mut self, media: Media, may_start: bool, out: &mut Vec<Outgoing>) -> bool {
        match media {
            Media::VideoConfig(config) => {
                if self.video_config.as_ref() != Some(&config) {
                    self.video_config = Some(config);
                    if let Some(p) = &mut self.publish {
                        p.video_header_sent = false;
                    }
                }
                true
            }
            Media::AudioConfig(config) => {
                if self.audio_config.as_ref() != Some(&config) {
                    self.audio_config = Some(config);
                    if let Some(p) = &mut self.publish {
                        p.audio_header_sent = false;
                    }
                }
                true
            }
            Media::Video(frame) => self.video(&frame, may_start, out),
            Media::Audio(frame) => self.audio(&frame, out),
        }
    }

    fn video(&mut self, frame: &VideoFrame, may_start: bool, out: &mut Vec<Outgoing>) -> bool {
        let (Some(p), Some(video_config)) = (&mut self.publish, &self.video_config) else {
            return false;
        };
        if p.start_ns.is_none() {
            if !frame.keyframe || !may_start {
                return false;
            }
            p.start_ns = Some(frame.dts_ns);
        }
        let timestamp = flv::rtmp_timestamp(frame.dts_ns);
        if !p.metadata_sent {
            out.push(Outgoing::Metadata { timestamp });
            p.metadata_sent = true;
        }
        if !p.video_header_sent {
            out.push(Outgoing::VideoHeader(Tag { timestamp, body: flv::avc_sequence_header(video_config) }));
            p.video_header_sent = true;
        }
        // Both headers precede the first frame of a publish, as ingest requires.
        if let (false, Some(audio_config)) = (p.audio_header_sent, &self.audio_config) {
            out.push(Outgoing::AudioHeader(Tag { timestamp, body: flv::aac_sequence_header(audio_config) }));
            p.audio_header_sent = true;
        }
        out.push(Outgoing::Video(flv::video_tag(frame)));
        true
    }

    fn audio(&mut self, frame: &AudioFrame, out: &mut Vec<Outgoing>) -> bool {
        let (Some(p), Some(audio_config)) = (&mut self.publish, &self.audio_config) else {
            return false;
        };
        // Audio joins at the video start, never before it on the timeline.
        match p.start_ns {
            Some(start) if frame.pts_ns >= start => {}
            _ => return false,
        }
        if !p.audio_header_sent {
            let timestamp = flv::rtmp_timestamp(frame.pts_ns);
            out.push(Outgoing::AudioHeader(Tag { timestamp, body: flv::aac_sequence_header(audio_config) }));
            p.audio_header_sent = true;
        }
        out.push(Outgoing::Audio(flv::audio_tag(frame)));
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const AVCC: &[u8] = b"\x01avcc";
    const ASC: &[u8] = b"\x11\x90";

    fn video(ms: u64, keyframe: bool) -> Media {
        Media::Video(VideoFrame {
            pts_ns: ms * 1_000_000,
            dts_ns: ms * 1_000_000,
            keyframe,
            data: Bytes::from_static(b"au"),
            filler: false,
        })
    }
    fn audio(ms: u64) -> Media {
        Media::Audio(AudioFrame { pts_ns: ms * 1_000_000, data: Bytes::from_static(b"aac"), filler: false })
    }
    fn configs(feed: &mut Feed) {
        let mut out = Vec::new();
        feed.accept(Media::VideoConfig(Bytes::from_static(AVCC)), &mut out);
        feed.accept(Media::AudioConfig(Bytes::from_static(ASC)), &mut out);
        assert!(out.is_empty());
    }
    fn kinds(out: &[Outgoing]) -> Vec<(&'static str, u32)> {
        out.iter()
            .map(|o| match o {
                Outgoing::Metadata { timestamp } => ("m", *timestamp),
                Outgoing::VideoHeader(t) => ("vh", t.timestamp),
                Outgoing::AudioHeader(t) => ("ah", t.timestamp),
                Outgoing::Video(t) if t.body[0] == flv::AVC_KEYFRAME => ("K", t.timestamp),
                Outgoing::Video(t) => ("v", t.timestamp),
                Outgoing::Audio(t) => ("a", t.timestamp),
            })
            .collect()
    }

    #[test]
    fn nothing_is_sent_while_no_publish_is_up_but_configs_are_remembered() {
        let mut feed = Feed::default();
        let mut out = Vec::new();
        configs(&mut feed);
        assert!(!feed.accept(video(0, true), &mut out));
        assert!(!feed.accept(audio(0), &mut out));
        assert!(out.is_empty());
        feed.begin_publish();
        assert!(feed.accept(video(33, true), &mut out));
        assert_eq!(kinds(&out), [("m", 33), ("vh", 33), ("ah", 33), ("K", 33)]);
    }

    #[test]
    fn a_publish_starts_at_a_keyframe_with_both_headers_and_drops_earlier_audio() {
        let mut feed = Feed::default();
        configs(&mut feed);
        feed.begin_publish();
        let mut out = Vec::new();
        for m in [
            audio(990),
            video(1000, false),
            audio(1011),
            video(1033, true),
            audio(1032),
            audio(1053),
            video(1066, false),
        ] {
            feed.accept(m, &mut out);
        }
        assert_eq!(kinds(&out), [("m", 1033), ("vh", 1033), ("ah", 1033), ("K", 1033), ("a", 1053), ("v", 1066)]);
    }

    #[test]
    fn each_publish_resends_headers_and_waits_for_a_keyframe_on_the_same_timeline() {
        let mut feed = Feed::default();
        configs(&mut feed);
        feed.begin_publish();
        let mut out = Vec::new();
        feed.accept(video(0, true), &mut out);
        feed.end_publish();
        out.clear();
        assert!(!feed.accept(video(33, false), &mut out));
        feed.begin_publish();
        for m in [video(5000, false), audio(5010), video(6000, true), audio(6005)] {
            feed.accept(m, &mut out);
        }
        assert_eq!(kinds(&out), [("m", 6000), ("vh", 6000), ("ah", 6000), ("K", 6000), ("a", 6005)], "metadata again, on the media clock");
    }

    #[test]
    fn a_new_declared_bitrate_goes_out_as_onmetadata_before_the_next_video_frame_only() {
        let mut feed = Feed::default();
        configs(&mut feed);
        feed.begin_publish();
        let mut out = Vec::new();
        feed.accept(video(0, true), &mut out);
        out.clear();
        feed.declare_again();
        for m in [audio(20), video(33, false), video(66, false)] {
            feed.accept(m, &mut out);
        }
        assert_eq!(kinds(&out), [("a", 20), ("m", 33), ("v", 33), ("v", 66)], "no headers again, no keyframe wait");
    }

    #[test]
    fn a_new_codec_configuration_is_sent_before_the_next_frame_of_its_kind() {
        let mut feed = Feed::default();
        configs(&mut feed);
        feed.begin_publish();
        let mut out = Vec::new();
        feed.accept(video(0, true), &mut out);
        out.clear();
        feed.accept(Media::VideoConfig(Bytes::from_static(AVCC)), &mut out);
        feed.accept(video(33, false), &mut out);
        assert_eq!(kinds(&out), [("v", 33)], "an unchanged config is not resent");
        out.clear();
        feed.accept(Media::VideoConfig(Bytes::from_static(b"\x01new")), &mut out);
        feed.accept(video(66, true), &mut out);
        assert_eq!(kinds(&out), [("vh", 66), ("K", 66)]);
        assert_eq!(&out[0], &Outgoing::VideoHeader(Tag { timestamp: 66, body: flv::avc_sequence_header(b"\x01new") }));
    }

    #[test]
    fn a_publish_held_by_its_destination_starts_on_a_later_keyframe() {
        let mut feed = Feed::default();
        configs(&mut feed);
        feed.begin_publish();
        let mut out = Vec::new();
        assert!(!feed.accept_gated(video(0, true), false, &mut out), "held: the other rungs are not up");
        assert!(!feed.accept_gated(audio(10), true, &mut out));
        assert!(feed.accept_gated(video(1000, true), true, &mut out));
        assert_eq!(kinds(&out), [("m", 1000), ("vh", 1000), ("ah", 1000), ("K", 1000)]);
    }

    #[test]
    fn frames_without_a_decoder_configuration_are_discarded() {
        let mut feed = Feed::default();
        feed.begin_publish();
        let mut out = Vec::new();
        assert!(!feed.accept(video(0, true), &mut out));
        feed.accept(Media::VideoConfig(Bytes::from_static(AVCC)), &mut out);
        assert!(feed.accept(video(33, true), &mut out));
        assert!(!feed.accept(audio(40), &mut out), "no AudioSpecificConfig yet");
        feed.accept(Media::AudioConfig(Bytes::from_static(ASC)), &mut out);
        assert!(feed.accept(audio(61), &mut out));
        assert_eq!(kinds(&out), [("m", 33), ("vh", 33), ("K", 33), ("ah", 61), ("a", 61)]);
    }
}

//! FLV tag bodies for RTMP audio/video messages: AVC and AAC sequence headers
//! and frames, plus the ns -> RTMP millisecond timestamp conversion.
//!
//! These are pure functions: the RTMP publisher wraps each body in a message
//! (type 9 video, type 8 audio) whose timestamp is the frame's DTS in ms.

use super::{AudioFrame, VideoFrame};
use bytes::{BufMut, Bytes, BytesMut};

/// FLV VideoTagHeader first byte: frame type 1 (keyframe) + codec 7 (AVC).
pub const AVC_KEYFRAME: u8 = 0x17;
/// FLV VideoTagHeader first byte: frame type 2 (inter frame) + codec 7 (AVC).
pub const AVC_INTER_FRAME: u8 = 0x27;
/// FLV AudioTagHeader: codec 10 (AAC), 44 kHz flag, 16-bit, stereo. FLV
/// requires these fixed flags for AAC; the real format is in the AudioSpecificConfig.
pub const AAC_AUDIO: u8 = 0xAF;

/// AVCPacketType / AACPacketType 0: sequence header (decoder configuration).
const SEQUENCE_HEADER: u8 = 0;
/// AVCPacketType 1 (NAL units) / AACPacketType 1 (raw frame).
const FRAME: u8 = 1;

/// Composition time is a signed 24-bit field.
const CTS_MIN: i64 = -(1 << 23);
const CTS_MAX: i64 = (1 << 23) - 1;

/// One FLV tag ready to become an RTMP message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tag {
    /// RTMP timestamp (ms, wrapping): the DTS for video, the PTS for audio.
    pub timestamp: u32,
    pub body: Bytes,
}

/// Pipeline nanoseconds -> unwrapped milliseconds, rounded to nearest.
///
/// The conversion is applied to each absolute time (never to deltas), and
/// it is monotonic: a later time never maps to a smaller millisecond, so
/// rounding cannot reorder frames or accumulate drift.
pub fn millis(ns: u64) -> u64 {
    ns / 1_000_000 + u64::from(ns % 1_000_000 >= 500_000)
}

/// Pipeline nanoseconds -> RTMP timestamp (32-bit ms, wrapping after ~49.7 days,
/// which RTMP peers handle as serial-number arithmetic).
pub fn rtmp_timestamp(ns: u64) -> u32 {
    millis(ns) as u32
}

/// Composition time offset (PTS - DTS) in ms, computed from the rounded
/// absolute times so a receiver's `dts + cts` lands exactly on `millis(pts)`.
/// Clamped to the signed 24-bit range FLV can carry.
pub fn composition_time_ms(pts_ns: u64, dts_ns: u64) -> i32 {
    let cts = millis(pts_ns) as i64 - millis(dts_ns) as i64;
    cts.clamp(CTS_MIN, CTS_MAX) as i32
}

/// AVC sequence header: `0x17 0x00 0 0 0` + AVCDecoderConfigurationRecord.
pub fn avc_sequence_header(decoder_config: &[u8]) -> Bytes {
    let mut b = BytesMut::with_capacity(5 + decoder_config.len());
    b.put_slice(&[AVC_KEYFRAME, SEQUENCE_HEADER, 0, 0, 0]);
    b.put_slice(decoder_config);
    b.freeze()
}

/// AVC NALU packet: frame type, AVCPacketType 1, signed 24-bit composition
/// time (big-endian), then the length-prefixed access unit.
pub fn avc_nalus(keyframe: bool, composition_ms: i32, access_unit: &[u8]) -> Bytes {
    let cts = (composition_ms as i64).clamp(CTS_MIN, CTS_MAX) as i32;
    let mut b = BytesMut::with_capacity(5 + access_unit.len());
    b.put_u8(if keyframe { AVC_KEYFRAME } else { AVC_INTER_FRAME });
    b.put_u8(FRAME);
    b.put_slice(&cts.to_be_bytes()[1..]);
    b.put_slice(access_unit);
    b.freeze()
}

/// AAC sequence header: `0xAF 0x00` + AudioSpecificConfig.
pub fn aac_sequence_header(audio_specific_config: &[u8]) -> Bytes {
    let mut b = BytesMut::with_capacity(2 + audio_specific_config.len());
    b.put_slice(&[AAC_AUDIO, SEQUENCE_HEADER]);
    b.put_slice(audio_specific_config);
    b.freeze()
}

/// AAC raw frame: `0xAF 0x01` + one raw AAC frame (no ADTS header).
pub fn aac_raw(frame: &[u8]) -> Bytes {
    let mut b = BytesMut::with_capacity(2 + frame.len());
    b.put_slice(&[AAC_AUDIO, FRAME]);
    b.put_slice(frame);
    b.freeze()
}

/// A video frame as a tag stamped with its DTS.
pub fn video_tag(frame: &VideoFrame) -> Tag {
    let cts = composition_time_ms(frame.pts_ns, frame.dts_ns);
    Tag { timestamp: rtmp_timestamp(frame.dts_ns), body: avc_nalus(frame.keyframe, cts, &frame.data) }
}

/// An audio frame as a tag stamped with its PTS.
pub fn audio_tag(frame: &AudioFrame) -> Tag {
    Tag { timestamp: rtmp_timestamp(frame.pts_ns), body: aac_raw(&frame.data) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_headers_wrap_the_codec_configuration() {
        let avcc = [0x01, 0x64, 0x00, 0x1f, 0xff];
        assert_eq!(&avc_sequence_header(&avcc)[..], &[0x17, 0, 0, 0, 0, 0x01, 0x64, 0x00, 0x1f, 0xff]);
        let asc = [0x11, 0x90];
        assert_eq!(&aac_sequence_header(&asc)[..], &[0xAF, 0x00, 0x11, 0x90]);
    }

    #[test]
    fn frames_carry_frame_type_packet_type_and_composition_time() {
        assert_eq!(&avc_nalus(true, 0, b"\0\0\0\x01\x65")[..], b"\x17\x01\0\0\0\0\0\0\x01\x65");
        assert_eq!(&avc_nalus(false, 67, b"x")[..], b"\x27\x01\x00\x00\x43x");
        assert_eq!(&aac_raw(b"\x21\x10")[..], b"\xAF\x01\x21\x10");
    }

    #[test]
    fn composition_time_is_signed_24_bit_big_endian() {
        assert_eq!(&avc_nalus(false, -1, b"")[2..5], &[0xFF, 0xFF, 0xFF]);
        assert_eq!(&avc_nalus(false, 0x12_3456, b"")[2..5], &[0x12, 0x34, 0x56]);
        // Out of range values saturate instead of flipping sign.
        assert_eq!(&avc_nalus(false, i32::MAX, b"")[2..5], &[0x7F, 0xFF, 0xFF]);
        assert_eq!(&avc_nalus(false, i32::MIN, b"")[2..5], &[0x80, 0x00, 0x00]);
    }

    #[test]
    fn timestamps_round_to_the_nearest_millisecond() {
        assert_eq!(rtmp_timestamp(0), 0);
        assert_eq!(rtmp_timestamp(499_999), 0);
        assert_eq!(rtmp_timestamp(500_000), 1);
        assert_eq!(rtmp_timestamp(33_333_333), 33);
        assert_eq!(rtmp_timestamp(66_666_667), 67);
    }

    #[test]
    fn a_later_time_never_maps_to_an_earlier_millisecond() {
        // 30000/1001 fps and 48 kHz AAC frame durations, far from zero.
        let start = 3_600_000_000_000_u64;
        for frame_ns in [1_001_000_000_u64 / 30, 1_024_000_000_000 / 48_000] {
            let mut last = None;
            for i in 0..10_000_u64 {
                let ms = millis(start + i * frame_ns);
                assert!(last.is_none_or(|l| ms > l), "frame {i}: {ms} after {last:?}");
                last = Some(ms);
            }
        }
        for ns in (0..5_000_000_u64).step_by(997) {
            assert!(millis(ns + 1) >= millis(ns));
        }
    }

    #[test]
    fn timestamps_wrap_at_32_bits() {
        let wrap_ms = 1_u64 << 32;
        assert_eq!(rtmp_timestamp(wrap_ms * 1_000_000), 0);
        assert_eq!(rtmp_timestamp((wrap_ms + 5) * 1_000_000), 5);
        assert_eq!(rtmp_timestamp((wrap_ms - 1) * 1_000_000), u32::MAX);
    }

    #[test]
    fn composition_time_comes_from_rounded_absolute_times() {
        // pts 100.4 ms, dts 66.6 ms: 100 - 67 = 33, so dts_ms + cts == pts_ms.
        let (pts, dts) = (100_400_000, 66_600_000);
        let cts = composition_time_ms(pts, dts);
        assert_eq!(cts, 33);
        assert_eq!(rtmp_timestamp(dts) as i64 + cts as i64, rtmp_timestamp(pts) as i64);
        assert_eq!(composition_time_ms(0, 10_000_000), -10);
    }

    #[test]
    fn video_and_audio_tags_use_dts_and_pts() {
        let v = VideoFrame {
            pts_ns: 2_066_666_667,
            dts_ns: 2_000_000_000,
            keyframe: false,
            data: Bytes::from_static(b"au"),
            filler: false,
        };
        let t = video_tag(&v);
        assert_eq!(t.timestamp, 2000);
        assert_eq!(&t.body[..], b"\x27\x01\x00\x00\x43au");
        let a = AudioFrame { pts_ns: 21_333_333, data: Bytes::from_static(b"aac"), filler: false };
        assert_eq!(audio_tag(&a), Tag { timestamp: 21, body: Bytes::from_static(b"\xAF\x01aac") });
    }
}

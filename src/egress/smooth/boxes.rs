//! The boxes Smooth Streaming ingest adds to fragmented MP4 (MS-SSTR and
//! the Live Server Manifest of IIS Live Smooth Streaming), written with
//! `mp4-atom`'s `uuid` box: the `isml` `ftyp`, the Live Server Manifest box
//! (its SMIL from [`super::manifest`]), and the `tfxd` box every fragment's `traf`
//! carries. A track's Smooth header is `ftyp` + manifest + the `moov` CMAF
//! shares ([`fragment::video_moov`]).
//! Pure: bytes in, bytes out.

use crate::egress::cmaf::fragment::{self, AudioInfo, FragmentError, SMOOTH_TIMESCALE, VideoInfo};
use bytes::Bytes;
use mp4_atom::{Encode, ExtendedType, Ftyp, Uuid};

/// `uuid` of the Live Server Manifest box (a5d40b30-e814-11dd-ba2f-0800200c9a66).
pub const MANIFEST_UUID: [u8; 16] = [0xa5, 0xd4, 0x0b, 0x30, 0xe8, 0x14, 0x11, 0xdd, 0xba, 0x2f, 0x08, 0x00, 0x20, 0x0c, 0x9a, 0x66];
/// `uuid` of the TrackFragmentExtendedHeader box, `tfxd` (6d1d9b05-42d5-44e6-80e2-141daff757b2).
pub const TFXD_UUID: [u8; 16] = [0x6d, 0x1d, 0x9b, 0x05, 0x42, 0xd5, 0x44, 0xe6, 0x80, 0xe2, 0x14, 0x1d, 0xaf, 0xf7, 0x57, 0xb2];

fn uuid_box(uuid: [u8; 16], payload: Vec<u8>) -> Vec<u8> {
    let mut buf = Vec::new();
    Uuid::Unknown(ExtendedType::from(uuid), payload).encode(&mut buf).expect("a uuid box always encodes");
    buf
}

/// `tfxd`, version 1: the fragment's absolute time and duration (64-bit),
/// in the track's timescale.
pub fn tfxd(time: u64, duration: u64) -> Vec<u8> {
    let mut p = vec![1, 0, 0, 0];
    p.extend_from_slice(&time.to_be_bytes());
    p.extend_from_slice(&duration.to_be_bytes());
    uuid_box(TFXD_UUID, p)
}

fn ftyp() -> Result<Vec<u8>, FragmentError> {
    let mut buf = Vec::new();
    Ftyp { major_brand: b"isml".into(), minor_version: 1, compatible_brands: vec![b"piff".into(), b"iso2".into()] }
        .encode(&mut buf)
        .map_err(FragmentError::Encode)?;
    Ok(buf)
}

/// The Live Server Manifest box: a full box (version 0) holding the SMIL
/// ([`super::manifest::smil`]).
fn manifest_box(smil: &str) -> Vec<u8> {
    let mut p = vec![0, 0, 0, 0];
    p.extend_from_slice(smil.as_bytes());
    uuid_box(MANIFEST_UUID, p)
}

/// A video track's Smooth header: `ftyp` (`isml`), the Live Server Manifest
/// box holding `smil` (the destination's, listing every track), `moov` at 10 MHz.
pub fn video_header(info: &VideoInfo, avc_config: &[u8], smil: &str) -> Result<Bytes, FragmentError> {
    let moov = fragment::video_moov(info, avc_config, SMOOTH_TIMESCALE)?;
    Ok([ftyp()?, manifest_box(smil), moov.to_vec()].concat().into())
}

/// The audio track's Smooth header, as [`video_header`].
pub fn audio_header(info: &AudioInfo, asc: &[u8], smil: &str) -> Result<Bytes, FragmentError> {
    let moov = fragment::audio_moov(info, asc, SMOOTH_TIMESCALE)?;
    Ok([ftyp()?, manifest_box(smil), moov.to_vec()].concat().into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::egress::smooth::manifest::{self, Listed, ListedKind};
    use crate::egress::cmaf::fragment::{Flavor, Sample};
    use mp4_atom::{Any, Decode};

    /// An AVCDecoderConfigurationRecord for a 640x360 High profile stream (x264's).
    const AVCC: &[u8] = &[
        0x01, 0x64, 0x00, 0x1e, 0xff, 0xe1, 0x00, 0x1a, 0x67, 0x64, 0x00, 0x1e, 0xac, 0xd9, 0x40, 0xa0, 0x2f, 0xf9, 0x70, 0x11, 0x00, 0x00, 0x03, 0x00, 0x01,
        0x00, 0x00, 0x03, 0x00, 0x3c, 0x0f, 0x16, 0x2d, 0x96, 0x01, 0x00, 0x06, 0x68, 0xeb, 0xe3, 0xcb, 0x22, 0xc0, 0xfd, 0xf8, 0xf8, 0x00,
    ];

    /// (type, uuid if any, payload) of each box in `b`, by hand.
    fn walk(mut b: &[u8]) -> Vec<(String, Option<[u8; 16]>, Vec<u8>)> {
        let mut out = Vec::new();
        while b.len() >= 8 {
            let size = u32::from_be_bytes(b[..4].try_into().unwrap()) as usize;
            let kind = String::from_utf8_lossy(&b[4..8]).into_owned();
            let (uuid, body) = if kind == "uuid" { (Some(b[8..24].try_into().unwrap()), &b[24..size]) } else { (None, &b[8..size]) };
            out.push((kind, uuid, body.to_vec()));
            b = &b[size..];
        }
        out
    }

    #[test]
    fn tfxd_is_a_version_1_uuid_box_with_time_and_duration() {
        let t = tfxd(0x0102_0304_0506_0708, 20_000_000);
        assert_eq!(t.len(), 8 + 16 + 4 + 16);
        let b = walk(&t);
        assert_eq!((b[0].0.as_str(), b[0].1), ("uuid", Some(TFXD_UUID)));
        assert_eq!(&b[0].2[..4], &[1, 0, 0, 0]);
        assert_eq!(u64::from_be_bytes(b[0].2[4..12].try_into().unwrap()), 0x0102_0304_0506_0708);
        assert_eq!(u64::from_be_bytes(b[0].2[12..20].try_into().unwrap()), 20_000_000);
    }

    #[test]
    fn a_video_header_is_isml_then_the_manifest_with_bitrate_and_sps_pps_then_a_10_mhz_moov() {
        let info = VideoInfo { width: 640, height: 360, bitrate_bps: 800_000 };
        let smil = manifest::smil(&[Listed { name: "video-r1".into(), kind: ListedKind::Video(info.clone()) }], &[Bytes::from_static(AVCC)]).unwrap();
        let h = video_header(&info, AVCC, &smil).unwrap();
        assert_eq!(h, video_header(&info, AVCC, &smil).unwrap(), "byte-identical every time");
        let b = walk(&h);
        assert_eq!(b.iter().map(|x| x.0.as_str()).collect::<Vec<_>>(), ["ftyp", "uuid", "moov"]);
        assert_eq!(&b[0].2[..4], b"isml");
        assert_eq!(b[1].1, Some(MANIFEST_UUID));
        let xml = String::from_utf8(b[1].2[4..].to_vec()).unwrap();
        assert_eq!(xml, smil);
        assert!(xml.contains("<video src=\"video-r1.ismv\" systemBitrate=\"800000\">"), "{xml}");
        // 00000001 + the SPS (26 bytes from 0x67) + 00000001 + the PPS (6 bytes from 0x68).
        let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02X}")).collect::<String>();
        let cpd = format!("00000001{}00000001{}", hex(&AVCC[8..34]), hex(&AVCC[37..43]));
        assert!(xml.contains(&format!("name=\"CodecPrivateData\" value=\"{cpd}\"")), "{xml}");
        assert!(cpd.starts_with("0000000167640") && cpd.contains("0000000168EB"));
        let mut rest = &h[b[0].2.len() + 8 + b[1].2.len() + 24..];
        let Any::Moov(m) = Any::decode(&mut rest).unwrap() else { panic!("moov") };
        assert_eq!(m.trak[0].mdia.mdhd.timescale, SMOOTH_TIMESCALE);
    }

    #[test]
    fn an_audio_header_lists_the_audio_specific_config() {
        let info = AudioInfo { sample_rate: 48000, channels: 2, bitrate_bps: 128_000 };
        let smil = manifest::smil(&[Listed { name: "audio".into(), kind: ListedKind::Audio(info.clone()) }], &[Bytes::from_static(&[0x11, 0x90])]).unwrap();
        let h = audio_header(&info, &[0x11, 0x90], &smil).unwrap();
        let b = walk(&h);
        let xml = String::from_utf8(b[1].2[4..].to_vec()).unwrap();
        for s in
            ["systemBitrate=\"128000\"", "name=\"CodecPrivateData\" value=\"1190\"", "name=\"FourCC\" value=\"AACL\"", "name=\"SamplingRate\" value=\"48000\""]
        {
            assert!(xml.contains(s), "{s} in {xml}");
        }
    }

    #[test]
    fn a_smooth_fragment_is_moof_with_tfxd_in_its_traf_then_mdat_and_the_data_offset_still_points_at_the_samples() {
        let samples = vec![
            Sample { duration: 333_667, cts_offset: 0, sync: true, data: Bytes::from_static(b"IDR-bytes") },
            Sample { duration: 333_666, cts_offset: 0, sync: false, data: Bytes::from_static(b"P") },
        ];
        let s = fragment::segment(Flavor::Smooth, 3, 50_000_000, &samples, Default::default()).unwrap();
        let top = walk(&s);
        assert_eq!(top.iter().map(|x| x.0.as_str()).collect::<Vec<_>>(), ["moof", "mdat"], "no styp");
        let moof = walk(&top[0].2);
        assert_eq!(moof.iter().map(|x| x.0.as_str()).collect::<Vec<_>>(), ["mfhd", "traf"]);
        let traf = walk(&moof[1].2);
        let tfxd = traf.iter().find(|x| x.1 == Some(TFXD_UUID)).expect("tfxd in the traf");
        assert_eq!(u64::from_be_bytes(tfxd.2[4..12].try_into().unwrap()), 50_000_000);
        assert_eq!(u64::from_be_bytes(tfxd.2[12..20].try_into().unwrap()), 667_333);
        // mp4-atom reads the moof's tfdt and trun (tfxd aside) and the offset lands on the first sample.
        let moof_len = top[0].2.len() + 8;
        let mut m = &s[..moof_len];
        let Any::Moof(parsed) = Any::decode(&mut m).unwrap() else { panic!("moof") };
        assert_eq!(parsed.traf[0].tfdt.as_ref().unwrap().base_media_decode_time, 50_000_000);
        let offset = parsed.traf[0].trun[0].data_offset.unwrap() as usize;
        assert_eq!(&s[offset..offset + 9], b"IDR-bytes");
    }
}

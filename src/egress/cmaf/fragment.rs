//! CMAF boxes, written with `mp4-atom`: a track's CMAF header (`ftyp` with
//! the `cmfc`/`cmf2` brands, `moov` with one track and its `btrt`) and its
//! segments (`styp`, `moof` with `mfhd`/`tfhd`/`tfdt`/`trun`, `mdat`). Pure:
//! bytes in, bytes out, no GStreamer, no I/O.

use bytes::Bytes;
use mp4_atom::{
    Atom, Audio, Avc1, Avcc, Btrt, Codec, Dinf, Dref, Encode, Esds, FourCC, Ftyp, Hdlr, Mdat, Mdhd, Mdia, Mfhd, Minf, Moof, Moov,
    Mp4a, Mvex, Mvhd, Smhd, Stbl, Stco, Stsc, Stsd, Stsz, Stts, Styp, Tfdt, Tfhd, Tkhd, Traf, Trak, Trex, Trun, TrunEntry,
    TrunSamples, Url, Visual, Vmhd, esds,
};
use thiserror::Error;

/// Video media timescale: 90 kHz, exact for 25/30/50/60 and 29.97 fps.
pub const VIDEO_TIMESCALE: u32 = 90_000;
/// Every track file holds one track, with this id.
const TRACK_ID: u32 = 1;
/// `sample_depends_on = 2` (an IDR: depends on nothing).
pub const SYNC_SAMPLE: u32 = 0x0200_0000;
/// `sample_depends_on = 1`, `sample_is_non_sync_sample`.
pub const NON_SYNC_SAMPLE: u32 = 0x0101_0000;

#[derive(Debug, Error)]
pub enum FragmentError {
    #[error("the encoder's AVC configuration record is not valid ({0})")]
    AvcConfig(mp4_atom::Error),
    #[error("the encoder's AAC AudioSpecificConfig is shorter than 2 bytes")]
    AudioConfig,
    #[error("writing an MP4 box failed ({0})")]
    Encode(mp4_atom::Error),
}

/// What a video track's header declares.
#[derive(Clone, Debug, PartialEq)]
pub struct VideoInfo {
    pub width: u32,
    pub height: u32,
    pub bitrate_bps: u64,
}

/// What the audio track's header declares.
#[derive(Clone, Debug, PartialEq)]
pub struct AudioInfo {
    pub sample_rate: u32,
    pub channels: u32,
    pub bitrate_bps: u32,
}

/// One sample of a segment: its duration and composition offset in the
/// track's timescale, its sync flag, its bytes.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    pub duration: u32,
    pub cts_offset: i64,
    pub sync: bool,
    pub data: Bytes,
}

fn ftyp() -> Ftyp {
    Ftyp { major_brand: b"cmfc".into(), minor_version: 0, compatible_brands: vec![b"cmfc".into(), b"cmf2".into(), b"iso6".into(), b"isom".into()] }
}

fn encode(parts: &[&dyn EncodeDyn]) -> Result<Bytes, FragmentError> {
    let mut buf = Vec::new();
    for p in parts {
        p.encode_into(&mut buf).map_err(FragmentError::Encode)?;
    }
    Ok(Bytes::from(buf))
}

/// `Encode` is generic over the buffer; this makes a list of boxes possible.
trait EncodeDyn {
    fn encode_into(&self, buf: &mut Vec<u8>) -> mp4_atom::Result<()>;
}
impl<T: Encode> EncodeDyn for T {
    fn encode_into(&self, buf: &mut Vec<u8>) -> mp4_atom::Result<()> {
        self.encode(buf)
    }
}

fn moov(handler: &[u8; 4], timescale: u32, tkhd: Tkhd, minf: Minf) -> Moov {
    Moov {
        mvhd: Mvhd { timescale: 1000, rate: 1.into(), volume: 1.into(), next_track_id: TRACK_ID + 1, ..Default::default() },
        mvex: Some(Mvex { trex: vec![Trex { track_id: TRACK_ID, default_sample_description_index: 1, ..Default::default() }], ..Default::default() }),
        trak: vec![Trak {
            tkhd,
            mdia: Mdia {
                mdhd: Mdhd { timescale, language: "und".into(), ..Default::default() },
                hdlr: Hdlr { handler: FourCC::new(handler), name: "fieldcast".into() },
                minf,
            },
            ..Default::default()
        }],
        ..Default::default()
    }
}

fn stbl(codec: Codec) -> Stbl {
    Stbl {
        stsd: Stsd { codecs: vec![codec] },
        stts: Stts::default(),
        stsc: Stsc::default(),
        stsz: Stsz::default(),
        stco: Some(Stco::default()),
        ..Default::default()
    }
}

fn dinf() -> Dinf {
    Dinf { dref: Dref { entries: vec![Url { location: "".into() }.into()] } }
}

/// A video track's CMAF header: `ftyp` + `moov` (avc1 with avcC from the
/// encoder's configuration record, and `btrt`: the declared CBR rate, a
/// one-second buffer).
pub fn video_header(info: &VideoInfo, avc_config: &[u8]) -> Result<Bytes, FragmentError> {
    let avcc = Avcc::decode_body(&mut &avc_config[..]).map_err(FragmentError::AvcConfig)?;
    let rate = u32::try_from(info.bitrate_bps).unwrap_or(u32::MAX);
    let avc1 = Avc1 {
        visual: Visual { data_reference_index: 1, width: info.width as u16, height: info.height as u16, ..Default::default() },
        avcc,
        btrt: Some(Btrt { buffer_size_db: rate / 8, max_bitrate: rate, avg_bitrate: rate }),
        colr: None,
        pasp: None,
        taic: None,
        fiel: None,
        spatial: None,
    };
    let tkhd = Tkhd {
        track_id: TRACK_ID,
        enabled: true,
        in_movie: true,
        width: (info.width as u16).into(),
        height: (info.height as u16).into(),
        ..Default::default()
    };
    let minf = Minf { vmhd: Some(Vmhd::default()), dinf: dinf(), stbl: stbl(avc1.into()), ..Default::default() };
    encode(&[&ftyp(), &moov(b"vide", VIDEO_TIMESCALE, tkhd, minf)])
}

/// The audio track's CMAF header (mp4a, esds with the AudioSpecificConfig,
/// `btrt`); its timescale is the sample rate.
pub fn audio_header(info: &AudioInfo, asc: &[u8]) -> Result<Bytes, FragmentError> {
    let [a, b, ..] = asc else { return Err(FragmentError::AudioConfig) };
    let dec_specific = esds::DecoderSpecific {
        profile: a >> 3,
        freq_index: ((a & 7) << 1) | (b >> 7),
        chan_conf: (b >> 3) & 0x0f,
        raw: asc.to_vec(),
    };
    let mp4a = Mp4a {
        audio: Audio { data_reference_index: 1, channel_count: info.channels as u16, sample_size: 16, sample_rate: (info.sample_rate.min(65535) as u16).into() },
        esds: Esds {
            es_desc: esds::EsDescriptor {
                es_id: TRACK_ID as u16,
                dec_config: esds::DecoderConfig {
                    object_type_indication: 0x40,
                    stream_type: 5,
                    max_bitrate: info.bitrate_bps,
                    avg_bitrate: info.bitrate_bps,
                    dec_specific: Some(dec_specific),
                    ..Default::default()
                },
                ..Default::default()
            },
        },
        btrt: Some(Btrt { buffer_size_db: 0, max_bitrate: info.bitrate_bps, avg_bitrate: info.bitrate_bps }),
        taic: None,
    };
    let tkhd = Tkhd { track_id: TRACK_ID, enabled: true, in_movie: true, volume: 1.into(), ..Default::default() };
    let minf = Minf { smhd: Some(Smhd::default()), dinf: dinf(), stbl: stbl(mp4a.into()), ..Default::default() };
    encode(&[&ftyp(), &moov(b"soun", info.sample_rate, tkhd, minf)])
}

/// One CMAF segment: `styp` (`cmfs`, and `lmsg` on the last one of a
/// stream), `moof` (sequence `seq`, `tfdt` = `base_decode_time`), `mdat`.
pub fn segment(seq: u32, base_decode_time: u64, samples: &[Sample], last: bool) -> Result<Bytes, FragmentError> {
    let mut brands: Vec<FourCC> = vec![b"cmfs".into(), b"msdh".into(), b"msix".into()];
    if last {
        brands.push(b"lmsg".into());
    }
    let styp = Styp { major_brand: b"cmfs".into(), minor_version: 0, compatible_brands: brands };
    let entries = samples
        .iter()
        .map(|s| TrunEntry {
            duration: Some(s.duration),
            size: Some(s.data.len() as u32),
            flags: Some(if s.sync { SYNC_SAMPLE } else { NON_SYNC_SAMPLE }),
            cts: Some(s.cts_offset),
        })
        .collect();
    let mut moof = Moof {
        mfhd: Mfhd { sequence_number: seq },
        traf: vec![Traf {
            tfhd: Tfhd { track_id: TRACK_ID, default_base_is_moof: true, ..Default::default() },
            tfdt: Some(Tfdt { base_media_decode_time: base_decode_time }),
            trun: vec![Trun { data_offset: Some(0), samples: TrunSamples::Explicit(entries) }],
            ..Default::default()
        }],
    };
    // The data offset counts from the moof's first byte to the first sample
    // (past the mdat's 8-byte header); its size does not depend on the value.
    let mut probe = Vec::new();
    moof.encode(&mut probe).map_err(FragmentError::Encode)?;
    moof.traf[0].trun[0].data_offset = Some(probe.len() as i32 + 8);
    let data: Vec<u8> = samples.iter().flat_map(|s| s.data.iter().copied()).collect();
    encode(&[&styp, &moof, &Mdat { data }])
}

#[cfg(test)]
mod tests {
    use super::*;
    use mp4_atom::{Any, Decode};

    /// An AVCDecoderConfigurationRecord for a 640x360 High profile stream (x264's).
    pub(crate) const AVCC: &[u8] = &[
        0x01, 0x64, 0x00, 0x1e, 0xff, 0xe1, 0x00, 0x1a, 0x67, 0x64, 0x00, 0x1e, 0xac, 0xd9, 0x40, 0xa0, 0x2f, 0xf9, 0x70, 0x11, 0x00,
        0x00, 0x03, 0x00, 0x01, 0x00, 0x00, 0x03, 0x00, 0x3c, 0x0f, 0x16, 0x2d, 0x96, 0x01, 0x00, 0x06, 0x68, 0xeb, 0xe3, 0xcb, 0x22,
        0xc0, 0xfd, 0xf8, 0xf8, 0x00,
    ];
    /// AAC-LC, 48 kHz, stereo.
    pub(crate) const ASC: &[u8] = &[0x11, 0x90];

    fn boxes(mut b: &[u8]) -> Vec<Any> {
        let mut out = Vec::new();
        while !b.is_empty() {
            out.push(Any::decode(&mut b).expect("a box"));
        }
        out
    }

    #[test]
    fn a_video_header_is_ftyp_with_the_cmaf_brands_then_a_moov_with_btrt() {
        let h = video_header(&VideoInfo { width: 640, height: 360, bitrate_bps: 800_000 }, AVCC).unwrap();
        let b = boxes(&h);
        let Any::Ftyp(f) = &b[0] else { panic!("ftyp first: {b:?}") };
        assert!(f.compatible_brands.contains(&b"cmfc".into()) && f.compatible_brands.contains(&b"cmf2".into()));
        let Any::Moov(m) = &b[1] else { panic!("moov second") };
        assert_eq!(m.trak[0].mdia.mdhd.timescale, VIDEO_TIMESCALE);
        let Codec::Avc1(avc1) = &m.trak[0].mdia.minf.stbl.stsd.codecs[0] else { panic!("avc1") };
        assert_eq!((avc1.visual.width, avc1.visual.height), (640, 360));
        assert_eq!(avc1.btrt.as_ref().map(|b| b.avg_bitrate), Some(800_000));
        assert_eq!(avc1.avcc.sequence_parameter_sets.len(), 1);
        assert!(m.mvex.is_some(), "fragmented: mvex/trex");
    }

    #[test]
    fn an_audio_header_carries_the_audio_specific_config_and_btrt() {
        let h = audio_header(&AudioInfo { sample_rate: 48000, channels: 2, bitrate_bps: 128_000 }, ASC).unwrap();
        let b = boxes(&h);
        let Any::Moov(m) = &b[1] else { panic!("moov") };
        assert_eq!(m.trak[0].mdia.mdhd.timescale, 48000);
        let Codec::Mp4a(a) = &m.trak[0].mdia.minf.stbl.stsd.codecs[0] else { panic!("mp4a") };
        let ds = a.esds.es_desc.dec_config.dec_specific.as_ref().unwrap();
        assert_eq!((ds.profile, ds.freq_index, ds.chan_conf), (2, 3, 2));
        assert_eq!(a.btrt.as_ref().map(|b| b.max_bitrate), Some(128_000));
        assert!(matches!(audio_header(&AudioInfo { sample_rate: 48000, channels: 2, bitrate_bps: 1 }, &[1]), Err(FragmentError::AudioConfig)));
    }

    #[test]
    fn a_segment_points_its_trun_at_the_mdat_payload_and_marks_the_last() {
        let samples = vec![
            Sample { duration: 3000, cts_offset: 0, sync: true, data: Bytes::from_static(b"IDR-bytes") },
            Sample { duration: 3000, cts_offset: 3000, sync: false, data: Bytes::from_static(b"P") },
        ];
        let s = segment(7, 123_456, &samples, false).unwrap();
        let b = boxes(&s);
        let Any::Styp(styp) = &b[0] else { panic!("styp") };
        assert!(!styp.compatible_brands.contains(&b"lmsg".into()));
        let Any::Moof(moof) = &b[1] else { panic!("moof") };
        assert_eq!(moof.mfhd.sequence_number, 7);
        assert_eq!(moof.traf[0].tfdt.as_ref().unwrap().base_media_decode_time, 123_456);
        let styp_len = 8 + 8 + 4 * 3;
        let offset = moof.traf[0].trun[0].data_offset.unwrap() as usize;
        assert_eq!(&s[styp_len + offset..styp_len + offset + 9], b"IDR-bytes");
        let flags: Vec<_> = moof.traf[0].trun[0].samples.iter().map(|e| e.flags.unwrap()).collect();
        assert_eq!(flags, vec![SYNC_SAMPLE, NON_SYNC_SAMPLE]);
        let last = segment(8, 129_456, &samples, true).unwrap();
        let Any::Styp(styp) = &boxes(&last)[0] else { panic!("styp") };
        assert!(styp.compatible_brands.contains(&b"lmsg".into()));
    }
}

//! Fragmented-MP4 boxes, written with `mp4-atom`: a track's CMAF header
//! (`ftyp` with the `cmfc`/`cmf2` brands, `moov` with one track and its
//! `btrt`) and its segments (`styp`, `moof` with `mfhd`/`tfhd`/`tfdt`/`trun`,
//! `mdat`). The Smooth flavour ([`Flavor::Smooth`]) shares the `moov` and
//! the `moof`/`mdat`; its own boxes come from [`crate::egress::smooth::boxes`].
//! Pure: bytes in, bytes out, no GStreamer, no I/O.

use bytes::Bytes;
use mp4_atom::{
    Atom, Audio, Avc1, Avcc, Btrt, Codec, Dinf, Dref, Encode, Esds, FourCC, Ftyp, Hdlr, Mdat, Mdhd, Mdia, Mfhd, Minf, Moof, Moov,
    Mp4a, Mvex, Mvhd, Smhd, Stbl, Stco, Stsc, Stsd, Stsz, Stts, Styp, Tfdt, Tfhd, Tkhd, Traf, Trak, Trex, Trun, TrunEntry,
    TrunSamples, Url, Visual, Vmhd, esds,
};
use thiserror::Error;

/// Video media timescale: 90 kHz, exact for 25/30/50/60 and 29.97 fps.
pub const VIDEO_TIMESCALE: u32 = 90_000;
/// Smooth Streaming's conventional timescale (100 ns), for every track.
pub const SMOOTH_TIMESCALE: u32 = 10_000_000;

/// Which ingest protocol the boxes are for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Flavor {
    /// DASH-IF Live Media Ingest (CMAF): `styp` + `moof` + `mdat` segments.
    #[default]
    Cmaf,
    /// Smooth Streaming ingest: `moof` (with `tfxd`) + `mdat` fragments, 10 MHz.
    Smooth,
}

impl Flavor {
    pub fn video_timescale(self) -> u32 {
        match self {
            Flavor::Cmaf => VIDEO_TIMESCALE,
            Flavor::Smooth => SMOOTH_TIMESCALE,
        }
    }
    pub fn audio_timescale(self, sample_rate: u32) -> u32 {
        match self {
            Flavor::Cmaf => sample_rate.max(1),
            Flavor::Smooth => SMOOTH_TIMESCALE,
        }
    }
}
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

/// The encoder's AVC configuration record, parsed.
pub fn avc_config(avc_config: &[u8]) -> Result<Avcc, FragmentError> {
    Avcc::decode_body(&mut &avc_config[..]).map_err(FragmentError::AvcConfig)
}

/// A video track's CMAF header: `ftyp` + `moov` (see [`video_moov`]).
pub fn video_header(info: &VideoInfo, avc_config: &[u8]) -> Result<Bytes, FragmentError> {
    let moov = video_moov(info, avc_config, VIDEO_TIMESCALE)?;
    Ok([encode(&[&ftyp()])?, moov].concat().into())
}

/// A video track's `moov`: avc1 with avcC from the encoder's configuration
/// record, and `btrt`: the declared CBR rate, a one-second buffer.
pub fn video_moov(info: &VideoInfo, avc_config: &[u8], timescale: u32) -> Result<Bytes, FragmentError> {
    let avcc = self::avc_config(avc_config)?;
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
    encode(&[&moov(b"vide", timescale, tkhd, minf)])
}

/// The audio track's CMAF header: `ftyp` + `moov` (see [`audio_moov`]);
/// its timescale is the sample rate.
pub fn audio_header(info: &AudioInfo, asc: &[u8]) -> Result<Bytes, FragmentError> {
    let moov = audio_moov(info, asc, info.sample_rate)?;
    Ok([encode(&[&ftyp()])?, moov].concat().into())
}

/// The audio track's `moov` (mp4a, esds with the AudioSpecificConfig, `btrt`).
pub fn audio_moov(info: &AudioInfo, asc: &[u8], timescale: u32) -> Result<Bytes, FragmentError> {
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
    encode(&[&moov(b"soun", timescale, tkhd, minf)])
}

/// What a segment says of itself in its `styp` (CMAF only).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Labels {
    /// The last segment of the stream: `lmsg`.
    pub last: bool,
    /// Carries filler made while the input was lost: `slat` (DASH-IF ingest
    /// 6.1 item 18: a receiver may replace it with another source's segment).
    pub filler: bool,
}

/// One segment of `flavor`: for CMAF `styp` (`cmfs`, `slat` on filler,
/// `lmsg` on the last one of a stream), `moof` (sequence `seq`, `tfdt` =
/// `base_decode_time`), `mdat`; for Smooth `moof` with a `tfxd` in its
/// `traf` (the same time and the segment's duration), `mdat`.
pub fn segment(flavor: Flavor, seq: u32, base_decode_time: u64, samples: &[Sample], labels: Labels) -> Result<Bytes, FragmentError> {
    let (styp, traf_extra) = match flavor {
        Flavor::Cmaf => {
            let mut brands: Vec<FourCC> = vec![b"cmfs".into(), b"msdh".into(), b"msix".into()];
            if labels.filler {
                brands.push(b"slat".into());
            }
            if labels.last {
                brands.push(b"lmsg".into());
            }
            (encode(&[&Styp { major_brand: b"cmfs".into(), minor_version: 0, compatible_brands: brands }])?, Vec::new())
        }
        Flavor::Smooth => {
            let duration: u64 = samples.iter().map(|s| u64::from(s.duration)).sum();
            (Bytes::new(), crate::egress::smooth::boxes::tfxd(base_decode_time, duration))
        }
    };
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
    // (past the boxes added to the traf and the mdat's 8-byte header); its
    // size does not depend on the value.
    let mut probe = Vec::new();
    moof.encode(&mut probe).map_err(FragmentError::Encode)?;
    moof.traf[0].trun[0].data_offset = Some((probe.len() + traf_extra.len()) as i32 + 8);
    let mut moof_bytes = Vec::new();
    moof.encode(&mut moof_bytes).map_err(FragmentError::Encode)?;
    append_to_last_child(&mut moof_bytes, &traf_extra);
    let data: Vec<u8> = samples.iter().flat_map(|s| s.data.iter().copied()).collect();
    Ok([styp, moof_bytes.into(), encode(&[&Mdat { data }])?].concat().into())
}

/// Appends `extra` (whole boxes) to the end of the last child of the box in
/// `parent` (the `traf` of a one-track `moof`), growing both sizes.
fn append_to_last_child(parent: &mut Vec<u8>, extra: &[u8]) {
    if extra.is_empty() {
        return;
    }
    let size_at = |b: &[u8], at: usize| u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]) as usize;
    let grow = |b: &mut Vec<u8>, at: usize| {
        let n = (size_at(b, at) + extra.len()) as u32;
        b[at..at + 4].copy_from_slice(&n.to_be_bytes());
    };
    let mut child = 8;
    while child + size_at(parent, child) < parent.len() {
        child += size_at(parent, child);
    }
    grow(parent, 0);
    grow(parent, child);
    parent.extend_from_slice(extra);
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
    fn a_segment_points_its_trun_at_the_mdat_payload_and_labels_filler_and_the_last() {
        let samples = vec![
            Sample { duration: 3000, cts_offset: 0, sync: true, data: Bytes::from_static(b"IDR-bytes") },
            Sample { duration: 3000, cts_offset: 3000, sync: false, data: Bytes::from_static(b"P") },
        ];
        let s = segment(Flavor::Cmaf, 7, 123_456, &samples, Labels::default()).unwrap();
        let b = boxes(&s);
        let Any::Styp(styp) = &b[0] else { panic!("styp") };
        assert_eq!(styp.compatible_brands, vec![b"cmfs".into(), b"msdh".into(), b"msix".into()]);
        let Any::Moof(moof) = &b[1] else { panic!("moof") };
        assert_eq!(moof.mfhd.sequence_number, 7);
        assert_eq!(moof.traf[0].tfdt.as_ref().unwrap().base_media_decode_time, 123_456);
        let styp_len = 8 + 8 + 4 * 3;
        let offset = moof.traf[0].trun[0].data_offset.unwrap() as usize;
        assert_eq!(&s[styp_len + offset..styp_len + offset + 9], b"IDR-bytes");
        let flags: Vec<_> = moof.traf[0].trun[0].samples.iter().map(|e| e.flags.unwrap()).collect();
        assert_eq!(flags, vec![SYNC_SAMPLE, NON_SYNC_SAMPLE]);
        let last = segment(Flavor::Cmaf, 8, 129_456, &samples, Labels { last: true, filler: false }).unwrap();
        let Any::Styp(styp) = &boxes(&last)[0] else { panic!("styp") };
        assert!(styp.compatible_brands.contains(&b"lmsg".into()) && !styp.compatible_brands.contains(&b"slat".into()));
        let filler = segment(Flavor::Cmaf, 9, 135_456, &samples, Labels { last: false, filler: true }).unwrap();
        let Any::Styp(styp) = &boxes(&filler)[0] else { panic!("styp") };
        assert!(styp.compatible_brands.contains(&b"slat".into()) && !styp.compatible_brands.contains(&b"lmsg".into()));
        let styp_len = 8 + 8 + 4 * 4;
        let Any::Moof(moof) = &boxes(&filler)[1] else { panic!("moof") };
        let offset = moof.traf[0].trun[0].data_offset.unwrap() as usize;
        assert_eq!(&filler[styp_len + offset..styp_len + offset + 9], b"IDR-bytes", "the data offset counts from the moof");
    }

    #[test]
    fn a_one_frame_segment_still_says_its_frame_is_a_sync_sample() {
        // The stream's last GOP may be a lone IDR: mp4-atom then writes the
        // flags as the trun's first_sample_flags (ISO/IEC 14496-12 8.8.8),
        // which a receiver must read as the first sample's.
        let idr = [Sample { duration: 3000, cts_offset: 0, sync: true, data: Bytes::from_static(b"IDR") }];
        let s = segment(Flavor::Cmaf, 1, 0, &idr, Labels { last: true, filler: false }).unwrap();
        let Any::Moof(moof) = &boxes(&s)[1] else { panic!("moof") };
        assert_eq!(moof.traf[0].trun[0].samples.iter().map(|e| e.flags).collect::<Vec<_>>(), vec![Some(SYNC_SAMPLE)]);
    }
}

//! The Live Server Manifest every Smooth track's header carries: SMIL that
//! lists every track of the destination (each rung's video and the shared
//! audio) with its bitrate and codec private data, the same document in
//! every track's POST. Each entry's `src` names the stream (`<name>.ismv` or
//! `.isma`, the `<name>` of its `Streams(<name>)`) that carries it as its
//! track 1.
//!
//! A destination's outputs run one per rung and each sees only its own
//! rung's codec configuration: they gather them in the destination's
//! [`Book`], and a track's header is made once the book is complete (the
//! encoders all start together: their configurations come with their first
//! frames).

use crate::egress::cmaf::fragment::{self, AudioInfo, FragmentError, SMOOTH_TIMESCALE, VideoInfo};
use bytes::Bytes;
use std::collections::HashMap;
use std::fmt::Write;
use std::sync::Arc;
use tokio::sync::watch;

/// Every Smooth video track of a channel shares this `trackName` (one video
/// stream at several bitrates); the audio track is `audio`.
pub const VIDEO_TRACK_NAME: &str = "video";

/// One track the manifest lists.
#[derive(Clone, Debug, PartialEq)]
pub struct Listed {
    /// The track's name: the `<name>` of its `Streams(<name>)` (`video-<rung>`, `audio`).
    pub name: String,
    pub kind: ListedKind,
}

#[derive(Clone, Debug, PartialEq)]
pub enum ListedKind {
    Video(VideoInfo),
    Audio(AudioInfo),
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02X}");
        s
    })
}

/// A track's codec private data: for H.264 the SPS and PPS of its
/// configuration record, Annex B (start codes), in hex; for AAC the
/// AudioSpecificConfig in hex.
fn codec_private(kind: &ListedKind, config: &[u8]) -> Result<String, FragmentError> {
    match kind {
        ListedKind::Video(_) => {
            let avcc = fragment::avc_config(config)?;
            let mut annex_b = Vec::new();
            for nal in avcc.sequence_parameter_sets.iter().chain(&avcc.picture_parameter_sets) {
                annex_b.extend_from_slice(&[0, 0, 0, 1]);
                annex_b.extend_from_slice(nal);
            }
            Ok(hex(&annex_b))
        }
        ListedKind::Audio(_) => Ok(hex(config)),
    }
}

/// The manifest's SMIL: `tracks` with their codec configurations (`configs[i]` is `tracks[i]`'s).
pub fn smil(tracks: &[Listed], configs: &[Bytes]) -> Result<String, FragmentError> {
    let param = |x: &mut String, name: &str, value: &dyn std::fmt::Display| {
        let _ = writeln!(x, "<param name=\"{name}\" value=\"{value}\" valuetype=\"data\" />");
    };
    let mut x = String::from("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<smil xmlns=\"http://www.w3.org/2001/SMIL20/Language\">\n<head>\n");
    x.push_str("<meta name=\"creator\" content=\"fieldcast\" />\n</head>\n<body>\n<switch>\n");
    for (t, config) in tracks.iter().zip(configs) {
        let cpd = codec_private(&t.kind, config)?;
        match &t.kind {
            ListedKind::Video(info) => {
                let _ = writeln!(x, "<video src=\"{}.ismv\" systemBitrate=\"{}\">", t.name, info.bitrate_bps);
                param(&mut x, "systemBitrate", &info.bitrate_bps);
                param(&mut x, "trackID", &1);
                param(&mut x, "trackName", &VIDEO_TRACK_NAME);
                param(&mut x, "timescale", &SMOOTH_TIMESCALE);
                param(&mut x, "FourCC", &"H264");
                param(&mut x, "CodecPrivateData", &cpd);
                param(&mut x, "MaxWidth", &info.width);
                param(&mut x, "MaxHeight", &info.height);
                param(&mut x, "DisplayWidth", &info.width);
                param(&mut x, "DisplayHeight", &info.height);
                x.push_str("</video>\n");
            }
            ListedKind::Audio(info) => {
                let _ = writeln!(x, "<audio src=\"{}.isma\" systemBitrate=\"{}\">", t.name, info.bitrate_bps);
                param(&mut x, "systemBitrate", &info.bitrate_bps);
                param(&mut x, "trackID", &1);
                param(&mut x, "trackName", &crate::config::AUDIO_TRACK_NAME);
                param(&mut x, "timescale", &SMOOTH_TIMESCALE);
                param(&mut x, "FourCC", &"AACL");
                param(&mut x, "CodecPrivateData", &cpd);
                param(&mut x, "AudioTag", &255);
                param(&mut x, "Channels", &info.channels);
                param(&mut x, "SamplingRate", &info.sample_rate);
                param(&mut x, "BitsPerSample", &16);
                param(&mut x, "PacketSize", &4);
                x.push_str("</audio>\n");
            }
        }
    }
    x.push_str("</switch>\n</body>\n</smil>\n");
    Ok(x)
}

/// One Smooth destination's tracks and the codec configurations its
/// outputs have learnt so far. Cloned into each of the destination's outputs.
#[derive(Clone, Debug)]
pub struct Book {
    tracks: Arc<[Listed]>,
    configs: Arc<watch::Sender<Vec<Option<Bytes>>>>,
}

impl Book {
    pub fn new(tracks: &[Listed]) -> Book {
        let (tx, _) = watch::channel(vec![None; tracks.len()]);
        Book { tracks: tracks.into(), configs: Arc::new(tx) }
    }

    /// Notified whenever a configuration is recorded.
    pub fn watch(&self) -> watch::Receiver<Vec<Option<Bytes>>> {
        self.configs.subscribe()
    }

    /// Records track `name`'s codec configuration (an unknown name: nothing).
    pub fn record(&self, name: &str, config: &Bytes) {
        let Some(i) = self.tracks.iter().position(|t| t.name == name) else { return };
        self.configs.send_if_modified(|c| {
            let changed = c[i].as_ref() != Some(config);
            c[i] = Some(config.clone());
            changed
        });
    }

    /// The SMIL, once every track's configuration is known.
    pub fn smil(&self) -> Option<Result<String, FragmentError>> {
        let configs: Option<Vec<Bytes>> = self.configs.borrow().iter().cloned().collect();
        configs.map(|c| smil(&self.tracks, &c))
    }
}

/// A session's books, one per Smooth destination.
#[derive(Debug, Default)]
pub struct Books(HashMap<String, Book>);

impl Books {
    /// `destination`'s book (made with `tracks` by its first output).
    pub fn book(&mut self, destination: &str, tracks: &[Listed]) -> Book {
        self.0.entry(destination.to_owned()).or_insert_with(|| Book::new(tracks)).clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An AVCDecoderConfigurationRecord (Baseline) with a 4-byte SPS and a 2-byte PPS.
    const AVCC: &[u8] = &[0x01, 0x42, 0xc0, 0x1e, 0xff, 0xe1, 0x00, 0x04, 0x67, 0x42, 0xc0, 0x1e, 0x01, 0x00, 0x02, 0x68, 0xce];

    fn channel() -> Vec<Listed> {
        vec![
            Listed { name: "video-hi".into(), kind: ListedKind::Video(VideoInfo { width: 1280, height: 720, bitrate_bps: 2_500_000 }) },
            Listed { name: "video-lo".into(), kind: ListedKind::Video(VideoInfo { width: 640, height: 360, bitrate_bps: 800_000 }) },
            Listed { name: "audio".into(), kind: ListedKind::Audio(AudioInfo { sample_rate: 48000, channels: 2, bitrate_bps: 128_000 }) },
        ]
    }

    #[test]
    fn the_manifest_lists_every_track_with_its_stream_bitrate_and_codec_private_data() {
        let x = smil(&channel(), &[Bytes::from_static(AVCC), Bytes::from_static(AVCC), Bytes::from_static(&[0x11, 0x90])]).unwrap();
        assert!(x.contains("<video src=\"video-hi.ismv\" systemBitrate=\"2500000\">"), "{x}");
        assert!(x.contains("<video src=\"video-lo.ismv\" systemBitrate=\"800000\">"), "{x}");
        assert!(x.contains("<audio src=\"audio.isma\" systemBitrate=\"128000\">"), "{x}");
        assert_eq!(x.matches("name=\"CodecPrivateData\" value=\"000000016742C01E0000000168CE\"").count(), 2, "{x}");
        assert!(x.contains("name=\"CodecPrivateData\" value=\"1190\""), "{x}");
        assert!(x.find("video-hi").unwrap() < x.find("video-lo").unwrap() && x.find("video-lo").unwrap() < x.find("audio.isma").unwrap());
        assert!(matches!(smil(&channel()[..1], &[Bytes::from_static(&[1])]), Err(FragmentError::AvcConfig(_))));
    }

    #[test]
    fn a_book_gives_the_manifest_only_once_every_output_has_recorded_its_configuration() {
        let mut books = Books::default();
        let (a, b) = (books.book("smooth", &channel()), books.book("smooth", &channel()));
        let mut seen = a.watch();
        a.record("video-hi", &Bytes::from_static(AVCC));
        a.record("audio", &Bytes::from_static(&[0x11, 0x90]));
        a.record("not-a-track", &Bytes::from_static(b"x"));
        assert!(a.smil().is_none() && b.smil().is_none(), "video-lo is still missing");
        assert!(seen.has_changed().unwrap());
        seen.mark_unchanged();
        b.record("video-lo", &Bytes::from_static(AVCC));
        assert!(seen.has_changed().unwrap(), "the other outputs are told");
        let (x, y) = (a.smil().unwrap().unwrap(), b.smil().unwrap().unwrap());
        assert_eq!(x, y, "one document for every track");
        seen.mark_unchanged();
        b.record("video-lo", &Bytes::from_static(AVCC));
        assert!(!seen.has_changed().unwrap(), "the same configuration again is no change");
        assert!(books.book("other", &channel()).smil().is_none(), "a book per destination");
    }
}

//! Cuts the `Media` frames of one track into CMAF segments: video one GOP
//! a segment (each starts on the ladder's aligned IDR), audio cut at the
//! same instants. `tfdt` is the pipeline running time in the track's
//! timescale, so it increases strictly and lines up across rungs; each
//! sample lasts until the next one starts, so segment n+1's `tfdt` is
//! segment n's plus its duration (no gap, no overlap, even across a dropped
//! frame). `mfhd` counts +1 per segment. The same cutting serves
//! both flavours ([`Flavor`]): only the timescale and the boxes differ.
//! Pure: no I/O.

use super::fragment::{self, Flavor, FragmentError, Labels, Sample};
use crate::egress::{AudioFrame, VideoFrame};
use bytes::Bytes;
use std::collections::VecDeque;

/// One finished segment of a track.
#[derive(Clone, Debug)]
pub struct Segment {
    /// `mfhd` sequence number (1 for a track's first).
    pub seq: u32,
    /// `tfdt`, in the track's timescale.
    pub decode_time: u64,
    /// Pipeline running time of the first sample.
    pub start_ns: u64,
    pub duration_ns: u64,
    /// `styp` + `moof` + `mdat`.
    pub data: Bytes,
    /// Carries `lmsg`: the stream ends here.
    pub last: bool,
    /// Carries `slat`: some of it is filler (input lost).
    pub filler: bool,
}

/// `ns` in `timescale` ticks, to the nearest (a frame of 1/30 s is 3000
/// ticks at 90 kHz, not 2999 of them for a time truncated to the ns).
fn to_timescale(ns: u64, timescale: u32) -> u64 {
    ((u128::from(ns) * u128::from(timescale) + 500_000_000) / 1_000_000_000) as u64
}

/// A rung's video, one segment per GOP.
pub struct VideoSegmenter {
    flavor: Flavor,
    frame_ns: u64,
    seq: u32,
    gop: Vec<VideoFrame>,
    /// Added to every time before it is written (time since 1970 for an
    /// `epoch_aligned` destination; 0: the running time).
    epoch_ns: u64,
    /// Frames dropped before the first keyframe.
    pub discarded: u64,
}

impl VideoSegmenter {
    pub fn new(frame_ns: u64, flavor: Flavor) -> VideoSegmenter {
        VideoSegmenter { flavor, frame_ns, seq: 0, gop: Vec::new(), epoch_ns: 0, discarded: 0 }
    }

    /// Writes times since 1970: running time + `offset_ns` (before the first segment).
    pub fn set_epoch(&mut self, offset_ns: u64) {
        self.epoch_ns = offset_ns;
    }

    /// Takes one frame; a keyframe closes the GOP before it into a segment.
    pub fn push(&mut self, frame: VideoFrame) -> Result<Option<Segment>, FragmentError> {
        if self.gop.is_empty() && !frame.keyframe {
            self.discarded += 1;
            return Ok(None);
        }
        let done = if frame.keyframe && !self.gop.is_empty() { Some(self.close(frame.dts_ns, false)?) } else { None };
        self.gop.push(frame);
        Ok(done)
    }

    /// The GOP in progress as the stream's last segment (`lmsg`).
    pub fn finish(&mut self) -> Result<Option<Segment>, FragmentError> {
        let Some(last) = self.gop.last() else { return Ok(None) };
        let end = last.dts_ns + self.frame_ns;
        self.close(end, true).map(Some)
    }

    fn close(&mut self, end_dts_ns: u64, last: bool) -> Result<Segment, FragmentError> {
        let gop = std::mem::take(&mut self.gop);
        let ts = |ns| to_timescale(ns + self.epoch_ns, self.flavor.video_timescale());
        let samples: Vec<Sample> = gop
            .iter()
            .enumerate()
            .map(|(i, f)| {
                let next = gop.get(i + 1).map_or(end_dts_ns, |n| n.dts_ns);
                Sample {
                    duration: ts(next).saturating_sub(ts(f.dts_ns)) as u32,
                    cts_offset: ts(f.pts_ns) as i64 - ts(f.dts_ns) as i64,
                    sync: f.keyframe,
                    data: f.data.clone(),
                }
            })
            .collect();
        self.seq += 1;
        let first = &gop[0];
        let decode_time = ts(first.dts_ns);
        let labels = Labels { last, filler: gop.iter().any(|f| f.filler) };
        Ok(Segment {
            seq: self.seq,
            decode_time,
            start_ns: first.pts_ns,
            duration_ns: end_dts_ns.saturating_sub(first.dts_ns),
            data: fragment::segment(self.flavor, self.seq, decode_time, &samples, labels)?,
            last,
            filler: labels.filler,
        })
    }
}

/// The shared AAC as a track of its own, cut at the video's keyframe
/// instants (the first cut waits for the first keyframe; audio before it is
/// dropped so both tracks start together).
pub struct AudioSegmenter {
    flavor: Flavor,
    rate: u32,
    seq: u32,
    frames: Vec<AudioFrame>,
    /// Keyframe instants not yet cut at, in order.
    cuts: VecDeque<u64>,
    started: bool,
    /// As [`VideoSegmenter`]'s.
    epoch_ns: u64,
    pub discarded: u64,
}

impl AudioSegmenter {
    pub fn new(sample_rate: u32, flavor: Flavor) -> AudioSegmenter {
        AudioSegmenter { flavor, rate: sample_rate.max(1), seq: 0, frames: Vec::new(), cuts: VecDeque::new(), started: false, epoch_ns: 0, discarded: 0 }
    }

    /// As [`VideoSegmenter::set_epoch`].
    pub fn set_epoch(&mut self, offset_ns: u64) {
        self.epoch_ns = offset_ns;
    }

    /// A video keyframe at `pts_ns`: the audio is cut there too.
    pub fn keyframe(&mut self, pts_ns: u64) -> Result<Vec<Segment>, FragmentError> {
        if !self.started {
            self.started = true;
            let before = self.frames.len();
            self.frames.retain(|f| f.pts_ns >= pts_ns);
            self.discarded += (before - self.frames.len()) as u64;
        } else {
            self.cuts.push_back(pts_ns);
        }
        self.cut()
    }

    pub fn push(&mut self, frame: AudioFrame) -> Result<Vec<Segment>, FragmentError> {
        if let Some(last) = self.frames.last()
            && frame.pts_ns <= last.pts_ns
        {
            self.discarded += 1;
            return Ok(Vec::new());
        }
        self.frames.push(frame);
        if !self.started {
            // Hold at most about a GOP's worth before the first keyframe.
            if self.frames.len() > 1000 {
                self.frames.remove(0);
                self.discarded += 1;
            }
            return Ok(Vec::new());
        }
        self.cut()
    }

    /// Every segment whose cut instant has audio after it.
    fn cut(&mut self) -> Result<Vec<Segment>, FragmentError> {
        let mut out = Vec::new();
        while let Some(&at) = self.cuts.front() {
            let Some(split) = self.frames.iter().position(|f| f.pts_ns >= at) else { break };
            self.cuts.pop_front();
            if split == 0 {
                continue;
            }
            let rest = self.frames.split_off(split);
            let end = rest[0].pts_ns;
            let done = std::mem::replace(&mut self.frames, rest);
            out.push(self.close(done, end, false)?);
        }
        Ok(out)
    }

    /// The audio in progress as the stream's last segment (`lmsg`).
    pub fn finish(&mut self) -> Result<Option<Segment>, FragmentError> {
        let Some(last) = self.frames.last() else { return Ok(None) };
        let end = last.pts_ns + 1024 * 1_000_000_000 / u64::from(self.rate);
        let frames = std::mem::take(&mut self.frames);
        self.close(frames, end, true).map(Some)
    }

    fn close(&mut self, frames: Vec<AudioFrame>, end_ns: u64, last: bool) -> Result<Segment, FragmentError> {
        let ts = |ns| to_timescale(ns + self.epoch_ns, self.flavor.audio_timescale(self.rate));
        let samples: Vec<Sample> = frames
            .iter()
            .enumerate()
            .map(|(i, f)| {
                let next = frames.get(i + 1).map_or(end_ns, |n| n.pts_ns);
                Sample { duration: ts(next).saturating_sub(ts(f.pts_ns)) as u32, cts_offset: 0, sync: true, data: f.data.clone() }
            })
            .collect();
        self.seq += 1;
        let decode_time = ts(frames[0].pts_ns);
        let labels = Labels { last, filler: frames.iter().any(|f| f.filler) };
        Ok(Segment {
            seq: self.seq,
            decode_time,
            start_ns: frames[0].pts_ns,
            duration_ns: end_ns - frames[0].pts_ns,
            data: fragment::segment(self.flavor, self.seq, decode_time, &samples, labels)?,
            last,
            filler: labels.filler,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mp4_atom::{Any, Decode};

    const FRAME: u64 = 33_366_666; // 29.97 fps
    const AAC: u64 = 21_333_333; // 1024 samples at 48 kHz

    fn video(n: u64, gop: u64) -> VideoFrame {
        let t = 5_000_000_000 + n * FRAME;
        VideoFrame { pts_ns: t, dts_ns: t, keyframe: n.is_multiple_of(gop), data: Bytes::from(vec![n as u8; 10]), filler: false }
    }

    /// (mfhd, tfdt, sum of trun durations, sample count, first sample sync, lmsg)
    fn parse(s: &Segment) -> (u32, u64, u64, usize, bool, bool) {
        let mut b = &s.data[..];
        let Any::Styp(styp) = Any::decode(&mut b).unwrap() else { panic!("styp") };
        let Any::Moof(moof) = Any::decode(&mut b).unwrap() else { panic!("moof") };
        let traf = &moof.traf[0];
        let trun = &traf.trun[0];
        let total: u64 = trun.samples.iter().map(|e| u64::from(e.duration.unwrap())).sum();
        let first_sync = trun.samples.iter().next().unwrap().flags == Some(fragment::SYNC_SAMPLE);
        (moof.mfhd.sequence_number, traf.tfdt.as_ref().unwrap().base_media_decode_time, total, trun.samples.len(), first_sync, styp.compatible_brands.contains(&b"lmsg".into()))
    }

    #[test]
    fn video_segments_are_whole_gops_with_a_continuous_tfdt_and_mfhd_plus_one() {
        let mut s = VideoSegmenter::new(FRAME, Flavor::Cmaf);
        // Starts mid-GOP: frames before the first keyframe are dropped.
        let mut segs = Vec::new();
        for n in 17..(30 * 5 + 7) {
            segs.extend(s.push(video(n, 30)).unwrap());
        }
        segs.extend(s.finish().unwrap());
        assert_eq!(s.discarded, 13);
        let parsed: Vec<_> = segs.iter().map(parse).collect();
        assert_eq!(parsed.len(), 5, "4 whole GOPs and the last, partial one");
        for (i, p) in parsed.iter().enumerate() {
            assert_eq!(p.0, i as u32 + 1, "mfhd +1");
            assert!(p.4, "every segment starts on a keyframe");
            assert_eq!(p.5, i == 4, "only the last carries lmsg");
            if let Some(next) = parsed.get(i + 1) {
                assert_eq!(p.1 + p.2, next.1, "tfdt continues exactly where the segment ended");
                assert_eq!(p.3, 30);
            }
        }
        assert_eq!(parsed[0].1, to_timescale(5_000_000_000 + 30 * FRAME, fragment::VIDEO_TIMESCALE));
        assert_eq!(segs[0].start_ns, 5_000_000_000 + 30 * FRAME);
    }

    fn slat(s: &Segment) -> bool {
        let mut b = &s.data[..];
        let Any::Styp(styp) = Any::decode(&mut b).unwrap() else { panic!("styp") };
        styp.compatible_brands.contains(&b"slat".into())
    }

    #[test]
    fn a_segment_with_any_filler_frame_or_audio_is_labelled_slat_and_only_those() {
        // Input lost from frame 50 to frame 75: GOPs 1 (30..60) and 2 (60..90) carry filler.
        let filler = |t: u64| (5_000_000_000 + 50 * FRAME..5_000_000_000 + 75 * FRAME).contains(&t);
        let mut v = VideoSegmenter::new(FRAME, Flavor::Cmaf);
        let mut a = AudioSegmenter::new(48_000, Flavor::Cmaf);
        let (mut vs, mut aus) = (Vec::new(), Vec::new());
        let mut k = 0;
        for n in 0..(30 * 4 + 1) {
            let mut f = video(n, 30);
            f.filler = filler(f.pts_ns);
            if f.keyframe {
                aus.extend(a.keyframe(f.pts_ns).unwrap());
            }
            vs.extend(v.push(f).unwrap());
            while 4_990_000_000 + k * AAC < video(n, 30).pts_ns {
                let t = 4_990_000_000 + k * AAC;
                aus.extend(a.push(AudioFrame { pts_ns: t, data: Bytes::from_static(b"aac"), filler: filler(t) }).unwrap());
                k += 1;
            }
        }
        assert_eq!(vs.iter().map(|s| (s.filler, slat(s))).collect::<Vec<_>>(), [(false, false), (true, true), (true, true), (false, false)]);
        assert_eq!(aus.iter().map(slat).collect::<Vec<_>>(), [false, true, true]);
    }

    #[test]
    fn a_dropped_frame_lengthens_its_predecessor_instead_of_opening_a_gap() {
        let mut s = VideoSegmenter::new(FRAME, Flavor::Cmaf);
        let mut segs = Vec::new();
        for n in (0..61).filter(|n| *n != 40 && *n != 41) {
            segs.extend(s.push(video(n, 30)).unwrap());
        }
        let p: Vec<_> = segs.iter().map(parse).collect();
        assert_eq!(p.len(), 2);
        assert_eq!(p[0].1 + p[0].2, p[1].1);
        assert_eq!(p[1].3, 28);
        assert_eq!(p[1].1 + p[1].2, to_timescale(5_000_000_000 + 60 * FRAME, fragment::VIDEO_TIMESCALE));
    }

    #[test]
    fn the_same_frames_give_the_same_tfdt_on_every_rung() {
        let run = || {
            let mut s = VideoSegmenter::new(FRAME, Flavor::Cmaf);
            (0..91).filter_map(|n| s.push(video(n, 30)).unwrap()).map(|g| (g.seq, g.decode_time)).collect::<Vec<_>>()
        };
        assert_eq!(run(), run());
    }

    #[test]
    fn audio_is_cut_at_the_video_keyframes_even_when_it_arrives_first() {
        let mut a = AudioSegmenter::new(48_000, Flavor::Cmaf);
        let audio = |k: u64| AudioFrame { pts_ns: 4_990_000_000 + k * AAC, data: Bytes::from_static(b"aac"), filler: false };
        let mut segs = Vec::new();
        let mut k = 0;
        // Audio runs about 100 ms ahead of the video it belongs with.
        for n in 0..91 {
            while audio(k).pts_ns < video(n, 30).pts_ns + 100_000_000 {
                segs.extend(a.push(audio(k)).unwrap());
                k += 1;
            }
            let v = video(n, 30);
            if v.keyframe {
                segs.extend(a.keyframe(v.pts_ns).unwrap());
            }
        }
        segs.extend(a.finish().unwrap());
        assert!(a.discarded > 0, "audio before the first keyframe is dropped");
        let p: Vec<_> = segs.iter().map(parse).collect();
        assert_eq!(p.len(), 4, "{p:?}");
        for (i, s) in segs.iter().enumerate() {
            let kf = video(30 * i as u64, 30).pts_ns;
            assert!(s.start_ns >= kf && s.start_ns < kf + AAC, "segment {i} starts on the first AAC frame at/after the keyframe");
            assert_eq!(p[i].0, i as u32 + 1);
            if let Some(n) = p.get(i + 1) {
                assert_eq!(p[i].1 + p[i].2, n.1, "no gap in the audio timeline");
            }
        }
        assert!(p[3].5, "lmsg on the last");
    }
}

//! CMAF ingest output (DASH-IF Live Media Ingest, interface 1): one actor
//! per (destination, rung) fragmenting the rung's `Media` frames on the Rust
//! side into CMAF segments ([`segmenter`], boxes by [`fragment`] with
//! `mp4-atom`) and posting them over HTTP ([`track`], one persistent
//! HTTP/1.1 connection per track, [`http`]). The destination's first rung
//! also carries the shared AAC as a track of its own, so the channel gets
//! one track per rung plus one audio track.
//!
//! Each track is independent: a track refused (403 after its retries,
//! 404, 415) stops alone; the encoder, the other tracks and the other
//! outputs never notice.
//!
//! The Smooth Streaming output is this actor with [`Flavor::Smooth`]: the
//! same segmenters at 10 MHz, Smooth headers ([`crate::egress::smooth::boxes`])
//! and its posters ([`crate::egress::smooth::poster`]).

pub mod fragment;
pub(crate) mod http;
pub mod segmenter;
pub mod track;

use super::Media;
use super::smooth::boxes as smooth_boxes;
use super::smooth::manifest::{Book, Listed};
use crate::pipeline::epoch::EpochOrigin;
use super::status::{CmafStats, EgressState, EgressStatus};
use crate::backoff::Backoff;
use crate::config::url::HttpUrl;
use fragment::{AudioInfo, Flavor, FragmentError, VideoInfo};
use segmenter::{AudioSegmenter, VideoSegmenter};
use serde::Serialize;
use std::path::PathBuf;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tracing::{info, instrument, warn};
use track::{TrackInput, TrackPlan, TrackState, TrackStatus};

/// How often the output's status gathers its tracks'.
const STATUS_EVERY: Duration = Duration::from_millis(100);
/// The shortest connect timeout, whatever the segment duration.
const MIN_CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// One CMAF output (a rung's video track, and the audio track on the
/// destination's first rung), frozen at session start. The track paths are
/// secret as the URL's tail is: shown redacted.
#[derive(Clone, PartialEq, Serialize)]
pub struct CmafPlan {
    pub destination: String,
    pub rung: String,
    pub endpoint: super::failover::Endpoint,
    pub label: String,
    #[serde(serialize_with = "super::plan::display")]
    pub url: HttpUrl,
    /// `video-<rung>`.
    pub video_track: String,
    #[serde(skip)]
    pub video_path: String,
    /// The path as shown (literal text hidden).
    #[serde(rename = "video_path")]
    pub video_path_redacted: String,
    #[serde(skip)]
    pub video: VideoInfo,
    /// The shared audio track, on the destination's first rung only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub audio: Option<AudioTrack>,
    /// Segment (= GOP) duration.
    #[serde(serialize_with = "super::plan::display_ms")]
    pub segment_ms: Duration,
    pub forbidden_retries: u32,
    #[serde(skip)]
    pub frame_ns: u64,
    #[serde(skip)]
    pub backoff: Backoff,
    #[serde(skip)]
    pub ca_file: Option<PathBuf>,
    /// CMAF, or Smooth Streaming (the plan's `protocol` says which).
    #[serde(skip)]
    pub flavor: Flavor,
    /// Smooth: every track of the destination, as its manifest lists them
    /// (empty for CMAF).
    #[serde(skip)]
    pub channel: Vec<Listed>,
    /// Segment times counted from 1970 (the keyframes are on that grid too).
    pub epoch_aligned: bool,
}

#[derive(Clone, PartialEq, Serialize)]
pub struct AudioTrack {
    #[serde(skip)]
    pub path: String,
    #[serde(rename = "path")]
    pub path_redacted: String,
    #[serde(skip)]
    pub info: AudioInfo,
}

impl std::fmt::Debug for CmafPlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CmafPlan").field("label", &self.label).field("url", &self.url).field("video_path", &self.video_path_redacted).finish()
    }
}

impl CmafPlan {
    /// One line for `check-config`.
    pub fn describe(&self) -> String {
        let audio = self.audio.as_ref().map(|a| format!(" + audio -> `{}`", a.path_redacted)).unwrap_or_default();
        let (kind, how) = match self.flavor {
            Flavor::Cmaf => ("CMAF", "a POST"),
            Flavor::Smooth => ("Smooth Streaming", "a chunk of one long POST a track"),
        };
        format!(
            "{} -> {} {kind} ingest, {} -> `{}`{audio}, one {} ms segment {how}{}",
            self.label,
            self.url,
            self.video_track,
            self.video_path_redacted,
            self.segment_ms.as_millis(),
            if self.epoch_aligned { ", segments on the Unix epoch's grid" } else { "" }
        )
    }

    fn track(&self, name: &str, path: &str, content_type: &'static str, tls: Option<&std::sync::Arc<tokio_rustls::rustls::ClientConfig>>) -> TrackPlan {
        let connect_timeout = self.segment_ms.max(MIN_CONNECT_TIMEOUT);
        TrackPlan {
            label: self.label.clone(),
            name: name.to_owned(),
            url: self.url.clone(),
            target: self.url.request_target(path),
            content_type,
            tls: tls.cloned(),
            connect_timeout,
            answer_timeout: connect_timeout * 3,
            backoff: self.backoff.clone(),
            forbidden_retries: self.forbidden_retries,
        }
    }
}

/// Starts the output for `plan`, reading media from `rx`; it ends once
/// every sender of `rx` is dropped and its last segments are posted.
/// `book`: a Smooth output's destination's (one of its own when `None`);
/// `epoch`: the session's timeline origin (used when `plan.epoch_aligned`).
pub fn spawn(plan: CmafPlan, rx: mpsc::Receiver<Media>, book: Option<Book>, epoch: &EpochOrigin) -> (JoinHandle<()>, watch::Receiver<EgressStatus>) {
    let mut initial = EgressStatus::new(plan.label.clone());
    initial.cmaf = Some(CmafStats::default());
    let (status_tx, status_rx) = watch::channel(initial);
    let book = (plan.flavor == Flavor::Smooth).then(|| book.unwrap_or_else(|| Book::new(&plan.channel)));
    let epoch = plan.epoch_aligned.then(|| epoch.clone());
    (tokio::spawn(run(plan, rx, book, epoch, status_tx)), status_rx)
}

/// A track's poster as the output sees it.
struct Track {
    input: mpsc::Sender<TrackInput>,
    task: JoinHandle<()>,
    status: watch::Receiver<TrackStatus>,
    /// Segments the poster's input had no room for.
    lost: u64,
}

impl Track {
    fn start(plan: TrackPlan, flavor: Flavor) -> Track {
        let (input, task, status) = match flavor {
            Flavor::Cmaf => track::spawn(plan),
            Flavor::Smooth => crate::egress::smooth::poster::spawn(plan),
        };
        Track { input, task, status, lost: 0 }
    }

    /// Never waits: a poster that is that far behind has its own live-edge rule.
    fn offer(&mut self, item: TrackInput) {
        if self.input.try_send(item).is_err() {
            self.lost += 1;
        }
    }
}

#[instrument(name = "cmaf_egress", skip_all, fields(egress = %plan.label, url = %plan.url))]
async fn run(plan: CmafPlan, mut rx: mpsc::Receiver<Media>, book: Option<Book>, mut epoch: Option<EpochOrigin>, status: watch::Sender<EgressStatus>) {
    let tls = match plan.url.tls() {
        true => match crate::tls::client_config(plan.ca_file.as_deref(), None) {
            Ok(c) => Some(c),
            Err(e) => {
                let text = super::status::error_chain(&e);
                warn!(error = %text, "CMAF output cannot set up TLS");
                status.send_modify(|s| {
                    s.state = EgressState::Stopped;
                    s.last_error = Some(text);
                });
                while rx.recv().await.is_some() {}
                return;
            }
        },
        false => None,
    };
    let flavor = plan.flavor;
    let mut video = Track::start(plan.track(&plan.video_track, &plan.video_path, "video/mp4", tls.as_ref()), flavor);
    let mut audio = plan.audio.as_ref().map(|a| {
        (Track::start(plan.track(config_audio_name(), &a.path, "audio/mp4", tls.as_ref()), flavor), AudioSegmenter::new(a.info.sample_rate, flavor))
    });
    let mut cutter = VideoSegmenter::new(plan.frame_ns, flavor);
    let mut tick = tokio::time::interval(STATUS_EVERY);
    let mut counts = Counts::default();
    let mut smooth = book.map(|book| Smooth { changed: book.watch(), book, video: None, audio: None });
    loop {
        tokio::select! {
            media = rx.recv() => match media {
                None => break,
                Some(m) => if let Err(e) = on_media(&plan, m, &mut cutter, &mut video, audio.as_mut(), &mut counts, smooth.as_mut(), &mut epoch) {
                    warn!(error = %e, "cannot fragment the stream");
                    counts.error = Some(e.to_string());
                },
            },
            // A Smooth destination's output learnt its codec configuration.
            Some(()) = async { match smooth.as_mut() { Some(s) => s.changed.changed().await.ok(), None => std::future::pending().await } } => {
                if let Some(s) = &smooth
                    && let Err(e) = s.offer_headers(&plan, &mut video, audio.as_mut())
                {
                    warn!(error = %e, "cannot make the Smooth headers");
                    counts.error = Some(e.to_string());
                }
            }
            // Gathers the tracks' statuses into the output's.
            _ = tick.tick() => publish(&status, &video, audio.as_ref().map(|a| &a.0), &counts, &cutter),
        }
    }
    // The stream ends: the GOPs in progress go out as the last segments (lmsg).
    match cutter.finish() {
        Ok(Some(s)) => video.offer(TrackInput::Segment(s)),
        Ok(None) => {}
        Err(e) => warn!(error = %e, "cannot fragment the last segment"),
    }
    if let Some((t, a)) = audio.as_mut()
        && let Ok(Some(s)) = a.finish()
    {
        t.offer(TrackInput::Segment(s));
    }
    let Track { input, task, .. } = &mut video;
    drop(std::mem::replace(input, mpsc::channel(1).0));
    let _ = task.await;
    if let Some((t, _)) = audio.as_mut() {
        drop(std::mem::replace(&mut t.input, mpsc::channel(1).0));
        let _ = (&mut t.task).await;
    }
    publish(&status, &video, audio.as_ref().map(|a| &a.0), &counts, &cutter);
    status.send_modify(|s| s.state = EgressState::Stopped);
    info!("media channel closed; CMAF output stopped");
}

fn config_audio_name() -> &'static str {
    crate::config::AUDIO_TRACK_NAME
}

/// A Smooth output's headers: its own tracks' codec configurations, and its
/// destination's book of every track's (the manifest lists them all).
struct Smooth {
    book: Book,
    changed: watch::Receiver<Vec<Option<bytes::Bytes>>>,
    video: Option<bytes::Bytes>,
    audio: Option<bytes::Bytes>,
}

impl Smooth {
    /// The tracks' headers, once the book has every track's configuration.
    fn offer_headers(&self, plan: &CmafPlan, video: &mut Track, audio: Option<&mut (Track, AudioSegmenter)>) -> Result<(), FragmentError> {
        let Some(smil) = self.book.smil() else { return Ok(()) };
        let smil = smil?;
        if let Some(c) = &self.video {
            video.offer(TrackInput::Header(smooth_boxes::video_header(&plan.video, c, &smil)?));
        }
        if let (Some((t, _)), Some(a), Some(c)) = (audio, &plan.audio, &self.audio) {
            t.offer(TrackInput::Header(smooth_boxes::audio_header(&a.info, c, &smil)?));
        }
        Ok(())
    }
}

#[derive(Default)]
struct Counts {
    video_frames: u64,
    audio_frames: u64,
    error: Option<String>,
}

fn on_media(
    plan: &CmafPlan,
    m: Media,
    cutter: &mut VideoSegmenter,
    video: &mut Track,
    mut audio: Option<&mut (Track, AudioSegmenter)>,
    counts: &mut Counts,
    smooth: Option<&mut Smooth>,
    epoch: &mut Option<EpochOrigin>,
) -> Result<(), FragmentError> {
    match m {
        // Smooth: the header waits for the destination's book (the loop offers it).
        Media::VideoConfig(c) => match smooth {
            Some(s) => {
                s.book.record(&plan.video_track, &c);
                s.video = Some(c);
            }
            None => video.offer(TrackInput::Header(fragment::video_header(&plan.video, &c)?)),
        },
        Media::AudioConfig(c) => {
            if let (Some((t, _)), Some(a)) = (audio, &plan.audio) {
                match smooth {
                    Some(s) => {
                        s.book.record(config_audio_name(), &c);
                        s.audio = Some(c);
                    }
                    None => t.offer(TrackInput::Header(fragment::audio_header(&a.info, &c)?)),
                }
            }
        }
        Media::Video(f) => {
            // The first frame: the frame clock has recorded the origin before
            // it made any (no segment exists yet).
            if let Some(e) = epoch.take() {
                match e.offset_ns() {
                    Some(off) => {
                        cutter.set_epoch(off);
                        if let Some((_, a)) = audio.as_mut() {
                            a.set_epoch(off);
                        }
                    }
                    None => warn!("no epoch origin recorded: the segments carry the running time"),
                }
            }
            counts.video_frames += 1;
            let (keyframe, pts) = (f.keyframe, f.pts_ns);
            if let Some(s) = cutter.push(f)? {
                video.offer(TrackInput::Segment(s));
            }
            if keyframe && let Some((t, a)) = audio {
                for s in a.keyframe(pts)? {
                    t.offer(TrackInput::Segment(s));
                }
            }
        }
        Media::Audio(f) => {
            if let Some((t, a)) = audio {
                counts.audio_frames += 1;
                for s in a.push(f)? {
                    t.offer(TrackInput::Segment(s));
                }
            }
        }
    }
    Ok(())
}

/// The output's status from its tracks': the worst state wins, a failed
/// video track stops the output (its error stays), a failed audio track
/// degrades it.
fn publish(status: &watch::Sender<EgressStatus>, video: &Track, audio: Option<&Track>, counts: &Counts, cutter: &VideoSegmenter) {
    let tracks: Vec<(TrackStatus, u64)> = std::iter::once(video).chain(audio).map(|t| (t.status.borrow().clone(), t.lost)).collect();
    status.send_modify(|s| {
        let v = &tracks[0].0;
        s.state = match v.state {
            TrackState::Connecting => EgressState::Connecting,
            TrackState::Sending if tracks.iter().all(|(t, _)| t.state == TrackState::Sending) => EgressState::Publishing,
            TrackState::Sending | TrackState::Reconnecting => EgressState::Reconnecting,
            TrackState::Stopped | TrackState::Failed => EgressState::Stopped,
        };
        s.bytes_sent = tracks.iter().map(|(t, _)| t.bytes_sent).sum();
        s.peer_progress = s.bytes_sent;
        s.video_frames_sent = counts.video_frames;
        s.audio_frames_sent = counts.audio_frames;
        s.media_discarded = cutter.discarded;
        s.reconnects = tracks.iter().map(|(t, _)| t.reconnects).sum();
        s.last_error = tracks.iter().find_map(|(t, _)| (t.state == TrackState::Failed).then(|| t.last_error.clone()).flatten())
            .or_else(|| counts.error.clone())
            .or_else(|| tracks.iter().find_map(|(t, _)| (t.state == TrackState::Reconnecting).then(|| t.last_error.clone()).flatten()));
        s.cmaf = Some(CmafStats {
            tracks: tracks
                .iter()
                .map(|(t, lost)| {
                    let mut t = t.clone();
                    t.segments_skipped += lost;
                    t
                })
                .collect(),
        });
    });
}


#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_track_that_failed_stops_the_output_with_its_reason() {
        let (tx, _rx) = watch::channel(EgressStatus::new("x"));
        let mk = |state, err: Option<&str>| {
            let (_t, r) = watch::channel(TrackStatus {
                track: "t".into(),
                state,
                segments_sent: 1,
                bytes_sent: 10,
                last_http_status: Some(403),
                reconnects: 0,
                retransmitted_segments: 0,
                segments_skipped: 0,
                last_error: err.map(str::to_owned),
            });
            Track { input: mpsc::channel(1).0, task: tokio::spawn(async {}), status: r, lost: 0 }
        };
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let _g = rt.enter();
        let v = mk(TrackState::Failed, Some("403 x3"));
        let a = mk(TrackState::Sending, None);
        publish(&tx, &v, Some(&a), &Counts::default(), &VideoSegmenter::new(1, Flavor::Cmaf));
        let s = tx.borrow();
        assert_eq!(s.state, EgressState::Stopped);
        assert_eq!(s.last_error.as_deref(), Some("403 x3"));
        assert_eq!(s.bytes_sent, 20);
        assert_eq!(s.cmaf.as_ref().unwrap().tracks.len(), 2);
    }
}

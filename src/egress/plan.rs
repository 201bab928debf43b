//! Output plans: one per (destination, rung), by protocol, each holding
//! everything its actor needs (URL, names resolved from the templates,
//! metadata, backoff, timeouts), frozen when the session's plan is made.
//! `check-config` prints them; [`super::spawn`] starts their actors.
//!
//! A destination with a backup ingest plans one output per endpoint: the
//! actor is per (destination, rung, endpoint), labelled `name/rung@backup`.

use super::failover::Endpoint;
use super::rtmp::{PublishMetadata, RtmpPlan};
use super::cmaf::fragment::{AudioInfo, Flavor, VideoInfo};
use super::cmaf::{AudioTrack, CmafPlan};
use super::smooth::manifest::{Listed, ListedKind};
use super::sources::TrackFormat;
use super::srt::SrtPlan;
use crate::backoff::Backoff;
use crate::config::url::DestinationUrl;
use crate::config::{Audio, Destination, EgressOptions, Fps, RungSpec};
use serde::Serialize;

/// One output actor's plan.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "protocol", rename_all = "lowercase")]
pub enum OutputPlan {
    Rtmp(RtmpPlan),
    Srt(SrtPlan),
    Cmaf(CmafPlan),
    /// Smooth Streaming ingest: the CMAF output in its Smooth flavour.
    Smooth(CmafPlan),
}

impl OutputPlan {
    pub fn destination(&self) -> &str {
        match self {
            OutputPlan::Rtmp(p) => &p.destination,
            OutputPlan::Srt(p) => &p.destination,
            OutputPlan::Cmaf(p) | OutputPlan::Smooth(p) => &p.destination,
        }
    }
    pub fn rung(&self) -> &str {
        match self {
            OutputPlan::Rtmp(p) => &p.rung,
            OutputPlan::Srt(p) => &p.rung,
            OutputPlan::Cmaf(p) | OutputPlan::Smooth(p) => &p.rung,
        }
    }
    /// `destination/rung`, for logs and status.
    pub fn label(&self) -> &str {
        match self {
            OutputPlan::Rtmp(p) => &p.label,
            OutputPlan::Srt(p) => &p.label,
            OutputPlan::Cmaf(p) | OutputPlan::Smooth(p) => &p.label,
        }
    }
    pub fn endpoint(&self) -> Endpoint {
        match self {
            OutputPlan::Rtmp(p) => p.endpoint,
            OutputPlan::Srt(p) => p.endpoint,
            OutputPlan::Cmaf(p) | OutputPlan::Smooth(p) => p.endpoint,
        }
    }
    /// One line for `check-config`, secrets redacted.
    pub fn describe(&self) -> String {
        match self {
            OutputPlan::Rtmp(p) => format!("{} -> {} stream `{}` (target {:?})", p.label, p.url, p.stream_name_redacted, p.target),
            OutputPlan::Srt(p) => p.describe(),
            OutputPlan::Cmaf(p) | OutputPlan::Smooth(p) => p.describe(),
        }
    }
}

/// What a rung's output needs to know of the ladder and the session.
pub struct RungContext<'a> {
    pub rung: &'a RungSpec,
    pub fps: Fps,
    pub audio: &'a Audio,
    pub options: &'a EgressOptions,
    /// The segment (= GOP) duration.
    pub gop: std::time::Duration,
    /// The first rung this destination carries (a CMAF destination sends the audio track with it).
    pub first_of_destination: bool,
    /// Every rung this destination carries, in ladder order (a Smooth manifest lists them all).
    pub carried: &'a [&'a RungSpec],
}

/// The plans of `destination`'s outputs for one rung: one per endpoint
/// (the primary, and the backup ingest if there is one).
pub fn plan(destination: &Destination, cx: &RungContext<'_>) -> Vec<OutputPlan> {
    let mut out = vec![endpoint_plan(destination, &destination.url, Endpoint::Primary, cx)];
    if let Some(b) = &destination.backup {
        out.push(endpoint_plan(destination, &b.url, Endpoint::Backup, cx));
    }
    out
}

fn endpoint_plan(destination: &Destination, url: &DestinationUrl, endpoint: Endpoint, cx: &RungContext<'_>) -> OutputPlan {
    let rung = cx.rung;
    let label = match endpoint {
        Endpoint::Primary => format!("{}/{}", destination.name, rung.name),
        Endpoint::Backup => format!("{}/{}@backup", destination.name, rung.name),
    };
    let backoff = Backoff { initial: cx.options.reconnect_initial, max: cx.options.reconnect_max };
    match url {
        DestinationUrl::Rtmp(url) => OutputPlan::Rtmp(RtmpPlan {
            destination: destination.name.clone(),
            rung: rung.name.clone(),
            endpoint,
            label,
            url: url.clone(),
            stream_name: destination.stream_name(rung),
            stream_name_redacted: destination.stream_name_redacted(rung),
            target: destination.target,
            metadata: PublishMetadata {
                width: rung.width,
                height: rung.height,
                framerate: cx.fps.as_f64(),
                video_kbps: (rung.bitrate_bps / 1000) as u32,
                audio_kbps: cx.audio.bitrate_bps / 1000,
                audio_sample_rate: cx.audio.sample_rate,
                audio_channels: cx.audio.channels,
            },
            backoff,
            connect_timeout: cx.options.connect_timeout,
            ca_file: destination.ca_file.clone(),
        }),
        DestinationUrl::Http(url) => {
            let cmaf = destination.cmaf.as_ref().expect("a CMAF destination has CMAF settings");
            let video_path = crate::config::expand_video(&cmaf.track_path, rung);
            let audio = cx.first_of_destination.then(|| {
                let path = crate::config::expand_audio(&cmaf.track_path, cx.audio.bitrate_bps / 1000);
                AudioTrack {
                    path_redacted: crate::config::expand_audio(&crate::config::redact_template(&cmaf.track_path), cx.audio.bitrate_bps / 1000),
                    path,
                    info: AudioInfo { sample_rate: cx.audio.sample_rate, channels: cx.audio.channels, bitrate_bps: cx.audio.bitrate_bps },
                }
            });
            let plan = CmafPlan {
                destination: destination.name.clone(),
                rung: rung.name.clone(),
                endpoint,
                label,
                url: url.clone(),
                video_track: crate::config::video_track_name(&rung.name),
                video_path_redacted: crate::config::expand_video(&crate::config::redact_template(&cmaf.track_path), rung),
                video_path,
                video: VideoInfo { width: rung.width, height: rung.height, bitrate_bps: rung.bitrate_bps },
                audio,
                segment_ms: cx.gop,
                forbidden_retries: cmaf.forbidden_retries,
                frame_ns: cx.fps.frame_ns(),
                backoff,
                ca_file: destination.ca_file.clone(),
                flavor: cmaf.flavor,
                channel: match cmaf.flavor {
                    Flavor::Cmaf => Vec::new(),
                    Flavor::Smooth => smooth_channel(cx),
                },
                epoch_aligned: cmaf.epoch_aligned,
            };
            match cmaf.flavor {
                Flavor::Cmaf => OutputPlan::Cmaf(plan),
                Flavor::Smooth => OutputPlan::Smooth(plan),
            }
        }
        DestinationUrl::Srt(url) => {
            let srt = destination.srt.as_ref().expect("an SRT destination has SRT settings");
            OutputPlan::Srt(SrtPlan {
                destination: destination.name.clone(),
                rung: rung.name.clone(),
                endpoint,
                label,
                url: url.clone(),
                mode: srt.mode,
                streamid: destination.streamid(rung),
                streamid_redacted: destination.streamid_redacted(rung),
                passphrase: srt.passphrase.clone(),
                pbkeylen: srt.pbkeylen,
                latency_ms: srt.latency_ms,
                format: TrackFormat {
                    width: rung.width,
                    height: rung.height,
                    fps: cx.fps,
                    audio_rate: cx.audio.sample_rate,
                    audio_channels: cx.audio.channels,
                },
                backoff,
                connect_timeout: cx.options.connect_timeout,
            })
        }
    }
}

/// What a Smooth destination's manifest lists: each rung it carries, then the audio.
fn smooth_channel(cx: &RungContext<'_>) -> Vec<Listed> {
    let video = cx.carried.iter().map(|r| Listed {
        name: crate::config::video_track_name(&r.name),
        kind: ListedKind::Video(VideoInfo { width: r.width, height: r.height, bitrate_bps: r.bitrate_bps }),
    });
    let audio = AudioInfo { sample_rate: cx.audio.sample_rate, channels: cx.audio.channels, bitrate_bps: cx.audio.bitrate_bps };
    video.chain([Listed { name: crate::config::AUDIO_TRACK_NAME.to_owned(), kind: ListedKind::Audio(audio) }]).collect()
}

pub(crate) fn display_ms<S: serde::Serializer>(v: &std::time::Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(v.as_millis() as u64)
}

pub(crate) fn display<S: serde::Serializer, T: std::fmt::Display>(v: &T, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(v)
}

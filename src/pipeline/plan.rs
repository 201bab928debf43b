//! The pure ladder plan: config + board + source format -> rungs with size,
//! frame rate, bitrate, GOP and encoder settings; the scaling cascade; the
//! shared audio; every publish and recording. No GStreamer here: the plan
//! is table-tested, printed by `check-config`, and consumed by `build`.

use crate::board::{BoardProfile, EncoderSettings};
use crate::config::{Audio, Config, Fps, RecordFormat, Source};
use crate::egress::plan::{self as output, OutputPlan, RungContext};
use serde::Serialize;
use std::path::PathBuf;
use std::time::Duration;
use thiserror::Error;

/// VBV buffer for strict CBR: one second, as channels expect "small VBV".
pub const VBV_MS: u32 = 1000;

/// What the capture delivers (from the config, or negotiated with the device).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct SourceFormat {
    pub width: u32,
    pub height: u32,
    pub fps: Fps,
}

/// One scaled picture size. Node 0 is the capture itself.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ScaleNode {
    pub width: u32,
    pub height: u32,
    /// The node this one is scaled from; `None` for the capture.
    pub from: Option<usize>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RungPlan {
    pub name: String,
    pub width: u32,
    pub height: u32,
    pub fps: Fps,
    pub bitrate_bps: u64,
    pub gop_frames: u32,
    /// Index into `Plan::scalers` of the picture this rung encodes.
    pub scaler: usize,
    pub encoder: EncoderSettings,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct GopPlan {
    pub frames: u32,
    /// Exact GOP duration (frames x frame duration), in ns.
    pub duration_ns: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RecordPlan {
    pub dir: PathBuf,
    pub format: RecordFormat,
    pub segment: Duration,
    pub rungs: Vec<String>,
    pub min_free_bytes: u64,
    pub rotate: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AudioPlan {
    #[serde(skip)]
    pub audio: Audio,
    pub source: String,
    pub bitrate_bps: u32,
    pub sample_rate: u32,
    pub channels: u32,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Plan {
    pub board: String,
    #[serde(skip)]
    pub source: Source,
    pub source_kind: &'static str,
    /// Shown on the built-in slate.
    #[serde(skip)]
    pub device_id: String,
    /// What goes out while the capture delivers nothing.
    #[serde(skip)]
    pub input_loss: crate::config::InputLoss,
    pub format: SourceFormat,
    pub scalers: Vec<ScaleNode>,
    pub rungs: Vec<RungPlan>,
    pub gop: GopPlan,
    /// IDRs at K x the GOP since 1970 (an `epoch_aligned` destination asked;
    /// the keyframe grid is the whole ladder's, so every output has it).
    pub epoch_aligned: bool,
    pub audio: AudioPlan,
    /// One per (destination, rung), in destination order.
    pub outputs: Vec<OutputPlan>,
    pub recording: Option<RecordPlan>,
    /// Total pixels per second encoded, for the board's budget.
    pub pixel_rate: u64,
}

#[derive(Debug, Error, PartialEq)]
pub enum PlanError {
    #[error("ladder.rungs: `{rung}` is {w}x{h}, larger than the {sw}x{sh} input (fieldcast never upscales)")]
    LargerThanSource { rung: String, w: u32, h: u32, sw: u32, sh: u32 },
    #[error("ladder.rungs: `{rung}` is {w}x{h}, over the {max_w}x{max_h} the `{board}` encoder takes")]
    OverBoardSize { rung: String, w: u32, h: u32, max_w: u32, max_h: u32, board: String },
    #[error("ladder.rungs: `{rung}` at {kbps} kbit/s is over the {max_kbps} kbit/s the `{board}` encoder takes")]
    OverBoardBitrate { rung: String, kbps: u64, max_kbps: u64, board: String },
    #[error("ladder: {count} rungs, but the `{board}` board runs at most {max} encoders")]
    TooManyEncodes { count: usize, max: u32, board: String },
    #[error("ladder: needs {need} Mpixel/s, over the {max} Mpixel/s the `{board}` encoder sustains (drop a rung or lower the frame rate)")]
    OverPixelRate { need: u64, max: u64, board: String },
    #[error("source: capturing and scaling this input needs {need} Mpixel/s, over the {max} Mpixel/s the `{board}` board sustains (lower the input's size or frame rate)")]
    OverCaptureRate { need: u64, max: u64, board: String },
}

/// GOP in frames for a duration, and its exact length in ns.
pub fn gop(gop_seconds: f64, fps: Fps) -> GopPlan {
    let frames = (gop_seconds * fps.as_f64()).round().max(1.0) as u32;
    let duration_ns = u64::from(frames) * 1_000_000_000 * u64::from(fps.den) / u64::from(fps.num);
    GopPlan { frames, duration_ns }
}

/// The scaling cascade: one node per distinct rung size, each scaled from
/// the smallest larger picture, so no size is computed twice and every
/// step downscales by a modest factor (cheaper and less aliasing than
/// scaling every rung from the capture).
pub fn cascade(source: (u32, u32), sizes: &[(u32, u32)]) -> Vec<ScaleNode> {
    let mut nodes = vec![ScaleNode { width: source.0, height: source.1, from: None }];
    let mut wanted: Vec<(u32, u32)> = sizes.iter().copied().filter(|s| *s != source).collect();
    wanted.sort_by_key(|(w, h)| std::cmp::Reverse(u64::from(*w) * u64::from(*h)));
    wanted.dedup();
    for (w, h) in wanted {
        let from = nodes
            .iter()
            .enumerate()
            .filter(|(_, n)| n.width >= w && n.height >= h)
            .min_by_key(|(_, n)| u64::from(n.width) * u64::from(n.height))
            .map(|(i, _)| i)
            .unwrap_or(0);
        nodes.push(ScaleNode { width: w, height: h, from: Some(from) });
    }
    nodes
}

pub fn plan(config: &Config, board: &BoardProfile, format: SourceFormat) -> Result<Plan, PlanError> {
    let gop = gop(config.ladder.gop_seconds, format.fps);
    let limits = &board.limits;
    let specs = &config.ladder.rungs;
    if specs.len() > limits.max_encodes as usize {
        return Err(PlanError::TooManyEncodes { count: specs.len(), max: limits.max_encodes, board: board.name.clone() });
    }
    for r in specs {
        if r.width > format.width || r.height > format.height {
            return Err(PlanError::LargerThanSource {
                rung: r.name.clone(),
                w: r.width,
                h: r.height,
                sw: format.width,
                sh: format.height,
            });
        }
        if r.width > limits.max_width || r.height > limits.max_height {
            return Err(PlanError::OverBoardSize {
                rung: r.name.clone(),
                w: r.width,
                h: r.height,
                max_w: limits.max_width,
                max_h: limits.max_height,
                board: board.name.clone(),
            });
        }
        if r.bitrate_bps > limits.max_bitrate_bps {
            return Err(PlanError::OverBoardBitrate {
                rung: r.name.clone(),
                kbps: r.bitrate_bps / 1000,
                max_kbps: limits.max_bitrate_bps / 1000,
                board: board.name.clone(),
            });
        }
    }
    let pixel_rate: u64 = specs
        .iter()
        .map(|r| (u64::from(r.width) * u64::from(r.height) * u64::from(format.fps.num)) / u64::from(format.fps.den))
        .sum();
    if pixel_rate > limits.max_pixel_rate {
        return Err(PlanError::OverPixelRate {
            need: pixel_rate / 1_000_000,
            max: limits.max_pixel_rate / 1_000_000,
            board: board.name.clone(),
        });
    }
    let sizes: Vec<(u32, u32)> = specs.iter().map(|r| (r.width, r.height)).collect();
    let scalers = cascade((format.width, format.height), &sizes);
    // Before any encoder runs, every frame is converted at the input's size
    // and scaled once per cascade node: a board that cannot do that in real
    // time would report live while delivering a fraction of the frames.
    let per_second = |w: u32, h: u32| u64::from(w) * u64::from(h) * u64::from(format.fps.num) / u64::from(format.fps.den);
    let capture_rate = per_second(format.width, format.height)
        + scalers.iter().skip(1).map(|n| per_second(n.width, n.height)).sum::<u64>();
    if capture_rate > limits.capture_pixel_rate() {
        return Err(PlanError::OverCaptureRate {
            need: capture_rate / 1_000_000,
            max: limits.capture_pixel_rate() / 1_000_000,
            board: board.name.clone(),
        });
    }
    let rungs = specs
        .iter()
        .map(|r| RungPlan {
            name: r.name.clone(),
            width: r.width,
            height: r.height,
            fps: format.fps,
            bitrate_bps: r.bitrate_bps,
            gop_frames: gop.frames,
            scaler: scalers.iter().position(|n| (n.width, n.height) == (r.width, r.height)).expect("every size has a node"),
            encoder: EncoderSettings::for_rung(&board.encoder, r.bitrate_bps, gop.frames, config.ladder.h264_profile, VBV_MS),
        })
        .collect();
    let outputs = config
        .destinations
        .iter()
        .flat_map(|d| {
            let carried: Vec<&crate::config::RungSpec> = specs.iter().filter(|r| d.rungs.contains(&r.name)).collect();
            let plans: Vec<_> = carried.iter().enumerate().flat_map(|(i, rung)| {
                let cx = RungContext {
                    rung,
                    carried: &carried,
                    fps: format.fps,
                    audio: &config.audio,
                    options: &config.egress,
                    gop: std::time::Duration::from_nanos(
                        u64::from(gop.frames) * 1_000_000_000 * u64::from(format.fps.den) / u64::from(format.fps.num),
                    ),
                    first_of_destination: i == 0,
                };
                output::plan(d, &cx)
            }).collect();
            plans
        })
        .collect();
    let recording = config.recording.as_ref().map(|r| RecordPlan {
        dir: r.dir.clone(),
        format: r.format,
        segment: r.segment,
        rungs: r.rungs.clone(),
        min_free_bytes: r.min_free_bytes,
        rotate: r.rotate,
    });
    let a = &config.audio;
    Ok(Plan {
        board: board.name.clone(),
        source: config.source.clone(),
        source_kind: config.source.kind(),
        device_id: config.device_id.clone(),
        input_loss: config.input_loss.clone(),
        format,
        scalers,
        rungs,
        gop,
        epoch_aligned: config.destinations.iter().any(|d| d.cmaf.as_ref().is_some_and(|c| c.epoch_aligned)),
        audio: AudioPlan {
            audio: a.clone(),
            source: format!("{:?}", a.source).to_lowercase(),
            bitrate_bps: a.bitrate_bps,
            sample_rate: a.sample_rate,
            channels: a.channels,
        },
        outputs,
        recording,
        pixel_rate,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::board::builtin as board;
    use crate::config::{builtin_default, from_value, parse_str};

    const F30: Fps = Fps { num: 30, den: 1 };
    const HD: SourceFormat = SourceFormat { width: 1920, height: 1080, fps: F30 };

    fn config(text: &str) -> Config {
        from_value(parse_str(text, std::path::Path::new("t.toml")).unwrap(), "t").unwrap()
    }

    #[test]
    fn the_standard_ladder_cascades_1080_720_540_360() {
        let p = plan(&builtin_default(), &board("generic"), HD).unwrap();
        let nodes: Vec<_> = p.scalers.iter().map(|n| (n.width, n.height, n.from)).collect();
        assert_eq!(nodes, [(1920, 1080, None), (1280, 720, Some(0)), (960, 540, Some(1)), (640, 360, Some(2))]);
        let rungs: Vec<_> = p.rungs.iter().map(|r| (r.name.as_str(), r.scaler, r.bitrate_bps, r.gop_frames)).collect();
        assert_eq!(rungs, [("1080p", 0, 5_500_000, 60), ("720p", 1, 3_000_000, 60), ("540p", 2, 1_600_000, 60), ("360p", 3, 800_000, 60)]);
        assert_eq!(p.pixel_rate, (1920 * 1080 + 1280 * 720 + 960 * 540 + 640 * 360) * 30);
        assert_eq!(p.rungs[0].encoder.properties.iter().find(|(k, _)| k == "bitrate").unwrap().1, "5500");
    }

    #[test]
    fn an_input_the_board_cannot_capture_and_scale_in_real_time_is_refused_whatever_the_ladder() {
        let single = config("[ladder]\nrungs = [{ name = \"360p\", width = 640, height = 360, bitrate_kbps = 800 }]\n");
        let huge = SourceFormat { width: 7680, height: 4320, fps: Fps { num: 120, den: 1 } };
        // One small rung is cheap to encode, but every 8K frame is still converted and scaled.
        match plan(&single, &board("generic"), huge) {
            Err(PlanError::OverCaptureRate { need, max, .. }) => assert_eq!((need, max), (3981 + 27, 1000)),
            other => panic!("{other:?}"),
        }
        let uhd60 = SourceFormat { width: 3840, height: 2160, fps: Fps { num: 60, den: 1 } };
        assert!(plan(&single, &board("generic"), uhd60).is_ok());
        // A board's own limit, or 4x its encoder's by default.
        let mut b = board("generic");
        b.limits.max_capture_pixel_rate = None;
        assert_eq!(b.limits.capture_pixel_rate(), 4 * b.limits.max_pixel_rate);
        b.limits.max_capture_pixel_rate = Some(100_000_000);
        assert!(plan(&single, &b, HD).is_ok(), "62 + 7 Mpx/s");
        assert!(matches!(plan(&single, &b, uhd60), Err(PlanError::OverCaptureRate { .. })));
    }

    #[test]
    fn same_size_rungs_share_one_scaler_and_a_non_nested_size_scales_from_the_smallest_larger() {
        let nodes = cascade((1920, 1080), &[(1280, 720), (1280, 720), (1080, 1080), (640, 360)]);
        let v: Vec<_> = nodes.iter().map(|n| (n.width, n.height, n.from)).collect();
        // 1080x1080 fits only in the capture; 640x360 fits in 1280x720 (smaller than 1080x1080).
        assert_eq!(v, [(1920, 1080, None), (1080, 1080, Some(0)), (1280, 720, Some(0)), (640, 360, Some(2))]);
    }

    #[test]
    fn gop_is_whole_frames_and_its_duration_exact() {
        assert_eq!(gop(2.0, F30), GopPlan { frames: 60, duration_ns: 2_000_000_000 });
        assert_eq!(gop(2.0, Fps { num: 30000, den: 1001 }), GopPlan { frames: 60, duration_ns: 2_002_000_000 });
        assert_eq!(gop(0.5, Fps { num: 25, den: 1 }).frames, 13);
        assert_eq!(gop(1.0, Fps { num: 60000, den: 1001 }), GopPlan { frames: 60, duration_ns: 1_001_000_000 });
    }

    #[test]
    fn a_rung_larger_than_the_negotiated_input_is_refused() {
        let small = SourceFormat { width: 1280, height: 720, fps: F30 };
        let c = config("[source]\nkind = \"v4l2\"\n");
        let err = plan(&c, &board("generic"), small).unwrap_err();
        assert_eq!(err.to_string(), "ladder.rungs: `1080p` is 1920x1080, larger than the 1280x720 input (fieldcast never upscales)");
    }

    #[test]
    fn board_limits_refuse_ladders_the_encoder_cannot_carry() {
        let err = plan(&builtin_default(), &board("rpi4"), HD).unwrap_err();
        assert!(matches!(err, PlanError::OverPixelRate { need: 112, max: 62, .. }), "{err}");
        let c = config("[ladder]\nrungs = [{ width = 1920, height = 1080, bitrate_kbps = 30000 }]\n");
        assert!(matches!(plan(&c, &board("rpi4"), HD), Err(PlanError::OverBoardBitrate { kbps: 30000, max_kbps: 20000, .. })));
        let uhd = SourceFormat { width: 3840, height: 2160, fps: F30 };
        let c = config("[source]\nwidth = 3840\nheight = 2160\n[ladder]\nrungs = [{ width = 3840, height = 2160, bitrate_kbps = 16000 }]\n");
        assert!(matches!(plan(&c, &board("rk3588"), uhd), Err(PlanError::OverBoardSize { max_w: 1920, .. })));
        assert!(plan(&config("[ladder]\nprofile = \"basic\"\n"), &board("rpi4"), HD).is_ok(), "basic fits a Pi 4");
    }

    #[test]
    fn a_cmaf_destination_plans_a_track_per_rung_and_the_audio_track_once() {
        let c = config(
            "[[destination]]\nname = \"origin\"\nurl = \"https://o.example.com/live/tok3n/ch1.isml\"\nprotocol = \"cmaf\"\n\
             track_path = \"Streams({track})\"\nrungs = [\"720p\", \"360p\"]\n",
        );
        let p = plan(&c, &board("generic"), HD).unwrap();
        let v: Vec<_> = p
            .outputs
            .iter()
            .map(|x| match x {
                OutputPlan::Cmaf(x) => (x.rung.as_str(), x.video_path.as_str(), x.audio.as_ref().map(|a| a.path.as_str()), x.segment_ms),
                _ => unreachable!("only a CMAF destination here"),
            })
            .collect();
        let two_s = std::time::Duration::from_secs(2);
        assert_eq!(v, [("720p", "Streams(video-720p)", Some("Streams(audio)"), two_s), ("360p", "Streams(video-360p)", None, two_s)]);
        let shown = p.outputs.iter().map(|o| o.describe()).collect::<Vec<_>>().join("\n");
        assert!(!shown.contains("tok3n") && shown.contains("https://o.example.com:443/live/***"), "{shown}");
    }

    #[test]
    fn publishes_are_one_per_rung_and_destination_with_redacted_names() {
        let c = config(
            "[[destination]]\nname = \"primary\"\nurl = \"rtmp://a/live/tok\"\nstream = \"{rung}_{key}\"\nkey = \"sek\"\n\
             [[destination]]\nname = \"backup\"\nurl = \"rtmp://b/live\"\nstream = \"video_{kbps}\"\nrungs = [\"720p\"]\n",
        );
        let p = plan(&c, &board("generic"), HD).unwrap();
        let v: Vec<_> = p
            .outputs
            .iter()
            .map(|x| match x {
                OutputPlan::Rtmp(x) => (x.destination.as_str(), x.rung.as_str(), x.stream_name_redacted.as_str()),
                _ => unreachable!("only RTMP destinations here"),
            })
            .collect();
        assert_eq!(
            v,
            [
                ("primary", "1080p", "1080p_***"),
                ("primary", "720p", "720p_***"),
                ("primary", "540p", "540p_***"),
                ("primary", "360p", "360p_***"),
                // Literal text in a template may be a key: never shown.
                ("backup", "720p", "***_3000")
            ]
        );
        let OutputPlan::Rtmp(first) = &p.outputs[0] else { unreachable!() };
        assert_eq!(first.stream_name.expose(), "1080p_sek");
        let json = serde_json::to_string(&p).unwrap();
        assert!(!json.contains("sek") && !json.contains("tok"), "{json}");
    }
}

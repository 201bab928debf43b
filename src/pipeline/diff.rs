//! Whether a new plan can be applied to the running pipeline without a
//! restart. Pure (two plans in, a decision out), table-tested: new rung
//! bitrates (on a board whose encoder takes a bitrate while playing) and new
//! input-loss handling (the timings, the slate image: the frame clock is
//! ours) are taken live, alone or together; anything else (a size, the GOP,
//! the source, an output, a stream name that carries `{kbps}`, the
//! recording) restarts the session as before.

use super::plan::Plan;
use crate::egress::plan::OutputPlan;

/// One rung's new bitrate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BitrateChange {
    pub rung: String,
    pub from_bps: u64,
    pub to_bps: u64,
}

/// What a restart is needed for, for the log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RestartFor {
    /// The source or its format.
    Input,
    /// Rungs added, removed, renamed or resized; the GOP; encoder settings other than the bitrate.
    Ladder,
    Audio,
    /// A destination, its URL, stream names or options.
    Outputs,
    Recording,
    /// Only bitrates change, but this board's encoder cannot take one while playing.
    EncoderNotLive,
}

impl std::fmt::Display for RestartFor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            RestartFor::Input => "the input changed",
            RestartFor::Ladder => "the ladder changed beyond its bitrates",
            RestartFor::Audio => "the audio changed",
            RestartFor::Outputs => "an output changed",
            RestartFor::Recording => "the recording changed",
            RestartFor::EncoderNotLive => "this board's encoder cannot change its bitrate while playing",
        })
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PlanChange {
    /// Nothing the running pipeline does would change.
    Same,
    /// Taken by the running pipeline: new rung bitrates (set on the
    /// encoders), new input-loss handling (handed to the frame clock), or both.
    Live { bitrates: Vec<BitrateChange>, input_loss: bool },
    Restart(RestartFor),
}

/// Decides how `next` can replace `running`.
pub fn diff(running: &Plan, next: &Plan) -> PlanChange {
    if running.board != next.board
        || running.source != next.source
        || running.format != next.format
        || running.device_id != next.device_id
    {
        return PlanChange::Restart(RestartFor::Input);
    }
    let same_rungs = running.rungs.len() == next.rungs.len()
        && running.rungs.iter().zip(&next.rungs).all(|(a, b)| {
            (&a.name, a.width, a.height, a.fps, a.gop_frames, a.scaler) == (&b.name, b.width, b.height, b.fps, b.gop_frames, b.scaler)
                && a.encoder.without_bitrate() == b.encoder.without_bitrate()
        });
    if !same_rungs || running.scalers != next.scalers || running.gop != next.gop || running.epoch_aligned != next.epoch_aligned || running.pixel_rate != next.pixel_rate {
        return PlanChange::Restart(RestartFor::Ladder);
    }
    if running.audio != next.audio {
        return PlanChange::Restart(RestartFor::Audio);
    }
    let same_outputs = running.outputs.len() == next.outputs.len()
        && running.outputs.iter().zip(&next.outputs).all(|(a, b)| a == &with_declared_rate_of(b, a));
    if !same_outputs {
        return PlanChange::Restart(RestartFor::Outputs);
    }
    if running.recording != next.recording {
        return PlanChange::Restart(RestartFor::Recording);
    }
    let changes: Vec<BitrateChange> = running
        .rungs
        .iter()
        .zip(&next.rungs)
        .filter(|(a, b)| a.bitrate_bps != b.bitrate_bps)
        .map(|(a, b)| BitrateChange { rung: a.name.clone(), from_bps: a.bitrate_bps, to_bps: b.bitrate_bps })
        .collect();
    let input_loss = running.input_loss != next.input_loss;
    if changes.is_empty() && !input_loss {
        return PlanChange::Same;
    }
    if !changes.is_empty() && !next.rungs.iter().all(|r| r.encoder.bitrate.live) {
        return PlanChange::Restart(RestartFor::EncoderNotLive);
    }
    PlanChange::Live { bitrates: changes, input_loss }
}

/// `output` declaring the video bitrate `like` declares: what is left to
/// compare once a rung's bitrate is set aside (a stream name that
/// contains the bitrate still differs).
fn with_declared_rate_of(output: &OutputPlan, like: &OutputPlan) -> OutputPlan {
    let mut o = output.clone();
    if let (OutputPlan::Rtmp(o), OutputPlan::Rtmp(like)) = (&mut o, like) {
        o.metadata.video_kbps = like.metadata.video_kbps;
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::board::builtin as board;
    use crate::config::{Fps, from_value, parse_str};
    use crate::pipeline::plan::{SourceFormat, plan};

    const HD: SourceFormat = SourceFormat { width: 1920, height: 1080, fps: Fps { num: 30, den: 1 } };
    const BASE: &str = "[ladder]\nrungs = [{ name = \"720p\", width = 1280, height = 720, bitrate_kbps = 3000 }, \
                        { name = \"360p\", width = 640, height = 360, bitrate_kbps = 800 }]\n\
                        [[destination]]\nurl = \"rtmp://a/live\"\nstream = \"{rung}_{key}\"\nkey = \"k\"\n";

    fn planned(text: &str, board_name: &str) -> Plan {
        let config = from_value(parse_str(text, std::path::Path::new("t.toml")).unwrap(), "t").unwrap();
        plan(&config, &board(board_name), HD).unwrap()
    }

    fn change(from: &str, to: &str) -> PlanChange {
        diff(&planned(from, "generic"), &planned(to, "generic"))
    }

    #[test]
    fn the_same_config_changes_nothing() {
        assert_eq!(change(BASE, BASE), PlanChange::Same);
    }

    #[test]
    fn new_bitrates_alone_are_set_live_on_every_board_that_can() {
        let lower = BASE.replace("3000", "1500");
        let want = PlanChange::Live { bitrates: vec![BitrateChange { rung: "720p".into(), from_bps: 3_000_000, to_bps: 1_500_000 }], input_loss: false };
        assert_eq!(change(BASE, &lower), want);
        let both = lower.replace("800", "1200");
        match change(BASE, &both) {
            PlanChange::Live { bitrates: c, input_loss: false } => assert_eq!(c.iter().map(|c| (c.rung.as_str(), c.to_bps)).collect::<Vec<_>>(), [("720p", 1_500_000), ("360p", 1_200_000)]),
            other => panic!("{other:?}"),
        }
        for b in ["rpi4", "rpi5", "rk3588", "jetson", "imx8mp"] {
            let basic = BASE.replace("1280, height = 720", "960, height = 540");
            let p = diff(&planned(&basic, b), &planned(&basic.replace("3000", "1500"), b));
            assert!(matches!(p, PlanChange::Live { input_loss: false, .. }), "{b}: {p:?}");
        }
    }

    #[test]
    fn a_board_whose_encoder_cannot_take_a_bitrate_while_playing_restarts() {
        let mut b = board("generic");
        b.encoder.bitrate.live = false;
        let config = |t: &str| from_value(parse_str(t, std::path::Path::new("t.toml")).unwrap(), "t").unwrap();
        let (a, n) = (plan(&config(BASE), &b, HD).unwrap(), plan(&config(&BASE.replace("3000", "1500")), &b, HD).unwrap());
        assert_eq!(diff(&a, &n), PlanChange::Restart(RestartFor::EncoderNotLive));
        assert_eq!(diff(&a, &a.clone()), PlanChange::Same);
    }

    #[test]
    fn anything_beyond_bitrates_restarts_and_says_what() {
        let cases = [
            (BASE.replace("640, height = 360", "480, height = 270"), RestartFor::Ladder),
            (BASE.replace("\"360p\"", "\"low\""), RestartFor::Ladder),
            (BASE.replace("[ladder]\n", "[ladder]\ngop_seconds = 1\n"), RestartFor::Ladder),
            (format!("[audio]\nbitrate_kbps = 96\n{BASE}"), RestartFor::Audio),
            (format!("[source]\npattern = \"ball\"\n{BASE}"), RestartFor::Input),
            (BASE.replace("rtmp://a/live", "rtmp://b/live"), RestartFor::Outputs),
            (format!("{BASE}[egress]\nreconnect_max_ms = 9000\n"), RestartFor::Outputs),
            (format!("{BASE}[recording]\nenabled = false\n"), RestartFor::Recording),
            (BASE.replace("[ladder]\n", "[ladder]\nh264_profile = \"main\"\n"), RestartFor::Ladder),
        ];
        for (next, why) in cases {
            assert_eq!(change(BASE, &next), PlanChange::Restart(why), "{next}");
            // A bitrate change beside it does not make it live.
            assert_eq!(change(BASE, &next.replace("3000", "1500")), PlanChange::Restart(why), "{next}");
        }
    }

    #[test]
    fn new_input_loss_handling_is_taken_live_alone_or_beside_new_bitrates_on_any_board() {
        for next in ["[input_loss]\nrepeat_frame_ms = 0\n", "[input_loss]\ninput_loss_ms = 300\n"] {
            let next = format!("{next}{BASE}");
            assert_eq!(change(BASE, &next), PlanChange::Live { bitrates: vec![], input_loss: true }, "{next}");
            match change(BASE, &next.replace("3000", "1500")) {
                PlanChange::Live { bitrates, input_loss: true } => assert_eq!(bitrates.len(), 1, "{next}"),
                other => panic!("{next}: {other:?}"),
            }
        }
        let mut slate = planned(BASE, "generic");
        slate.input_loss.slate_image = Some("/srv/slate.png".into());
        assert_eq!(diff(&planned(BASE, "generic"), &slate), PlanChange::Live { bitrates: vec![], input_loss: true });
        // A board that cannot take a bitrate live still takes the slate live.
        let mut b = board("generic");
        b.encoder.bitrate.live = false;
        let config = |t: &str| from_value(parse_str(t, std::path::Path::new("t.toml")).unwrap(), "t").unwrap();
        let a = plan(&config(BASE), &b, HD).unwrap();
        let n = plan(&config(&format!("[input_loss]\nrepeat_frame_ms = 0\n{BASE}")), &b, HD).unwrap();
        assert_eq!(diff(&a, &n), PlanChange::Live { bitrates: vec![], input_loss: true });
    }

    #[test]
    fn a_stream_name_carrying_the_bitrate_would_be_renamed_so_it_restarts() {
        let named = BASE.replace("{rung}_{key}", "video_{kbps}");
        assert_eq!(change(&named, &named.replace("3000", "1500")), PlanChange::Restart(RestartFor::Outputs));
        // The 360p publish keeps its name when only 720p changes: still one renamed.
        assert_eq!(change(&named, &named), PlanChange::Same);
    }
}

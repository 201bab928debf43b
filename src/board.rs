//! Board profiles and every encoder quirk, in one place.
//!
//! A board is data (`board/*.toml`): which encoder element it has, how that
//! element spells bitrate / GOP / profile / rate control and in which units,
//! capture defaults and limits. The rest of fieldcast speaks bits per second
//! and GOP frames; [`EncoderSettings::for_rung`] is the only translation.
//! Integrators add a board by dropping a TOML file into the board directory.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use thiserror::Error;

/// Profiles compiled into the binary, so a bare binary (or one under QEMU) works.
/// Files in a board directory override these by name.
const BUILTIN: &[(&str, &str)] = &[
    ("generic", include_str!("../board/generic.toml")),
    ("rpi4", include_str!("../board/rpi4.toml")),
    ("rpi5", include_str!("../board/rpi5.toml")),
    ("rk3588", include_str!("../board/rk3588.toml")),
    ("jetson", include_str!("../board/jetson.toml")),
    ("imx8mp", include_str!("../board/imx8mp.toml")),
];

#[derive(Debug, Error)]
pub enum BoardError {
    #[error("board profile {path}: {source}")]
    Parse { path: String, source: Box<toml::de::Error> },
    #[error("board profile {path}: {message}")]
    Invalid { path: String, message: String },
    #[error("cannot read board directory {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    /// The configured `board` names no profile (the name is not quoted:
    /// it is a submitted value).
    #[error("board: no board profile has that name (known: {known})")]
    Unknown { known: String },
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct BoardProfile {
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub detect: Detect,
    #[serde(default)]
    pub capture: CaptureDefaults,
    pub encoder: EncoderSpec,
    pub limits: Limits,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Detect {
    /// Substrings of `/proc/device-tree/model`.
    #[serde(default)]
    pub models: Vec<String>,
    /// Entries of `/proc/device-tree/compatible`.
    #[serde(default)]
    pub compatible: Vec<String>,
    /// Elements that must exist for the profile to be usable.
    #[serde(default)]
    pub elements: Vec<String>,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CaptureDefaults {
    pub default_device: Option<String>,
    pub format: Option<String>,
}

#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BitrateUnit {
    Bps,
    Kbps,
}

/// Where a value goes: an element property, or a field of the V4L2
/// `extra-controls` structure (v4l2h264enc).
#[derive(Clone, Debug, Deserialize, PartialEq, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct BitrateSpec {
    pub property: Option<String>,
    pub control: Option<String>,
    pub unit: BitrateUnit,
    /// The encoder takes a new bitrate while PLAYING, through the same
    /// property or control (set again on the running element). Without it
    /// a bitrate change restarts the stream and adaptive bitrate is off.
    #[serde(default)]
    pub live: bool,
}

impl BitrateSpec {
    /// `bitrate_bps` in this encoder's unit (kbit/s rounded up).
    pub fn value(&self, bitrate_bps: u64) -> u64 {
        match self.unit {
            BitrateUnit::Bps => bitrate_bps,
            BitrateUnit::Kbps => bitrate_bps.div_ceil(1000),
        }
    }
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct GopSpec {
    #[serde(default)]
    pub properties: Vec<String>,
    #[serde(default)]
    pub controls: Vec<String>,
    /// Smallest GOP the encoder survives.
    pub min: Option<u32>,
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ProfileSpec {
    /// `"caps"`: the profile is negotiated through downstream caps.
    pub via: Option<String>,
    pub property: Option<String>,
    #[serde(default)]
    pub values: BTreeMap<String, String>,
    /// A level that must be put in the caps (v4l2h264enc fails without one).
    pub level: Option<String>,
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PropRef {
    pub property: String,
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct EncoderSpec {
    pub element: String,
    /// Whether the element honours GstForceKeyUnit events.
    pub force_keyframe: bool,
    /// Elements between the scaler and the encoder (e.g. `nvvidconv`).
    #[serde(default)]
    pub input_chain: Vec<String>,
    pub input_caps: Option<String>,
    pub bitrate: BitrateSpec,
    pub gop: GopSpec,
    pub profile: ProfileSpec,
    pub vbv_buffer_ms: Option<PropRef>,
    /// Fixed properties, as strings GStreamer deserializes (enum nicks, ints).
    #[serde(default)]
    pub properties: BTreeMap<String, String>,
    /// Fixed V4L2 controls for `extra-controls`.
    #[serde(default)]
    pub controls: BTreeMap<String, i64>,
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    pub max_encodes: u32,
    /// Pixels per second the encoder block sustains across all rungs.
    pub max_pixel_rate: u64,
    /// Pixels per second the board converts and scales before encoding:
    /// the capture at its full size plus every scaled picture. Default:
    /// 4 x `max_pixel_rate`.
    #[serde(default)]
    pub max_capture_pixel_rate: Option<u64>,
    pub max_width: u32,
    pub max_height: u32,
    pub max_bitrate_bps: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum H264Profile {
    Baseline,
    Main,
    High,
}

impl H264Profile {
    pub fn as_str(self) -> &'static str {
        match self {
            H264Profile::Baseline => "baseline",
            H264Profile::Main => "main",
            H264Profile::High => "high",
        }
    }
}

/// What one rung's encoder is set to: the resolved, element-specific form.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct EncoderSettings {
    pub element: String,
    /// Properties in the order they must be set.
    pub properties: Vec<(String, String)>,
    /// V4L2 controls for `extra-controls` (empty when the element has none).
    pub controls: Vec<(String, i64)>,
    /// `profile=` (and `level=`) for the caps after the encoder.
    pub caps_profile: Option<String>,
    pub caps_level: Option<String>,
    pub input_chain: Vec<String>,
    pub input_caps: Option<String>,
    pub force_keyframe: bool,
    /// Where the bitrate went (and whether it may change while playing).
    pub bitrate: BitrateSpec,
}

impl EncoderSettings {
    /// Translates a rung's bit/s, GOP frames and profile into this encoder's
    /// property names and units.
    pub fn for_rung(spec: &EncoderSpec, bitrate_bps: u64, gop_frames: u32, profile: H264Profile, vbv_ms: u32) -> EncoderSettings {
        let mut properties: Vec<(String, String)> =
            spec.properties.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        let mut controls: Vec<(String, i64)> = spec.controls.iter().map(|(k, v)| (k.clone(), *v)).collect();

        let rate = spec.bitrate.value(bitrate_bps);
        if let Some(p) = &spec.bitrate.property {
            properties.push((p.clone(), rate.to_string()));
        }
        if let Some(c) = &spec.bitrate.control {
            controls.push((c.clone(), rate as i64));
        }

        let gop = gop_frames.max(spec.gop.min.unwrap_or(1));
        for p in &spec.gop.properties {
            properties.push((p.clone(), gop.to_string()));
        }
        for c in &spec.gop.controls {
            controls.push((c.clone(), i64::from(gop)));
        }

        let mut caps_profile = None;
        if spec.profile.via.as_deref() == Some("caps") {
            caps_profile = Some(profile.as_str().to_string());
        } else if let Some(p) = &spec.profile.property {
            let v = spec.profile.values.get(profile.as_str()).cloned().unwrap_or_else(|| profile.as_str().into());
            properties.push((p.clone(), v));
        }
        if let Some(v) = &spec.vbv_buffer_ms {
            properties.push((v.property.clone(), vbv_ms.to_string()));
        }
        EncoderSettings {
            element: spec.element.clone(),
            properties,
            controls,
            caps_profile,
            caps_level: spec.profile.level.clone(),
            input_chain: spec.input_chain.clone(),
            input_caps: spec.input_caps.clone(),
            force_keyframe: spec.force_keyframe,
            bitrate: spec.bitrate.clone(),
        }
    }

    /// These settings with the bitrate taken out: two rungs whose settings
    /// differ only in bitrate are equal this way.
    pub fn without_bitrate(&self) -> EncoderSettings {
        let mut s = self.clone();
        if let Some(p) = &self.bitrate.property {
            s.properties.retain(|(k, _)| k != p);
        }
        if let Some(c) = &self.bitrate.control {
            s.controls.retain(|(k, _)| k != c);
        }
        s
    }
}

impl BoardProfile {
    pub fn parse(text: &str, origin: &str) -> Result<BoardProfile, BoardError> {
        let p: BoardProfile =
            toml::from_str(text).map_err(|e| BoardError::Parse { path: origin.into(), source: Box::new(e) })?;
        let invalid = |m: &str| Err(BoardError::Invalid { path: origin.into(), message: m.into() });
        if p.encoder.bitrate.property.is_none() && p.encoder.bitrate.control.is_none() {
            return invalid("encoder.bitrate needs `property` or `control`");
        }
        if p.encoder.gop.properties.is_empty() && p.encoder.gop.controls.is_empty() {
            return invalid("encoder.gop needs `properties` or `controls`");
        }
        if p.encoder.profile.via.is_none() && p.encoder.profile.property.is_none() {
            return invalid("encoder.profile needs `via = \"caps\"` or `property`");
        }
        if p.limits.max_encodes == 0 || p.limits.max_pixel_rate == 0 || p.limits.max_capture_pixel_rate == Some(0) {
            return invalid("limits must be non-zero");
        }
        Ok(p)
    }
}

impl Limits {
    pub fn capture_pixel_rate(&self) -> u64 {
        self.max_capture_pixel_rate.unwrap_or(self.max_pixel_rate.saturating_mul(4))
    }
}

/// All known profiles: built-ins, overridden or extended by `*.toml` in `dir`.
pub fn load_all(dir: Option<&Path>) -> Result<Vec<BoardProfile>, BoardError> {
    let mut profiles: Vec<BoardProfile> = BUILTIN
        .iter()
        .map(|(name, text)| BoardProfile::parse(text, &format!("built-in {name}")))
        .collect::<Result<_, _>>()?;
    let Some(dir) = dir else { return Ok(profiles) };
    if !dir.is_dir() {
        return Ok(profiles);
    }
    let entries = std::fs::read_dir(dir).map_err(|source| BoardError::Io { path: dir.into(), source })?;
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    paths.sort();
    for path in paths {
        let text = std::fs::read_to_string(&path).map_err(|source| BoardError::Io { path: path.clone(), source })?;
        let p = BoardProfile::parse(&text, &path.display().to_string())?;
        profiles.retain(|q| q.name != p.name);
        profiles.push(p);
    }
    Ok(profiles)
}

/// What the machine says about itself (device tree on ARM boards).
#[derive(Clone, Debug, Default)]
pub struct MachineInfo {
    pub model: Option<String>,
    pub compatible: Vec<String>,
}

impl MachineInfo {
    pub fn read() -> MachineInfo {
        let read = |p: &str| std::fs::read(p).ok();
        let model = read("/proc/device-tree/model")
            .map(|b| String::from_utf8_lossy(&b).trim_end_matches('\0').trim().to_string());
        let compatible = read("/proc/device-tree/compatible")
            .map(|b| {
                b.split(|c| *c == 0).filter(|s| !s.is_empty()).map(|s| String::from_utf8_lossy(s).into_owned()).collect()
            })
            .unwrap_or_default();
        MachineInfo { model, compatible }
    }
}

#[derive(Clone, Debug)]
pub struct Selection {
    pub profile: BoardProfile,
    /// Why this profile was chosen, for `probe` and the log.
    pub reason: String,
}

/// Chooses a profile: the explicit name, else the first whose model or
/// compatible string matches and whose encoder element exists, else `generic`.
pub fn select(
    profiles: &[BoardProfile],
    explicit: Option<&str>,
    machine: &MachineInfo,
    has_element: &dyn Fn(&str) -> bool,
) -> Result<Selection, BoardError> {
    let by_name = |n: &str| profiles.iter().find(|p| p.name == n).cloned();
    if let Some(name) = explicit.filter(|n| *n != "auto") {
        return by_name(name).map(|profile| Selection { profile, reason: "set in config".into() }).ok_or_else(|| {
            BoardError::Unknown { known: profiles.iter().map(|p| p.name.as_str()).collect::<Vec<_>>().join(", ") }
        });
    }
    let mut skipped = Vec::new();
    for p in profiles.iter().filter(|p| p.name != "generic") {
        let model_hit = machine.model.as_deref().is_some_and(|m| p.detect.models.iter().any(|x| m.contains(x.as_str())));
        let compat_hit = p.detect.compatible.iter().any(|c| machine.compatible.iter().any(|m| m == c));
        if !(model_hit || compat_hit) {
            continue;
        }
        match p.detect.elements.iter().find(|e| !has_element(e)) {
            None => return Ok(Selection { profile: p.clone(), reason: format!("device tree matches {}", p.name) }),
            Some(missing) => skipped.push(format!("{} matches but has no {missing}", p.name)),
        }
    }
    let profile = by_name("generic").ok_or_else(|| BoardError::Unknown { known: profiles.iter().map(|p| p.name.as_str()).collect::<Vec<_>>().join(", ") })?;
    let reason = if skipped.is_empty() { "no board matched: software encoder".to_string() } else { skipped.join("; ") };
    Ok(Selection { profile, reason })
}

/// A built-in profile by name, for tests elsewhere in the crate.
#[cfg(test)]
pub(crate) fn builtin(name: &str) -> BoardProfile {
    load_all(None).unwrap().into_iter().find(|p| p.name == name).unwrap()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profiles() -> Vec<BoardProfile> {
        load_all(None).unwrap()
    }
    fn prop<'a>(s: &'a EncoderSettings, k: &str) -> Option<&'a str> {
        s.properties.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str())
    }
    fn ctl(s: &EncoderSettings, k: &str) -> Option<i64> {
        s.controls.iter().find(|(n, _)| n == k).map(|(_, v)| *v)
    }

    #[test]
    fn every_builtin_profile_parses_and_the_six_boards_exist() {
        let names: Vec<_> = profiles().into_iter().map(|p| p.name).collect();
        assert_eq!(names, ["generic", "rpi4", "rpi5", "rk3588", "jetson", "imx8mp"]);
    }

    #[test]
    fn x264_takes_kbps_and_key_int_max_with_cbr_and_no_scenecut() {
        let s = EncoderSettings::for_rung(&builtin("generic").encoder, 5_500_000, 60, H264Profile::High, 1000);
        assert_eq!(s.element, "x264enc");
        assert_eq!(prop(&s, "bitrate"), Some("5500"));
        assert_eq!(prop(&s, "key-int-max"), Some("60"));
        assert_eq!(prop(&s, "pass"), Some("cbr"));
        assert_eq!(prop(&s, "vbv-buf-capacity"), Some("1000"));
        assert!(prop(&s, "option-string").unwrap().contains("scenecut=0"));
        assert_eq!(s.caps_profile.as_deref(), Some("high"));
        assert!(s.controls.is_empty());
    }

    #[test]
    fn rpi4_puts_bps_and_gop_in_extra_controls_and_a_level_in_caps() {
        let s = EncoderSettings::for_rung(&builtin("rpi4").encoder, 3_000_000, 60, H264Profile::High, 1000);
        assert_eq!(ctl(&s, "video_bitrate"), Some(3_000_000));
        assert_eq!(ctl(&s, "h264_i_frame_period"), Some(60));
        assert_eq!(ctl(&s, "video_bitrate_mode"), Some(1));
        assert_eq!(s.caps_level.as_deref(), Some("4"));
        assert!(prop(&s, "bitrate").is_none());
        // A GOP of 1 hangs the driver: clamped to its minimum.
        let one = EncoderSettings::for_rung(&builtin("rpi4").encoder, 3_000_000, 1, H264Profile::High, 1000);
        assert_eq!(ctl(&one, "h264_i_frame_period"), Some(2));
    }

    #[test]
    fn hardware_encoders_take_bps_under_their_own_names() {
        let rk = EncoderSettings::for_rung(&builtin("rk3588").encoder, 1_600_000, 60, H264Profile::High, 1000);
        assert_eq!(prop(&rk, "bps"), Some("1600000"));
        assert_eq!(prop(&rk, "gop"), Some("60"));
        assert_eq!(prop(&rk, "rc-mode"), Some("cbr"));
        assert_eq!(prop(&rk, "profile"), Some("high"));
        let nv = EncoderSettings::for_rung(&builtin("jetson").encoder, 800_000, 60, H264Profile::Main, 1000);
        assert_eq!(prop(&nv, "bitrate"), Some("800000"));
        assert_eq!(prop(&nv, "iframeinterval"), Some("60"));
        assert_eq!(prop(&nv, "idrinterval"), Some("60"), "IDR every GOP, not every 256 frames");
        assert_eq!(prop(&nv, "profile"), Some("2"));
        assert_eq!(nv.input_chain, ["nvvidconv"]);
        let imx = EncoderSettings::for_rung(&builtin("imx8mp").encoder, 1_600_500, 60, H264Profile::High, 1000);
        assert_eq!(prop(&imx, "bitrate"), Some("1601"), "kbps, rounded up");
        assert_eq!(prop(&imx, "profile"), Some("11"));
    }

    #[test]
    fn selection_prefers_config_then_device_tree_with_element_then_generic() {
        let all = profiles();
        let pi4 = MachineInfo { model: Some("Raspberry Pi 4 Model B Rev 1.4".into()), compatible: vec![] };
        let yes = |_: &str| true;
        let no = |_: &str| false;
        assert_eq!(select(&all, None, &pi4, &yes).unwrap().profile.name, "rpi4");
        let fallback = select(&all, None, &pi4, &no).unwrap();
        assert_eq!(fallback.profile.name, "generic");
        assert!(fallback.reason.contains("no v4l2h264enc"), "{}", fallback.reason);
        let rk = MachineInfo { model: None, compatible: vec!["radxa,rock-5b".into(), "rockchip,rk3588".into()] };
        assert_eq!(select(&all, Some("auto"), &rk, &yes).unwrap().profile.name, "rk3588");
        assert_eq!(select(&all, Some("jetson"), &pi4, &no).unwrap().profile.name, "jetson");
        assert_eq!(select(&all, None, &MachineInfo::default(), &yes).unwrap().profile.name, "generic");
        let err = select(&all, Some("rpi9"), &pi4, &yes).unwrap_err().to_string();
        assert!(err.contains("board: no board profile has that name") && err.contains("rk3588") && !err.contains("rpi9"), "{err}");
    }

    #[test]
    fn a_profile_file_overrides_the_builtin_and_bad_files_name_their_path() {
        let dir = tempfile::tempdir().unwrap();
        let text = include_str!("../board/generic.toml").replace("superfast", "veryfast");
        std::fs::write(dir.path().join("generic.toml"), text).unwrap();
        let all = load_all(Some(dir.path())).unwrap();
        let g = all.iter().find(|p| p.name == "generic").unwrap();
        assert_eq!(g.encoder.properties["speed-preset"], "veryfast");
        std::fs::write(dir.path().join("bad.toml"), "name = \"x\"\n[encoder]\nelement=1\n").unwrap();
        let err = load_all(Some(dir.path())).unwrap_err().to_string();
        assert!(err.contains("bad.toml"), "{err}");
    }
}

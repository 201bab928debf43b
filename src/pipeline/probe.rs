//! What the source delivers, and what this machine has. A V4L2 device or a
//! file is asked for its format before planning (caps negotiated from what
//! the device offers); `fieldcast probe` lists capture devices and encoders.

use super::plan::SourceFormat;
use crate::config::{Fps, Source};
use gstreamer as gst;
use gstreamer::prelude::*;
use std::path::Path;
use std::time::Duration;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum ProbeError {
    // Messages name the field, never its value (a path can be a secret's
    // neighbour, and the rule is one for every field).
    #[error("source.device: does not exist")]
    NoDevice,
    #[error("source.device: is not a character device")]
    NotADevice,
    #[error("source.device: gave no video within {secs} s ({reason})")]
    NoVideo { secs: u64, reason: String },
    #[error("source.path: {reason}")]
    File { reason: String },
    #[error("source.mode: is not a DeckLink mode fieldcast knows; set source.width/height/fps")]
    DeckLinkMode,
    #[error("GStreamer: {0}")]
    Gst(#[from] gst::glib::BoolError),
}

const PROBE_TIMEOUT: Duration = Duration::from_secs(8);

/// The format the capture will deliver.
pub fn resolve_format(source: &Source) -> Result<SourceFormat, ProbeError> {
    match source {
        Source::Test { width, height, fps, .. } => Ok(SourceFormat { width: *width, height: *height, fps: *fps }),
        Source::V4l2 { device, width, height, fps, .. } => {
            let name = device.display().to_string();
            check_device(device)?;
            if let (Some(w), Some(h), Some(f)) = (width, height, fps) {
                return Ok(SourceFormat { width: *w, height: *h, fps: *f });
            }
            let src = gst::ElementFactory::make("v4l2src").property("device", name.as_str()).build()?;
            first_video_format(src, None).map_err(|reason| ProbeError::NoVideo { secs: PROBE_TIMEOUT.as_secs(), reason })
        }
        Source::DeckLink { mode, .. } => decklink_mode(mode).ok_or(ProbeError::DeckLinkMode),
        Source::File { path, .. } => {
            check_file(path)?;
            let shown = path.display().to_string();
            let src = gst::ElementFactory::make("filesrc").property("location", shown.as_str()).build()?;
            let decode = gst::ElementFactory::make("decodebin").build()?;
            first_video_format(src, Some(decode)).map_err(|reason| ProbeError::File { reason })
        }
    }
}

/// Whether the source's device or file is there at all (no GStreamer, no
/// waiting): `Some` names the field (`source.device`, `source.path`) and why,
/// without the value.
pub fn source_missing(source: &Source) -> Option<(&'static str, &'static str)> {
    match source {
        Source::V4l2 { device, .. } => match check_device(device) {
            Err(ProbeError::NoDevice) => Some(("source.device", "does not exist")),
            Err(_) => Some(("source.device", "is not a character device")),
            Ok(()) => None,
        },
        Source::File { path, .. } => check_file(path).err().map(|_| ("source.path", "is not a file")),
        _ => None,
    }
}

/// A file source must exist and not be a folder (a FIFO is fine).
fn check_file(path: &Path) -> Result<(), ProbeError> {
    if !path.exists() || path.is_dir() {
        return Err(ProbeError::File { reason: "no such file".into() });
    }
    Ok(())
}

fn check_device(device: &Path) -> Result<(), ProbeError> {
    use std::os::unix::fs::FileTypeExt;
    match std::fs::metadata(device) {
        Err(_) => Err(ProbeError::NoDevice),
        Ok(m) if !m.file_type().is_char_device() => Err(ProbeError::NotADevice),
        Ok(_) => Ok(()),
    }
}

/// DeckLink display modes by name (`1080p30`, `1080p2997`, `1080i5994`, `720p60`...).
pub fn decklink_mode(mode: &str) -> Option<SourceFormat> {
    let (res, rate) = mode.split_once(['p', 'i'])?;
    let interlaced = mode.contains('i');
    let (width, height) = match res {
        "2160" => (3840, 2160),
        "1080" => (1920, 1080),
        "720" => (1280, 720),
        "576" => (720, 576),
        "486" => (720, 486),
        _ => return None,
    };
    let fps = match rate {
        "2398" => Fps { num: 24000, den: 1001 },
        "2997" => Fps { num: 30000, den: 1001 },
        "5994" if interlaced => Fps { num: 30000, den: 1001 },
        "5994" => Fps { num: 60000, den: 1001 },
        "50" if interlaced => Fps { num: 25, den: 1 },
        r => Fps { num: r.parse().ok()?, den: 1 },
    };
    Some(SourceFormat { width, height, fps })
}

/// Runs `src [! decode] ! fakesink` until the first video buffer, and reads its caps.
fn first_video_format(src: gst::Element, decode: Option<gst::Element>) -> Result<SourceFormat, String> {
    let pipeline = gst::Pipeline::new();
    let sink = gst::ElementFactory::make("fakesink").property("sync", false).build().map_err(|e| e.to_string())?;
    let (tx, rx) = std::sync::mpsc::sync_channel::<gst::Caps>(1);
    let pad = sink.static_pad("sink").expect("fakesink has a sink pad");
    pad.add_probe(gst::PadProbeType::BUFFER, move |pad, _| {
        if let Some(caps) = pad.current_caps() {
            let _ = tx.try_send(caps);
        }
        gst::PadProbeReturn::Remove
    });
    pipeline.add_many([&src, &sink]).map_err(|e| e.to_string())?;
    match decode {
        None => src.link(&sink).map_err(|e| e.to_string())?,
        Some(d) => {
            pipeline.add(&d).map_err(|e| e.to_string())?;
            src.link(&d).map_err(|e| e.to_string())?;
            let sink_pad = pad.clone();
            d.connect_pad_added(move |_, p| {
                let is_video = p.current_caps().and_then(|c| c.structure(0).map(|s| s.name().starts_with("video/"))).unwrap_or(false);
                if is_video && !sink_pad.is_linked() {
                    let _ = p.link(&sink_pad);
                }
            });
        }
    }
    let bus = pipeline.bus().expect("pipeline bus");
    pipeline.set_state(gst::State::Playing).map_err(|_| "cannot start".to_string())?;
    let deadline = std::time::Instant::now() + PROBE_TIMEOUT;
    let result = loop {
        if let Ok(caps) = rx.try_recv() {
            break parse_caps(&caps);
        }
        if std::time::Instant::now() > deadline {
            break Err("timed out".into());
        }
        if let Some(msg) = bus.timed_pop_filtered(gst::ClockTime::from_mseconds(50), &[gst::MessageType::Error, gst::MessageType::Eos]) {
            // A short file decodes whole within one wait: its first frame
            // came before the EOS did, so look at it before giving up.
            if let Ok(caps) = rx.try_recv() {
                break parse_caps(&caps);
            }
            break Err(match msg.view() {
                gst::MessageView::Error(e) => error_kind(&e.error()).into(),
                _ => "ended before any video".into(),
            });
        }
    };
    let _ = pipeline.set_state(gst::State::Null);
    result
}

/// A GStreamer error in words that hold no path (its own text quotes them).
pub(crate) fn error_kind(e: &gst::glib::Error) -> &'static str {
    use gst::{ResourceError as R, StreamError as S};
    match (e.kind::<R>(), e.kind::<S>()) {
        (Some(R::NotFound), _) => "not found",
        (Some(R::OpenRead | R::OpenReadWrite | R::NotAuthorized), _) => "cannot be opened for reading",
        (Some(R::Busy), _) => "busy (another program uses it)",
        (Some(_), _) => "cannot be read",
        (_, Some(S::TypeNotFound | S::WrongType | S::CodecNotFound | S::Demux | S::Decode | S::Format)) => {
            "is not media fieldcast can decode"
        }
        _ => "GStreamer could not read it",
    }
}

fn parse_caps(caps: &gst::Caps) -> Result<SourceFormat, String> {
    let s = caps.structure(0).ok_or("no caps")?;
    let width = s.get::<i32>("width").map_err(|_| "no width")? as u32;
    let height = s.get::<i32>("height").map_err(|_| "no height")? as u32;
    let fr = s.get::<gst::Fraction>("framerate").map_err(|_| "no frame rate")?;
    if fr.numer() <= 0 || fr.denom() <= 0 {
        return Err("variable frame rate".into());
    }
    Ok(SourceFormat { width, height, fps: Fps { num: fr.numer() as u32, den: fr.denom() as u32 } })
}

/// Video capture devices GStreamer sees (V4L2, DeckLink), for `fieldcast probe`.
pub fn capture_devices() -> Vec<(String, String)> {
    let monitor = gst::DeviceMonitor::new();
    monitor.add_filter(Some("Video/Source"), None);
    if monitor.start().is_err() {
        return Vec::new();
    }
    let devices = monitor
        .devices()
        .iter()
        .map(|d| {
            let path = d
                .properties()
                .and_then(|p| p.get::<String>("device.path").ok().or_else(|| p.get::<String>("api.v4l2.path").ok()))
                .unwrap_or_default();
            (d.display_name().to_string(), path)
        })
        .collect();
    monitor.stop();
    devices
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_device_or_file_is_named_by_field_without_its_path() {
        let v4l2 = |p: &str| Source::V4l2 { device: p.into(), width: None, height: None, fps: None, format: None };
        assert_eq!(source_missing(&v4l2("/dev/video-not-plugged")), Some(("source.device", "does not exist")));
        assert_eq!(source_missing(&v4l2("/etc/hostname")), Some(("source.device", "is not a character device")));
        assert_eq!(source_missing(&v4l2("/dev/null")), None);
        let file = |p: &str| Source::File { path: p.into(), at_end: crate::config::AtEnd::Reopen };
        assert_eq!(source_missing(&file("/nonexistent/clip.mp4")), Some(("source.path", "is not a file")));
        assert_eq!(source_missing(&file("/etc/hostname")), None);
        let test = Source::Test { width: 640, height: 360, fps: Fps { num: 30, den: 1 }, pattern: "smpte".into() };
        assert_eq!(source_missing(&test), None);
    }

    #[test]
    fn decklink_modes_map_to_sizes_and_rates() {
        let f = decklink_mode("1080p2997").unwrap();
        assert_eq!((f.width, f.height, f.fps), (1920, 1080, Fps { num: 30000, den: 1001 }));
        assert_eq!(decklink_mode("1080i5994").unwrap().fps, Fps { num: 30000, den: 1001 });
        assert_eq!(decklink_mode("720p60").unwrap().fps, Fps { num: 60, den: 1 });
        assert!(decklink_mode("auto").is_none());
    }

    #[test]
    fn a_missing_or_non_device_path_is_refused_before_gstreamer_runs() {
        let src = Source::V4l2 { device: "/dev/video-none".into(), width: None, height: None, fps: None, format: None };
        assert_eq!(resolve_format(&src).unwrap_err().to_string(), "source.device: does not exist");
        let src = Source::V4l2 { device: "/dev/null/x".into(), width: None, height: None, fps: None, format: None };
        assert!(resolve_format(&src).is_err());
        let src = Source::V4l2 { device: "/etc/hostname".into(), width: None, height: None, fps: None, format: None };
        assert_eq!(resolve_format(&src).unwrap_err().to_string(), "source.device: is not a character device");
    }
}

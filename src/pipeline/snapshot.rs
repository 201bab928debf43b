//! A JPEG of the newest captured frame, scaled down to a width (never up),
//! for the `snapshot` command. Blocking (GStreamer converts in its own
//! small pipeline): call it off the async workers.

use gstreamer as gst;
use std::time::Duration;
use thiserror::Error;

/// A snapshot larger than this is retried at half the width.
pub const MAX_BYTES: usize = 512 * 1024;

#[derive(Debug)]
pub struct Jpeg {
    pub bytes: Vec<u8>,
    pub width: u32,
    pub height: u32,
}

#[derive(Debug, Error)]
pub enum SnapshotError {
    #[error("no frame has been captured yet")]
    NoFrame,
    #[error("the captured frame has no size")]
    NoSize,
    #[error("JPEG conversion failed: {0}")]
    Convert(String),
    #[error("the JPEG stays over {MAX_BYTES} bytes")]
    TooLarge,
}

pub fn jpeg(sample: Option<gst::Sample>, max_width: u32) -> Result<Jpeg, SnapshotError> {
    let sample = sample.ok_or(SnapshotError::NoFrame)?;
    let info = sample
        .caps()
        .and_then(|c| gstreamer_video::VideoInfo::from_caps(c).ok())
        .ok_or(SnapshotError::NoSize)?;
    let mut width = max_width.min(info.width()) & !1;
    for _ in 0..3 {
        let height = ((u64::from(info.height()) * u64::from(width) / u64::from(info.width().max(1))) as u32 & !1).max(2);
        let caps = gst::Caps::builder("image/jpeg")
            .field("width", width as i32)
            .field("height", height as i32)
            .field("pixel-aspect-ratio", gst::Fraction::new(1, 1))
            .build();
        let out = gstreamer_video::convert_sample(&sample, &caps, Some(gst::ClockTime::from_seconds(3)))
            .map_err(|e| SnapshotError::Convert(e.to_string()))?;
        let buffer = out.buffer().ok_or_else(|| SnapshotError::Convert("no buffer".into()))?;
        let map = buffer.map_readable().map_err(|e| SnapshotError::Convert(e.to_string()))?;
        if map.len() <= MAX_BYTES {
            return Ok(Jpeg { bytes: map.to_vec(), width, height });
        }
        width = (width / 2).max(64) & !1;
    }
    Err(SnapshotError::TooLarge)
}

/// How long a snapshot may take before the command fails.
pub const TIMEOUT: Duration = Duration::from_secs(5);

//! The audio level per channel, from GStreamer's `level` element on the raw
//! side of the shared audio chain (after the slate's mute, before the AAC
//! encoder). `level` posts one message per [`INTERVAL_NS`] with each
//! channel's peak and RMS in dB; [`AudioMeter`] keeps the last second of
//! them so a status tick reads the loudest peak and the true RMS (mean
//! power) of that second, whatever the tick's period. Written by the bus
//! thread, read by telemetry; no streaming thread waits on it.

use gstreamer as gst;
use std::collections::VecDeque;
use std::sync::Mutex;

/// Name of the `level` element in the pipeline.
pub const LEVEL_ELEMENT: &str = "audio_level";
/// How often `level` posts a measurement (100 ms).
pub const INTERVAL_NS: u64 = 100_000_000;
/// Measurements kept: one second.
const WINDOW: usize = 10;
/// The floor: digital silence (and anything quieter) reads as this.
pub const SILENCE_DBFS: f64 = -100.0;

/// One channel over the last second, in dB relative to full scale.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ChannelLevel {
    pub peak_dbfs: f64,
    pub rms_dbfs: f64,
}

/// One `level` message: per channel (peak dB, RMS dB).
pub type Measurement = Vec<(f64, f64)>;

#[derive(Debug, Default)]
pub struct AudioMeter {
    window: Mutex<VecDeque<Measurement>>,
}

fn floor(db: f64) -> f64 {
    if db.is_nan() { SILENCE_DBFS } else { db.max(SILENCE_DBFS) }
}

impl AudioMeter {
    pub fn push(&self, m: Measurement) {
        let mut w = self.window.lock().expect("audio meter lock");
        // A change of channel count starts the window again.
        if w.front().is_some_and(|f| f.len() != m.len()) {
            w.clear();
        }
        if w.len() == WINDOW {
            w.pop_front();
        }
        w.push_back(m);
    }

    /// Each channel's loudest peak and mean-power RMS over the window;
    /// empty before the first measurement.
    pub fn levels(&self) -> Vec<ChannelLevel> {
        let w = self.window.lock().expect("audio meter lock");
        let Some(first) = w.front() else { return Vec::new() };
        (0..first.len())
            .map(|c| {
                let peak = w.iter().map(|m| floor(m[c].0)).fold(SILENCE_DBFS, f64::max);
                let power = w.iter().map(|m| 10f64.powf(floor(m[c].1) / 10.0)).sum::<f64>() / w.len() as f64;
                ChannelLevel { peak_dbfs: peak, rms_dbfs: floor(10.0 * power.log10()) }
            })
            .collect()
    }
}

/// A list of doubles: `level` posts a GValueArray (GStreamer 1.22); a
/// GstValueArray is taken too.
fn doubles(s: &gst::StructureRef, field: &str) -> Option<Vec<f64>> {
    #[allow(deprecated)]
    if let Ok(arr) = s.get::<gst::glib::ValueArray>(field) {
        return arr.iter().map(|v| v.get::<f64>().ok()).collect();
    }
    let arr = s.get::<gst::Array>(field).ok()?;
    arr.iter().map(|v| v.get::<f64>().ok()).collect()
}

/// The measurement in a `level` element message (`None` for any other structure).
pub fn parse(s: &gst::StructureRef) -> Option<Measurement> {
    if s.name() != "level" {
        return None;
    }
    let (peak, rms) = (doubles(s, "peak")?, doubles(s, "rms")?);
    (peak.len() == rms.len()).then(|| peak.into_iter().zip(rms).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_keeps_the_loudest_peak_and_the_mean_power_of_the_last_second() {
        let m = AudioMeter::default();
        assert!(m.levels().is_empty());
        // One loud interval (a tick) among nine silent ones.
        m.push(vec![(-10.0, -20.0), (-6.0, -20.0)]);
        for _ in 0..9 {
            m.push(vec![(f64::NEG_INFINITY, f64::NEG_INFINITY), (-100.0, -700.0)]);
        }
        let l = m.levels();
        assert_eq!(l.len(), 2);
        assert_eq!(l[0].peak_dbfs, -10.0);
        assert_eq!(l[1].peak_dbfs, -6.0);
        // -20 dB over a tenth of the second: -30 dB (plus the floor's 1e-10, negligible).
        assert!((l[0].rms_dbfs + 30.0).abs() < 0.01, "{l:?}");
        // Ten more silent intervals push the tick out.
        for _ in 0..10 {
            m.push(vec![(f64::NEG_INFINITY, f64::NEG_INFINITY), (f64::NAN, f64::NAN)]);
        }
        assert_eq!(m.levels(), vec![ChannelLevel { peak_dbfs: SILENCE_DBFS, rms_dbfs: SILENCE_DBFS }; 2]);
    }

    #[test]
    fn a_new_channel_count_restarts_the_window() {
        let m = AudioMeter::default();
        m.push(vec![(-1.0, -3.0), (-1.0, -3.0)]);
        m.push(vec![(-20.0, -20.0)]);
        assert_eq!(m.levels(), vec![ChannelLevel { peak_dbfs: -20.0, rms_dbfs: -20.0 }]);
    }

    #[test]
    fn a_level_message_is_read_per_channel_and_others_are_not() {
        use std::str::FromStr;
        gst::init().unwrap();
        let s = gst::Structure::from_str(
            "level, peak=(double)< -10.5, -11.0 >, rms=(double)< -29.9, -30.0 >",
        )
        .unwrap();
        assert_eq!(parse(&s), Some(vec![(-10.5, -29.9), (-11.0, -30.0)]));
        let other = gst::Structure::from_str("other, peak=(double)< -1.0 >, rms=(double)< -1.0 >").unwrap();
        assert_eq!(parse(&other), None);
    }
}

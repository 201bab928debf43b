//! Why the box is not simply `live` (or `idle`): typed, so readers of the
//! status match on the kind; `Display` is the wire text (`reason` in status,
//! events, `STATUS=` and the journal), which dashboards and tests rely on.

use crate::egress::EgressState;
use serde::{Serialize, Serializer};
use std::fmt;

#[derive(Clone, Debug, PartialEq)]
pub enum Reason {
    /// A file or FIFO input ended, or has no feeder yet: reopening it soon.
    InputEnded,
    /// Streaming, but the input or some output is not right.
    Health(Health),
    /// The pipeline failed; it is started again after a delay.
    PipelineFailed { element: String, message: String },
    /// The session could not start: the error's own words.
    Start(String),
    /// A start took longer than `after_s` (the supervisor's `START_TIMEOUT`); it was given up.
    StartTimedOut { after_s: u64 },
}

/// What is wrong while streaming; empty when all is well.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Health {
    pub input: Option<InputProblem>,
    pub outputs: Vec<OutputDown>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InputProblem {
    /// Measured frames per second (rounded) below the configured rate.
    NotRealTime { capturing: u32, fps: u32 },
}

#[derive(Clone, Debug, PartialEq)]
pub enum OutputDown {
    /// A publish that is not up (`<destination>/<rung>`).
    Publish { label: String, state: EgressState },
    /// A recorded rung that failed, with the recorder's reason.
    Recording { rung: String, why: String },
}

impl Health {
    pub fn is_ok(&self) -> bool {
        self.input.is_none() && self.outputs.is_empty()
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::InputEnded => f.write_str("input ended: reopening it"),
            Reason::Health(h) => h.fmt(f),
            Reason::PipelineFailed { element, message } => write!(f, "pipeline failed: {element}: {message}"),
            Reason::Start(why) => f.write_str(why),
            Reason::StartTimedOut { after_s } => write!(f, "the start did not finish within {after_s} s; trying again"),
        }
    }
}

impl fmt::Display for Health {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        let mut sep = |f: &mut fmt::Formatter<'_>| {
            let s = if first { "" } else { ", " };
            first = false;
            f.write_str(s)
        };
        if let Some(i) = &self.input {
            sep(f)?;
            i.fmt(f)?;
        }
        for o in &self.outputs {
            sep(f)?;
            o.fmt(f)?;
        }
        Ok(())
    }
}

impl fmt::Display for InputProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InputProblem::NotRealTime { capturing, fps } => write!(f, "not real time: capturing {capturing} of {fps} fps"),
        }
    }
}

impl fmt::Display for OutputDown {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OutputDown::Publish { label, state } => f.write_str(&format!("{label} {state:?}").to_lowercase()),
            OutputDown::Recording { rung, why } => write!(f, "recording: {rung}: {why}"),
        }
    }
}

/// On the wire a reason is its text.
impl Serialize for Reason {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wire_text_of_every_reason_is_the_one_dashboards_know() {
        let health = Health {
            input: Some(InputProblem::NotRealTime { capturing: 8, fps: 30 }),
            outputs: vec![
                OutputDown::Publish { label: "primary/720p".into(), state: EgressState::Reconnecting },
                OutputDown::Recording { rung: "360p".into(), why: "no space left on the device".into() },
            ],
        };
        assert_eq!(
            Reason::Health(health).to_string(),
            "not real time: capturing 8 of 30 fps, primary/720p reconnecting, recording: 360p: no space left on the device"
        );
        assert_eq!(Reason::InputEnded.to_string(), "input ended: reopening it");
        let failed = Reason::PipelineFailed { element: "v4l2src".into(), message: "device lost".into() };
        assert_eq!(failed.to_string(), "pipeline failed: v4l2src: device lost");
        assert_eq!(serde_json::to_value(&failed).unwrap(), "pipeline failed: v4l2src: device lost");
        assert!(Health::default().is_ok());
    }
}

//! Status as data. The supervisor builds one [`Snapshot`] per tick (state
//! and its typed [`Reason`], input, rungs, outputs, recording, system) and
//! shares it through a `watch`: MQTT telemetry, the journal summary
//! ([`summary`]) and later readers (a local page, Prometheus) read the same
//! one, so rates are measured once. [`wire`] types every document of the
//! MQTT API (docs/mqtt-api.md is the contract). Depends on no other module
//! of the crate but plain data ([`crate::persist::RunState`], command errors).

pub mod reason;
pub mod summary;
pub mod wire;

pub use reason::Reason;

use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::SystemTime;
use tokio::sync::watch;

/// The state's name on the wire; `offline` is only ever said by the Last
/// Will and a clean shutdown.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StateName {
    Idle,
    Starting,
    Live,
    Degraded,
    Stopping,
    Error,
    Offline,
}

impl StateName {
    pub fn as_str(self) -> &'static str {
        match self {
            StateName::Idle => "idle",
            StateName::Starting => "starting",
            StateName::Live => "live",
            StateName::Degraded => "degraded",
            StateName::Stopping => "stopping",
            StateName::Error => "error",
            StateName::Offline => "offline",
        }
    }
}

/// What the box is doing, measured over the tick before `at`.
#[derive(Clone, Debug, PartialEq)]
pub struct Snapshot {
    pub at: SystemTime,
    /// Since this process started.
    pub uptime_s: f64,
    pub state: StateName,
    pub reason: Option<Reason>,
    /// `None` without a session.
    pub input: Option<wire::Input>,
    /// The ladder's adaptive factor; `None` without a session.
    pub ladder_factor: Option<f64>,
    pub rungs: Vec<wire::Rung>,
    pub destinations: Vec<wire::Destination>,
    pub recording: Vec<wire::Recording>,
    pub system: wire::SystemSample,
}

/// The latest snapshot (`None` before the first tick).
pub type Latest = watch::Receiver<Option<Arc<Snapshot>>>;

impl Snapshot {
    /// The `telemetry` message.
    pub fn telemetry(&self) -> wire::Telemetry {
        wire::Telemetry {
            ts: humantime::format_rfc3339_millis(self.at).to_string(),
            uptime_s: self.uptime_s,
            state: self.state,
            reason: self.reason.as_ref().map(ToString::to_string),
            input: self.input.clone(),
            ladder_factor: self.ladder_factor,
            rungs: self.rungs.clone(),
            destinations: self.destinations.clone(),
            recording: self.recording.clone(),
            system: self.system.clone(),
        }
    }
}

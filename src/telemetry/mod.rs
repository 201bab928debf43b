//! Telemetry: measuring the box. [`system`] samples the machine (CPU,
//! memory, temperature, disk, uptime) off the runtime's workers; [`report`]
//! builds each tick's [`crate::status::Snapshot`] from it and the running session.

pub mod report;
pub mod system;

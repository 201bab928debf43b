//! Telemetry: what the box reports about itself every few seconds.
//! [`system`] samples the machine (CPU, memory, temperature, disk, uptime);
//! [`report`] builds the message from it and the running session.

pub mod report;
pub mod system;

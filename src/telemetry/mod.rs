//! Telemetry: what the box reports about itself every few seconds.
//! [`system`] samples the machine (CPU, memory, temperature, disk, uptime).

pub mod system;

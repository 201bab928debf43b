//! fieldcast: firmware for an edge live encoder.
//!
//! Map of the crate:
//! - [`config`]: `config.toml` + `config.d/` -> a validated [`config::Config`].
//! - [`board`]: board profiles (`board/*.toml`) and every encoder quirk.
//! - [`pipeline`]: [`pipeline::plan`] (pure ladder plan), [`pipeline::build`]
//!   (the only code that creates GStreamer elements), the pipeline actor.
//! - [`egress`]: encoded media out: one actor per output (RTMP publish, SRT
//!   stream or CMAF ingest tracks per destination and rung, local
//!   recording), planned and spawned by protocol.
//! - [`backoff`]: the capped, jittered retry shared by outputs and MQTT.
//! - [`supervisor`]: the run loop and its typed state machine; under fleet
//!   control it owns the [`mqtt`] actor; it serves [`control`] commands from
//!   MQTT and from the local [`http`] API alike.
//! - [`http`]: the local HTTP API (status, telemetry, commands), an actor
//!   reading the status `watch`es.
//! - [`persist`]: what the dashboard asked for, saved atomically.
//! - [`status`]: status as data: the per-tick snapshot (shared through a
//!   `watch`) and every MQTT document as a type; [`telemetry`] measures it.
//! - [`ctl`]: the operator CLI.
//! - [`sys`]: sd_notify and the watchdog; [`exit`]: exit codes; [`journal`]: log levels for journald.
//! - [`memory`]: malloc arenas capped, the heap trimmed after each session.

pub mod board;
pub mod backoff;
pub mod config;
pub mod control;
pub mod egress;
pub mod cli;
pub mod ctl;
pub mod exit;
pub mod gstlog;
pub mod http;
pub mod io_words;
pub mod journal;
pub mod memory;
pub mod mqtt;
pub mod persist;
pub mod pipeline;
pub mod session;
pub mod status;
pub mod supervisor;
pub mod timefmt;
pub mod tls;
pub mod sys;
pub mod telemetry;

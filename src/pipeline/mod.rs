//! The media pipeline: [`plan`] computes the ladder as plain data,
//! [`build`] turns a plan into GStreamer elements, [`input`] keeps the real
//! capture in its own pipeline, [`pacer`] is the output's frame clock
//! (constant frame rate; the last frame then the [`slate`] on input loss,
//! its spans kept in [`filler`] so each encoded frame says whether it is filler),
//! [`keyframes`] keeps every rung's IDRs on one clock, [`actor`] owns the
//! running pipeline, [`snapshot`] turns its newest frame into a JPEG,
//! [`level`] keeps the audio level per channel, [`typefind`] keeps FFmpeg
//! out of a file's probe;
//! [`diff`] decides whether a new plan can be applied to the running one
//! (bitrates only) and [`bitrate`] sets a running encoder's bitrate.

pub mod actor;
pub mod bitrate;
pub mod build;
pub mod diff;
pub mod epoch;
pub mod fifo;
pub mod filler;
pub mod input;
pub mod keyframes;
pub mod level;
pub mod pacer;
pub mod plan;
pub mod probe;
pub mod slate;
pub mod snapshot;
pub mod source;
pub mod stats;
pub mod typefind;

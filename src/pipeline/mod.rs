//! The media pipeline: [`plan`] computes the ladder as plain data,
//! [`build`] turns a plan into GStreamer elements, [`keyframes`] keeps every
//! rung's IDRs on one clock, [`actor`] owns the running pipeline,
//! [`snapshot`] turns its newest frame into a JPEG.

pub mod actor;
pub mod build;
pub mod fifo;
pub mod keyframes;
pub mod plan;
pub mod probe;
pub mod snapshot;
pub mod source;
pub mod stats;

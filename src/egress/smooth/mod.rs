//! Smooth Streaming ingest output (`protocol = "smooth"`): the CMAF
//! output's actor, segmenters, track boxes and HTTP connection
//! ([`crate::egress::cmaf`], flavour [`Flavor::Smooth`]), with the boxes
//! Smooth adds ([`boxes`]), the Live Server Manifest listing every track of
//! the destination ([`manifest`]) and one long chunked POST per track
//! ([`poster`]) instead of one POST per segment.
//!
//! [`Flavor::Smooth`]: crate::egress::cmaf::fragment::Flavor::Smooth

pub mod boxes;
pub mod manifest;
pub mod poster;

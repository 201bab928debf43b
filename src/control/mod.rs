//! Remote control, independent of MQTT: parsing commands ([`command`]),
//! their errors ([`error`]), remote config overlays ([`patch`]) and the
//! desired-config document ([`desired`]), replies
//! remembered by id ([`dedup`]) and the topic scheme ([`topics`]).

pub mod command;
pub mod dedup;
pub mod desired;
pub mod error;
pub mod local;
pub mod patch;
pub mod topics;

#[cfg(test)]
mod tests;

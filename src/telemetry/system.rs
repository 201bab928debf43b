//! Machine health from /proc and /sys (being written).

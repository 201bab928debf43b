//! GStreamer's own log routed into `tracing`, so warnings from elements reach
//! journald with their level. Only warnings and errors by default
//! (`GST_DEBUG` still works for deeper digging).

use gstreamer as gst;

/// GStreamer warnings that are normal for this pipeline and would only alarm
/// a crew reading the journal: demoted to debug.
const EXPECTED: &[(&str, &str)] = &[
    // splitmuxsink's muxers answer latency queries before they have pads.
    ("aggregator", "Latency query failed"),
    // 48 kHz in, 48 kHz out: no resampling taps are needed.
    ("audio-resampler", "can't find exact taps"),
    ("audioencoder", "Can't copy metadata because input buffer disappeared"),
];

fn expected(category: &str, msg: &str) -> bool {
    EXPECTED.iter().any(|(c, m)| *c == category && msg.starts_with(m))
}

pub fn route_into_tracing() {
    if std::env::var_os("GST_DEBUG").is_some() {
        return;
    }
    gst::log::remove_default_log_function();
    gst::log::set_default_threshold(gst::DebugLevel::Warning);
    gst::log::add_log_function(|category, level, file, _function, line, object, message| {
        let Some(msg) = message.get() else { return };
        let obj = object.map(|o| o.to_string()).unwrap_or_default();
        let cat = category.name();
        if expected(cat, msg.as_str()) {
            tracing::debug!(target: "gstreamer", category = cat, object = %obj, "{msg}");
            return;
        }
        match level {
            gst::DebugLevel::Error => tracing::error!(target: "gstreamer", category = cat, object = %obj, "{msg} ({file}:{line})"),
            gst::DebugLevel::Warning => tracing::warn!(target: "gstreamer", category = cat, object = %obj, "{msg}"),
            _ => tracing::debug!(target: "gstreamer", category = cat, object = %obj, "{msg}"),
        }
    });
}

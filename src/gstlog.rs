//! GStreamer's own log routed into `tracing`, so warnings from elements reach
//! journald with their level. Only warnings and errors by default
//! (`GST_DEBUG` still works for deeper digging).

use gstreamer as gst;

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
        match level {
            gst::DebugLevel::Error => tracing::error!(target: "gstreamer", category = cat, object = %obj, "{msg} ({file}:{line})"),
            gst::DebugLevel::Warning => tracing::warn!(target: "gstreamer", category = cat, object = %obj, "{msg}"),
            _ => tracing::debug!(target: "gstreamer", category = cat, object = %obj, "{msg}"),
        }
    });
}

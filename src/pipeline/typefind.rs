//! Which typefinders a file source is probed with. gst-libav registers
//! typefinders of its own (`avtype_*`: old game and console formats, and
//! Y4M again); calling any of them loads the whole of FFmpeg (libavcodec,
//! libavformat, libavfilter and what they link: rsvg, flite, gnutls...),
//! about 45 MB of resident memory for as long as the process lives. Since
//! GStreamer's own typefinders rate Y4M only "likely", typefinding goes on
//! to gst-libav's for every such file. Every container fieldcast takes
//! (MP4/MOV, Matroska, MPEG-TS, FLV, Y4M, images) is known to GStreamer's
//! own, so gst-libav's are removed from this process's registry at start
//! (the registry cache on disk is untouched). Its decoders stay: a file
//! that needs `avdec_h264` still gets it.

use gstreamer as gst;
use gstreamer::prelude::*;

/// The plugin whose typefinders are left out.
const FFMPEG_PLUGIN: &str = "libav";

/// Removes gst-libav's typefinders from the registry; returns how many.
pub fn leave_out_ffmpeg_typefinders() -> usize {
    let registry = gst::Registry::get();
    let typefinders: Vec<gst::PluginFeature> = registry
        .features_by_plugin(FFMPEG_PLUGIN)
        .into_iter()
        .filter(|f| f.is::<gst::TypeFindFactory>())
        .collect();
    for f in &typefinders {
        registry.remove_feature(f);
    }
    typefinders.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_typefinder_of_gst_libav_is_left_and_its_decoders_stay() {
        gst::init().unwrap();
        let had_plugin = gst::Registry::get().find_plugin(FFMPEG_PLUGIN).is_some();
        leave_out_ffmpeg_typefinders();
        let left = gst::TypeFindFactory::factories().into_iter().filter(|f| f.plugin_name().as_deref() == Some(FFMPEG_PLUGIN)).count();
        assert_eq!(left, 0, "typefinders of {FFMPEG_PLUGIN} still registered");
        assert!(gst::TypeFindFactory::factories().iter().any(|f| f.name() == "application/x-yuv4mpeg"), "GStreamer's own Y4M typefinder is gone");
        if had_plugin {
            assert!(gst::ElementFactory::find("avdec_h264").is_some(), "gst-libav's decoders must stay");
        } else {
            eprintln!("SKIP (decoders): gst-libav is not installed here");
        }
    }
}

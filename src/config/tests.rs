//! Config validation: the default is valid; each bad value gets its error.

use super::*;

fn check(text: &str) -> Result<Config, ConfigError> {
    let table = parse_str(text, Path::new("test.toml"))?;
    from_value(table, "test.toml")
}

fn errors(text: &str) -> Vec<FieldError> {
    match check(text) {
        Err(ConfigError::Invalid { errors, .. }) => errors,
        other => panic!("expected field errors for {text:?}, got {other:?}"),
    }
}

/// Asserts that `text` is refused with an error on `field` whose message contains `needle`.
fn refused(text: &str, field: &str, needle: &str) {
    let errs = errors(text);
    assert!(
        errs.iter().any(|e| e.field == field && e.message.contains(needle)),
        "expected `{field}`: …{needle}… for {text:?}, got {errs:#?}"
    );
}

const DEST: &str = "[[destination]]\nurl = \"rtmp://127.0.0.1/live\"\n";

#[test]
fn the_builtin_default_is_the_standard_ladder_from_a_1080p30_test_pattern_recorded_locally() {
    let c = builtin_default();
    assert!(matches!(c.source, Source::Test { width: 1920, height: 1080, fps: Fps { num: 30, den: 1 }, .. }));
    let rungs: Vec<_> = c.ladder.rungs.iter().map(|r| (r.name.as_str(), r.width, r.height, r.bitrate_bps)).collect();
    assert_eq!(
        rungs,
        [("1080p", 1920, 1080, 5_500_000), ("720p", 1280, 720, 3_000_000), ("540p", 960, 540, 1_600_000), ("360p", 640, 360, 800_000)]
    );
    assert_eq!(c.ladder.gop_seconds, 2.0);
    assert_eq!(c.audio.source, AudioSource::Test);
    assert_eq!(c.audio.bitrate_bps, 128_000);
    assert!(c.recording.is_some());
    assert!(c.destinations.is_empty());
}

#[test]
fn explicit_rungs_are_sorted_largest_first_and_fps_forms_parse() {
    let c = check(
        "[source]\nfps = 29.97\n[ladder]\nrungs = [{ width = 640, height = 360, bitrate_kbps = 700 }, { name = \"top\", width = 1280, height = 720, bitrate_kbps = 2500 }]\n",
    )
    .unwrap();
    assert_eq!(c.ladder.rungs[0].name, "top");
    assert_eq!(c.ladder.rungs[1].name, "360p");
    assert!(matches!(c.source, Source::Test { fps: Fps { num: 30000, den: 1001 }, .. }));
    assert_eq!(parse_fps(&toml::Value::String("25/1".into())), Ok(Fps { num: 25, den: 1 }));
}

#[test]
fn a_standalone_box_needs_somewhere_to_send_the_stream_a_fleet_box_may_wait_for_one() {
    refused("[recording]\nenabled = false\n", "destination", "the stream would go nowhere");
    let fleet = check("[recording]\nenabled = false\n[mqtt]\nbroker = \"mqtt://127.0.0.1\"\n").unwrap();
    assert!(!fleet.has_output());
    assert!(check(&format!("[recording]\nenabled = false\n{DEST}")).unwrap().has_output());
    assert!(builtin_default().has_output());
}

#[test]
fn each_bad_value_is_refused_with_an_error_naming_its_field() {
    refused("[ladder]\ngop_seconds = 0.2\n", "ladder.gop_seconds", "is outside 0.5..10");
    refused("[ladder]\ngop_seconds = 12\n", "ladder.gop_seconds", "outside 0.5..10");
    refused("[ladder]\nprofile = \"ultra\"\n", "ladder.profile", "expected one of: standard, basic, single");
    refused(
        "[ladder]\nrungs = [{ width = 1280, height = 720, bitrate_kbps = 2000 }, { width = 640, height = 360, bitrate_kbps = 2000 }]\n",
        "ladder.rungs[1].bitrate_kbps",
        "used by another rung",
    );
    refused("[source]\nwidth = 1280\nheight = 720\n[ladder]\nprofile = \"standard\"\n", "ladder.rungs[0]", "larger than the source picture");
    refused("[ladder]\nrungs = [{ width = 641, height = 360, bitrate_kbps = 700 }]\n", "ladder.rungs[0].width", "even number");
    refused("[ladder]\nrungs = [{ width = 640, height = 360, bitrate_kbps = 20 }]\n", "ladder.rungs[0].bitrate_kbps", "outside 100..50000");
    refused("[ladder]\nrungs = [{ width = 640, height = 360 }]\n", "ladder.rungs[0]", "needs width, height and bitrate_kbps");
    refused("[ladder]\nrungs = []\n", "ladder.rungs", "at least one rung");
    refused("[ladder]\nprofile = \"basic\"\nrungs = []\n", "ladder", "either `profile` or `rungs`");
    refused("[ladder]\nh264_profile = \"high10\"\n", "ladder.h264_profile", "expected one of: high, main, baseline");
    refused("[source]\nkind = \"ndi\"\n", "source.kind", "expected one of: test, v4l2, decklink, file");
    refused("[source]\nfps = 0\n", "source.fps", "between 1 and 120");
    refused("[source]\nfps = \"fast\"\n", "source.fps", "frame rate such as");
    refused("[source]\nkind = \"v4l2\"\ndevice = \"video0\"\n", "source.device", "not a device path");
    refused("[source]\nkind = \"file\"\n", "source.path", "required");
    refused("[audio]\nbitrate_kbps = 999\n", "audio.bitrate_kbps", "outside 32..320");
    refused("[audio]\nsample_rate = 22050\n", "audio.sample_rate", "expected one of: 48000, 44100");
    refused("[recording]\nformat = \"avi\"\n", "recording.format", "expected one of: mp4, mkv");
    refused("[recording]\nrungs = [\"1080p\", \"4k\"]\n", "recording.rungs[1]", "is not the name of a rung");
    refused("[egress]\nreconnect_initial_ms = 500\nreconnect_max_ms = 100\n", "egress.reconnect_max_ms", "at least");
    refused("[egress]\nmin_ratio = 0.01\n", "egress.min_ratio", "is outside 0.05..1");
    refused("[egress]\nmin_ratio = 1.5\n", "egress.min_ratio", "is outside 0.05..1");
    refused("[egress]\nmin_ratio = \"half\"\n", "egress.min_ratio", "expected");
    refused("device_id = \"box/1\"\n", "device_id", "used in MQTT topics");
}

#[test]
fn bad_destinations_are_refused_with_an_error_naming_the_destination_field() {
    refused("[[destination]]\nurl = \"ftp://x/live\"\n", "destination[0].url", "scheme that is not supported");
    refused("[[destination]]\nurl = \"rtmp://u:p@x/live\"\n", "destination[0].url", "credentials in the URL");
    refused("[[destination]]\nurl = \"rtmp://x\"\n", "destination[0].url", "no application path");
    refused("[[destination]]\nname = \"a\"\n", "destination[0].url", "is required");
    refused(&format!("{DEST}stream = \"live\"\n"), "destination[0].stream", "same stream name");
    refused(&format!("{DEST}stream = \"{{rung}}_{{key}}\"\n"), "destination[0].stream", "no `key`");
    refused(&format!("{DEST}stream = \"{{bitrate}}\"\n"), "destination[0].stream", "not a placeholder");
    refused(&format!("{DEST}rungs = [\"999p\"]\n"), "destination[0].rungs[0]", "is not the name of a rung");
    refused(&format!("{DEST}target = \"basic\"\n"), "destination[0].target", "over the 5000 kbit/s cap");
    refused(&format!("{DEST}target = \"single\"\n"), "destination[0].rungs", "takes 1 rendition");
    refused(&format!("{DEST}target = \"mars\"\n"), "destination[0].target", "expected one of: any");
    refused(&format!("{DEST}name = \"a\"\n{DEST}name = \"a\"\n"), "destination[1].name", "used by another destination");
    // SRT: each setting from a field or the URL's query, checked the same way.
    let srt = |extra: &str| format!("[ladder]\nprofile = \"single\"\n[[destination]]\nurl = \"srt://h:9000\"\n{extra}");
    refused("[[destination]]\nurl = \"srt://h:70000\"\n", "destination[0].url", "is not a URL");
    refused("[[destination]]\nurl = \"srt://h:9000/live\"\n", "destination[0].url", "has a path");
    refused("[[destination]]\nurl = \"srt://:9000\"\n", "destination[0].url", "has no host");
    refused(&srt("passphrase = \"123456789\"\n"), "destination[0].passphrase", "10 to 79 characters");
    refused(&srt(&format!("passphrase = \"{}\"\n", "x".repeat(80))), "destination[0].passphrase", "10 to 79 characters");
    refused(&srt("passphrase = \"long-enough-1\"\npbkeylen = 8\n"), "destination[0].pbkeylen", "16, 24, 32");
    refused(&srt("pbkeylen = 32\n"), "destination[0].pbkeylen", "needs a `passphrase`");
    refused(&srt("latency_ms = 10\n"), "destination[0].latency_ms", "outside 20..10000");
    refused(&srt("mode = \"rendezvous\"\n"), "destination[0].mode", "caller, listener");
    refused(&srt("stream = \"{rung}\"\n"), "destination[0].stream", "for RTMP destinations");
    refused(&srt("streamid = \"{rung}_{key}\"\n"), "destination[0].streamid", "no `key`");
    refused("[[destination]]\nurl = \"srt://h:9000?latency=5\"\n", "destination[0].url", "the query's `latency`: is outside");
    refused("[[destination]]\nurl = \"srt://h:9000?pbkeylen=x\"\n", "destination[0].url", "the query's `pbkeylen`: is not a whole number");
    refused("[[destination]]\nurl = \"srt://h:9000?passphrase=short\"\n", "destination[0].url", "the query's `passphrase`: must be 10 to 79");
    refused(&srt("latency_ms = 100\n").replace("srt://h:9000", "srt://h:9000?latency=100"), "destination[0].latency_ms", "both here and as `latency`");
    refused("[[destination]]\nurl = \"srt://:9000?mode=listener\"\n", "destination[0].rungs", "a listener serves one rung");
    refused(&format!("{DEST}passphrase = \"long-enough-1\"\n"), "destination[0].passphrase", "for SRT destinations");
    let c = check(&srt("passphrase = \"long-enough-1\"\npbkeylen = 32\nlatency_ms = 120\nstreamid = \"cam_{rung}\"\n")).unwrap();
    let s = c.destinations[0].srt.as_ref().unwrap();
    assert_eq!((s.mode, s.pbkeylen, s.latency_ms, s.streamid_template.as_deref()), (SrtMode::Caller, 32, 120, Some("cam_{rung}")));
    assert_eq!(s.passphrase.as_ref().map(|p| p.expose()), Some("long-enough-1"));
    let q = check("[ladder]\nprofile = \"single\"\n[[destination]]\nurl = \"srt://:9000?mode=listener&latency=300&streamid=\"\n").unwrap();
    let s = q.destinations[0].srt.as_ref().unwrap();
    assert_eq!((s.mode, s.passphrase.is_none(), s.latency_ms, s.streamid_template.as_deref()), (SrtMode::Listener, true, 300, None));
    // A basic ladder fits a basic channel.
    check(&format!("[ladder]\nprofile = \"basic\"\n{DEST}target = \"basic\"\n")).unwrap();
}

#[test]
fn cmaf_destinations_need_an_http_url_and_known_placeholders_and_never_echo_a_value() {
    let cmaf = |url: &str, extra: &str| format!("[[destination]]\nurl = \"{url}\"\nprotocol = \"cmaf\"\n{extra}");
    refused("[[destination]]\nurl = \"http://x/live\"\n", "destination[0].protocol", "is required with an http:// or https:// URL");
    refused(&cmaf("rtmp://x/live", ""), "destination[0].url", "must be an http:// or https:// URL for protocol = \"cmaf\"");
    refused(&cmaf("srt://x:9000", ""), "destination[0].url", "must be an http:// or https:// URL");
    refused("[[destination]]\nurl = \"http://x/live\"\nprotocol = \"hls\"\n", "destination[0].protocol", "expected one of: rtmp, srt, cmaf");
    refused("[[destination]]\nurl = \"srt://x:9000\"\nprotocol = \"rtmp\"\n", "destination[0].url", "does not match `protocol`");
    refused(&cmaf("http://x/live", "track_path = \"{sk4live}\"\n"), "destination[0].track_path", "not a placeholder (use {rung}, {kbps}, {track})");
    refused(&cmaf("http://x/live", "track_path = \"{width}\"\n"), "destination[0].track_path", "not a placeholder");
    refused(&cmaf("http://x/live", "track_path = \"{track\"\n"), "destination[0].track_path", "unclosed");
    refused(&cmaf("http://x/live", "track_path = \"video\"\n"), "destination[0].track_path", "same path");
    refused(&cmaf("http://x/live", "track_path = \"a b/{track}\"\n"), "destination[0].track_path", "may not hold spaces");
    refused(&cmaf("http://x/live", "stream = \"{rung}\"\n"), "destination[0].stream", "for RTMP destinations");
    refused(&cmaf("http://x/live", "backup_url = \"http://y/live\"\n"), "destination[0].backup_url", "not supported for CMAF");
    refused(&cmaf("http://x/live", "passphrase = \"long-enough-1\"\n"), "destination[0].passphrase", "for SRT destinations");
    refused(&cmaf("http://x/live", "forbidden_retries = 1000\n"), "destination[0].forbidden_retries", "is over 100");
    refused(&format!("{DEST}track_path = \"{{track}}\"\n"), "destination[0].track_path", "for CMAF and Smooth destinations");
    let errs = errors(&cmaf("http://us3r:s3cr3t@x/live/t0ken", "track_path = \"{s3cr3t}\"\nrungs = [\"t0ken\"]\n"));
    let shown = format!("{errs:?}");
    assert!(!shown.contains("s3cr3t") && !shown.contains("t0ken") && !shown.contains("us3r"), "{shown}");
    let c = check(&cmaf("https://u:p@o.example.com/live/ch1.isml", "track_path = \"Streams({track})\"\nforbidden_retries = 5\n")).unwrap();
    let d = &c.destinations[0];
    assert!(matches!(d.url, url::DestinationUrl::Http(_)));
    assert_eq!(d.url.to_string(), "https://***@o.example.com:443/live/***");
    let s = d.cmaf.as_ref().unwrap();
    assert_eq!((s.track_path.as_str(), s.forbidden_retries), ("Streams({track})", 5));
    let dflt = check(&cmaf("http://o/ingest", "")).unwrap();
    assert_eq!(dflt.destinations[0].cmaf.as_ref().map(|s| (s.track_path.as_str(), s.epoch_aligned)), Some(("{track}", false)));
    let epoch = check(&cmaf("http://o/ingest", "epoch_aligned = true\n")).unwrap();
    assert_eq!(epoch.destinations[0].cmaf.as_ref().map(|s| s.epoch_aligned), Some(true));
    refused(&format!("{DEST}epoch_aligned = true\n"), "destination[0].epoch_aligned", "for CMAF and Smooth destinations");
    assert!(errors(&cmaf("http://o/ingest", "epoch_aligned = \"yes\"\n")).iter().any(|e| e.field == "destination[0].epoch_aligned"), "a wrong type names the field");
}

#[test]
fn smooth_destinations_need_an_http_url_ending_in_ingest_isml_and_never_echo_a_value() {
    let smooth = |url: &str, extra: &str| format!("[[destination]]\nurl = \"{url}\"\nprotocol = \"smooth\"\n{extra}");
    refused(&smooth("rtmp://x/live/ingest.isml", ""), "destination[0].url", "must be an http:// or https:// URL for protocol = \"smooth\"");
    refused(&smooth("srt://x:9000", ""), "destination[0].url", "must be an http:// or https:// URL for protocol = \"smooth\"");
    refused(&smooth("http://x/live/channel.isml", ""), "destination[0].url", "must end in `/ingest.isml`");
    refused(&smooth("http://x/live/ingest.isml", "track_path = \"{track}\"\n"), "destination[0].track_path", "of the form `Streams(...)`");
    refused(&smooth("http://x/live/ingest.isml", "track_path = \"Streams({width})\"\n"), "destination[0].track_path", "not a placeholder");
    refused(&smooth("http://x/live/ingest.isml", "forbidden_retries = 2\n"), "destination[0].forbidden_retries", "retries without a cap");
    refused(&smooth("http://x/live/ingest.isml", "stream = \"{rung}\"\n"), "destination[0].stream", "for RTMP destinations");
    refused(&smooth("http://x/live/ingest.isml", "backup_url = \"http://y/live/ingest.isml\"\n"), "destination[0].backup_url", "not supported for CMAF or Smooth");
    refused("[[destination]]\nurl = \"http://x/live\"\nprotocol = \"hls\"\n", "destination[0].protocol", "expected one of: rtmp, srt, cmaf, smooth");
    // Neither a token in the path, a query, nor credentials are echoed.
    let errs = errors(&smooth("http://us3r:s3cr3t@x/t0ken/ch.isml?auth=k3y", ""));
    let shown = format!("{errs:?}");
    assert!(errs.iter().any(|e| e.field == "destination[0].url"), "{shown}");
    assert!(!shown.contains("s3cr3t") && !shown.contains("t0ken") && !shown.contains("us3r") && !shown.contains("k3y"), "{shown}");
    let c = check(&smooth("https://u:p@o.example.com/live/t0ken/ingest.isml?auth=k3y", "")).unwrap();
    let d = &c.destinations[0];
    assert_eq!(d.url.to_string(), "https://***@o.example.com:443/live/***");
    let s = d.cmaf.as_ref().unwrap();
    assert_eq!((s.flavor, s.track_path.as_str()), (crate::egress::cmaf::fragment::Flavor::Smooth, "Streams({track})"));
    let cmaf = check("[[destination]]\nurl = \"http://o/ingest\"\nprotocol = \"cmaf\"\n").unwrap();
    assert_eq!(cmaf.destinations[0].cmaf.as_ref().map(|s| s.flavor), Some(crate::egress::cmaf::fragment::Flavor::Cmaf));
}

#[test]
fn all_problems_are_reported_at_once() {
    let errs = errors("[ladder]\ngop_seconds = 20\n[audio]\nchannels = 6\n");
    let fields: Vec<_> = errs.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(fields, ["audio.channels", "ladder.gop_seconds"]);
}

#[test]
fn unknown_fields_name_their_section_and_the_allowed_fields_never_the_key() {
    let errs = errors("[ladder]\nsk_live_4f9a = 2\n");
    assert_eq!(errs[0].field, "ladder", "{errs:?}");
    assert_eq!(errs[0].kind, ProblemKind::UnknownField);
    assert_eq!(errs[0].message, "unknown field (allowed here: profile, rungs, gop_seconds, h264_profile)");
    let errs = errors("[[destination]]\nurl = \"rtmp://h/live\"\nsk_live_4f9a = 1\n");
    assert_eq!(errs[0].field, "destination[0]", "{errs:?}");
    let errs = errors("sk_live_4f9a = 1\n");
    assert_eq!(errs[0].field, "config", "{errs:?}");
    let errs = errors("[sk_live_4f9a]\nx = 1\n");
    assert!(!format!("{errs:?}").contains("sk_live"), "{errs:?}");
}

#[test]
fn wrong_types_say_what_was_expected_and_which_type_was_found_never_the_value() {
    let cases: &[(&str, &str, &str)] = &[
        ("[ladder]\ngop_seconds = \"sk4live\"\n", "ladder.gop_seconds", "expected a number, found a string"),
        ("[[destination]]\nurl = \"rtmp://h/live\"\nkey = 4815162342\n", "destination[0].key", "expected a string, found an integer"),
        ("[[destination]]\nurl = \"rtmp://h/live\"\nkey = 4815.162342\n", "destination[0].key", "expected a string, found a float"),
        ("[[destination]]\nurl = \"rtmp://h/live\"\nkey = 2093-07-19T05:47:31Z\n", "destination[0].key", "expected a string, found a date-time"),
        ("[[destination]]\nurl = \"rtmp://h/live\"\nkey = 2093-07-19\n", "destination[0].key", "expected a string, found a date-time"),
        ("[source]\nwidth = -4815162342\n", "source.width", "expected an integer from 0 to 4294967295"),
        ("[source]\nwidth = 4815162342\n", "source.width", "expected an integer from 0 to 4294967295"),
        ("[source]\nfps = 2093-07-19T05:47:31Z\n", "source.fps", "expected a frame rate such as 30"),
        ("[source]\nfps = true\n", "source.fps", "expected a frame rate such as 30, 29.97 or \"30000/1001\", found a boolean"),
        ("[source]\nkind = [\"sk4live\"]\n", "source.kind", "expected a string, found an array"),
        ("[ladder]\nrungs = \"sk4live\"\n", "ladder.rungs", "expected an array, found a string"),
        ("[ladder]\nrungs = [4815162342]\n", "ladder.rungs[0]", "expected a table, found an integer"),
        ("mqtt = \"sk4live\"\n", "mqtt", "expected a table, found a string"),
        ("[recording]\nenabled = \"sk4live\"\n", "recording.enabled", "expected true or false, found a string"),
    ];
    for (text, field, message) in cases {
        let errs = errors(text);
        let kind = if message.starts_with("expected an integer from") { ProblemKind::Invalid } else { ProblemKind::WrongType };
        assert_eq!((errs[0].field.as_str(), errs[0].kind), (*field, kind), "{text}: {errs:?}");
        assert!(errs[0].message.starts_with(message), "{text}: {errs:?}");
        let shown = format!("{errs:?}");
        for v in ["sk4live", "4815", "2093", "05:47", "true"] {
            assert!(!shown.contains(v) || message.contains(v), "{text}: {shown}");
        }
    }
}

#[test]
fn syntax_errors_give_line_and_column_but_never_echo_the_line() {
    for text in [
        "[[destination]]\nurl = \"rtmp://h/live\"\nkey = \"s3cr3t\" oops\n",
        "[[destination]]\nurl = \"rtmp://h/live\"\nkey = s3cr3t\n",
        "[[destination]]\nurl = \"rtmp://h/live\"\nkey = \"s3cr3t\nname = 1\n",
        "[[destination]]\nurl = \"rtmp://h/live\"\ns3cr3t = 1\ns3cr3t = 2\n",
        "[[destination]]\nurl = \"rtmp://h/live\"\nkey = \"s3cr3t\\x\"\n",
    ] {
        let err = check(text).unwrap_err();
        let shown = err.to_string();
        assert!(matches!(err, ConfigError::Parse { line: 3 | 4, .. }), "{shown}");
        assert!(!shown.contains("s3cr3t"), "{shown}");
    }
}

#[test]
fn secrets_never_appear_in_debug_output_or_redacted_stream_names() {
    let c = check("[[destination]]\nurl = \"rtmp://h/live/t0ken\"\nstream = \"{rung}_{key}\"\nkey = \"s3cr3t\"\n").unwrap();
    let dbg = format!("{c:?}");
    assert!(!dbg.contains("s3cr3t") && !dbg.contains("t0ken"), "{dbg}");
    let d = &c.destinations[0];
    assert_eq!(d.stream_name_redacted(&c.ladder.rungs[0]), "1080p_***");
    assert_eq!(d.stream_name(&c.ladder.rungs[0]).expose(), "1080p_s3cr3t");
}

#[test]
fn a_key_written_into_the_stream_template_is_never_shown() {
    for (template, shown) in [
        ("{rung}_{key}", "{rung}_{key}"),
        ("{rung}", "{rung}"),
        ("live_{rung}", "***_{rung}"),
        ("{rung}_sk4live9", "{rung}_***"),
        ("sk-4f9a.{kbps}", "***-***.{kbps}"),
        ("{bogus}{width}x{height}", "{***}{width}***{height}"),
        ("ключ{rung}", "***{rung}"),
    ] {
        assert_eq!(redact_template(template), shown, "{template}");
    }
    let c = check("[ladder]\nprofile = \"single\"\n[[destination]]\nurl = \"rtmp://h/live\"\nstream = \"sk4live9_{rung}\"\n").unwrap();
    assert_eq!(c.destinations[0].stream_name_redacted(&c.ladder.rungs[0]), "***_1080p");
}

#[test]
fn config_d_files_merge_over_the_main_file_in_name_order() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("config.toml"), "[ladder]\nprofile = \"basic\"\ngop_seconds = 2\n").unwrap();
    std::fs::create_dir(dir.path().join("config.d")).unwrap();
    std::fs::write(dir.path().join("config.d/10-gop.toml"), "[ladder]\ngop_seconds = 1\n").unwrap();
    std::fs::write(dir.path().join("config.d/20-gop.toml"), "[ladder]\ngop_seconds = 4\n").unwrap();
    std::fs::write(dir.path().join("config.d/30-dest.toml"), DEST).unwrap();
    let c = load(&dir.path().join("config.toml")).unwrap();
    assert_eq!(c.ladder.gop_seconds, 4.0);
    assert_eq!(c.ladder.rungs.len(), 3, "profile from the main file kept");
    assert_eq!(c.destinations.len(), 1);
}

#[test]
fn input_loss_timings_are_range_checked_and_a_slate_must_be_a_readable_png_or_jpeg() {
    let c = check(DEST).unwrap();
    assert_eq!(c.input_loss, InputLoss::default());
    assert_eq!((c.input_loss.after.as_millis(), c.input_loss.repeat.as_millis()), (500, 1000));
    refused(&format!("{DEST}[input_loss]\ninput_loss_ms = 20\n"), "input_loss.input_loss_ms", "outside 100..10000");
    refused(&format!("{DEST}[input_loss]\ninput_loss_ms = 60000\n"), "input_loss.input_loss_ms", "outside");
    refused(&format!("{DEST}[input_loss]\nrepeat_frame_ms = 600000\n"), "input_loss.repeat_frame_ms", "outside 0..60000");
    let dir = tempfile::tempdir().unwrap();
    let at = |name: &str| format!("{DEST}[input_loss]\nslate_image = \"{}\"\n", dir.path().join(name).display());
    refused(&at("absent.png"), "input_loss.slate_image", "does not exist");
    std::fs::write(dir.path().join("notes.png"), b"not an image at all").unwrap();
    refused(&at("notes.png"), "input_loss.slate_image", "is not a PNG or JPEG image");
    std::fs::write(dir.path().join("empty.jpg"), b"").unwrap();
    refused(&at("empty.jpg"), "input_loss.slate_image", "is not a PNG or JPEG image");
    refused(&format!("{DEST}[input_loss]\nslate_image = \"{}\"\n", dir.path().display()), "input_loss.slate_image", "is a directory");
    std::fs::write(dir.path().join("slate.png"), b"\x89PNG\r\n\x1a\n rest").unwrap();
    std::fs::write(dir.path().join("slate.jpg"), [0xFF, 0xD8, 0xFF, 0xE0, 0, 0x10]).unwrap();
    for ok in ["slate.png", "slate.jpg"] {
        assert_eq!(check(&at(ok)).unwrap().input_loss.slate_image, Some(dir.path().join(ok)));
    }
    // An unreadable file (mode 000) is refused as such, unless we run as root.
    let locked = dir.path().join("locked.png");
    std::fs::write(&locked, b"\x89PNG\r\n\x1a\n").unwrap();
    std::fs::set_permissions(&locked, std::os::unix::fs::PermissionsExt::from_mode(0o000)).unwrap();
    if std::fs::File::open(&locked).is_err() {
        refused(&at("locked.png"), "input_loss.slate_image", "cannot be read");
    }
}

#[test]
fn a_backup_ingest_is_checked_field_by_field() {
    let d = |extra: &str| format!("[[destination]]\nurl = \"rtmp://127.0.0.1/live\"\n{extra}\n");
    refused(&d("backup_url = \"srt://127.0.0.1:9000\""), "destination[0].backup_url", "same protocol");
    refused(&d("backup_url = \"http://127.0.0.1/x\""), "destination[0].backup_url", "");
    refused(&d("redundancy = \"failover\""), "destination[0].backup_url", "is required");
    refused(&d("failover_after_ms = 1000"), "destination[0].backup_url", "is required");
    refused(&d("backup_url = \"rtmp://127.0.0.1/live\""), "destination[0].backup_url", "same endpoint");
    refused(&d("backup_url = \"rtmp://b/live\"\nredundancy = \"mirror\""), "destination[0].redundancy", "failover, both");
    refused(&d("backup_url = \"rtmp://b/live\"\nfailover_after_ms = 10"), "destination[0].failover_after_ms", "500..60000");
    let c = check(&d("backup_url = \"rtmps://b/live/T0KEN\"")).unwrap();
    let b = c.destinations[0].backup.as_ref().unwrap();
    assert_eq!(b.redundancy, Redundancy::Failover { after: std::time::Duration::from_secs(3) }, "failover after 3 s by default");
    let c = check(&d("backup_url = \"rtmp://b/live\"\nredundancy = \"both\"")).unwrap();
    assert_eq!(c.destinations[0].backup.as_ref().unwrap().redundancy, Redundancy::Both);
    // Every message names the field, never the value.
    for e in errors(&d("backup_url = \"srt://SECRETHOST:9000\"")) {
        assert!(!e.message.contains("SECRET"), "{e:?}");
    }
}

#[test]
fn http_is_on_by_default_on_port_8080_without_a_token_and_its_bad_values_are_refused() {
    let c = check(DEST).unwrap();
    let h = c.http.expect("on by default");
    assert_eq!(h.listen.to_string(), "0.0.0.0:8080");
    assert!(h.token.is_none() && !h.public_status);
    assert!(check(&format!("{DEST}[http]\nenabled = false\n")).unwrap().http.is_none());
    let h = check(&format!("{DEST}[http]\nlisten = \"[::1]:9090\"\ntoken = \"0123456789abcdef\"\npublic_status = true\n")).unwrap().http.unwrap();
    assert_eq!((h.listen.to_string(), h.token.unwrap().expose().to_string(), h.public_status), ("[::1]:9090".into(), "0123456789abcdef".into(), true));
    refused(&format!("{DEST}[http]\nlisten = \"localhost\"\n"), "http.listen", "IP address and port");
    for bad in ["short", "has a space in it 0123", "0123456789abcdef\u{e9}"] {
        refused(&format!("{DEST}[http]\ntoken = \"{bad}\"\n"), "http.token", "printable ASCII");
    }
    let e = errors(&format!("{DEST}[http]\ntoken = \"Qz7x9Vw\"\n"));
    assert!(!format!("{e:?}").contains("Qz7x9Vw"), "{e:?}");
}

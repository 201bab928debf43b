//! `fieldcast check-config`: invalid configs print the precise error and exit
//! with the config-error code (78, which systemd will not restart); a valid
//! one prints the resolved plan with every secret redacted.

mod common;


const EXIT_CONFIG: i32 = 78;

fn check(config: &str) -> (i32, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    std::fs::write(&path, config).unwrap();
    let out = common::fieldcast_command()
        .args(["check-config", path.to_str().unwrap()])
        .env("FIELDCAST_BOARD_DIR", concat!(env!("CARGO_MANIFEST_DIR"), "/board"))
        .output()
        .expect("run fieldcast");
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
}

#[test]
fn invalid_configs_print_the_field_and_reason_and_exit_with_the_config_code() {
    let cases: &[(&str, &str)] = &[
        ("[ladder]\ngop_seconds = 11\n", "ladder.gop_seconds: is outside 0.5..10 seconds"),
        ("[source]\nwidth = 1280\nheight = 720\n", "ladder.rungs[0]: is larger than the source picture"),
        (
            "[ladder]\nrungs = [{ width = 1280, height = 720, bitrate_kbps = 900 }, { width = 640, height = 360, bitrate_kbps = 900 }]\n",
            "ladder.rungs[1].bitrate_kbps: is used by another rung",
        ),
        ("[[destination]]\nurl = \"udp://h:9000\"\n", "destination[0].url: has a scheme that is not supported (use rtmp://, rtmps://, srt://, or http:// / https:// with protocol = \"cmaf\" or \"smooth\")"),
        ("[[destination]]\nurl = \"rtmp://h/live\"\nprotocol = \"cmaf\"\n", "destination[0].url: must be an http:// or https:// URL for protocol = \"cmaf\""),
        ("[[destination]]\nurl = \"https://h/live\"\n", "destination[0].protocol: is required with an http:// or https:// URL (protocol = \"cmaf\" or \"smooth\")"),
        ("[[destination]]\nurl = \"srt://h:9000\"\nprotocol = \"smooth\"\n", "destination[0].url: must be an http:// or https:// URL for protocol = \"smooth\""),
        ("[[destination]]\nurl = \"https://h/live/ch1.isml\"\nprotocol = \"smooth\"\n", "destination[0].url: must end in `/ingest.isml` for protocol = \"smooth\""),
        (
            "[[destination]]\nurl = \"https://h/live\"\nprotocol = \"cmaf\"\ntrack_path = \"{rung}-{sk4live}\"\n",
            "destination[0].track_path: holds a `{...}` that is not a placeholder (use {rung}, {kbps}, {track})",
        ),
        ("[[destination]]\nurl = \"srt://h\"\n", "destination[0].url: has no port"),
        ("[[destination]]\nurl = \"srt://h:9000?pa55=x\"\n", "destination[0].url: has a query parameter fieldcast does not know"),
        ("[[destination]]\nurl = \"srt://h:9000\"\npassphrase = \"short\"\n", "destination[0].passphrase: must be 10 to 79 characters"),
        ("[[destination]]\nurl = \"srt://h:9000\"\npassphrase = \"long-enough-1\"\npbkeylen = 20\n", "destination[0].pbkeylen: expected one of: 16, 24, 32"),
        ("[[destination]]\nurl = \"srt://h:9000\"\nlatency_ms = 2000000\n", "destination[0].latency_ms: is outside 20..10000 ms"),
        ("[[destination]]\nurl = \"rtmp://h/live\"\ntarget = \"basic\"\n", "destination[0].target: the ladder needs 11028 kbit/s with audio, over the 5000 kbit/s cap"),
        ("[ladder]\ngop_seconds = [\n", "config.toml:3:1: invalid TOML syntax"),
        ("[ladder]\ngop = 2\n", "ladder: unknown field (allowed here: profile, rungs, gop_seconds, h264_profile)"),
        ("[[destination]]\nurl = \"rtmp://u:p@h/live\"\n", "destination[0].url: credentials in the URL (user:password@) are not supported"),
        ("[[destination]]\nurl = \"rtmp://h/live\"\nkey = 2093-07-19T05:47:31Z\n", "destination[0].key: expected a string, found a date-time"),
        ("board = \"rpi4\"\n", "needs 112 Mpixel/s, over the 62 Mpixel/s the `rpi4` encoder sustains"),
        ("board = \"nope\"\n", "board: no board profile has that name"),
        ("[recording]\nenabled = false\n", "destination: no [[destination]] and [recording] is disabled: the stream would go nowhere"),
    ];
    for (config, expected) in cases {
        let (code, _out, err) = check(config);
        assert_eq!(code, EXIT_CONFIG, "exit code for {config:?}: {err}");
        assert!(err.contains(expected), "for {config:?} expected {expected:?} in:\n{err}");
    }
}

#[test]
fn a_valid_config_prints_the_plan_and_no_secret() {
    let (code, out, err) = check(
        "[[destination]]\nname = \"primary\"\nurl = \"rtmps://ingest.example.com:2935/live/t0kenSECRET\"\n\
         stream = \"{rung}_{key}\"\nkey = \"k3ySECRET\"\n",
    );
    assert_eq!(code, 0, "{err}");
    for want in [
        "board:     generic",
        "1080p    1920x1080 30 fps 5500 kbit/s CBR, scaled from capture",
        "360p     640x360 30 fps 800 kbit/s CBR, scaled from 960x540",
        "x264enc",
        "bitrate=5500",
        "key-int-max=60",
        "publish:   primary/720p -> rtmps://ingest.example.com:2935/live/*** stream `720p_***`",
        "GOP:       60 frames (2.000 s)",
    ] {
        assert!(out.contains(want), "missing {want:?} in:\n{out}");
    }
    assert!(!out.contains("SECRET") && !err.contains("SECRET"), "{out}{err}");
}

#[test]
fn an_srt_output_is_printed_with_its_passphrase_and_keyed_streamid_hidden() {
    let config = "[ladder]\nprofile = \"basic\"\n[[destination]]\nname = \"relay\"\nrungs = [\"720p\"]\n\
                  url = \"srt://relay.example.com:9000?latency=800&passphrase=pa55SECRET-pa55\"\n\
                  streamid = \"#!::r={rung},u={key}\"\nkey = \"k3ySECRET\"\n";
    let (code, out, err) = check(config);
    assert_eq!(code, 0, "{err}");
    let want = "publish:   relay/720p -> srt://relay.example.com:9000?latency=800&passphrase=*** streamid `#!::***=720p,***={key}`";
    let want = want.replace("{key}", "***");
    assert!(out.contains(&want), "missing {want:?} in:\n{out}");
    assert!(out.contains("MPEG-TS, latency 800 ms, AES-128"), "{out}");
    assert!(!out.contains("SECRET") && !err.contains("SECRET"), "{out}{err}");
}

#[test]
fn a_cmaf_output_is_printed_with_its_tracks_and_no_token_or_credential() {
    let config = "[ladder]\nprofile = \"basic\"\n[[destination]]\nname = \"origin\"\nprotocol = \"cmaf\"\n\
                  url = \"https://user:pa55SECRET@origin.example.com/live/t0kenSECRET/ch1.isml\"\ntrack_path = \"Streams({track})\"\n";
    let (code, out, err) = check(config);
    assert_eq!(code, 0, "{err}");
    let want = "publish:   origin/720p -> https://***@origin.example.com:443/live/*** CMAF ingest, video-720p -> `***(video-720p)` + audio -> `***(audio)`";
    assert!(out.contains(want), "missing {want:?} in:\n{out}");
    assert!(out.contains("origin/540p -> https://***@origin.example.com:443/live/*** CMAF ingest, video-540p"), "{out}");
    assert!(!out.contains("SECRET") && !err.contains("SECRET"), "{out}{err}");
}

#[test]
fn a_smooth_output_is_printed_with_its_tracks_and_no_token_or_credential() {
    let config = "[ladder]\nprofile = \"basic\"\n[[destination]]\nname = \"mss\"\nprotocol = \"smooth\"\n\
                  url = \"https://user:pa55SECRET@media.example.com/live/t0kenSECRET/ingest.isml?auth=k3ySECRET\"\n";
    let (code, out, err) = check(config);
    assert_eq!(code, 0, "{err}");
    let want = "publish:   mss/720p -> https://***@media.example.com:443/live/*** Smooth Streaming ingest, video-720p -> `***(video-720p)` + audio -> `***(audio)`";
    assert!(out.contains(want), "missing {want:?} in:\n{out}");
    assert!(out.contains("mss/540p -> https://***@media.example.com:443/live/*** Smooth Streaming ingest, video-540p"), "{out}");
    assert!(!out.contains("SECRET") && !err.contains("SECRET"), "{out}{err}");
}

#[test]
fn a_key_written_literally_into_the_stream_template_is_not_printed() {
    let config = "[ladder]\nprofile = \"basic\"\n[[destination]]\nname = \"primary\"\nurl = \"rtmp://h/live\"\nstream = \"sk4liveSECRET_{rung}\"\n";
    let (code, out, err) = check(config);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("publish:   primary/720p -> rtmp://h:1935/live stream `***_720p`"), "{out}");
    assert!(!out.contains("SECRET") && !err.contains("SECRET"), "{out}{err}");
}

/// A config that cannot be read is one line, once, with the reason in words
/// (not the OS's text twice), for `check-config` and `run` alike.
#[test]
fn an_unreadable_config_is_reported_once_in_words_with_the_config_code() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (dir.path().join("absent/config.toml"), "it or a folder above it does not exist"),
        (dir.path().to_path_buf(), "it is a folder, not a file"),
    ];
    for (path, reason) in cases {
        for args in [vec!["check-config", path.to_str().unwrap()], vec!["run", "--config", path.to_str().unwrap()]] {
            let out = common::fieldcast_command().args(&args).output().unwrap();
            let err = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(EXIT_CONFIG), "{args:?}: {err}");
            let lines: Vec<&str> = err.lines().filter(|l| l.contains("cannot read")).collect();
            assert_eq!(lines.len(), 1, "{args:?}: {err}");
            assert!(lines[0].ends_with(&format!(": {reason}")), "{args:?}: {err}");
            assert!(!err.contains("os error"), "{args:?}: {err}");
        }
    }
}

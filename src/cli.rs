//! The commands behind `main`: `run`, `check-config`, `probe`. Each returns
//! an exit code from [`crate::exit`] (the contract with systemd).

use crate::board::{self, MachineInfo, Selection};
use crate::config::{self, Config};
use crate::exit;
use crate::pipeline::plan::{self, Plan};
use crate::pipeline::probe;
use crate::supervisor;
use gstreamer as gst;
use std::error::Error;
use std::path::{Path, PathBuf};

/// `fieldcast passwd`: reads one line (the password) from stdin, prints its argon2 hash.
pub fn passwd() -> i32 {
    use std::io::{BufRead, IsTerminal};
    if std::io::stdin().is_terminal() {
        eprintln!("password (shown as you type; or pipe it in), then Enter:");
    }
    let mut line = String::new();
    if std::io::stdin().lock().read_line(&mut line).is_err() {
        eprintln!("cannot read the password from standard input");
        return exit::USAGE;
    }
    match crate::http::password::hash(line.trim_end_matches(['\r', '\n'])) {
        Ok(h) => {
            println!("{h}");
            exit::OK
        }
        Err(e) => {
            eprintln!("{e}");
            exit::USAGE
        }
    }
}

pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("FIELDCAST_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    use std::io::IsTerminal;
    let ansi = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    // Under systemd: journald adds its own timestamps and takes each line's
    // level from a `<N>` priority prefix.
    let journald = std::env::var_os("JOURNAL_STREAM").is_some();
    let builder =
        tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_target(false).with_ansi(ansi);
    if journald {
        let format = tracing_subscriber::fmt::format().with_target(false).with_ansi(false).without_time();
        builder.event_format(crate::journal::WithPriority(format)).init()
    } else {
        builder.init()
    }
}

/// Prints an error with its whole `source()` chain.
pub fn report(prefix: &str, e: &dyn Error) {
    let mut msg = format!("{prefix}: {e}");
    let mut cur = e.source();
    while let Some(s) = cur {
        msg.push_str(&format!(": {s}"));
        cur = s.source();
    }
    eprintln!("{msg}");
}

/// Board directories, first found wins: the config's, `$FIELDCAST_BOARD_DIR`,
/// the installed profiles.
pub fn board_dir(config_dir: Option<&Path>) -> Option<PathBuf> {
    config_dir
        .map(Path::to_path_buf)
        .or_else(|| std::env::var_os("FIELDCAST_BOARD_DIR").map(PathBuf::from))
        .or_else(|| Some(PathBuf::from("/usr/share/fieldcast/board")).filter(|p| p.is_dir()))
}

pub fn select_board(config: &Config) -> Result<Selection, board::BoardError> {
    let profiles = board::load_all(board_dir(config.board_dir.as_deref()).as_deref())?;
    let has = |e: &str| gst::ElementFactory::find(e).is_some();
    board::select(&profiles, config.board.as_deref(), &MachineInfo::read(), &has)
}

pub fn run(config_path: Option<&Path>, duration: Option<f64>) -> i32 {
    let loaded = match config_path {
        Some(p) => config::load_table(p).and_then(|t| Ok((t.clone(), config::from_value(t, &p.display().to_string())?))),
        None => Ok((toml::Table::new(), config::builtin_default())),
    };
    let (base, config) = match loaded {
        Ok(x) => x,
        Err(e) => {
            report("config error", &e);
            return exit::CONFIG;
        }
    };
    if let Err(e) = gst::init() {
        report("cannot initialise GStreamer", &e);
        return exit::FAILURE;
    }
    crate::gstlog::route_into_tracing();
    crate::pipeline::typefind::leave_out_ffmpeg_typefinders();
    let selection = match select_board(&config) {
        Ok(s) => s,
        Err(e) => {
            report("board profile error", &e);
            return exit::CONFIG;
        }
    };
    tracing::info!(board = %selection.profile.name, reason = %selection.reason, "board selected");
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("tokio runtime");
    let limit = duration.map(std::time::Duration::from_secs_f64);
    let setup = supervisor::Setup { base, config, board: selection.profile, limit };
    let code = runtime.block_on(supervisor::run(setup));
    // A start given up as hung may still sit in a blocking call: dropping
    // the runtime would wait for it forever.
    runtime.shutdown_timeout(std::time::Duration::from_millis(500));
    code
}

pub fn check_config(path: &Path, json: bool) -> i32 {
    let config = match config::load(path) {
        Ok(c) => c,
        Err(e) => {
            report("config error", &e);
            return exit::CONFIG;
        }
    };
    let _ = gst::init();
    crate::pipeline::typefind::leave_out_ffmpeg_typefinders();
    let selection = match select_board(&config) {
        Ok(s) => s,
        Err(e) => {
            report("board profile error", &e);
            return exit::CONFIG;
        }
    };
    let (format, note) = match probe::resolve_format(&config.source) {
        Ok(f) => (f, None),
        Err(e) => {
            let f = crate::session::assumed_format(&config);
            (f, Some(format!("{e}; planned against {}x{}@{} (negotiated at start)", f.width, f.height, f.fps)))
        }
    };
    let plan = match plan::plan(&config, &selection.profile, format) {
        Ok(p) => p,
        Err(e) => {
            report("config error", &e);
            return exit::CONFIG;
        }
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&plan).expect("a plan serialises"));
    } else {
        print_plan(path, &config, &selection, &plan, note.as_deref());
    }
    exit::OK
}

fn print_plan(path: &Path, config: &Config, sel: &Selection, plan: &Plan, note: Option<&str>) {
    println!("{}: OK", path.display());
    println!("device id: {}", config.device_id);
    println!("board:     {} ({})", sel.profile.name, sel.reason);
    println!("input:     {} {}x{} @ {} fps", plan.source_kind, plan.format.width, plan.format.height, plan.format.fps);
    if let Some(n) = note {
        println!("           note: {n}");
    }
    println!(
        "GOP:       {} frames ({:.3} s), IDRs aligned across rungs{}",
        plan.gop.frames,
        plan.gop.duration_ns as f64 / 1e9,
        if sel.profile.encoder.force_keyframe { " (fixed GOP + shared keyframe clock)" } else { " (fixed GOP; encoder ignores forced keyframes)" }
    );
    println!("rungs:     {} ({:.1} Mpixel/s of {} budget)", plan.rungs.len(), plan.pixel_rate as f64 / 1e6, sel.profile.limits.max_pixel_rate / 1_000_000);
    for r in &plan.rungs {
        let from = match plan.scalers[r.scaler].from {
            None => "capture".to_string(),
            Some(i) => format!("{}x{}", plan.scalers[i].width, plan.scalers[i].height),
        };
        let props: Vec<String> = r.encoder.properties.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let ctrls: Vec<String> = r.encoder.controls.iter().map(|(k, v)| format!("{k}={v}")).collect();
        println!("  {:<8} {}x{} {} fps {} kbit/s CBR, scaled from {from}", r.name, r.width, r.height, r.fps, r.bitrate_bps / 1000);
        println!("           {} {}", r.encoder.element, props.join(" "));
        if !ctrls.is_empty() {
            println!("           extra-controls: {}", ctrls.join(","));
        }
        if let Some(p) = &r.encoder.caps_profile {
            println!("           caps: profile={p}{}", r.encoder.caps_level.as_ref().map(|l| format!(" level={l}")).unwrap_or_default());
        }
    }
    let a = &plan.audio;
    println!("audio:     {} -> AAC-LC {} kbit/s {} Hz {} ch, encoded once, shared by every rung", a.source, a.bitrate_bps / 1000, a.sample_rate, a.channels);
    if plan.outputs.is_empty() {
        println!("publishes: none");
    }
    for o in &plan.outputs {
        println!("publish:   {}", o.describe());
    }
    match &plan.recording {
        Some(r) => println!("recording: {} {} s segments of {} -> {}", r.format.extension(), r.segment.as_secs(), r.rungs.join(", "), r.dir.display()),
        None => println!("recording: off"),
    }
}

const ENCODERS: &[&str] = &["x264enc", "openh264enc", "v4l2h264enc", "mpph264enc", "nvv4l2h264enc", "vpuenc_h264", "vah264enc", "vaapih264enc"];

pub fn probe(board_dir_arg: Option<&Path>) -> i32 {
    if let Err(e) = gst::init() {
        report("cannot initialise GStreamer", &e);
        return exit::FAILURE;
    }
    let machine = MachineInfo::read();
    println!("machine:   {}", machine.model.as_deref().unwrap_or("(no device-tree model)"));
    if !machine.compatible.is_empty() {
        println!("           compatible: {}", machine.compatible.join(", "));
    }
    println!("GStreamer: {}", gst::version_string());
    let devices = probe::capture_devices();
    if devices.is_empty() {
        println!("capture:   no video capture devices found");
    }
    for (name, path) in devices {
        println!("capture:   {path} {name}");
    }
    for e in ENCODERS {
        let found = gst::ElementFactory::find(e).is_some();
        println!("encoder:   {e:<14} {}", if found { "available" } else { "-" });
    }
    let profiles = match board::load_all(board_dir(board_dir_arg).as_deref()) {
        Ok(p) => p,
        Err(e) => {
            report("board profile error", &e);
            return exit::CONFIG;
        }
    };
    let has = |e: &str| gst::ElementFactory::find(e).is_some();
    match board::select(&profiles, None, &machine, &has) {
        Ok(s) => println!("board:     {} ({})", s.profile.name, s.reason),
        Err(e) => println!("board:     none ({e})"),
    }
    exit::OK
}

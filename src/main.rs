//! The `fieldcast` binary: parse arguments, set up logging, run a command,
//! map its outcome to an exit code systemd understands.

use clap::{Parser, Subcommand};
use fieldcast::cli;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "fieldcast", version, about = "Edge live encoder: one input, an aligned H.264 ladder, pushed to a live channel")]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the encoder (the daemon). Without --config: the built-in default
    /// (test pattern, standard ladder, recorded under ./fieldcast-state).
    Run {
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Stop cleanly after this many seconds (demos, benchmarks).
        #[arg(long)]
        duration: Option<f64>,
    },
    /// Validate a config and print the resolved plan (secrets redacted).
    CheckConfig {
        path: PathBuf,
        /// Print the plan as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show what this machine has: capture devices, encoders, the board profile that matches.
    Probe {
        #[arg(long)]
        board_dir: Option<PathBuf>,
    },
    /// Print an argon2 hash of a password read from standard input (one
    /// line), for `[http] password_hash`.
    Passwd,
    /// Operate a device over MQTT: send a command and print its reply, or watch it.
    /// The password, if any, is read from $FIELDCAST_MQTT_PASSWORD.
    Ctl {
        /// mqtt://host[:port] or mqtts://host[:port]
        #[arg(long)]
        broker: String,
        /// The device id (its topics are under fieldcast/<device>/ unless --prefix).
        #[arg(long)]
        device: String,
        #[arg(long)]
        prefix: Option<String>,
        #[arg(long)]
        username: Option<String>,
        /// CA certificate (PEM) for an mqtts:// broker with a private CA.
        #[arg(long)]
        ca_file: Option<PathBuf>,
        /// Seconds to wait for the reply.
        #[arg(long, default_value_t = 30.0)]
        timeout: f64,
        /// For `snapshot`: write the JPEG here.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Stop `watch` after this many messages.
        #[arg(long)]
        count: Option<usize>,
        /// start, stop, restart, status, configure, snapshot, or watch.
        command: String,
        /// The command's JSON body, e.g. '{"config": {"ladder": {"profile": "basic"}}}'.
        body: Option<String>,
    },
}

fn main() -> ExitCode {
    fieldcast::memory::limit_arenas();
    let args = Args::parse();
    if matches!(args.command, Command::Run { .. }) {
        // SAFETY: single-threaded at this point (no logger, runtime or GStreamer yet).
        unsafe { fieldcast::http::activation::take() };
    }
    cli::init_logging();
    if !matches!(args.command, Command::Run { .. }) {
        // Printing commands end quietly when their reader goes away
        // (`check-config ... | head`). Not `run`: there SIGPIPE stays ignored so
        // a dropped RTMP socket is an error to handle, not a fatal signal.
        // SAFETY: single-threaded at this point; restores the default disposition.
        unsafe {
            let _ = nix::sys::signal::signal(nix::sys::signal::Signal::SIGPIPE, nix::sys::signal::SigHandler::SigDfl);
        }
    }
    let code = match args.command {
        Command::Run { config, duration } => cli::run(config.as_deref(), duration),
        Command::CheckConfig { path, json } => cli::check_config(&path, json),
        Command::Probe { board_dir } => cli::probe(board_dir.as_deref()),
        Command::Passwd => cli::passwd(),
        Command::Ctl { broker, device, prefix, username, ca_file, timeout, out, count, command, body } => {
            let target = fieldcast::ctl::Target {
                broker,
                device,
                prefix,
                username,
                password: std::env::var("FIELDCAST_MQTT_PASSWORD").ok(),
                ca_file,
                timeout: std::time::Duration::from_secs_f64(timeout.max(0.1)),
            };
            match command.as_str() {
                "watch" => fieldcast::ctl::watch(&target, count),
                name => fieldcast::ctl::command(&target, name, body.as_deref(), out),
            }
        }
    };
    ExitCode::from(code as u8)
}

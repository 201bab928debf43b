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
}

fn main() -> ExitCode {
    let args = Args::parse();
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
    };
    ExitCode::from(code as u8)
}

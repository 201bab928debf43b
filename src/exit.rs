//! Exit codes: the contract with systemd. `CONFIG` (EX_CONFIG, 78) is listed
//! in the unit's `RestartPreventExitStatus=`: a bad config must not restart
//! forever. Anything else non-zero is transient and restarted.

/// Clean stop (SIGTERM, `--duration` reached, a file source ended).
pub const OK: i32 = 0;
/// A transient failure: systemd restarts the service.
pub const FAILURE: i32 = 1;
/// The configuration (or a board profile) is invalid: fix it, do not restart.
pub const CONFIG: i32 = 78;
/// Bad command-line use (`ctl` arguments): EX_USAGE.
pub const USAGE: i32 = 64;

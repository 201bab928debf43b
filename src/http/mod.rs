//! The local HTTP API, an actor beside the supervisor: it reads the status
//! snapshot and the `status` document from their `watch`es and sends
//! commands through [`crate::control::local`], the supervisor's one command
//! path. It never touches the stream: a port it cannot bind or a crash of the
//! server is logged with its reason and retried with backoff, and the stream
//! goes on. Under systemd it serves on the socket `fieldcast.socket` passes
//! ([`activation`]) instead of binding `listen`. Routes and their errors are in [`api`], the bearer check in
//! [`auth`], the Prometheus exposition in [`metrics`]; docs/http-api.md is
//! the contract.

pub mod activation;
mod api;
mod auth;
pub mod metrics;
pub mod password;
mod page;
mod session;
mod reply;

use crate::backoff::Backoff;
use crate::config::Http;
use crate::control::local::Commands;
use crate::status::{wire, Latest};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tracing::{error, info, warn};

/// What the server reads and where it sends commands.
#[derive(Clone)]
pub struct Sources {
    /// The status snapshot of each tick (telemetry).
    pub latest: Latest,
    /// The `status` document, as MQTT last published it.
    pub status: watch::Receiver<Option<Arc<wire::Status>>>,
    pub commands: Commands,
}

/// Retrying a bind or a restart after a crash: 1 s doubling to 30 s.
const RETRY: Backoff = Backoff { initial: Duration::from_secs(1), max: Duration::from_secs(30) };

/// Runs the server until the process ends.
pub fn spawn(config: Http, sources: Sources) {
    tokio::spawn(serve_forever(config, sources));
}

async fn serve_forever(config: Http, sources: Sources) {
    // Made once: a restarted server keeps the logins and the setup code.
    let (sessions, code) = session::Sessions::new(config.password_hash.clone(), config.session);
    if let Some(code) = code {
        // By design the one secret in the journal: whoever can read the journal owns the box anyway.
        info!(setup_code = %code, "page login: no [http] password_hash is set; this one-time setup code logs in once (until the next start)");
    }
    let sessions = std::sync::Arc::new(sessions);
    match activation::passed() {
        activation::Passed::Unusable(why) => warn!(reason = %why, listen = %config.listen, "ignoring what systemd passed as a socket; listening on [http] listen"),
        activation::Passed::Listener { extra, .. } if *extra > 0 => warn!(unused = extra, "systemd passed more than one socket; serving on the first"),
        _ => {}
    }
    let mut retry = RETRY.schedule();
    loop {
        let listener = match activation::listener() {
            Some(passed) => passed,
            None => tokio::net::TcpListener::bind(config.listen).await,
        };
        match listener {
            Err(e) => {
                let delay = retry.next_delay();
                warn!(listen = %config.listen, error = %e, retry_ms = delay.as_millis() as u64, "HTTP API cannot listen; the stream is not affected, retrying");
                tokio::time::sleep(delay).await;
                continue;
            }
            Ok(listener) => {
                let addr = listener.local_addr().map_or_else(|_| config.listen.to_string(), |a| a.to_string());
                let from = if matches!(activation::passed(), activation::Passed::Listener { .. }) { "socket passed by systemd" } else { "[http] listen" };
                info!(listen = %addr, from, token = config.token.is_some(), public_status = config.public_status, "HTTP API listening");
                let app = api::router(api::AppState::new(&config, sources.clone(), sessions.clone()));
                let app = app.into_make_service_with_connect_info::<std::net::SocketAddr>();
                // Its own task: a panic in the server ends that task, not the daemon.
                let served = tokio::spawn(async move { axum::serve(listener, app).await }).await;
                match served {
                    Ok(Ok(())) => warn!("HTTP API stopped; restarting it"),
                    Ok(Err(e)) => warn!(error = %e, "HTTP API failed; restarting it"),
                    Err(_) => error!("HTTP API crashed; restarting it"),
                }
            }
        }
        tokio::time::sleep(retry.next_delay()).await;
    }
}

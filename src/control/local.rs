//! Commands from the box's own HTTP API: the same names and JSON payloads as
//! `cmd/<name>` over MQTT, handed to the supervisor on a channel and answered
//! on a channel of their own, so one implementation serves both.

use bytes::Bytes;
use tokio::sync::mpsc;

/// Commands waiting for the supervisor beyond this are refused (busy).
pub const QUEUE: usize = 16;

/// A command as an HTTP request brought it.
#[derive(Debug)]
pub struct LocalCommand {
    pub name: String,
    pub payload: Bytes,
    pub reply: LocalReply,
}

/// A reply body and its media type (`application/json`; `image/jpeg` for a snapshot).
#[derive(Debug)]
pub struct Reply {
    pub content_type: &'static str,
    pub body: Bytes,
}

/// Where the supervisor sends a local command's reply (the first one counts).
#[derive(Clone, Debug)]
pub struct LocalReply {
    tx: mpsc::Sender<Reply>,
    quiet: bool,
}

impl LocalReply {
    /// `quiet`: routine, not an operator's act (the page's thumbnail): no event, no info log line.
    pub fn new(quiet: bool) -> (LocalReply, mpsc::Receiver<Reply>) {
        let (tx, rx) = mpsc::channel(1);
        (LocalReply { tx, quiet }, rx)
    }

    pub fn quiet(&self) -> bool {
        self.quiet
    }

    /// Never waits; a reply no one waits for any more is dropped.
    pub fn send(&self, content_type: &'static str, body: Bytes) {
        let _ = self.tx.try_send(Reply { content_type, body });
    }
}

/// The HTTP server's end: sends commands to the supervisor.
#[derive(Clone, Debug)]
pub struct Commands(mpsc::Sender<LocalCommand>);

/// Why a local command got no reply.
#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    #[error("the supervisor has too many commands waiting")]
    Busy,
    #[error("the supervisor is gone (shutting down)")]
    Gone,
    #[error("no reply in time")]
    Timeout,
}

impl Commands {
    pub fn channel() -> (Commands, mpsc::Receiver<LocalCommand>) {
        let (tx, rx) = mpsc::channel(QUEUE);
        (Commands(tx), rx)
    }

    /// Sends `payload` as command `name` and waits (up to `timeout`) for its reply.
    pub async fn call(&self, name: &str, payload: Bytes, timeout: std::time::Duration) -> Result<Reply, LocalError> {
        self.send(name, payload, timeout, false).await
    }

    /// As [`Self::call`], for routine requests (no event, debug log only).
    pub async fn call_quiet(&self, name: &str, payload: Bytes, timeout: std::time::Duration) -> Result<Reply, LocalError> {
        self.send(name, payload, timeout, true).await
    }

    async fn send(&self, name: &str, payload: Bytes, timeout: std::time::Duration, quiet: bool) -> Result<Reply, LocalError> {
        let (reply, mut rx) = LocalReply::new(quiet);
        self.0.try_send(LocalCommand { name: name.to_string(), payload, reply }).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => LocalError::Busy,
            mpsc::error::TrySendError::Closed(_) => LocalError::Gone,
        })?;
        match tokio::time::timeout(timeout, rx.recv()).await {
            Ok(Some(r)) => Ok(r),
            Ok(None) => Err(LocalError::Gone),
            Err(_) => Err(LocalError::Timeout),
        }
    }
}

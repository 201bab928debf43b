//! The byte pipe under an RTMP session: TCP, or TLS over TCP for `rtmps://`
//! (SNI = the URL's host; roots = webpki-roots plus an optional PEM CA file).

use crate::config::url::{RtmpScheme as Scheme, RtmpUrl};
use std::path::Path;
use std::sync::Arc;
use thiserror::Error;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::pki_types::ServerName;
use tokio_rustls::rustls::ClientConfig;

/// Anything an RTMP session can run over.
pub(crate) trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

pub use crate::tls::TlsConfigError;

/// The RTMPS client configuration (no client certificate).
pub fn tls_config(ca_file: Option<&Path>) -> Result<Arc<ClientConfig>, TlsConfigError> {
    crate::tls::client_config(ca_file, None)
}

/// Why the byte pipe could not be opened. Carries the redacted URL only.
#[derive(Debug, Error)]
pub enum TransportError {
    #[error("TCP connect to {url} failed")]
    Tcp { url: RtmpUrl, source: std::io::Error },
    #[error("`{host}` is not a valid TLS server name")]
    ServerName { host: String },
    #[error("TLS handshake with {url} failed")]
    Tls { url: RtmpUrl, source: std::io::Error },
}

/// Opens TCP (with `TCP_NODELAY`: media is already paced by the pipeline) and,
/// for `rtmps://`, the TLS session on top.
pub(crate) async fn open(url: &RtmpUrl, tls: Option<&Arc<ClientConfig>>) -> Result<(Box<dyn Io>, SendQueue), TransportError> {
    let tcp = TcpStream::connect((url.host(), url.port()))
        .await
        .map_err(|source| TransportError::Tcp { url: url.clone(), source })?;
    let queue = SendQueue(std::os::fd::AsRawFd::as_raw_fd(&tcp));
    // Nagle only adds latency to small audio messages; failure to set it is harmless.
    let _ = tcp.set_nodelay(true);
    match (url.scheme(), tls) {
        (Scheme::Rtmp, _) => Ok((Box::new(tcp), queue)),
        (Scheme::Rtmps, config) => {
            let config = match config {
                Some(c) => c.clone(),
                None => tls_config(None)
                    .map_err(|e| TransportError::Tls { url: url.clone(), source: std::io::Error::other(e) })?,
            };
            let name = ServerName::try_from(url.host().to_owned())
                .map_err(|_| TransportError::ServerName { host: url.host().to_owned() })?;
            let stream = TlsConnector::from(config)
                .connect(name, tcp)
                .await
                .map_err(|source| TransportError::Tls { url: url.clone(), source })?;
            Ok((Box::new(stream), queue))
        }
    }
}

/// The kernel's send queue of the connection's TCP socket: bytes written
/// but not sent yet (TCP's congestion window holds them back: what a
/// congested uplink cannot carry). Bytes in flight are not counted, so a
/// long round trip alone does not look like congestion. Valid while the
/// stream it came from is open.
#[derive(Clone, Copy, Debug)]
pub(crate) struct SendQueue(std::os::fd::RawFd);

/// linux/sockios.h: unsent bytes of a TCP socket (the same on every arch).
const SIOCOUTQNSD: u32 = 0x894B;

impl SendQueue {
    pub fn bytes(&self) -> Option<u64> {
        let mut n: libc::c_int = 0;
        // SAFETY: SIOCOUTQNSD writes one int; the fd belongs to the open
        // stream this queue was taken from (the caller owns both).
        let r = unsafe { libc::ioctl(self.0, SIOCOUTQNSD as _, &mut n) };
        (r == 0).then_some(n.max(0) as u64)
    }

    /// Bytes written and not acknowledged by the peer yet (sent or not):
    /// what stops shrinking when the peer is gone.
    pub fn unacknowledged(&self) -> Option<u64> {
        let mut n: libc::c_int = 0;
        // SAFETY: SIOCOUTQ (TIOCOUTQ) writes one int; the fd is open, as above.
        let r = unsafe { libc::ioctl(self.0, libc::TIOCOUTQ as _, &mut n) };
        (r == 0).then_some(n.max(0) as u64)
    }
}

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
pub(crate) async fn open(url: &RtmpUrl, tls: Option<&Arc<ClientConfig>>) -> Result<Box<dyn Io>, TransportError> {
    let tcp = TcpStream::connect((url.host(), url.port()))
        .await
        .map_err(|source| TransportError::Tcp { url: url.clone(), source })?;
    // Nagle only adds latency to small audio messages; failure to set it is harmless.
    let _ = tcp.set_nodelay(true);
    match (url.scheme(), tls) {
        (Scheme::Rtmp, _) => Ok(Box::new(tcp)),
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
            Ok(Box::new(stream))
        }
    }
}

//! The byte pipe under an RTMP session: TCP, or TLS over TCP for `rtmps://`
//! (SNI = the URL's host; roots = webpki-roots plus an optional PEM CA file).

use crate::egress::url::{IngestUrl, Scheme};
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use thiserror::Error;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::pki_types::ServerName;
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore};

/// Anything an RTMP session can run over.
pub(crate) trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// Why a TLS client configuration could not be built.
#[derive(Debug, Error)]
pub enum TlsConfigError {
    #[error("cannot read CA file {path}")]
    ReadCaFile { path: PathBuf, source: std::io::Error },
    #[error("CA file {path} holds no PEM certificate")]
    EmptyCaFile { path: PathBuf },
    #[error("CA file {path} holds a certificate rustls refuses")]
    BadCaCert { path: PathBuf, source: rustls::Error },
    #[error("TLS protocol setup failed")]
    Rustls(#[from] rustls::Error),
}

/// Builds the client configuration for RTMPS: TLS 1.2 or newer (ring
/// provider), trusting the public web roots plus every certificate of
/// `ca_file`, for channels behind a private CA. Call it at config time to
/// refuse a bad CA file early; the publisher calls it again when it connects.
pub fn tls_config(ca_file: Option<&Path>) -> Result<Arc<ClientConfig>, TlsConfigError> {
    let mut roots = RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(path) = ca_file {
        let read_err = |source| TlsConfigError::ReadCaFile { path: path.to_owned(), source };
        let file = std::fs::File::open(path).map_err(read_err)?;
        let certs =
            rustls_pemfile::certs(&mut BufReader::new(file)).collect::<Result<Vec<_>, _>>().map_err(read_err)?;
        if certs.is_empty() {
            return Err(TlsConfigError::EmptyCaFile { path: path.to_owned() });
        }
        for cert in certs {
            roots.add(cert).map_err(|source| TlsConfigError::BadCaCert { path: path.to_owned(), source })?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// Why the byte pipe could not be opened. Carries the redacted URL only.
#[derive(Debug, Error)]
pub enum TransportError {
    #[error("TCP connect to {url} failed")]
    Tcp { url: IngestUrl, source: std::io::Error },
    #[error("`{host}` is not a valid TLS server name")]
    ServerName { host: String },
    #[error("TLS handshake with {url} failed")]
    Tls { url: IngestUrl, source: std::io::Error },
}

/// Opens TCP (with `TCP_NODELAY`: media is already paced by the pipeline) and,
/// for `rtmps://`, the TLS session on top.
pub(crate) async fn open(url: &IngestUrl, tls: Option<&Arc<ClientConfig>>) -> Result<Box<dyn Io>, TransportError> {
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

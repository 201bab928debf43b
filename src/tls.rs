//! TLS client configurations (rustls, ring provider) for RTMPS and MQTTS:
//! the public web roots plus an optional private CA, and optionally a client
//! certificate for brokers that authenticate devices by certificate.

use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use thiserror::Error;
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore};

/// Why a TLS client configuration could not be built.
#[derive(Debug, Error)]
pub enum TlsConfigError {
    #[error("cannot read CA file {path}")]
    ReadCaFile { path: PathBuf, source: std::io::Error },
    #[error("CA file {path} holds no PEM certificate")]
    EmptyCaFile { path: PathBuf },
    #[error("CA file {path} holds a certificate rustls refuses")]
    BadCaCert { path: PathBuf, source: rustls::Error },
    #[error("cannot read client certificate/key {path}")]
    ReadClientAuth { path: PathBuf, source: std::io::Error },
    #[error("{path} holds no PEM {what}")]
    EmptyClientAuth { path: PathBuf, what: &'static str },
    #[error("TLS protocol setup failed")]
    Rustls(#[from] rustls::Error),
}

/// TLS 1.2 or newer (ring provider), trusting the public web roots plus
/// every certificate of `ca_file` (servers behind a private CA), presenting
/// `client_auth` (certificate chain, key; PEM) when given.
pub fn client_config(ca_file: Option<&Path>, client_auth: Option<(&Path, &Path)>) -> Result<Arc<ClientConfig>, TlsConfigError> {
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
    let builder = ClientConfig::builder_with_provider(provider).with_safe_default_protocol_versions()?.with_root_certificates(roots);
    let config = match client_auth {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => {
            fn read_err(path: &Path) -> impl Fn(std::io::Error) -> TlsConfigError + '_ {
                move |source| TlsConfigError::ReadClientAuth { path: path.to_owned(), source }
            }
            let chain = rustls_pemfile::certs(&mut BufReader::new(std::fs::File::open(cert).map_err(read_err(cert))?))
                .collect::<Result<Vec<_>, _>>()
                .map_err(read_err(cert))?;
            if chain.is_empty() {
                return Err(TlsConfigError::EmptyClientAuth { path: cert.to_owned(), what: "certificate" });
            }
            let key_der = rustls_pemfile::private_key(&mut BufReader::new(std::fs::File::open(key).map_err(read_err(key))?))
                .map_err(read_err(key))?
                .ok_or_else(|| TlsConfigError::EmptyClientAuth { path: key.to_owned(), what: "private key" })?;
            builder.with_client_auth_cert(chain, key_der)?
        }
    };
    Ok(Arc::new(config))
}


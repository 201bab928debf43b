//! One persistent HTTP/1.1 connection of an ingest track (hyper 1 client
//! connection over TCP, or TLS through tokio-rustls with ring for https):
//! CMAF POSTs one whole body at a time ([`Connection::post`]); Smooth
//! streams one long chunked body ([`Connection::start`], a [`ChannelBody`]).
//! Answers' bodies are read to the end so the connection stays reusable.

use crate::config::url::HttpUrl;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Body;
use hyper::client::conn::http1::{self, SendRequest};
use hyper::header::{AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, HOST, HeaderValue};
use hyper_util::rt::TokioIo;
use std::sync::Arc;
use std::time::Duration;
use thiserror::Error;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::ClientConfig;
use tokio_rustls::rustls::pki_types::ServerName;

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// Why a connection or a request failed. Carries the redacted URL only,
/// never the request target (it may hold a token).
#[derive(Debug, Error)]
pub enum HttpError {
    #[error("no connection to {url} within {after:?}")]
    ConnectTimeout { url: HttpUrl, after: Duration },
    #[error("TCP connect to {url} failed")]
    Tcp { url: HttpUrl, source: std::io::Error },
    #[error("`{host}` is not a valid TLS server name")]
    ServerName { host: String },
    #[error("TLS handshake with {url} failed")]
    Tls { url: HttpUrl, source: std::io::Error },
    #[error("HTTP handshake with {url} failed")]
    Handshake { url: HttpUrl, source: hyper::Error },
    #[error("the connection to {url} broke")]
    Broken { url: HttpUrl, source: hyper::Error },
    #[error("no answer from {url} within {after:?}")]
    AnswerTimeout { url: HttpUrl, after: Duration },
    #[error("{url} stopped reading the stream")]
    Stalled { url: HttpUrl },
}

/// A request body fed from a channel, for a long chunked POST: each
/// `Bytes` sent is one chunk; the body ends when every sender is gone.
/// [`ChannelBody::empty`] is a zero-length body (`Content-Length: 0`).
pub struct ChannelBody {
    rx: Option<tokio::sync::mpsc::Receiver<Bytes>>,
}

impl ChannelBody {
    /// A body of at most `queue` chunks in flight, and its feeder.
    pub fn channel(queue: usize) -> (tokio::sync::mpsc::Sender<Bytes>, ChannelBody) {
        let (tx, rx) = tokio::sync::mpsc::channel(queue);
        (tx, ChannelBody { rx: Some(rx) })
    }
    pub fn empty() -> ChannelBody {
        ChannelBody { rx: None }
    }
}

impl Body for ChannelBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(mut self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, Self::Error>>> {
        match self.rx.as_mut() {
            None => std::task::Poll::Ready(None),
            Some(rx) => rx.poll_recv(cx).map(|c| c.map(|b| Ok(hyper::body::Frame::data(b)))),
        }
    }
    fn is_end_stream(&self) -> bool {
        self.rx.is_none()
    }
    fn size_hint(&self) -> hyper::body::SizeHint {
        match self.rx {
            None => hyper::body::SizeHint::with_exact(0),
            Some(_) => hyper::body::SizeHint::default(),
        }
    }
}

/// An open HTTP/1.1 connection whose requests carry bodies of type `B`.
pub struct Connection<B = Full<Bytes>> {
    sender: SendRequest<B>,
    driver: JoinHandle<()>,
    url: HttpUrl,
    authorization: Option<HeaderValue>,
}

impl<B> Drop for Connection<B> {
    fn drop(&mut self) {
        self.driver.abort();
    }
}

/// Opens TCP (`TCP_NODELAY`), TLS for https, and the HTTP/1.1 handshake, all within `timeout`.
pub async fn connect<B: RequestBody>(url: &HttpUrl, tls: Option<&Arc<ClientConfig>>, timeout: Duration) -> Result<Connection<B>, HttpError> {
    match tokio::time::timeout(timeout, open(url, tls)).await {
        Ok(r) => r,
        Err(_) => Err(HttpError::ConnectTimeout { url: url.clone(), after: timeout }),
    }
}

/// What a request's body must be for hyper's client connection.
pub trait RequestBody: Body<Data = Bytes, Error: Into<Box<dyn std::error::Error + Send + Sync>>> + Send + Unpin + 'static {}
impl<T: Body<Data = Bytes, Error: Into<Box<dyn std::error::Error + Send + Sync>>> + Send + Unpin + 'static> RequestBody for T {}

async fn open<B: RequestBody>(url: &HttpUrl, tls: Option<&Arc<ClientConfig>>) -> Result<Connection<B>, HttpError> {
    let tcp = TcpStream::connect((url.host(), url.port())).await.map_err(|source| HttpError::Tcp { url: url.clone(), source })?;
    let _ = tcp.set_nodelay(true);
    let io: Box<dyn Io> = if url.tls() {
        let config = match tls {
            Some(c) => c.clone(),
            None => crate::tls::client_config(None, None).map_err(|e| HttpError::Tls { url: url.clone(), source: std::io::Error::other(e) })?,
        };
        let name = ServerName::try_from(url.host().to_owned()).map_err(|_| HttpError::ServerName { host: url.host().to_owned() })?;
        Box::new(TlsConnector::from(config).connect(name, tcp).await.map_err(|source| HttpError::Tls { url: url.clone(), source })?)
    } else {
        Box::new(tcp)
    };
    let (sender, conn) = http1::handshake(TokioIo::new(io)).await.map_err(|source| HttpError::Handshake { url: url.clone(), source })?;
    let driver = tokio::spawn(async move {
        // Ends when the peer closes or the sender is dropped; a broken
        // connection surfaces at the next request.
        let _ = conn.await;
    });
    let authorization = url.credentials().map(|(u, p)| {
        let mut v = HeaderValue::from_str(&format!("Basic {}", base64(format!("{u}:{p}").as_bytes()))).unwrap_or(HeaderValue::from_static(""));
        v.set_sensitive(true);
        v
    });
    Ok(Connection { sender, driver, url: url.clone(), authorization })
}

impl<B: RequestBody> Connection<B> {
    /// A POST of `body` to `target` (path and query) with the URL's
    /// `Host` and basic-auth credentials.
    fn request(&self, target: &str, content_type: &'static str, body: B) -> hyper::Request<B> {
        let mut req = hyper::Request::post(target)
            .header(HOST, self.url.authority())
            .header(CONTENT_TYPE, content_type)
            .body(body)
            .expect("a request from a checked path");
        if let Some(a) = &self.authorization {
            req.headers_mut().insert(AUTHORIZATION, a.clone());
        }
        if req.body().size_hint().exact() == Some(0) {
            // hyper leaves an empty body unannounced; the receiver should see it is empty.
            req.headers_mut().insert(CONTENT_LENGTH, HeaderValue::from_static("0"));
        }
        req
    }

    /// Sends a POST of `body` and returns the future of its answer's status
    /// (read to its end). The body streams while the future is polled; the
    /// future fails when the connection breaks.
    pub async fn start(&mut self, target: &str, content_type: &'static str, body: B) -> Result<impl Future<Output = Result<u16, HttpError>> + use<B>, HttpError> {
        let url = self.url.clone();
        self.sender.ready().await.map_err(|source| HttpError::Broken { url: url.clone(), source })?;
        let answer = self.sender.send_request(self.request(target, content_type, body));
        Ok(async move {
            let broken = |source| HttpError::Broken { url: url.clone(), source };
            let resp = answer.await.map_err(broken)?;
            let status = resp.status().as_u16();
            resp.into_body().collect().await.map_err(broken)?;
            Ok(status)
        })
    }

    /// POSTs `body` and returns the answer's status, all within `timeout`.
    pub async fn send(&mut self, target: &str, content_type: &'static str, body: B, timeout: Duration) -> Result<u16, HttpError> {
        let url = self.url.clone();
        let exchange = async { self.start(target, content_type, body).await?.await };
        match tokio::time::timeout(timeout, exchange).await {
            Ok(r) => r,
            Err(_) => Err(HttpError::AnswerTimeout { url, after: timeout }),
        }
    }
}

impl Connection<Full<Bytes>> {
    /// POSTs `body` to `target` (path and query) and returns the answer's
    /// status once its body has been read, all within `timeout`.
    pub async fn post(&mut self, target: &str, content_type: &'static str, body: Bytes, timeout: Duration) -> Result<u16, HttpError> {
        self.send(target, content_type, Full::new(body), timeout).await
    }
}

/// Standard base64 (for basic auth only).
fn base64(input: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in input.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(T[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn base64_matches_rfc4648() {
        for (i, o) in [("", ""), ("f", "Zg=="), ("fo", "Zm8="), ("foo", "Zm9v"), ("foob", "Zm9vYg=="), ("Aladdin:open sesame", "QWxhZGRpbjpvcGVuIHNlc2FtZQ==")] {
            assert_eq!(super::base64(i.as_bytes()), o);
        }
    }
}

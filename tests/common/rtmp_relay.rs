//! A byte relay in front of a real RTMP server that makes the server look
//! careless: on every connection, the first chunk the server sends on each
//! chunk stream loses its type 0 header. No real server is known to do this
//! on purpose (librtmp tolerates it), so the relay stands in for one while
//! nginx-rtmp stays the real receiver.
//!
//! Chunk streams are taken in the order they appear, in turns:
//! 1. the type 0 header is rewritten into a type 1 (timestamp as delta,
//!    length, type; the message stream id is dropped, so only when it is 0);
//! 2. a type 2 header (a timestamp delta and nothing else) is put before it;
//! 3. a bare type 3 header is put before it.
//!
//! What the client sends passes unchanged.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// S0 + S1 + S2: passed unchanged.
const HANDSHAKE: usize = 1 + 1536 + 1536;

/// How many first headers were made of each type, over all connections.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Rewrites {
    pub type1: u32,
    pub type2: u32,
    pub type3: u32,
}

pub struct RtmpRelay {
    pub port: u16,
    rewrites: Arc<Mutex<Rewrites>>,
    task: tokio::task::JoinHandle<()>,
}

impl RtmpRelay {
    /// Listens on a free loopback port and relays every connection to `upstream_port`.
    pub async fn start(upstream_port: u16) -> RtmpRelay {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind the relay");
        let port = listener.local_addr().unwrap().port();
        let rewrites = Arc::new(Mutex::new(Rewrites::default()));
        let counts = rewrites.clone();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let counts = counts.clone();
                tokio::spawn(async move {
                    if let Ok(server) = TcpStream::connect(("127.0.0.1", upstream_port)).await {
                        relay(client, server, counts).await;
                    }
                });
            }
        });
        RtmpRelay { port, rewrites, task }
    }

    pub fn url(&self, app: &str) -> String {
        format!("rtmp://127.0.0.1:{}/{app}", self.port)
    }

    pub fn rewrites(&self) -> Rewrites {
        *self.rewrites.lock().unwrap()
    }
}

impl Drop for RtmpRelay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn relay(client: TcpStream, server: TcpStream, counts: Arc<Mutex<Rewrites>>) {
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let upstream = async {
        let _ = tokio::io::copy(&mut client_read, &mut server_write).await;
        let _ = server_write.shutdown().await;
    };
    let downstream = async {
        let mut mangler = Mangler::default();
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let n = match server_read.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let out = mangler.push(&buf[..n], &counts);
            if client_write.write_all(&out).await.is_err() {
                break;
            }
        }
        let _ = client_write.shutdown().await;
    };
    tokio::join!(upstream, downstream);
}

#[derive(Default)]
struct Stream {
    length: usize,
    type_id: u8,
    timestamp_field: u32,
    remaining: usize,
}

/// Follows the server's chunk stream (whole chunks at a time) and rewrites
/// the first chunk of each chunk stream.
struct Mangler {
    handshake_left: usize,
    buf: Vec<u8>,
    chunk_size: usize,
    streams: HashMap<u8, Stream>,
    turn: usize,
}

impl Default for Mangler {
    fn default() -> Self {
        Mangler { handshake_left: HANDSHAKE, buf: Vec::new(), chunk_size: 128, streams: HashMap::new(), turn: 0 }
    }
}

impl Mangler {
    fn push(&mut self, bytes: &[u8], counts: &Mutex<Rewrites>) -> Vec<u8> {
        let mut out = Vec::new();
        let skip = self.handshake_left.min(bytes.len());
        out.extend_from_slice(&bytes[..skip]);
        self.handshake_left -= skip;
        self.buf.extend_from_slice(&bytes[skip..]);
        while let Some(used) = self.one_chunk(&mut out, counts) {
            self.buf.drain(..used);
        }
        out
    }

    /// Handles the whole chunk at the start of `buf`, if it is all there;
    /// returns its length.
    fn one_chunk(&mut self, out: &mut Vec<u8>, counts: &Mutex<Rewrites>) -> Option<usize> {
        let b = &self.buf;
        let first = *b.first()?;
        let (format, csid) = (first >> 6, first & 0x3f);
        assert!(csid >= 2, "the relay only follows 1-byte chunk stream ids; nginx sent {csid}");
        let header_len = 1 + [11, 7, 3, 0][usize::from(format)];
        let h = b.get(..header_len)?;
        let u24 = |s: &[u8]| (usize::from(s[0]) << 16) | (usize::from(s[1]) << 8) | usize::from(s[2]);
        let new_stream = !self.streams.contains_key(&csid);
        let stream = self.streams.entry(csid).or_default();
        if format < 3 {
            stream.timestamp_field = u24(&h[1..4]) as u32;
        }
        if format < 2 {
            stream.length = u24(&h[4..7]);
            stream.type_id = h[7];
        }
        let stream_id = if format == 0 { u32::from_le_bytes(h[8..12].try_into().unwrap()) } else { 0 };
        let extended = if stream.timestamp_field >= 0xFF_FFFF { 4 } else { 0 };
        if stream.remaining == 0 || format != 3 {
            stream.remaining = stream.length;
        }
        let payload = stream.remaining.min(self.chunk_size);
        let total = header_len + extended + payload;
        if b.len() < total {
            // Not all there: the fields re-read the same next time, but the
            // chunk stream must still count as new.
            if new_stream {
                self.streams.remove(&csid);
            }
            return None;
        }
        stream.remaining -= payload;
        let chunk = &b[..total];
        if stream.type_id == 1 && payload >= 4 {
            let at = header_len + extended;
            self.chunk_size = u32::from_be_bytes(chunk[at..at + 4].try_into().unwrap()) as usize & 0x7fff_ffff;
        }
        if new_stream && format == 0 {
            let mut counts = counts.lock().unwrap();
            match self.turn % 3 {
                0 if stream_id == 0 => {
                    // Type 1: the same fields minus the message stream id.
                    out.push(0x40 | csid);
                    out.extend_from_slice(&chunk[1..8]);
                    out.extend_from_slice(&chunk[12..]);
                    counts.type1 += 1;
                }
                1 => {
                    out.extend([0x80 | csid, 0, 0, 40]);
                    out.extend_from_slice(chunk);
                    counts.type2 += 1;
                }
                _ => {
                    out.push(0xC0 | csid);
                    out.extend_from_slice(chunk);
                    counts.type3 += 1;
                }
            }
            self.turn += 1;
        } else {
            out.extend_from_slice(chunk);
        }
        Some(total)
    }
}

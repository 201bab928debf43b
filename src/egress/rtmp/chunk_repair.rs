//! A pass over the bytes a server sends, before rml_rtmp reads them: a chunk
//! header of type 1, 2 or 3 on a chunk stream that has had no header yet is
//! rewritten into a type 0 header whose missing fields are zero.
//!
//! rml_rtmp refuses such a chunk (`NoPreviousChunkOnStream`) and the publish
//! fails; librtmp (ffmpeg's `-f flv rtmp://` publisher) starts every chunk
//! stream from an all-zero previous header, so a type 1 header still carries
//! its length and type (timestamp = delta, message stream 0), and a type 2 or
//! 3 header with nothing before it is an empty message of type 0, which
//! nobody acts on. To find the chunk boundaries the pass follows what the
//! chunk stream itself says: each chunk stream's last header and how much of
//! its message is still to come, and the server's Set Chunk Size.

use std::collections::HashMap;

/// rml_rtmp (and the spec) start at 128-byte chunks.
const INITIAL_CHUNK_SIZE: usize = 128;
/// A 24-bit timestamp field with this value means a 4-byte extended timestamp follows.
const EXTENDED: u32 = 0x00FF_FFFF;
/// Protocol control message: Set Chunk Size.
const SET_CHUNK_SIZE: u8 = 1;

/// What a chunk stream's previous header said, as far as framing goes.
#[derive(Clone, Copy, Debug, Default)]
struct Previous {
    length: usize,
    type_id: u8,
    timestamp_field: u32,
    /// Bytes of the current message not received yet (0: the next chunk starts a message).
    remaining: usize,
}

#[derive(Debug)]
enum Stage {
    /// Expecting a chunk header; `pending` holds what arrived of it.
    Header,
    /// Passing through `left` payload bytes of a chunk on `csid`.
    Payload { csid: u32, left: usize },
}

/// The pass: feed it the server's bytes in order, hand what it returns to rml_rtmp.
#[derive(Debug)]
pub(crate) struct ChunkRepair {
    chunk_size: usize,
    streams: HashMap<u32, Previous>,
    stage: Stage,
    pending: Vec<u8>,
    /// Payload of a Set Chunk Size message being received.
    control: Vec<u8>,
    /// Headers rewritten so far.
    pub repaired: u64,
}

impl Default for ChunkRepair {
    fn default() -> Self {
        ChunkRepair {
            chunk_size: INITIAL_CHUNK_SIZE,
            streams: HashMap::new(),
            stage: Stage::Header,
            pending: Vec::new(),
            control: Vec::new(),
            repaired: 0,
        }
    }
}

/// A header read from the wire.
struct Parsed {
    format: u8,
    csid: u32,
    /// Length of the basic header (1 to 3 bytes).
    basic_len: usize,
    timestamp_field: Option<u32>,
    length: Option<usize>,
    type_id: Option<u8>,
    /// Length of the whole header, extended timestamp included.
    total_len: usize,
}

impl ChunkRepair {
    /// Takes the next bytes from the server and returns what rml_rtmp should
    /// read instead: the same bytes, except for rewritten headers. Bytes of an
    /// incomplete header are held until the rest arrives.
    pub fn feed(&mut self, input: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(input.len() + 16);
        let mut input = input;
        while !input.is_empty() {
            match self.stage {
                Stage::Payload { csid, left } => {
                    let n = left.min(input.len());
                    self.payload(csid, &input[..n]);
                    out.extend_from_slice(&input[..n]);
                    input = &input[n..];
                    self.stage = if n == left { Stage::Header } else { Stage::Payload { csid, left: left - n } };
                    if n == left {
                        self.chunk_done(csid);
                    }
                }
                Stage::Header => {
                    // Move bytes into `pending` no further than the header
                    // reaches (as far as its first bytes tell), so the payload
                    // stays in `input`.
                    let take = self.header_len_hint().saturating_sub(self.pending.len()).min(input.len());
                    self.pending.extend_from_slice(&input[..take]);
                    input = &input[take..];
                    if let Some(parsed) = self.parse_pending() {
                        let header = std::mem::take(&mut self.pending);
                        self.header(&parsed, &header, &mut out);
                    }
                }
            }
        }
        out
    }

    /// How many bytes the header in `pending` needs, as far as its first bytes tell.
    fn header_len_hint(&self) -> usize {
        let Some(&first) = self.pending.first() else { return 1 };
        let basic_len = match first & 0x3f {
            0 => 2,
            1 => 3,
            _ => 1,
        };
        let message_len = [11, 7, 3, 0][usize::from(first >> 6)];
        let base = basic_len + message_len;
        if self.pending.len() < base {
            return base;
        }
        match self.parse_pending() {
            Some(parsed) => parsed.total_len,
            None => base + 4,
        }
    }

    /// The header in `pending`, when all of it is there.
    fn parse_pending(&self) -> Option<Parsed> {
        let b = &self.pending;
        let first = *b.first()?;
        let format = first >> 6;
        let (csid, basic_len) = match first & 0x3f {
            0 => (64 + u32::from(*b.get(1)?), 2),
            1 => (64 + u32::from(*b.get(1)?) + 256 * u32::from(*b.get(2)?), 3),
            id => (u32::from(id), 1),
        };
        let message_len = [11, 7, 3, 0][usize::from(format)];
        let m = b.get(basic_len..basic_len + message_len)?;
        let u24 = |s: &[u8]| u32::from(s[0]) << 16 | u32::from(s[1]) << 8 | u32::from(s[2]);
        let timestamp_field = (format < 3).then(|| u24(&m[0..3]));
        let length = (format < 2).then(|| u24(&m[3..6]) as usize);
        let type_id = (format < 2).then(|| m[6]);
        // A type 3 header repeats the extended timestamp of the header it continues.
        let field = timestamp_field.or_else(|| self.streams.get(&csid).map(|p| p.timestamp_field)).unwrap_or(0);
        let total_len = basic_len + message_len + if field >= EXTENDED { 4 } else { 0 };
        if b.len() < total_len {
            return None;
        }
        Some(Parsed { format, csid, basic_len, timestamp_field, length, type_id, total_len })
    }

    /// Emits one complete header (rewritten if it has no previous header)
    /// and sets up its payload.
    fn header(&mut self, parsed: &Parsed, bytes: &[u8], out: &mut Vec<u8>) {
        let previous = match (parsed.format, self.streams.get(&parsed.csid)) {
            (0, _) => Previous::default(),
            (_, Some(previous)) => *previous,
            (_, None) => {
                // librtmp: the missing previous header is all zeros.
                self.repaired += 1;
                out.extend(type0_basic_header(parsed.csid));
                let field = parsed.timestamp_field.unwrap_or(0);
                out.extend(&field.to_be_bytes()[1..]);
                out.extend(&(parsed.length.unwrap_or(0) as u32).to_be_bytes()[1..]);
                out.push(parsed.type_id.unwrap_or(0));
                out.extend(0u32.to_le_bytes());
                // The extended timestamp, if any, goes on unchanged.
                out.extend_from_slice(&bytes[parsed.basic_len + [11, 7, 3, 0][usize::from(parsed.format)]..]);
                self.start_chunk(parsed, Previous::default());
                return;
            }
        };
        out.extend_from_slice(bytes);
        self.start_chunk(parsed, previous);
    }

    fn start_chunk(&mut self, parsed: &Parsed, previous: Previous) {
        let mut current = Previous {
            length: parsed.length.unwrap_or(previous.length),
            type_id: parsed.type_id.unwrap_or(previous.type_id),
            timestamp_field: parsed.timestamp_field.unwrap_or(previous.timestamp_field),
            remaining: previous.remaining,
        };
        if current.remaining == 0 || parsed.format != 3 {
            current.remaining = current.length;
            self.control.clear();
        }
        let left = current.remaining.min(self.chunk_size);
        self.streams.insert(parsed.csid, current);
        self.stage = Stage::Payload { csid: parsed.csid, left };
        if left == 0 {
            self.stage = Stage::Header;
            self.chunk_done(parsed.csid);
        }
    }

    fn payload(&mut self, csid: u32, bytes: &[u8]) {
        let stream = self.streams.get_mut(&csid).expect("a chunk in progress has a stream");
        stream.remaining -= bytes.len();
        if stream.type_id == SET_CHUNK_SIZE && self.control.len() < 4 {
            self.control.extend(bytes.iter().take(4 - self.control.len()));
        }
    }

    fn chunk_done(&mut self, csid: u32) {
        let stream = self.streams[&csid];
        if stream.remaining == 0 && stream.type_id == SET_CHUNK_SIZE && self.control.len() == 4 {
            let size = u32::from_be_bytes([self.control[0], self.control[1], self.control[2], self.control[3]]);
            // The top bit is reserved (0); a zero size would stall every chunk.
            self.chunk_size = (size & 0x7fff_ffff).max(1) as usize;
            self.control.clear();
        }
    }
}

/// A type 0 basic header for `csid` (1, 2 or 3 bytes, as the original).
fn type0_basic_header(csid: u32) -> Vec<u8> {
    match csid {
        2..=63 => vec![csid as u8],
        64..=319 => vec![0, (csid - 64) as u8],
        _ => vec![1, ((csid - 64) % 256) as u8, ((csid - 64) / 256) as u8],
    }
}

#[cfg(test)]
#[path = "chunk_repair_tests.rs"]
mod tests;

//! The repair pass against rml_rtmp's own serializer and deserializer.

use super::ChunkRepair;
use bytes::Bytes;
use rml_rtmp::chunk_io::{ChunkDeserializationError, ChunkDeserializer, ChunkSerializer};
use rml_rtmp::messages::MessagePayload;
use rml_rtmp::time::RtmpTimestamp;

/// Every message rml_rtmp reads from `bytes`, applying Set Chunk Size as its session does.
fn read_all(bytes: &[u8]) -> Result<Vec<MessagePayload>, ChunkDeserializationError> {
    let mut deserializer = ChunkDeserializer::new();
    let mut out = Vec::new();
    let mut input = bytes;
    while let Some(message) = deserializer.get_next_message(input)? {
        input = &[];
        if message.type_id == 1 {
            let size = u32::from_be_bytes(message.data[..4].try_into().unwrap());
            deserializer.set_max_chunk_size(size as usize)?;
        }
        out.push(message);
    }
    Ok(out)
}

fn payload(timestamp: u32, stream: u32, type_id: u8, data: Vec<u8>) -> MessagePayload {
    MessagePayload {
        timestamp: RtmpTimestamp::new(timestamp),
        message_stream_id: stream,
        type_id,
        data: Bytes::from(data),
    }
}

/// A chunk written by hand: `format` 0..=3, only the fields that format carries.
fn raw(format: u8, csid: u32, fields: (u32, u32, u8, u32), extended: Option<u32>, data: &[u8]) -> Vec<u8> {
    let (timestamp, length, type_id, stream) = fields;
    let mut out = match csid {
        2..=63 => vec![format << 6 | csid as u8],
        64..=319 => vec![format << 6, (csid - 64) as u8],
        _ => vec![format << 6 | 1, ((csid - 64) % 256) as u8, ((csid - 64) / 256) as u8],
    };
    if format < 3 {
        out.extend(&timestamp.to_be_bytes()[1..]);
    }
    if format < 2 {
        out.extend(&length.to_be_bytes()[1..]);
        out.push(type_id);
    }
    if format == 0 {
        out.extend(stream.to_le_bytes());
    }
    if let Some(extended) = extended {
        out.extend(extended.to_be_bytes());
    }
    out.extend_from_slice(data);
    out
}

/// A realistic server stream: Set Chunk Size, messages split across chunks,
/// type 1-3 headers after a type 0, an extended timestamp.
fn well_formed() -> (Vec<u8>, Vec<MessagePayload>) {
    let mut serializer = ChunkSerializer::new();
    let mut bytes = serializer.set_max_chunk_size(200, RtmpTimestamp::new(0)).unwrap().bytes;
    let mut sent = vec![payload(0, 0, 1, 200u32.to_be_bytes().to_vec())];
    for (i, message) in [
        payload(0, 0, 20, vec![7; 60]),
        payload(10, 1, 9, (0..1000).map(|b| b as u8).collect()),
        payload(20, 1, 9, vec![3; 450]),
        payload(0x0100_0000, 1, 8, vec![5; 300]),
        payload(0x0100_0010, 1, 8, vec![6; 30]),
    ]
    .into_iter()
    .enumerate()
    {
        bytes.extend(serializer.serialize(&message, i == 0, false).unwrap().bytes);
        sent.push(message);
    }
    (bytes, sent)
}

#[test]
fn a_well_formed_stream_passes_unchanged_however_it_is_split() {
    let (bytes, sent) = well_formed();
    assert_eq!(read_all(&bytes).unwrap(), sent, "the fixture itself reads back");
    let mut whole = ChunkRepair::default();
    assert_eq!(whole.feed(&bytes), bytes);
    let mut bytewise = ChunkRepair::default();
    let out: Vec<u8> = bytes.iter().flat_map(|b| bytewise.feed(&[*b])).collect();
    assert_eq!(out, bytes);
    assert_eq!((whole.repaired, bytewise.repaired), (0, 0));
}

#[test]
fn a_type_1_header_first_on_its_chunk_stream_becomes_type_0_with_stream_0() {
    let data = b"\x02\x00\x07_result".to_vec();
    let bytes = raw(1, 3, (42, data.len() as u32, 20, 0), None, &data);
    assert!(matches!(read_all(&bytes), Err(ChunkDeserializationError::NoPreviousChunkOnStream { csid: 3 })));

    let mut repair = ChunkRepair::default();
    let repaired = repair.feed(&bytes);
    assert_eq!(repair.repaired, 1);
    assert_eq!(read_all(&repaired).unwrap(), vec![payload(42, 0, 20, data)]);
}

#[test]
fn type_2_and_type_3_headers_with_nothing_before_them_are_empty_messages() {
    let mut bytes = raw(2, 4, (5, 0, 0, 0), None, &[]);
    bytes.extend(raw(3, 5, (0, 0, 0, 0), None, &[]));
    // The real messages on those chunk streams follow.
    bytes.extend(raw(0, 4, (100, 3, 20, 1), None, b"abc"));
    bytes.extend(raw(3, 5, (0, 0, 0, 0), None, &[]));
    bytes.extend(raw(1, 5, (7, 2, 18, 0), None, b"xy"));
    assert!(read_all(&bytes).is_err());

    let mut repair = ChunkRepair::default();
    let messages = read_all(&repair.feed(&bytes)).unwrap();
    assert_eq!(repair.repaired, 2, "only the first header of each chunk stream");
    assert_eq!(
        messages,
        vec![
            payload(5, 0, 0, vec![]),
            payload(0, 0, 0, vec![]),
            payload(100, 1, 20, b"abc".to_vec()),
            payload(0, 0, 0, vec![]),
            payload(7, 0, 18, b"xy".to_vec()),
        ]
    );
}

#[test]
fn chunk_boundaries_follow_the_servers_chunk_size_to_find_a_later_bad_header() {
    // After the server's Set Chunk Size and a message split at that size, a
    // new chunk stream (7: the serializer uses 2 to 6) starts with type 1.
    let (mut bytes, mut sent) = well_formed();
    bytes.extend(raw(1, 7, (9, 4, 20, 0), None, b"late"));
    sent.push(payload(9, 0, 20, b"late".to_vec()));
    for split in [1, 7, 200, 1000] {
        let mut repair = ChunkRepair::default();
        let out: Vec<u8> = bytes.chunks(split).flat_map(|part| repair.feed(part)).collect();
        assert_eq!(repair.repaired, 1, "split {split}");
        assert_eq!(read_all(&out).unwrap(), sent, "split {split}");
    }
}

#[test]
fn a_first_type_1_header_keeps_its_extended_timestamp_and_long_chunk_stream_ids() {
    let data = vec![9u8; 150];
    // 150 bytes at 128-byte chunks: the continuation repeats the extended timestamp.
    let mut bytes = raw(1, 70, (0xFF_FFFF, 150, 9, 0), Some(0x0200_0000), &data[..128]);
    bytes.extend(raw(3, 70, (0, 0, 0, 0), Some(0x0200_0000), &data[128..]));
    bytes.extend(raw(2, 400, (3, 0, 0, 0), None, &[]));
    let mut repair = ChunkRepair::default();
    let messages = read_all(&repair.feed(&bytes)).unwrap();
    assert_eq!(repair.repaired, 2);
    assert_eq!(messages, vec![payload(0x0200_0000, 0, 9, data), payload(3, 0, 0, vec![])]);
}

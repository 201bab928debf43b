//! Restamping a serialized `onMetaData` message: rml_rtmp stamps data
//! messages with its session clock (ms since the connection began), which
//! after a reconnect lies far behind the media's running-time timestamps;
//! some receivers then open an extra data stream. The message is the first
//! and only one on its chunk stream (rml_rtmp puts data messages, types 18
//! and 19, on chunk stream 3), so it always carries a full (type 0) header
//! whose timestamp can be rewritten without touching any other message.

/// The largest timestamp a chunk header holds in place; above it the
/// field says 0xFFFFFF and a 4-byte extended timestamp follows the header.
const EXTENDED: u32 = 0x00FF_FFFF;
/// Basic header (1 byte, csid 2..63) + type 0 message header (11 bytes).
const HEADER: usize = 12;

/// Rewrites the timestamp of a single-chunk message serialized with a full
/// header. Returns false (packet untouched) when it is not one: several
/// chunks would each need the extended field.
pub(super) fn restamp(packet: &mut Vec<u8>, timestamp_ms: u32) -> bool {
    if packet.len() < HEADER || packet[0] >> 6 != 0 || packet[0] & 0x3f < 2 {
        return false;
    }
    let field = |b: &[u8]| u32::from_be_bytes([0, b[0], b[1], b[2]]);
    let had_extended = field(&packet[1..4]) == EXTENDED;
    let length = field(&packet[4..7]) as usize;
    let payload_at = HEADER + if had_extended { 4 } else { 0 };
    if packet.len() != payload_at + length {
        return false;
    }
    let payload = packet.split_off(payload_at);
    packet.truncate(HEADER);
    let stamp = timestamp_ms.min(EXTENDED).to_be_bytes();
    packet[1..4].copy_from_slice(&stamp[1..4]);
    if timestamp_ms >= EXTENDED {
        packet.extend_from_slice(&timestamp_ms.to_be_bytes());
    }
    packet.extend_from_slice(&payload);
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use rml_rtmp::chunk_io::{ChunkDeserializer, ChunkSerializer};
    use rml_rtmp::messages::{MessagePayload, RtmpMessage};
    use rml_rtmp::rml_amf0::Amf0Value;
    use rml_rtmp::time::RtmpTimestamp;

    fn metadata_packet(session_clock_ms: u32) -> (Vec<u8>, Vec<u8>) {
        let message = RtmpMessage::Amf0Data {
            values: vec![
                Amf0Value::Utf8String("@setDataFrame".into()),
                Amf0Value::Utf8String("onMetaData".into()),
                Amf0Value::Object([("width".to_string(), Amf0Value::Number(1920.0))].into_iter().collect()),
            ],
        };
        let payload = message.into_message_payload(RtmpTimestamp::new(session_clock_ms), 1).unwrap();
        let mut serializer = ChunkSerializer::new();
        let _ = serializer.set_max_chunk_size(4096, RtmpTimestamp::new(0)).unwrap();
        (serializer.serialize(&payload, false, false).unwrap().bytes, payload.data.to_vec())
    }

    /// Parsed back by rml_rtmp's own deserializer: timestamp, type, stream and payload.
    fn parse(bytes: &[u8]) -> MessagePayload {
        let mut d = ChunkDeserializer::new();
        d.set_max_chunk_size(4096).unwrap();
        d.get_next_message(bytes).unwrap().expect("one whole message")
    }

    #[test]
    fn metadata_is_restamped_on_the_media_clock_below_and_above_the_24_bit_field() {
        for media_ms in [0u32, 33, 2_000_123, EXTENDED - 1, EXTENDED, EXTENDED + 1, 0x7fff_ffff] {
            let (mut bytes, data) = metadata_packet(42);
            assert!(restamp(&mut bytes, media_ms));
            let m = parse(&bytes);
            assert_eq!(m.timestamp.value, media_ms);
            assert_eq!((m.type_id, m.message_stream_id), (18, 1));
            assert_eq!(&m.data[..], &data[..], "payload untouched");
        }
    }

    #[test]
    fn a_message_already_on_an_extended_timestamp_is_restamped_too() {
        let (mut bytes, data) = metadata_packet(EXTENDED + 5);
        assert!(restamp(&mut bytes, 7));
        let m = parse(&bytes);
        assert_eq!((m.timestamp.value, &m.data[..]), (7, &data[..]));
    }

    #[test]
    fn anything_but_one_full_header_chunk_is_left_alone() {
        let (bytes, _) = metadata_packet(42);
        let mut compressed = bytes.clone();
        compressed[0] |= 0x40; // a type 1 header
        assert!(!restamp(&mut compressed, 5));
        let mut cut = bytes[..bytes.len() - 1].to_vec();
        assert!(!restamp(&mut cut, 5));
        assert_eq!(cut, bytes[..bytes.len() - 1]);
        assert!(!restamp(&mut Vec::new(), 5));
    }
}

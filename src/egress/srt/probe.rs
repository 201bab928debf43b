//! Is an SRT listener there? The first step of SRT's caller-listener
//! handshake (the induction), sent from a plain UDP socket: a listener
//! answers it statelessly (its SYN cookie), before any connection exists,
//! so the probe never becomes a caller a receiver would take for its
//! stream (ffmpeg's listener, for one, serves a single caller and ends
//! when it leaves). Packet layout: the SRT draft
//! (draft-sharabayko-srt, section 3.2.1, "Handshake").

use std::net::SocketAddr;
use std::time::Duration;
use thiserror::Error;

/// Control packet, type 0 (handshake), subtype 0.
const CONTROL_HANDSHAKE: u32 = 0x8000_0000;
/// Handshake type: induction.
const INDUCTION: u32 = 1;
/// The caller's induction: version 4, extension field 2 (UDT_DGRAM).
const CALLER_VERSION: u32 = 4;
const CALLER_EXTENSION: u16 = 2;
/// A listener speaking HSv5 answers version 5 with this in the extension field.
const SRT_MAGIC: u16 = 0x4A17;
/// How often the induction is sent again while no answer came.
const RESEND: Duration = Duration::from_millis(250);

#[derive(Debug, Error)]
pub enum ProbeError {
    #[error("no SRT handshake answer within {0:?} (is the receiver listening?)")]
    NoAnswer(Duration),
    #[error("could not send the SRT handshake: {0}")]
    Io(#[from] std::io::Error),
}

/// The 64-byte induction request from caller socket `socket_id`.
pub fn induction_request(socket_id: u32, initial_seq: u32) -> [u8; 64] {
    let mut p = [0u8; 64];
    let words: [u32; 4] = [CONTROL_HANDSHAKE, 0, 0, 0];
    for (i, w) in words.iter().enumerate() {
        p[i * 4..i * 4 + 4].copy_from_slice(&w.to_be_bytes());
    }
    let cif = &mut p[16..];
    cif[0..4].copy_from_slice(&CALLER_VERSION.to_be_bytes());
    cif[4..6].copy_from_slice(&0u16.to_be_bytes());
    cif[6..8].copy_from_slice(&CALLER_EXTENSION.to_be_bytes());
    cif[8..12].copy_from_slice(&(initial_seq & 0x7fff_ffff).to_be_bytes());
    cif[12..16].copy_from_slice(&1500u32.to_be_bytes());
    cif[16..20].copy_from_slice(&8192u32.to_be_bytes());
    cif[20..24].copy_from_slice(&INDUCTION.to_be_bytes());
    cif[24..28].copy_from_slice(&socket_id.to_be_bytes());
    // SYN cookie 0, peer address left empty: the listener fills them in.
    p
}

/// Whether `packet` is a listener's answer to an induction sent by `socket_id`.
pub fn is_induction_answer(packet: &[u8], socket_id: u32) -> bool {
    if packet.len() < 64 {
        return false;
    }
    let word = |at: usize| u32::from_be_bytes(packet[at..at + 4].try_into().expect("4 bytes"));
    let header = word(0);
    let cif = 16;
    let version = word(cif);
    let extension = u16::from_be_bytes([packet[cif + 6], packet[cif + 7]]);
    header & 0xFFFF_0000 == CONTROL_HANDSHAKE
        && word(12) == socket_id
        && word(cif + 20) == INDUCTION
        && (version == 5 && extension == SRT_MAGIC || version == 4)
}

/// Sends the induction to `addr` (again every 250 ms) until a listener
/// answers or `within` passes.
pub async fn listener_answers(addr: SocketAddr, within: Duration) -> Result<(), ProbeError> {
    let local: SocketAddr = if addr.is_ipv4() { ([0, 0, 0, 0], 0).into() } else { (std::net::Ipv6Addr::UNSPECIFIED, 0).into() };
    let socket = tokio::net::UdpSocket::bind(local).await?;
    socket.connect(addr).await?;
    let socket_id = rand::random::<u32>() & 0x3fff_ffff | 1;
    let request = induction_request(socket_id, rand::random());
    let deadline = tokio::time::Instant::now() + within;
    let mut buf = [0u8; 1500];
    loop {
        let _ = socket.send(&request).await;
        let next = (tokio::time::Instant::now() + RESEND).min(deadline);
        loop {
            match tokio::time::timeout_at(next, socket.recv(&mut buf)).await {
                Err(_) => break,
                Ok(Ok(n)) if is_induction_answer(&buf[..n], socket_id) => return Ok(()),
                Ok(Ok(_)) => {}
                // A closed port answers with ICMP, which the connected
                // socket reports here: nothing more comes before the next send.
                Ok(Err(_)) => {
                    tokio::time::sleep_until(next).await;
                    break;
                }
            }
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(ProbeError::NoAnswer(within));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_induction_request_is_a_handshake_control_packet_of_version_4() {
        let p = induction_request(0x1234_5678, 0xffff_ffff);
        assert_eq!(&p[0..4], &[0x80, 0, 0, 0], "control, type 0 (handshake)");
        assert_eq!(&p[12..16], &[0, 0, 0, 0], "to no socket yet");
        assert_eq!(&p[16..20], &4u32.to_be_bytes());
        assert_eq!(&p[22..24], &2u16.to_be_bytes());
        assert_eq!(&p[24..28], &0x7fff_ffffu32.to_be_bytes(), "31-bit sequence number");
        assert_eq!(&p[36..40], &1u32.to_be_bytes(), "induction");
        assert_eq!(&p[40..44], &0x1234_5678u32.to_be_bytes());
    }

    #[test]
    fn only_an_induction_answer_to_our_socket_counts() {
        let mut answer = induction_request(99, 1);
        answer[12..16].copy_from_slice(&7u32.to_be_bytes());
        answer[16..20].copy_from_slice(&5u32.to_be_bytes());
        answer[22..24].copy_from_slice(&SRT_MAGIC.to_be_bytes());
        assert!(is_induction_answer(&answer, 7));
        assert!(!is_induction_answer(&answer, 8), "another socket's");
        assert!(!is_induction_answer(&answer[..40], 7), "short");
        let mut data = answer;
        data[0] = 0x00;
        assert!(!is_induction_answer(&data, 7), "a data packet");
        let mut v5_without_magic = answer;
        v5_without_magic[22..24].copy_from_slice(&0u16.to_be_bytes());
        assert!(!is_induction_answer(&v5_without_magic, 7));
    }

    #[tokio::test]
    async fn nobody_listening_is_no_answer_within_the_bound() {
        let port = std::net::UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let t = std::time::Instant::now();
        let r = listener_answers(([127, 0, 0, 1], port).into(), Duration::from_millis(600)).await;
        assert!(matches!(r, Err(ProbeError::NoAnswer(_))), "{r:?}");
        assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    }
}

//! ffprobe as the judge of what a channel received: stream descriptions of
//! a file or a live URL, and per-packet timestamps and keyframe flags.

use super::run_with_timeout;
use serde_json::Value;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(30);

fn probe(args: &[&str], input: &str) -> Value {
    let out =
        run_with_timeout(Command::new("ffprobe").args(["-v", "error", "-of", "json"]).args(args).arg(input), TIMEOUT);
    assert!(out.status.success(), "ffprobe {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("ffprobe JSON")
}

/// `-show_streams` of a file or URL (for a live RTMP URL, what a player sees
/// on joining: onMetaData and the sequence headers).
pub fn streams(input: &str) -> Vec<Value> {
    probe(&["-show_streams"], input)["streams"].as_array().cloned().unwrap_or_default()
}

/// The first stream of `codec_type` ("video" / "audio").
pub fn stream_of(streams: &[Value], codec_type: &str) -> Value {
    streams
        .iter()
        .find(|s| s["codec_type"] == codec_type)
        .cloned()
        .unwrap_or_else(|| panic!("no {codec_type} stream in {streams:#?}"))
}

/// A numeric field that ffprobe prints as a string (`"409600"`) or a number.
pub fn num(v: &Value) -> f64 {
    match v {
        Value::String(s) => s.parse().unwrap_or_else(|_| panic!("not a number: {s}")),
        Value::Number(n) => n.as_f64().unwrap(),
        other => panic!("not a number: {other}"),
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Packet {
    /// Seconds.
    pub pts: f64,
    pub dts: f64,
    pub keyframe: bool,
    pub size: u64,
}

/// Packets of the first `v` or `a` stream of a file, in file order.
pub fn packets(file: &Path, stream: &str) -> Vec<Packet> {
    let selector = format!("{stream}:0");
    let json = probe(
        &["-select_streams", &selector, "-show_entries", "packet=pts_time,dts_time,flags,size"],
        file.to_str().unwrap(),
    );
    json["packets"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|p| Packet {
            pts: num(&p["pts_time"]),
            dts: num(&p["dts_time"]),
            keyframe: p["flags"].as_str().unwrap_or("").contains('K'),
            size: num(&p["size"]) as u64,
        })
        .collect()
}

pub fn video_packets(file: &Path) -> Vec<Packet> {
    packets(file, "v")
}

pub fn audio_packets(file: &Path) -> Vec<Packet> {
    packets(file, "a")
}

/// Bits per second of `packets` over their DTS span (plus one frame of `frame_s`).
pub fn measured_bitrate(packets: &[Packet], frame_s: f64) -> f64 {
    let bytes: u64 = packets.iter().map(|p| p.size).sum();
    let span = packets.last().unwrap().dts - packets.first().unwrap().dts + frame_s;
    bytes as f64 * 8.0 / span
}

/// The first `count` packets a live subscriber receives from `url`, as
/// (`"video"` / `"audio"`, packet), with the server's (absolute) timestamps.
pub fn live_packets(url: &str, count: usize) -> Vec<(String, Packet)> {
    let interval = format!("%+#{count}");
    let json =
        probe(&["-read_intervals", &interval, "-show_entries", "packet=codec_type,pts_time,dts_time,flags,size"], url);
    json["packets"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|p| {
            let packet = Packet {
                pts: num(&p["pts_time"]),
                dts: num(&p["dts_time"]),
                keyframe: p["flags"].as_str().unwrap_or("").contains('K'),
                size: num(&p["size"]) as u64,
            };
            (p["codec_type"].as_str().unwrap_or("").to_owned(), packet)
        })
        .collect()
}

/// What ffmpeg complains about while decoding every frame of `file` (empty: clean).
pub fn decode_errors(file: &Path) -> String {
    let out = run_with_timeout(
        Command::new("ffmpeg").args(["-nostdin", "-v", "error", "-i"]).arg(file).args(["-f", "null", "-"]),
        TIMEOUT,
    );
    assert!(
        out.status.success(),
        "ffmpeg could not decode {}: {}",
        file.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

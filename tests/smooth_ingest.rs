//! Smooth Streaming ingest end to end: the real fieldcast binary streams
//! every rung's video track and the shared audio track, each as one long
//! chunked POST to its `Streams(<name>)` under an `ingest.isml` URL, to a
//! recording HTTP receiver on a free loopback port (`common::http_receiver`,
//! which never judges). The judges: pymp4 (an MP4 box parser from PyPI:
//! `isml` brand, the Live Server Manifest's tracks, bitrates and codec
//! private data, `tfxd` in every fragment, an unbroken timeline), ffmpeg
//! (demuxes each track's stream and remuxes it to MP4) and ffprobe (reads
//! what ffmpeg wrote: codec, size, sample rate, every sample there).

mod common;

use common::ffprobe::{self, stream_of};
use common::http_receiver::{Answer, HttpReceiver, Request};
use common::ingest::{ladder, ladder_toml, pymp4, run_fieldcast, run_seconds};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// The ingest URL's path: a token in it, as a channel's URL often has.
const BASE: &str = "/live/t0ken/ingest.isml";
const TIMESCALE: u64 = 10_000_000;

fn config(url: &str) -> String {
    format!(
        "{}[[destination]]\nname = \"smooth\"\nprotocol = \"smooth\"\nurl = \"{url}\"\n[egress]\nreconnect_initial_ms = 100\nreconnect_max_ms = 400\n",
        ladder_toml()
    )
}

fn track_path(track: &str) -> String {
    format!("{BASE}/Streams({track})")
}

/// Every track: (name, kbit/s, is video).
fn tracks() -> Vec<(String, u32, bool)> {
    let mut t: Vec<_> = ladder().iter().map(|r| (format!("video-{}", r.0), r.3, true)).collect();
    t.push(("audio".into(), 128, false));
    t
}

fn write(dir: &Path, name: &str, body: &[u8]) -> PathBuf {
    let path = dir.join(format!("{name}.ismv"));
    std::fs::write(&path, body).unwrap();
    path
}

/// pymp4's checks of one POST's stream: the `isml` header (ftyp, the Live
/// Server Manifest, a 10 MHz moov), then fragments each with a version-1
/// `tfxd` that agrees with its `tfdt` and sample durations, `mfhd` +1 and
/// no gap from one fragment to the next. Returns pymp4's reading.
fn judge_stream(file: &Path, what: &str) -> Value {
    let b = pymp4("smooth_boxes.py", file);
    assert_eq!(b["ftyp"]["major"], "isml", "{what}: ftyp {}", b["ftyp"]);
    let top: Vec<&str> = b["top"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    assert_eq!(&top[..3], ["ftyp", "uuid", "moov"], "{what}: the headers");
    assert!(top[3..].chunks(2).all(|p| p == ["moof", "mdat"]), "{what}: moof + mdat fragments, nothing else: {top:?}");
    assert_eq!(b["timescale"].as_u64(), Some(TIMESCALE), "{what}: timescale");
    let frags = b["fragments"].as_array().unwrap();
    for (i, f) in frags.iter().enumerate() {
        let x = &f["tfxd"];
        assert!(x.is_object(), "{what}: fragment {i} has no tfxd");
        assert_eq!(x["version"].as_u64(), Some(1), "{what}: tfxd version");
        assert_eq!((x["time"].as_u64(), x["duration"].as_u64()), (f["tfdt"].as_u64(), f["duration"].as_u64()), "{what}: tfxd of fragment {i}");
        assert!(f["first_sync"].as_bool().unwrap(), "{what}: fragment {i} does not start on a sync sample");
        if i > 0 {
            let p = &frags[i - 1];
            assert_eq!(f["seq"].as_u64().unwrap(), p["seq"].as_u64().unwrap() + 1, "{what}: mfhd at fragment {i}");
            assert_eq!(f["tfdt"].as_u64().unwrap(), p["tfdt"].as_u64().unwrap() + p["duration"].as_u64().unwrap(), "{what}: a gap before fragment {i}");
        }
    }
    b
}

/// The manifest box of track `name`'s POST against the plan: it lists every
/// track of the channel, in order, each with its stream (`src`), type,
/// bitrate, FourCC and codec private data; this POST's own video track's
/// codec private data is the SPS and PPS of this POST's `moov`.
fn judge_manifest(b: &Value, name: &str) {
    let m = b["manifest"].as_array().unwrap_or_else(|| panic!("{name}: no Live Server Manifest box"));
    assert_eq!(m.len(), tracks().len(), "{name}: the manifest lists every track of the channel: {m:?}");
    for (t, (track, kbps, video)) in m.iter().zip(tracks()) {
        let p = &t["params"];
        let what = format!("{name}: the manifest's {track}");
        assert_eq!(t["src"].as_str(), Some(format!("{track}.{}", if video { "ismv" } else { "isma" }).as_str()), "{what}: src");
        assert_eq!(t["systemBitrate"].as_str(), Some((kbps * 1000).to_string().as_str()), "{what}: systemBitrate");
        assert_eq!(p["systemBitrate"], t["systemBitrate"], "{what}");
        let cpd = p["CodecPrivateData"].as_str().unwrap_or_else(|| panic!("{what}: no CodecPrivateData: {t}"));
        if video {
            assert_eq!((t["type"].as_str(), p["FourCC"].as_str()), (Some("video"), Some("H264")), "{what}");
            // Annex B: a start code and an SPS (NAL type 7), then one and a PPS (type 8).
            assert!(cpd.starts_with("0000000167") && cpd.contains("0000000168"), "{what}: CodecPrivateData {cpd}");
            if track == name {
                assert_eq!(Some(cpd), b["avcc"].as_str(), "{what}: its codec private data is its moov's SPS and PPS");
            }
        } else {
            assert_eq!((t["type"].as_str(), p["FourCC"].as_str()), (Some("audio"), Some("AACL")), "{what}");
            // AAC-LC (2), 48 kHz (index 3), 2 channels: 0x1190.
            assert_eq!(cpd, "1190", "{what}: AudioSpecificConfig");
            assert_eq!((p["SamplingRate"].as_str(), p["Channels"].as_str()), (Some("48000"), Some("2")), "{what}");
        }
    }
}

/// ffmpeg demuxes the stream and copies it into an MP4; ffprobe reads that
/// back: the codec, the size or sample rate, and every sample pymp4 counted.
fn judge_with_ffmpeg(dir: &Path, file: &Path, b: &Value, (name, _, video): &(String, u32, bool)) {
    let out = dir.join(format!("{name}-ffmpeg.mp4"));
    let r = common::run_with_timeout(
        Command::new("ffmpeg").args(["-v", "error", "-y", "-i"]).arg(file).args(["-c", "copy"]).arg(&out),
        Duration::from_secs(60),
    );
    assert!(r.status.success() && r.stderr.is_empty(), "{name}: ffmpeg could not demux the stream: {}", String::from_utf8_lossy(&r.stderr));
    let streams = ffprobe::streams(out.to_str().unwrap());
    let samples: u64 = b["fragments"].as_array().unwrap().iter().map(|f| f["samples"].as_u64().unwrap()).sum();
    if *video {
        let v = stream_of(&streams, "video");
        let rung = ladder().iter().find(|r| format!("video-{}", r.0) == *name).unwrap();
        assert_eq!((v["codec_name"].as_str(), v["width"].as_u64(), v["height"].as_u64()), (Some("h264"), Some(u64::from(rung.1)), Some(u64::from(rung.2))), "{name}");
        assert_eq!(ffprobe::video_packets(&out).len() as u64, samples, "{name}: every video sample demuxed");
        assert_eq!(ffprobe::decode_errors(&out), "", "{name}: decode errors");
    } else {
        let a = stream_of(&streams, "audio");
        assert_eq!((a["codec_name"].as_str(), a["sample_rate"].as_str(), a["channels"].as_u64()), (Some("aac"), Some("48000"), Some(2)), "{name}");
        assert_eq!(ffprobe::audio_packets(&out).len() as u64, samples, "{name}: every audio sample demuxed");
    }
}

/// The empty POST that checks the URL, then the long chunked one.
fn assert_check_then_stream(reqs: &[Request], name: &str, content_type: &str) {
    assert_eq!(reqs[0].method, "POST");
    assert!(reqs[0].body.is_empty() && reqs[0].headers.get("content-length").map(String::as_str) == Some("0"), "{name}: an empty POST first");
    assert_eq!(reqs[1].method, "POST");
    assert_eq!(reqs[1].headers.get("transfer-encoding").map(String::as_str), Some("chunked"), "{name}: one long chunked POST");
    assert_eq!(reqs[1].headers.get("content-type").map(String::as_str), Some(content_type), "{name}");
}

#[test]
fn every_track_streams_isml_headers_then_fragments_with_tfxd_in_one_chunked_post_and_pymp4_and_ffmpeg_accept_it() {
    let dir = tempfile::tempdir().unwrap();
    let rx = HttpReceiver::start();
    let url = rx.url(BASE).replace("http://", "http://ingest:pa55SECRET@");
    let logs = run_fieldcast(dir.path(), &config(&url), run_seconds());
    assert!(!logs.contains("pa55SECRET") && !logs.contains("t0ken"), "a secret in the log:\n{logs}");

    let all = rx.requests();
    let mut manifests = Vec::new();
    for t in tracks() {
        let name = &t.0;
        let reqs = rx.requests_to(&track_path(name));
        assert_eq!(reqs.len(), 2, "{name}: {} requests; paths seen: {:?}", reqs.len(), all.iter().map(|r| &r.path).collect::<Vec<_>>());
        assert_check_then_stream(&reqs, name, if t.2 { "video/mp4" } else { "audio/mp4" });
        assert!(reqs.iter().all(|r| r.connection == reqs[0].connection), "{name}: one connection");
        assert!(reqs.iter().all(|r| r.answer == Answer::Status(200)));
        // Basic auth from the URL's credentials ("ingest:pa55SECRET").
        assert_eq!(reqs[1].headers.get("authorization").map(String::as_str), Some("Basic aW5nZXN0OnBhNTVTRUNSRVQ="));
        let file = write(dir.path(), name, &reqs[1].body);
        let b = judge_stream(&file, name);
        assert_eq!(b["truncated_bytes"].as_u64(), Some(0), "{name}: the stream ends on a whole fragment");
        let n = b["fragments"].as_array().unwrap().len();
        assert!(n >= 4, "{name}: only {n} fragments");
        judge_manifest(&b, name);
        judge_with_ffmpeg(dir.path(), &file, &b, &t);
        manifests.push(b["manifest"].clone());
        eprintln!("{name}: {n} fragments, {} bytes in one POST", reqs[1].body.len());
    }
    // One document in every POST: each track's entry (its codec private
    // data checked against its own moov above) is the same everywhere.
    assert!(manifests.iter().all(|m| *m == manifests[0]), "the manifests differ between POSTs: {manifests:?}");
    assert_eq!(all.len(), 2 * tracks().len(), "only the tracks were posted to");
}

#[test]
fn a_connection_dropped_mid_stream_resends_the_same_headers_and_the_last_two_fragments_with_no_gap() {
    let dir = tempfile::tempdir().unwrap();
    let rx = HttpReceiver::start();
    let top = ladder()[0];
    let name = format!("video-{}", top.0);
    let path = track_path(&name);
    // Request 0 is the empty POST; the long POST is cut about 2.5 fragments in.
    let cut = top.3 as usize * 1000 / 8 * 5 / 2;
    rx.answer_nth(&path, 1, Answer::DropAfter(cut));
    let logs = run_fieldcast(dir.path(), &config(&rx.url(BASE)), run_seconds());

    let d = rx.requests_to(&path);
    assert_eq!(d.len(), 4, "{name}: check, stream (dropped), check, stream: {:?}", d.iter().map(|r| r.answer).collect::<Vec<_>>());
    assert_eq!(d[1].answer, Answer::DropAfter(cut));
    assert_check_then_stream(&d[..2], &name, "video/mp4");
    assert_check_then_stream(&d[2..], &name, "video/mp4");
    assert_ne!(d[2].connection, d[1].connection, "a new connection after the drop");
    let before = pymp4("smooth_boxes.py", &write(dir.path(), "before", &d[1].body));
    assert!(before["truncated_bytes"].as_u64().unwrap() > 0, "the drop cut a fragment");
    let after = judge_stream(&write(dir.path(), "after", &d[3].body), "after the drop");
    assert_eq!(before["header_sha1"], after["header_sha1"], "the headers are byte-identical on the new POST");
    assert_eq!(before["header_len"], after["header_len"]);
    judge_manifest(&after, &name);

    // The new POST starts with the last two fragments the track had: the
    // last whole one before the drop (or, if a fragment was cut meanwhile,
    // the one in flight), so the timeline goes on without a gap.
    let (a, b) = (before["fragments"].as_array().unwrap(), after["fragments"].as_array().unwrap());
    assert!(a.len() >= 2 && b.len() >= 3, "{} fragments before, {} after", a.len(), b.len());
    let last = a.last().unwrap();
    let first = &b[0];
    let resumed_at = first["seq"].as_u64().unwrap();
    assert!(resumed_at == last["seq"].as_u64().unwrap() || resumed_at == last["seq"].as_u64().unwrap() + 1, "resent from {resumed_at}, last whole {}", last["seq"]);
    if resumed_at == last["seq"].as_u64().unwrap() {
        assert_eq!(first["tfxd"], last["tfxd"], "the same fragment again");
    }
    let mut timeline: Vec<(u64, u64)> = a.iter().chain(b).map(|f| (f["tfxd"]["time"].as_u64().unwrap(), f["tfxd"]["duration"].as_u64().unwrap())).collect();
    timeline.sort();
    timeline.dedup();
    for w in timeline.windows(2) {
        assert_eq!(w[1].0, w[0].0 + w[0].1, "a gap or overlap in the timeline across the drop: {timeline:?}");
    }
    judge_with_ffmpeg(dir.path(), &dir.path().join("after.ismv"), &after, &(name.clone(), top.3, true));

    // One blast radius: the other tracks never reconnected.
    for t in tracks().iter().filter(|t| t.0 != name) {
        assert_eq!(rx.requests_to(&track_path(&t.0)).len(), 2, "{}: touched by the other track's drop", t.0);
    }
    let reconnect = d[2].started.duration_since(d[1].at);
    let resend = d[3].started.duration_since(d[1].at);
    let logged: Vec<&str> = logs.lines().filter(|l| l.contains("resend_ms=")).filter_map(|l| l.split("resend_ms=").nth(1)?.split_whitespace().next()).collect();
    assert_eq!(logged.len(), 1, "one reconnect logged:\n{logs}");
    eprintln!(
        "drop -> new connection's check POST: {} ms; drop -> new stream POST (headers + last two fragments): {} ms; fieldcast's failure -> resent: {} ms",
        reconnect.as_millis(),
        resend.as_millis(),
        logged[0]
    );
}

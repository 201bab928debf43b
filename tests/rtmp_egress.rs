//! End-to-end tests of the RTMP egress alone: real H.264/AAC from a tiny
//! GStreamer pipeline, published to a private nginx-rtmp, judged by ffprobe.

mod common;

use common::ffprobe::{self, Packet, num, stream_of};
use common::nginx::{Nginx, NginxOptions, stream_module_available};
use common::source::{SourceSpec, TestSource};
use common::wait_for_async;
use fieldcast::egress::MediaSender;
use fieldcast::backoff::Backoff;
use fieldcast::config::{Secret, Target};
use fieldcast::egress::rtmp::{self, RtmpPlan};
use fieldcast::egress::{EgressState, EgressStatus};
use fieldcast::config::url::RtmpUrl;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tokio::task::JoinHandle;

const FRAME_S: f64 = 1.0 / 30.0;

fn target(label: &str, url: &str, stream_name: &str, spec: &SourceSpec) -> RtmpPlan {
    let (destination, rung) = label.split_once('/').expect("label is destination/rung");
    RtmpPlan {
        endpoint: fieldcast::egress::failover::Endpoint::Primary,
        destination: destination.to_owned(),
        rung: rung.to_owned(),
        label: label.to_owned(),
        url: RtmpUrl::parse(url).expect("test URL"),
        stream_name: Secret::new(stream_name),
        stream_name_redacted: "***".to_owned(),
        target: Target::Any,
        metadata: spec.metadata(),
        backoff: Backoff { initial: Duration::from_millis(250), max: Duration::from_secs(2) },
        connect_timeout: Duration::from_secs(5),
        ca_file: None,
    }
}

/// A publisher for `target`, with the sender the source will feed.
fn egress(target: RtmpPlan) -> (MediaSender, JoinHandle<()>, watch::Receiver<EgressStatus>) {
    let (tx, rx) = MediaSender::channel(256);
    // One publish is its destination's only member: it never waits for others.
    let member = fieldcast::egress::resume::ResumeGate::default().member();
    let (task, status) = rtmp::spawn(target, rx, member, None);
    (tx, task, status)
}

/// Waits until the status satisfies `condition`, failing with the last status.
async fn until(
    status: &watch::Receiver<EgressStatus>,
    timeout: Duration,
    what: &str,
    condition: impl Fn(&EgressStatus) -> bool,
) {
    let ok = wait_for_async(timeout, || condition(&status.borrow())).await;
    assert!(ok, "timed out waiting for {what}; status: {:#?}", *status.borrow());
}

/// Stops the source (closing the channel) and waits for the egress to finish.
async fn finish(source: TestSource, task: JoinHandle<()>, status: &watch::Receiver<EgressStatus>) -> EgressStatus {
    source.stop();
    tokio::time::timeout(Duration::from_secs(10), task).await.expect("egress ends").expect("egress task");
    let status = status.borrow().clone();
    assert_eq!(status.state, EgressState::Stopped);
    status
}

async fn live_packets(url: String, count: usize) -> Vec<(String, Packet)> {
    tokio::task::spawn_blocking(move || ffprobe::live_packets(&url, count)).await.unwrap()
}

fn assert_strictly_increasing(packets: &[Packet], what: &str) {
    for pair in packets.windows(2) {
        assert!(pair[1].dts > pair[0].dts, "{what}: dts {} after {}", pair[1].dts, pair[0].dts);
    }
}

/// A recording that decodes cleanly, starts with a keyframe (audio not
/// before it) and has strictly increasing timestamps.
fn assert_clean_recording(file: &Path) -> (Vec<Packet>, Vec<Packet>) {
    let video = ffprobe::video_packets(file);
    let audio = ffprobe::audio_packets(file);
    assert!(
        !video.is_empty() && !audio.is_empty(),
        "{}: {} video, {} audio packets",
        file.display(),
        video.len(),
        audio.len()
    );
    assert!(video[0].keyframe, "{}: first video packet is not a keyframe", file.display());
    assert!(audio[0].pts >= video[0].pts - 0.001, "audio at {} starts before video at {}", audio[0].pts, video[0].pts);
    assert_strictly_increasing(&video, "video");
    assert_strictly_increasing(&audio, "audio");
    assert_eq!(ffprobe::decode_errors(file), "", "decode errors in {}", file.display());
    (video, audio)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishes_metadata_headers_and_media_that_nginx_records() {
    let nginx = Nginx::start();
    let spec = SourceSpec::default();
    let (tx, task, status) = egress(target("primary/240p", &nginx.rtmp_url("live"), "rung0", &spec));
    let source = TestSource::start(&spec, vec![tx]);
    until(&status, Duration::from_secs(15), "3 s of video", |s| s.video_frames_sent >= 90).await;
    let status = finish(source, task, &status).await;

    assert_eq!((status.reconnects, status.last_error.as_deref()), (0, None));
    assert!(status.bytes_sent > 30_000, "{status:#?}");
    let file = nginx.recording("rung0");
    let streams = ffprobe::streams(file.to_str().unwrap());
    let video = stream_of(&streams, "video");
    assert_eq!((video["codec_name"].as_str(), video["pix_fmt"].as_str()), (Some("h264"), Some("yuv420p")));
    assert_eq!((video["width"].as_u64(), video["height"].as_u64()), (Some(320), Some(240)));
    assert!(num(&video["extradata_size"]) > 0.0, "AVC sequence header reached the recording");
    let audio = stream_of(&streams, "audio");
    assert_eq!((audio["codec_name"].as_str(), audio["profile"].as_str()), (Some("aac"), Some("LC")));
    assert_eq!((num(&audio["sample_rate"]), audio["channels"].as_u64()), (48_000.0, Some(2)));

    let (video, audio) = assert_clean_recording(&file);
    // deleteStream after the last frame: nothing sent was lost.
    assert_eq!(video.len() as u64, status.video_frames_sent);
    assert_eq!(audio.len() as u64, status.audio_frames_sent);
    let keyframes: Vec<usize> = video.iter().enumerate().filter(|(_, p)| p.keyframe).map(|(i, _)| i).collect();
    assert!(keyframes.len() >= 3 && keyframes.iter().all(|i| i % 30 == 0), "keyframes at {keyframes:?}");
    let span = video.last().unwrap().dts - video[0].dts + FRAME_S;
    let fps = video.len() as f64 / span;
    assert!((fps - 30.0).abs() < 0.5, "{fps} fps");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn onmetadata_declares_truthful_bitrates() {
    let nginx = Nginx::start();
    let spec = SourceSpec { video_kbps: 500, ..SourceSpec::default() };
    let (tx, task, status) = egress(target("primary/240p", &nginx.rtmp_url("live"), "rung0", &spec));
    let source = TestSource::start(&spec, vec![tx]);
    until(&status, Duration::from_secs(15), "publishing", |s| s.video_frames_sent >= 15).await;

    // What a player joining the live stream is told (flvdec: kbps x 1024).
    let url = format!("{}/rung0", nginx.rtmp_url("live"));
    let streams = tokio::task::spawn_blocking(move || ffprobe::streams(&url)).await.unwrap();
    let video = stream_of(&streams, "video");
    assert_eq!(num(&video["bit_rate"]), 500.0 * 1024.0, "videodatarate");
    assert_eq!((video["width"].as_u64(), video["height"].as_u64()), (Some(320), Some(240)));
    assert_eq!(video["avg_frame_rate"].as_str(), Some("30/1"), "framerate");
    let audio = stream_of(&streams, "audio");
    assert_eq!(num(&audio["bit_rate"]), 128.0 * 1024.0, "audiodatarate");

    until(&status, Duration::from_secs(15), "5 s of video", |s| s.video_frames_sent >= 150).await;
    finish(source, task, &status).await;
    // Truthful: what was sent is within 2x of what was declared (the channel's rule).
    let file = nginx.recording("rung0");
    let video_bps = ffprobe::measured_bitrate(&ffprobe::video_packets(&file), FRAME_S);
    let audio_bps = ffprobe::measured_bitrate(&ffprobe::audio_packets(&file), 1024.0 / 48_000.0);
    assert!((250_000.0..1_000_000.0).contains(&video_bps), "video measured {video_bps} b/s, declared 500 kb/s");
    assert!((64_000.0..256_000.0).contains(&audio_bps), "audio measured {audio_bps} b/s, declared 128 kb/s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnects_after_the_server_restarts_and_resumes_at_a_keyframe_on_the_same_timeline() {
    let mut nginx = Nginx::start_with(NginxOptions { file_per_publish: true, ..NginxOptions::default() });
    let spec = SourceSpec::default();
    let (tx, task, status) = egress(target("primary/240p", &nginx.rtmp_url("live"), "rung0", &spec));
    let source_started = Instant::now();
    let source = TestSource::start(&spec, vec![tx]);
    let live_url = format!("{}/rung0", nginx.rtmp_url("live"));
    until(&status, Duration::from_secs(15), "2 s of video", |s| s.video_frames_sent >= 60).await;
    // A joining subscriber gets video from the next keyframe (GOP 1 s): read enough.
    let before = live_packets(live_url.clone(), 80).await;
    let probed_before = Instant::now();

    // Outage: the server goes away for 4 s.
    tokio::task::block_in_place(|| nginx.stop());
    let down = Instant::now();
    until(&status, Duration::from_secs(5), "the drop to be noticed", |s| s.state == EgressState::Reconnecting).await;
    let sent_before = status.borrow().video_frames_sent;
    tokio::time::sleep(Duration::from_secs(4).saturating_sub(down.elapsed())).await;
    tokio::task::block_in_place(|| nginx.restart());
    let outage = down.elapsed().as_secs_f64();
    until(&status, Duration::from_secs(10), "publishing again", |s| s.state == EgressState::Publishing).await;

    let probed_after = Instant::now();
    let after = live_packets(live_url, 80).await;
    until(&status, Duration::from_secs(15), "2 s more video", |s| s.video_frames_sent >= sent_before + 60).await;
    let status = finish(source, task, &status).await;
    assert!(status.reconnects >= 1 && status.last_error.is_some(), "{status:#?}");

    // Same timeline: timestamps are the pipeline's running time, which ran on
    // with the wall clock through the outage. A reset would restart near 0; a
    // replayed backlog would resume less than `outage` after the last frame.
    let video = |packets: &[(String, Packet)]| -> Vec<f64> {
        packets.iter().filter(|(kind, _)| kind == "video").map(|(_, p)| p.dts).collect()
    };
    let (before, after) = (video(&before), video(&after));
    assert!(!before.is_empty() && !after.is_empty(), "video on the live stream: {before:?} {after:?}");
    let last_before = before.iter().copied().fold(f64::MIN, f64::max);
    let first_after = after.iter().copied().fold(f64::MAX, f64::min);
    let running_before = (probed_before - source_started).as_secs_f64();
    let running_after = (probed_after - source_started).as_secs_f64();
    println!(
        "outage {outage:.3} s; live video up to {last_before:.3} s at running time {running_before:.3} s, \
         again from {first_after:.3} s at {running_after:.3} s"
    );
    assert!(
        first_after - last_before > outage,
        "resumed {:.3} s after the last frame, outage {outage:.3} s",
        first_after - last_before
    );
    assert!(
        (running_before - 1.0..running_before + 0.5).contains(&last_before),
        "before the outage: {last_before:.3} s"
    );
    // A joining subscriber's video starts at the next keyframe: up to one GOP (1 s) later.
    assert!((running_after - 0.5..running_after + 1.5).contains(&first_after), "after the outage: {first_after:.3} s");

    // One recording per publish (nginx rebases each to 0): both clean, the
    // second starting at a keyframe, holding every frame sent after the reconnect.
    let files = nginx.recordings("rung0");
    assert_eq!(files.len(), 2, "{files:?}");
    let (video1, _) = assert_clean_recording(&files[0]);
    assert!(video1.len() as u64 <= sent_before && video1.len() as u64 + 30 > sent_before);
    let (video2, _) = assert_clean_recording(&files[1]);
    assert_eq!(video2.len() as u64, status.video_frames_sent - sent_before, "frames recorded after the reconnect");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_stream_name_is_reported_and_retried_until_it_is_free() {
    let nginx = Nginx::start();
    let spec = SourceSpec::default();
    let url = nginx.rtmp_url("live");
    let (tx1, task1, status1) = egress(target("primary/240p", &url, "taken", &spec));
    let (tx2, task2, status2) = egress(target("backup/240p", &url, "taken", &spec));
    let source = TestSource::start(&spec, vec![tx1, tx2]);
    let someone_publishes = wait_for_async(Duration::from_secs(15), || {
        status1.borrow().video_frames_sent >= 30 || status2.borrow().video_frames_sent >= 30
    })
    .await;
    assert!(someone_publishes, "{:#?} {:#?}", *status1.borrow(), *status2.borrow());
    // Whichever got the name first keeps it; the other is refused.
    let ((winner, _), (loser_task, loser)) = if status1.borrow().video_frames_sent > 0 {
        ((task1, status1), (task2, status2))
    } else {
        ((task2, status2), (task1, status1))
    };
    until(&loser, Duration::from_secs(10), "repeated refusals", |s| s.reconnects >= 2).await;
    {
        let refused = loser.borrow();
        assert_ne!(refused.state, EgressState::Publishing);
        assert_eq!(refused.video_frames_sent, 0);
        let error = refused.last_error.as_deref().unwrap_or("");
        assert!(error.contains("NetStream.Publish.BadName"), "{error}");
    }
    // The name frees up (the first publisher dies): the other takes over.
    winner.abort();
    until(&loser, Duration::from_secs(10), "the take-over", |s| s.video_frames_sent >= 30).await;
    finish(source, loser_task, &loser).await;
}

/// Collects everything the tracing subscriber writes.
#[derive(Clone, Default)]
struct LogBuffer(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

// current_thread: the egress tasks run on this thread, under its log subscriber.
#[tokio::test(flavor = "current_thread")]
async fn secrets_never_reach_the_logs_or_status() {
    let logs = LogBuffer::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    // Every secret holds "S3CRET": query token, AMS path token, stream keys.
    let nginx =
        Nginx::start_with(NginxOptions { extra_apps: vec!["live/S3CRET-TOKEN".into()], ..NginxOptions::default() });
    let spec = SourceSpec::default();
    let down_port = common::free_port();
    let targets = [
        target("query/240p", &nginx.rtmp_url("live?token=S3CRET-QUERY"), "key-S3CRET-A", &spec),
        target("path/240p", &nginx.rtmp_url("live/S3CRET-TOKEN"), "S3CRET-B", &spec),
        target("refused/240p", &nginx.rtmp_url("live/S3CRET-WRONG"), "S3CRET-C", &spec),
        target("down/240p", &format!("rtmp://127.0.0.1:{down_port}/live/S3CRET-DOWN"), "S3CRET-D", &spec),
    ];
    let debug_shown: String = targets.iter().map(|t| format!("{t:?}")).collect();
    let (mut senders, mut egresses) = (Vec::new(), Vec::new());
    for t in targets {
        let (tx, task, status) = egress(t);
        senders.push(tx);
        egresses.push((task, status));
    }
    let source = TestSource::start(&spec, senders);
    until(&egresses[0].1, Duration::from_secs(15), "query publish", |s| s.video_frames_sent >= 30).await;
    until(&egresses[1].1, Duration::from_secs(15), "path publish", |s| s.video_frames_sent >= 30).await;
    until(&egresses[2].1, Duration::from_secs(10), "refusals", |s| s.reconnects >= 2).await;
    until(&egresses[3].1, Duration::from_secs(10), "connect failures", |s| s.reconnects >= 2).await;
    source.stop();
    let mut statuses = String::new();
    for (task, status) in egresses {
        tokio::time::timeout(Duration::from_secs(10), task).await.unwrap().unwrap();
        statuses.push_str(&serde_json::to_string(&*status.borrow()).unwrap());
    }

    // The secrets were really used: nginx recorded under the secret names.
    assert!(nginx.recording("key-S3CRET-A").exists() && nginx.recording("S3CRET-B").exists());
    let logs = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(logs.contains("publish failed; reconnecting") && logs.contains("refused/240p"), "logs captured:\n{logs}");
    assert!(logs.contains(&format!("rtmp://127.0.0.1:{}/live/***", nginx.rtmp_port)), "redacted URL shown:\n{logs}");
    assert!(statuses.contains("after connect"), "the refusal is reported: {statuses}");
    for (what, text) in [("logs", &logs), ("status", &statuses), ("Debug", &debug_shown)] {
        assert!(!text.contains("S3CRET"), "a secret reached the {what}:\n{text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishes_over_rtmps_to_a_server_signed_by_the_configured_ca() {
    if !stream_module_available() {
        eprintln!(
            "SKIPPED: no RTMPS front possible: nginx stream module missing (apt-get install libnginx-mod-stream)"
        );
        return;
    }
    let nginx = Nginx::start_with(NginxOptions { rtmps: true, ..NginxOptions::default() });
    let spec = SourceSpec::default();
    let url = nginx.rtmps_url("live");
    let trusted = RtmpPlan { ca_file: Some(nginx.ca_file()), ..target("tls/240p", &url, "secure", &spec) };
    let (tx1, task1, status1) = egress(trusted);
    let (tx2, task2, status2) = egress(target("untrusted/240p", &url, "untrusted", &spec));
    let source = TestSource::start(&spec, vec![tx1, tx2]);
    until(&status1, Duration::from_secs(15), "2 s of video over TLS", |s| s.video_frames_sent >= 60).await;
    until(&status2, Duration::from_secs(10), "the certificate refusal", |s| s.reconnects >= 1).await;
    source.stop();
    for task in [task1, task2] {
        tokio::time::timeout(Duration::from_secs(10), task).await.unwrap().unwrap();
    }

    let sent = status1.borrow().clone();
    let (video, _) = assert_clean_recording(&nginx.recording("secure"));
    assert_eq!(video.len() as u64, sent.video_frames_sent);
    let refused = status2.borrow().clone();
    assert_eq!(refused.video_frames_sent, 0);
    let error = refused.last_error.unwrap_or_default();
    assert!(error.contains("TLS handshake") && error.contains("certificate"), "{error}");
    assert!(!nginx.recording("untrusted").exists());
}

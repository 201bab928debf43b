//! Servers that bend the RTMP chunk protocol: a type 1, 2 or 3 chunk header
//! on a chunk stream that has had no type 0 yet. librtmp (ffmpeg) reads the
//! missing previous header as zeros; so must we. nginx-rtmp is the real
//! receiver behind a relay that rewrites its headers (tests/common/rtmp_relay.rs),
//! and ffprobe judges what nginx recorded.

mod common;

use common::ffprobe::{self, stream_of};
use common::nginx::Nginx;
use common::rtmp_relay::RtmpRelay;
use common::source::{SourceSpec, TestSource};
use common::wait_for_async;
use fieldcast::backoff::Backoff;
use fieldcast::config::url::RtmpUrl;
use fieldcast::config::{Secret, Target};
use fieldcast::egress::rtmp::{self, RtmpPlan};
use fieldcast::egress::{EgressState, MediaSender};
use std::time::Duration;

fn plan(url: &str, stream_name: &str, spec: &SourceSpec) -> RtmpPlan {
    RtmpPlan {
        endpoint: fieldcast::egress::failover::Endpoint::Primary,
        destination: "careless".to_owned(),
        rung: "240p".to_owned(),
        label: "careless/240p".to_owned(),
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishes_through_a_server_whose_first_chunk_headers_lack_a_type_0() {
    let nginx = Nginx::start();
    let relay = RtmpRelay::start(nginx.rtmp_port).await;
    let spec = SourceSpec::default();
    let (tx, rx) = MediaSender::channel(256);
    let member = fieldcast::egress::resume::ResumeGate::default().member();
    let (task, status) = rtmp::spawn(plan(&relay.url("live"), "careless", &spec), rx, member, None);
    let source = TestSource::start(&spec, vec![tx]);

    let sent = wait_for_async(Duration::from_secs(20), || status.borrow().video_frames_sent >= 90).await;
    assert!(sent, "no 3 s of video through the relay; status: {:#?}", *status.borrow());
    source.stop();
    tokio::time::timeout(Duration::from_secs(10), task).await.expect("egress ends").expect("egress task");
    let status = status.borrow().clone();
    assert_eq!(status.state, EgressState::Stopped);
    // The first connection worked: a refused header would have been an error and a retry.
    assert_eq!((status.reconnects, status.last_error.as_deref()), (0, None), "{status:#?}");

    let rewrites = relay.rewrites();
    println!("relay rewrote first headers: {rewrites:?}");
    assert!(
        rewrites.type1 >= 1 && rewrites.type2 >= 1 && rewrites.type3 >= 1,
        "the relay must have sent each kind of first header: {rewrites:?}"
    );

    let file = nginx.recording("careless");
    let streams = ffprobe::streams(file.to_str().unwrap());
    let video = stream_of(&streams, "video");
    assert_eq!(video["codec_name"].as_str(), Some("h264"));
    assert_eq!((video["width"].as_u64(), video["height"].as_u64()), (Some(320), Some(240)));
    assert_eq!(stream_of(&streams, "audio")["codec_name"].as_str(), Some("aac"));
    let packets = ffprobe::video_packets(&file);
    assert_eq!(packets.len() as u64, status.video_frames_sent, "every frame sent was recorded");
    assert!(packets[0].keyframe, "the recording starts at a keyframe");
    assert_eq!(ffprobe::decode_errors(&file), "", "decode errors in {}", file.display());
}

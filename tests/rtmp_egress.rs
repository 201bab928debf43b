//! End-to-end tests of the RTMP egress alone: real H.264/AAC from a tiny
//! GStreamer pipeline, published to a private nginx-rtmp, judged by ffprobe.

mod common;

use common::ffprobe::{self, Packet};
use common::nginx::{Nginx, NginxOptions};
use common::source::{SourceSpec, TestSource};
use common::wait_for_async;
use fieldcast::egress::MediaSender;
use fieldcast::egress::rtmp::{self, Backoff, EgressState, EgressStatus, PublishMetadata, RtmpTarget};
use fieldcast::egress::url::IngestUrl;
use std::time::Duration;
use tokio::sync::watch;

fn metadata(spec: &SourceSpec) -> PublishMetadata {
    PublishMetadata {
        width: spec.width,
        height: spec.height,
        framerate: spec.fps as f64,
        video_kbps: spec.video_kbps,
        audio_kbps: 128,
        audio_sample_rate: 48_000,
        audio_channels: 2,
    }
}

fn target(label: &str, url: &str, stream_name: &str, spec: &SourceSpec) -> RtmpTarget {
    RtmpTarget {
        label: label.to_owned(),
        url: IngestUrl::parse(url).expect("test URL"),
        stream_name: stream_name.to_owned(),
        metadata: metadata(spec),
        backoff: Backoff { initial: Duration::from_millis(250), max: Duration::from_secs(2) },
        connect_timeout: Duration::from_secs(5),
        ca_file: None,
    }
}

/// Waits until the status satisfies `condition`, failing with the last status.
async fn until(status: &watch::Receiver<EgressStatus>, timeout: Duration, what: &str, condition: impl Fn(&EgressStatus) -> bool) {
    let ok = wait_for_async(timeout, || condition(&status.borrow())).await;
    assert!(ok, "timed out waiting for {what}; status: {:#?}", *status.borrow());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explore() {
    let nginx = Nginx::start();
    let spec = SourceSpec::default();
    let mut statuses = vec![];
    let mut senders = vec![];
    for (i, (url, name)) in [(nginx.rtmp_url("live?token=S3CRET"), "key-S3CRET2"), (nginx.rtmp_url("live/S3CRET3"), "k-S3CRET4"), (nginx.rtmp_url("live"), "dup"), (nginx.rtmp_url("live"), "dup")].into_iter().enumerate() {
        let (tx, rx) = MediaSender::channel(256);
        let (_task, status) = rtmp::spawn(target(&format!("t/{i}"), &url, name, &spec), rx);
        statuses.push(status);
        senders.push(tx);
    }
    let source = TestSource::start(&spec, senders);
    tokio::time::sleep(Duration::from_secs(3)).await;
    for s in &statuses { println!("{:#?}", *s.borrow()); }
    let url = format!("{}/dup", nginx.rtmp_url("live"));
    let out = tokio::task::spawn_blocking(move || common::run_with_timeout(std::process::Command::new("ffprobe").args(["-v","error","-of","json","-show_streams", &url]), Duration::from_secs(20))).await.unwrap();
    println!("LIVE {}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    source.stop();
    println!("{}", nginx.error_log().lines().filter(|l| !l.contains("[info]") || l.contains("connect") || l.contains("publish")).collect::<Vec<_>>().join("\n"));
    println!("{:?}", std::fs::read_dir(nginx.recording("x").parent().unwrap()).unwrap().map(|e| e.unwrap().file_name()).collect::<Vec<_>>());
}

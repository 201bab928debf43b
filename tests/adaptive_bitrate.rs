//! Adaptive bitrate against a real congested uplink: nginx-rtmp in a
//! network namespace made by the test, behind a veth pair shaped with
//! `tc tbf` below the ladder's total. The whole ladder steps down
//! together, the channel keeps every rung (no reconnect, no frame
//! dropped), telemetry shows the factor; with the shaping lifted the
//! ladder climbs back to its targets. A receiver cut off altogether is
//! not congestion: it moves no rung of the outputs that still flow.

mod common;

use common::device::{Device, emulated, ladder_toml, small_ladder};
use common::mosquitto::Mosquitto;
use common::mqtt::Watcher;
use common::netns::Netns;
use common::{kill, wait_child, wait_for};
use nix::sys::signal::Signal;
use serde_json::Value;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(30);
const AUDIO_KBPS: u32 = 128;

/// nginx-rtmp inside `ns`, recording one file per publish.
struct NsNginx {
    child: Child,
    dir: tempfile::TempDir,
}

impl NsNginx {
    fn start(ns: &Netns) -> NsNginx {
        let dir = tempfile::Builder::new().prefix("fieldcast-nsnginx-").tempdir().unwrap();
        std::fs::create_dir(dir.path().join("record")).unwrap();
        let d = dir.path().display();
        let conf = format!(
            "load_module /usr/lib/nginx/modules/ngx_rtmp_module.so;\nuser root;\ndaemon off;\nmaster_process on;\n\
             worker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/error.log info;\nevents {{ worker_connections 64; }}\n\
             rtmp {{ server {{ listen {ip}:1935; chunk_size 4096;\n application live {{ live on; record all; \
             record_path {d}/record; record_unique on; }} }} }}\n",
            ip = ns.ns_ip
        );
        std::fs::write(dir.path().join("nginx.conf"), conf).unwrap();
        let child = ns
            .command("nginx")
            .arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(dir.path().join("nginx.conf"))
            .arg("-e")
            .arg(dir.path().join("error.log"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn nginx in the namespace");
        let addr: std::net::SocketAddr = format!("{}:1935", ns.ns_ip).parse().unwrap();
        let up = wait_for(Duration::from_secs(10), || std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok());
        assert!(up, "nginx did not start in the namespace: {}", std::fs::read_to_string(dir.path().join("error.log")).unwrap_or_default());
        NsNginx { child, dir }
    }

    fn recordings(&self, stream: &str) -> Vec<std::path::PathBuf> {
        let mut files: Vec<_> = std::fs::read_dir(self.dir.path().join("record"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with(&format!("{stream}-")))
            .collect();
        files.sort();
        files
    }
}

impl Drop for NsNginx {
    fn drop(&mut self) {
        kill(self.child.id(), Signal::SIGTERM);
        if !wait_child(&mut self.child, Duration::from_secs(3)) {
            kill(self.child.id(), Signal::SIGKILL);
            let _ = self.child.wait();
        }
    }
}

fn factor(t: &Value) -> f64 {
    t["ladder_factor"].as_f64().unwrap_or(f64::NAN)
}

#[test]
fn a_congested_uplink_steps_the_whole_ladder_down_keeps_every_rung_and_climbs_back_when_it_clears() {
    let ns = match Netns::create() {
        Ok(ns) => ns,
        Err(why) => {
            eprintln!("SKIPPED: cannot make a network namespace on this machine ({why}); the policy is unit-tested in egress::adaptive");
            return;
        }
    };
    let nginx = NsNginx::start(&ns);
    let mosquitto = Mosquitto::start();
    let dir = tempfile::tempdir().unwrap();
    let ladder = small_ladder();
    let video: u32 = ladder.iter().map(|r| r.3).sum();
    let audio = AUDIO_KBPS * ladder.len() as u32;
    // Room for the audio and about half the video (plus RTMP/TCP overhead):
    // the ladder must step down at least twice to fit.
    let link = (audio + video / 2) * 21 / 20;
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "device_id = \"cam\"\nstate_dir = \"{}\"\n{}gop_seconds = 1\n[audio]\nbitrate_kbps = {AUDIO_KBPS}\n\
             [recording]\nenabled = false\n[[destination]]\nurl = \"rtmp://{}:1935/live\"\nstream = \"{{rung}}\"\n\
             [mqtt]\nbroker = \"{}\"\nautostart = true\ntelemetry_seconds = 1\n",
            dir.path().join("state").display(),
            ladder_toml(),
            ns.ns_ip,
            mosquitto.url()
        ),
    )
    .unwrap();
    let dash = Watcher::connect(&mosquitto.url(), None, None, "fieldcast/cam/#");
    let mut device = Device::spawn(&config, &dir.path().join("fieldcast.log"));
    let telemetry = "fieldcast/cam/telemetry";
    let connected = |t: &Value| {
        t["destinations"].as_array().is_some_and(|d| d.len() == ladder.len() && d.iter().all(|d| d["state"] == "connected"))
    };
    let steady = dash.wait_json(T, telemetry, |t| connected(t) && factor(t) == 1.0 && t["destinations"][0]["video_frames_sent"].as_u64() > Some(30));
    let steady = steady.unwrap_or_else(|| panic!("never live at the targets: {}", device.log_text()));
    // What a publish discards before its first keyframe; nothing more may go.
    let dropped_at_start: Vec<u64> = steady["destinations"].as_array().unwrap().iter().map(|d| d["frames_dropped"].as_u64().unwrap()).collect();
    std::thread::sleep(Duration::from_secs(2));

    // Congestion: the uplink below the ladder's total.
    dash.clear();
    ns.shape(link).expect("shape the link");
    let (shaped, shaped_at) = (Instant::now(), std::time::SystemTime::now());
    let down = dash.wait_json(T, telemetry, |t| factor(t) < 1.0);
    let down = down.unwrap_or_else(|| panic!("the ladder never stepped down under a {link} kbit/s link: {}", device.log_text()));
    let stepped_after = shaped.elapsed();
    eprintln!("congestion ({link} kbit/s for {video} + {audio} kbit/s) -> ladder stepped down, seen in telemetry after {stepped_after:?}: factor {}", factor(&down));
    // Every rung together, by one factor.
    for r in down["rungs"].as_array().unwrap() {
        let expect = r["target_kbps"].as_f64().unwrap() * factor(&down);
        assert!((r["current_kbps"].as_f64().unwrap() - expect).abs() <= 1.0 + expect * 0.01, "{r} at factor {}", factor(&down));
    }
    // Stays down while the link is congested (a climb the link cannot
    // carry is sent down again), never below min_ratio, every output up.
    dash.clear();
    std::thread::sleep(Duration::from_secs(8));
    let shaped_samples: Vec<Value> = dash.on(telemetry).iter().filter_map(|m| m.json()).collect();
    assert!(shaped_samples.len() >= 5, "{} telemetry messages in 8 s", shaped_samples.len());
    for t in &shaped_samples {
        assert!((0.25..=0.7).contains(&factor(t)), "factor {} under congestion: {t}", factor(t));
        assert!(connected(t), "an output went down under congestion: {t}");
    }
    let f = factor(shaped_samples.last().unwrap());
    // The channel keeps receiving every rung meanwhile.
    for (rung, ..) in ladder {
        let live = common::ffprobe::live_packets(&format!("rtmp://{}:1935/live/{rung}", ns.ns_ip), 200);
        let pictures = live.iter().filter(|(k, _)| k == "video").count();
        assert!(pictures >= 20, "{rung}: {pictures} pictures in {} packets at the channel under congestion: {}", live.len(), device.log_text());
    }

    // The link clears: back to the targets, 10% every 4 s.
    ns.unshape().expect("lift the shaping");
    let lifted = Instant::now();
    let back = dash.wait_json(Duration::from_secs(60), telemetry, |t| factor(t) == 1.0);
    assert!(back.is_some(), "never climbed back to the targets: {}", device.log_text());
    eprintln!("shaping lifted -> ladder back at its targets after {:?} (from {f})", lifted.elapsed());
    dash.clear();
    let last = dash.wait_json(T, telemetry, |_| true).unwrap();
    assert!(connected(&last), "{last}");
    for (d, before) in last["destinations"].as_array().unwrap().iter().zip(&dropped_at_start) {
        assert_eq!((d["reconnects"].as_u64(), d["frames_dropped"].as_u64()), (Some(0), Some(*before)), "{d}");
    }
    assert_eq!(device.stop().and_then(|s| s.code()), Some(0), "{}", device.log_text());
    eprintln!("shaped at {}", humantime::format_rfc3339_millis(shaped_at));
    for line in device.log_text().lines().filter(|l| l.contains("adaptive bitrate")) {
        eprintln!("{line}");
    }
    // One publish per rung, and every frame of it: the timeline has no hole.
    for (rung, ..) in ladder {
        let files = nginx.recordings(rung);
        assert_eq!(files.len(), 1, "{rung} was published again: {files:?}");
        let v = common::ffprobe::video_packets(&files[0]);
        let holes: Vec<(f64, f64)> = v.windows(2).filter(|w| w[1].dts - w[0].dts > 0.05).map(|w| (w[0].dts, w[1].dts)).collect();
        assert!(holes.is_empty() || emulated(), "{rung}: frames missing at the channel: {holes:?}");
        assert!(v.len() > 300, "{rung}: {} frames", v.len());
    }
}

#[test]
fn a_receiver_cut_off_mid_stream_moves_no_rung_of_the_outputs_that_still_flow() {
    let ns = match Netns::create() {
        Ok(ns) => ns,
        Err(why) => {
            eprintln!("SKIPPED: cannot make a network namespace on this machine ({why}); the policy is unit-tested in egress::adaptive");
            return;
        }
    };
    let far = NsNginx::start(&ns);
    let near = common::nginx::Nginx::start();
    let dir = tempfile::tempdir().unwrap();
    let ladder = small_ladder();
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "device_id = \"cam\"\nstate_dir = \"{}\"\n{}gop_seconds = 1\n[audio]\nbitrate_kbps = {AUDIO_KBPS}\n\
             [recording]\nenabled = false\n\
             [[destination]]\nname = \"near\"\nurl = \"{}\"\nstream = \"{{rung}}\"\n\
             [[destination]]\nname = \"far\"\nurl = \"rtmp://{}:1935/live\"\nstream = \"{{rung}}\"\n{}",
            dir.path().join("state").display(),
            ladder_toml(),
            near.rtmp_url("live"),
            ns.ns_ip,
            common::NO_HTTP,
        ),
    )
    .unwrap();
    let mut device = Device::spawn(&config, &dir.path().join("fieldcast.log"));
    let publishing = |log: &str, dest: &str| ladder.iter().all(|(rung, ..)| log.lines().any(|l| l.contains(&format!("egress={dest}/{rung}")) && l.contains("first video frame sent")));
    let up = wait_for(T, || publishing(&device.log_text(), "near") && publishing(&device.log_text(), "far"));
    assert!(up, "never live on both destinations: {}", device.log_text());
    std::thread::sleep(Duration::from_secs(3));

    // The far receiver's network drops off for 15 s: its TCP backlog grows,
    // nothing is acknowledged, until the output gives the connection up.
    ns.cut().expect("cut the link");
    let cut_at = Instant::now();
    std::thread::sleep(Duration::from_secs(15));
    ns.mend().expect("mend the link");
    let back = wait_for(T, || {
        device.log_text().lines().filter(|l| l.contains("egress=far/") && l.contains("first video frame sent")).count() > ladder.len()
    });
    eprintln!("far receiver cut for 15 s; published again {:?} after the cut: {back}", cut_at.elapsed());
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(device.stop().and_then(|s| s.code()), Some(0), "{}", device.log_text());
    let log = device.log_text();
    let moved: Vec<&str> = log.lines().filter(|l| l.contains("adaptive bitrate: the ladder at")).collect();
    assert!(moved.is_empty(), "a receiver cut off moved the whole ladder:\n{}", moved.join("\n"));
    assert!(log.lines().any(|l| l.contains("egress=far/") && l.contains("publish failed")), "the far output never noticed it was cut off: {log}");
    // The near channel: one publish per rung, every frame, at its target rate.
    for (rung, _, _, kbps) in ladder {
        let files = near.recordings(rung);
        assert_eq!(files.len(), 1, "{rung} was published again on the near channel: {files:?}\n{log}");
        let v = common::ffprobe::video_packets(&files[0]);
        let holes: Vec<(f64, f64)> = v.windows(2).filter(|w| w[1].dts - w[0].dts > 0.05).map(|w| (w[0].dts, w[1].dts)).collect();
        assert!(holes.is_empty() || emulated(), "{rung}: frames missing at the near channel: {holes:?}");
        let span = v.last().unwrap().dts - v[0].dts;
        let bytes: u64 = v.iter().map(|p| p.size).sum();
        let measured = bytes as f64 * 8.0 / span / 1000.0;
        eprintln!("near/{rung}: {} frames over {span:.1} s at {measured:.0} kbit/s (target {kbps})", v.len());
    }
    drop(far);
}

//! A failing recording is one output failing: the disk fills up (a small
//! tmpfs this test mounts), the recording stops alone and says why, the
//! publish to the channel goes on without a gap, and the recording comes
//! back by itself once there is room again, continuing the file numbering.
//! The disk guard stops (or rotates) the recording before the disk is full.

mod common;

use common::ffprobe::video_packets;
use common::nginx::{Nginx, NginxOptions};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    /// A tmpfs of `mib` MiB at `dir`, or `None` (with the reason) where this machine cannot mount one.
    fn mount(dir: &Path, mib: u32) -> Option<Tmpfs> {
        std::fs::create_dir_all(dir).unwrap();
        let out = Command::new("mount").args(["-t", "tmpfs", "-o", &format!("size={mib}m"), "tmpfs"]).arg(dir).output();
        match out {
            Ok(o) if o.status.success() => Some(Tmpfs(dir.to_path_buf())),
            Ok(o) => {
                eprintln!("SKIP: cannot mount a tmpfs here (needs root): {}", String::from_utf8_lossy(&o.stderr));
                None
            }
            Err(e) => {
                eprintln!("SKIP: no mount command: {e}");
                None
            }
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_stops_only_the_recording_which_comes_back_when_there_is_room_and_the_channel_sees_no_gap() {
    if common::device::emulated() {
        // Its timing (a disk that fills in ~4 s at 2 Mbit/s of snow, a gap-free
        // channel) needs a real-time encoder; under qemu-user x264 is not one.
        // The disk-guard tests below run here; this one runs natively.
        eprintln!("SKIP under qemu-aarch64: the encoder does not keep real time with this pattern; judged natively");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let disk = dir.path().join("disk");
    let Some(_tmpfs) = Tmpfs::mount(&disk, 6) else { return };
    // Leave about 1 MiB: a few seconds of a 2 Mbit/s rung.
    let filler = disk.join("filler");
    std::fs::write(&filler, vec![0u8; 5 * 1024 * 1024]).unwrap();
    let nginx = Nginx::start_with(NginxOptions { file_per_publish: true, ..Default::default() });
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[source]\nwidth = 640\nheight = 360\npattern = \"snow\"\n\
             [ladder]\ngop_seconds = 1\nrungs = [{{ name = \"360p\", width = 640, height = 360, bitrate_kbps = 2000 }}]\n\
             [recording]\nformat = \"mp4\"\nsegment_seconds = 2\nmin_free_mb = 0\ndir = \"{}\"\n\
             [egress]\nreconnect_initial_ms = 200\nreconnect_max_ms = 1000\n\
             [[destination]]\nurl = \"{}\"\nstream = \"{{rung}}\"\n",
            disk.join("rec").display(),
            nginx.rtmp_url("live"),
        ) + common::NO_HTTP,
    )
    .unwrap();
    let mut child = common::fieldcast_command()
        .args(["run", "--config", config.to_str().unwrap(), "--duration", "18"])
        .stderr(Stdio::piped())
        .spawn()
        .expect("run fieldcast");
    let log = Arc::new(Mutex::new(String::new()));
    let reader = {
        let (log, stderr) = (log.clone(), child.stderr.take().unwrap());
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let mut l = log.lock().unwrap();
                l.push_str(&line);
                l.push('\n');
            }
        })
    };
    const DEGRADED: &str = "state=\"degraded\" reason=\"recording: 360p: no space left on the device\"";
    let failed = common::wait_for(Duration::from_secs(15), || log.lock().unwrap().contains(DEGRADED));
    assert!(failed, "the disk filled up, but no degraded state named the recording:\n{}", log.lock().unwrap());
    // Room again: the recording must come back by itself.
    std::fs::remove_file(&filler).unwrap();
    assert!(common::wait_child(&mut child, Duration::from_secs(40)), "fieldcast did not stop");
    reader.join().unwrap();
    let status = child.wait().unwrap();
    let log = log.lock().unwrap().clone();
    assert_eq!(status.code(), Some(0), "{log}");

    // The state said so, naming the recording and why, then recovered.
    let degraded_at = log.find(DEGRADED).unwrap();
    assert!(log[degraded_at..].contains("state=\"live\""), "the state never went back to live:\n{log}");
    assert!(log.contains("retrying the recording"), "{log}");
    assert!(!log.contains("pipeline failed"), "the encoding pipeline noticed the disk:\n{log}");

    // The channel saw one publish with no gap in its timeline.
    let published = nginx.recordings("360p");
    assert_eq!(published.len(), 1, "the publish restarted: {published:?}\n{log}");
    let v = video_packets(&published[0]);
    let span = v.last().unwrap().dts - v[0].dts;
    assert!(span > 15.0, "the channel got only {span} s of 18:\n{log}");
    let worst = v.windows(2).map(|w| w[1].dts - w[0].dts).fold(0.0, f64::max);
    // Under qemu-aarch64 the snow pattern's encoder falls behind real time
    // and the publish's channel drops to the next keyframe (at most a GOP),
    // whatever the disk does; natively not a frame may go missing.
    let allowed = if common::device::emulated() { 1.5 } else { 0.1 };
    assert!(worst < allowed, "a {worst} s gap in the channel's timeline");
    let expected = (span * 30.0).round() as usize + 1;
    if common::device::emulated() {
        eprintln!("MEASURED under emulation: longest step {worst} s, {} of {expected} frames", v.len());
    } else {
        assert!(v.len() + 3 >= expected, "{} frames over {span} s: frames were lost", v.len());
    }

    // Files from before the failure are kept; new ones follow, numbered on, starting on a keyframe.
    let session = std::fs::read_dir(disk.join("rec")).unwrap().next().expect("a session folder").unwrap().path();
    let mut names: Vec<String> =
        std::fs::read_dir(&session).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    assert!(names.len() >= 3, "{names:?}");
    assert_eq!(names[0], "360p-00000.mp4", "{names:?}");
    let unique: std::collections::BTreeSet<_> = names.iter().collect();
    assert_eq!(unique.len(), names.len());
    let last_whole = session.join(&names[names.len() - 1]);
    let v = video_packets(&last_whole);
    assert!(v.first().is_some_and(|p| p.keyframe), "{}: does not start on a keyframe", last_whole.display());
    assert!(v.len() > 10, "{}: {} frames", last_whole.display(), v.len());
}

/// Runs a 640x360 rung at 3 Mbit/s for `seconds`, recording into `disk`
/// with the given `[recording]` extra lines; returns the log.
fn run_recording(disk: &Path, nginx: &Nginx, extra: &str, seconds: &str) -> String {
    let dir = disk.parent().unwrap();
    let config = dir.join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[source]\nwidth = 640\nheight = 360\npattern = \"ball\"\n\
             [ladder]\ngop_seconds = 1\nrungs = [{{ name = \"360p\", width = 640, height = 360, bitrate_kbps = 3000 }}]\n\
             [recording]\nformat = \"mp4\"\nsegment_seconds = 2\ndir = \"{}\"\n{extra}\n\
             [[destination]]\nurl = \"{}\"\nstream = \"{{rung}}\"\n",
            disk.join("rec").display(),
            nginx.rtmp_url("live"),
        ) + common::NO_HTTP,
    )
    .unwrap();
    let out = common::run_with_timeout(
        common::fieldcast_command().args(["run", "--config", config.to_str().unwrap(), "--duration", seconds]).env("FIELDCAST_LOG", "info"),
        Duration::from_secs(60),
    );
    let log = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(0), "{log}");
    log
}

fn free_bytes(path: &Path) -> u64 {
    let s = nix::sys::statvfs::statvfs(path).unwrap();
    s.blocks_available() as u64 * s.fragment_size() as u64
}

/// The channel saw one publish with no gap.
fn assert_channel_whole(nginx: &Nginx, log: &str) {
    let published = nginx.recordings("360p");
    assert_eq!(published.len(), 1, "the publish restarted: {published:?}\n{log}");
    let v = video_packets(&published[0]);
    let worst = v.windows(2).map(|w| w[1].dts - w[0].dts).fold(0.0, f64::max);
    assert!(worst < 0.1, "a {worst} s gap in the channel's timeline");
}

fn segment_names(disk: &Path) -> Vec<String> {
    let session = std::fs::read_dir(disk.join("rec")).unwrap().next().expect("a session folder").unwrap().path();
    let mut names: Vec<String> = std::fs::read_dir(&session).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    names
}

#[test]
fn the_disk_guard_stops_the_recording_before_the_disk_is_full_and_the_channel_sees_no_gap() {
    let dir = tempfile::tempdir().unwrap();
    let disk = dir.path().join("disk");
    let Some(_tmpfs) = Tmpfs::mount(&disk, 10) else { return };
    let nginx = Nginx::start_with(NginxOptions { file_per_publish: true, ..Default::default() });
    // 10 MiB, 375 kB/s of media: the 6 MB floor is reached after about 12 s.
    let log = run_recording(&disk, &nginx, "min_free_mb = 6", "20");
    assert!(
        log.contains("state=\"degraded\" reason=\"recording: 360p: stopped: under 6 MB free on the disk\""),
        "the guard did not say it stopped the recording:\n{log}"
    );
    assert!(!log.contains("no space left"), "the disk filled up despite the guard:\n{log}");
    assert!(free_bytes(&disk) >= 5_000_000, "{} bytes left", free_bytes(&disk));
    assert_channel_whole(&nginx, &log);
    // What was recorded before the guard stopped it is whole and decodable.
    let names = segment_names(&disk);
    assert!(names.len() >= 2, "{names:?}");
}

#[test]
fn with_rotation_the_disk_guard_deletes_the_oldest_segments_and_recording_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let disk = dir.path().join("disk");
    let Some(_tmpfs) = Tmpfs::mount(&disk, 10) else { return };
    let nginx = Nginx::start_with(NginxOptions { file_per_publish: true, ..Default::default() });
    let log = run_recording(&disk, &nginx, "min_free_mb = 6\nrotate = true", "24");
    assert!(!log.contains("reason=\"recording"), "rotation should keep the recording going:\n{log}");
    assert!(!log.contains("no space left"), "{log}");
    assert!(log.contains("disk guard: deleted the oldest segments"), "{log}");
    let names = segment_names(&disk);
    assert!(!names.contains(&"360p-00000.mp4".to_string()), "the oldest segment is still there: {names:?}");
    let last: u32 = names.last().unwrap()[5..10].parse().unwrap();
    assert!(last >= 9, "recording did not go on to the end (last segment {last}): {names:?}");
    assert!(free_bytes(&disk) >= 5_000_000, "{} bytes left", free_bytes(&disk));
    assert_channel_whole(&nginx, &log);
}

//! `GET /metrics`: the status snapshot in the Prometheus / OpenMetrics text
//! format (prometheus-client's encoder), built from the same snapshot MQTT
//! telemetry publishes, at each scrape. Names carry their units
//! (`_bits_per_second`, `_bytes`, `_seconds`, `_celsius`, `_ratio`);
//! counters end in `_total` and start again from 0 when the session
//! restarts (Prometheus treats that as a counter reset). Labels are rung,
//! destination and endpoint names; never a URL, a stream name or a key.

use crate::status::wire::{OutputState, OutputWarning, RecordingState};
use crate::status::{Snapshot, StateName};
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;

/// The media type of the exposition.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

type Labels = Vec<(&'static str, String)>;
type GaugeF = Gauge<f64, AtomicU64>;

/// Every state the box can be in (`offline` is never said by the box itself).
const STATES: &[StateName] =
    &[StateName::Idle, StateName::Starting, StateName::Live, StateName::Degraded, StateName::Stopping, StateName::Error];

/// A registry being filled: one family per metric.
struct Builder {
    registry: Registry,
}

impl Builder {
    fn gauge(&mut self, name: &str, help: &str) -> Family<Labels, GaugeF> {
        let f = Family::<Labels, GaugeF>::default();
        self.registry.register(name, help, f.clone());
        f
    }
    fn counter(&mut self, name: &str, help: &str) -> Family<Labels, Counter> {
        let f = Family::<Labels, Counter>::default();
        self.registry.register(name, help, f.clone());
        f
    }
}

fn set(f: &Family<Labels, GaugeF>, labels: Labels, v: f64) {
    f.get_or_create(&labels).set(v);
}

fn count(f: &Family<Labels, Counter>, labels: Labels, v: u64) {
    f.get_or_create(&labels).inc_by(v);
}

fn bool01(b: bool) -> f64 {
    if b { 1.0 } else { 0.0 }
}

/// The exposition of `snapshot` (`None`: before the first one; only the box's state families, empty).
pub fn render(snapshot: Option<&Snapshot>) -> String {
    let mut b = Builder { registry: Registry::with_prefix("fieldcast") };
    let state = b.gauge("state", "1 for the state the box is in (idle, starting, live, degraded, stopping, error), else 0");
    let uptime = b.gauge("uptime_seconds", "Seconds since the daemon started");
    let signal = b.gauge("input_signal", "1 while frames arrive from the real input, 0 while it is lost");
    let slate = b.gauge("input_slate", "1 while the slate is on the air");
    let input_fps = b.gauge("input_frames_per_second", "Frames captured per second over the last tick");
    let captured = b.counter("input_frames_captured", "Frames captured from the input this session");
    let repeated = b.counter("input_frames_repeated", "Output frame slots that repeated the previous frame this session");
    let skipped = b.counter("input_frames_skipped", "Captured frames never sent (the capture ran ahead) this session");
    let slate_frames = b.counter("input_slate_frames", "Output frames that were the slate this session");
    let audio = b.gauge("audio_level_dbfs", "Audio on the air over the last second per channel: kind=peak (loudest sample) or rms, in dBFS (-100: silence)");
    let bitrate = b.gauge("rung_bitrate_bits_per_second", "Encoded bitrate of a rung measured over the last tick");
    let target = b.gauge("rung_target_bits_per_second", "Configured bitrate of a rung");
    let fps = b.gauge("rung_frames_per_second", "Encoded frames per second of a rung over the last tick");
    let frames = b.counter("rung_frames", "Frames encoded by a rung this session");
    let bytes = b.counter("rung_bytes", "Bytes encoded by a rung this session");
    let keyframes = b.counter("rung_keyframes", "Keyframes encoded by a rung this session");
    let rung_dropped = b.counter("rung_frames_dropped", "Frames of a rung discarded by its outputs this session");
    let up = b.gauge("output_up", "1 while an output (destination, rung, endpoint) is connected and sending, else 0");
    let standby = b.gauge("output_standby", "1 while an output waits as a failover standby");
    let standby_down =
        b.gauge("output_standby_down", "1 while a failover standby output's endpoint failed its last probe (a warning), else 0");
    let sent = b.counter("output_sent_bytes", "Bytes an output sent this session");
    let video_sent = b.counter("output_video_frames_sent", "Video frames an output sent this session");
    let reconnects = b.counter("output_reconnects", "Reconnects of an output this session");
    let out_dropped = b.counter("output_frames_dropped", "Frames an output discarded (backlog or reconnect) this session");
    let rec_up = b.gauge("recording_up", "1 while a rung is being recorded, else 0");
    let rec_failures = b.counter("recording_failures", "Recording failures of a rung this session");
    let cpu = b.gauge("process_cpu_cores", "CPU used by this process over the last sample, in cores (1.0 = one core busy)");
    let sys_cpu = b.gauge("system_cpu_ratio", "CPU used by the whole machine over the last sample, 0..1 of all cores");
    let rss = b.gauge("process_resident_memory_bytes", "Resident memory of this process");
    let mem_avail = b.gauge("system_memory_available_bytes", "Memory available on the machine");
    let mem_total = b.gauge("system_memory_total_bytes", "Memory of the machine");
    let temp = b.gauge("temperature_celsius", "The hottest thermal zone");
    let disk_free = b.gauge("disk_free_bytes", "Free space on the filesystem holding the recordings");
    let disk_total = b.gauge("disk_total_bytes", "Size of the filesystem holding the recordings");
    if let Some(s) = snapshot {
        for st in STATES {
            set(&state, vec![("state", st.as_str().to_string())], bool01(s.state == *st));
        }
        set(&uptime, vec![], s.uptime_s);
        if let Some(i) = &s.input {
            set(&signal, vec![], bool01(i.signal));
            set(&slate, vec![], bool01(i.slate));
            set(&input_fps, vec![], i.fps);
            count(&captured, vec![], i.frames_captured);
            count(&repeated, vec![], i.frames_repeated);
            count(&skipped, vec![], i.frames_skipped);
            count(&slate_frames, vec![], i.slate_frames);
            for a in &i.audio {
                set(&audio, vec![("channel", a.channel.to_string()), ("kind", "peak".into())], a.peak_dbfs);
                set(&audio, vec![("channel", a.channel.to_string()), ("kind", "rms".into())], a.rms_dbfs);
            }
        }
        for r in &s.rungs {
            let l = || vec![("rung", r.name.clone())];
            set(&bitrate, l(), r.bitrate_kbps * 1000.0);
            set(&target, l(), r.target_kbps as f64 * 1000.0);
            set(&fps, l(), r.fps);
            count(&frames, l(), r.frames);
            count(&bytes, l(), r.bytes);
            count(&keyframes, l(), r.keyframes);
            count(&rung_dropped, l(), r.frames_dropped);
        }
        for d in &s.destinations {
            let l = || vec![("destination", d.name.clone()), ("rung", d.rung.clone()), ("endpoint", d.endpoint.clone())];
            set(&up, l(), bool01(d.state == OutputState::Connected));
            set(&standby, l(), bool01(d.state == OutputState::Standby));
            set(&standby_down, l(), bool01(d.warning == Some(OutputWarning::StandbyDown)));
            count(&sent, l(), d.bytes_sent);
            count(&video_sent, l(), d.video_frames_sent);
            count(&reconnects, l(), u64::from(d.reconnects));
            count(&out_dropped, l(), d.frames_dropped);
        }
        for r in &s.recording {
            let l = || vec![("rung", r.rung.clone())];
            set(&rec_up, l(), bool01(r.state == RecordingState::Recording));
            count(&rec_failures, l(), u64::from(r.failures));
        }
        let y = &s.system;
        let opt = |f: &Family<Labels, GaugeF>, v: Option<f64>| {
            if let Some(v) = v {
                set(f, vec![], v);
            }
        };
        opt(&cpu, y.process_cpu_percent.map(|p| p / 100.0));
        opt(&sys_cpu, y.cpu_percent.map(|p| p / 100.0));
        opt(&rss, y.rss_bytes.map(|v| v as f64));
        opt(&mem_avail, y.mem_available_bytes.map(|v| v as f64));
        opt(&mem_total, y.mem_total_bytes.map(|v| v as f64));
        opt(&temp, y.temperature_c);
        opt(&disk_free, y.disk_free_bytes.map(|v| v as f64));
        opt(&disk_total, y.disk_total_bytes.map(|v| v as f64));
    }
    let mut out = String::new();
    encode(&mut out, &b.registry).expect("writing to a String");
    out
}

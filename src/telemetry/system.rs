//! Machine health from /proc and /sys: CPU (this process and the machine),
//! memory, the hottest thermal zone, disk space, uptime. Every field is
//! `None` when the machine does not offer it (no thermal zones in a VM).

pub use crate::status::wire::SystemSample;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tokio::sync::watch;


#[derive(Clone, Copy)]
struct Cpu {
    at: Instant,
    /// This process's user + system CPU time, seconds.
    process_cpu_s: Option<f64>,
    machine: Option<(u64, u64)>,
}

pub struct SystemSampler {
    last: Cpu,
}

impl Default for SystemSampler {
    fn default() -> Self {
        SystemSampler::new()
    }
}

fn read(path: impl AsRef<Path>) -> Option<String> {
    std::fs::read_to_string(path).ok()
}

impl SystemSampler {
    pub fn new() -> Self {
        SystemSampler { last: Self::cpu() }
    }

    fn cpu() -> Cpu {
        Cpu {
            at: Instant::now(),
            process_cpu_s: process_cpu_seconds(),
            machine: read("/proc/stat").as_deref().and_then(parse_cpu_line),
        }
    }

    pub fn sample(&mut self, disk_path: Option<&Path>) -> SystemSample {
        let now = Self::cpu();
        let secs = now.at.duration_since(self.last.at).as_secs_f64();
        let process_cpu_percent = match (self.last.process_cpu_s, now.process_cpu_s) {
            (Some(a), Some(b)) if secs > 0.01 => Some(round1((b - a).max(0.0) / secs * 100.0)),
            _ => None,
        };
        let cpu_percent = match (self.last.machine, now.machine) {
            (Some((busy0, total0)), Some((busy1, total1))) if total1 > total0 => {
                Some(round1((busy1.saturating_sub(busy0)) as f64 / (total1 - total0) as f64 * 100.0))
            }
            _ => None,
        };
        self.last = now;
        let mem = read("/proc/meminfo").map(|m| parse_meminfo(&m)).unwrap_or_default();
        let hottest = hottest_zone(Path::new("/sys/class/thermal"));
        let disk = disk_path.and_then(disk_space);
        SystemSample {
            process_cpu_percent,
            cpu_percent,
            cores: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
            rss_bytes: read("/proc/self/status").as_deref().and_then(parse_rss),
            mem_total_bytes: mem.0,
            mem_available_bytes: mem.1,
            temperature_c: hottest.as_ref().map(|h| h.0),
            temperature_zone: hottest.map(|h| h.1),
            disk_free_bytes: disk.map(|d| d.0),
            disk_total_bytes: disk.map(|d| d.1),
            system_uptime_s: read("/proc/uptime").and_then(|u| u.split_whitespace().next()?.parse().ok()),
            load_1m: read("/proc/loadavg").and_then(|l| l.split_whitespace().next()?.parse().ok()),
        }
    }
}

/// Samples every `every` on a blocking thread (reading /proc and /sys
/// never holds up a runtime worker); the disk is the one holding `disk`'s
/// path. The latest sample is in the returned `watch`.
pub fn spawn(every: Duration, disk: watch::Receiver<PathBuf>) -> watch::Receiver<SystemSample> {
    let (tx, rx) = watch::channel(SystemSample::default());
    tokio::spawn(async move {
        let mut sampler = SystemSampler::new();
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let path = disk.borrow().clone();
            let job = tokio::task::spawn_blocking(move || {
                let sample = sampler.sample(Some(&path));
                (sampler, sample)
            });
            let Ok((s, sample)) = job.await else { return };
            sampler = s;
            if tx.send(sample).is_err() {
                return;
            }
        }
    });
    rx
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

/// This process's CPU time (all threads), from getrusage: microsecond
/// resolution, and true under qemu-user, whose `/proc/self/stat` reads 0.
fn process_cpu_seconds() -> Option<f64> {
    use nix::sys::resource::{getrusage, UsageWho};
    let u = getrusage(UsageWho::RUSAGE_SELF).ok()?;
    let secs = |t: nix::sys::time::TimeVal| t.tv_sec() as f64 + t.tv_usec() as f64 / 1e6;
    Some(secs(u.user_time()) + secs(u.system_time()))
}

/// The first `cpu ` line of `/proc/stat` -> (busy, total) ticks.
fn parse_cpu_line(s: &str) -> Option<(u64, u64)> {
    let line = s.lines().find(|l| l.starts_with("cpu "))?;
    let v: Vec<u64> = line.split_whitespace().skip(1).filter_map(|x| x.parse().ok()).collect();
    let total: u64 = v.iter().take(8).sum();
    let idle = v.get(3)? + v.get(4).copied().unwrap_or(0);
    Some((total.saturating_sub(idle), total))
}

/// (MemTotal, MemAvailable) in bytes.
fn parse_meminfo(s: &str) -> (Option<u64>, Option<u64>) {
    let field = |name: &str| {
        s.lines().find(|l| l.starts_with(name))?.split_whitespace().nth(1)?.parse::<u64>().ok().map(|kb| kb * 1024)
    };
    (field("MemTotal:"), field("MemAvailable:"))
}

fn parse_rss(s: &str) -> Option<u64> {
    s.lines().find(|l| l.starts_with("VmRSS:"))?.split_whitespace().nth(1)?.parse::<u64>().ok().map(|kb| kb * 1024)
}

/// The hottest readable `thermal_zone*` under `dir`: (°C, zone type).
fn hottest_zone(dir: &Path) -> Option<(f64, String)> {
    std::fs::read_dir(dir)
        .ok()?
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with("thermal_zone"))
        .filter_map(|e| {
            let milli: f64 = read(e.path().join("temp"))?.trim().parse().ok()?;
            let kind = read(e.path().join("type")).map(|t| t.trim().to_string()).unwrap_or_else(|| e.file_name().to_string_lossy().into_owned());
            Some((round1(milli / 1000.0), kind))
        })
        .max_by(|a, b| a.0.total_cmp(&b.0))
}

/// (available to unprivileged users, total) bytes on the filesystem holding
/// `path`, or its nearest existing ancestor (recordings may not exist yet).
fn disk_space(path: &Path) -> Option<(u64, u64)> {
    let abs = std::path::absolute(path).ok()?;
    let existing = abs.ancestors().find(|p| p.exists())?;
    let st = nix::sys::statvfs::statvfs(existing).ok()?;
    let frag = st.fragment_size() as u64;
    Some((st.blocks_available() as u64 * frag, st.blocks() as u64 * frag))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_files() {
        assert_eq!(parse_cpu_line("cpu  100 5 50 800 20 0 5 0 0 0\ncpu0 1 2 3 4\n"), Some((160, 980)));
        let mem = "MemTotal:        2000 kB\nMemFree:  10 kB\nMemAvailable:     1500 kB\n";
        assert_eq!(parse_meminfo(mem), (Some(2_048_000), Some(1_536_000)));
        assert_eq!(parse_rss("Name:\tx\nVmRSS:\t  1234 kB\n"), Some(1234 * 1024));
    }

    #[test]
    fn the_hottest_readable_zone_wins() {
        let dir = tempfile::tempdir().unwrap();
        for (zone, temp, kind) in [("thermal_zone0", "45123\n", "cpu-thermal"), ("thermal_zone1", "61900", "gpu-thermal"), ("thermal_zone2", "garbage", "broken")] {
            std::fs::create_dir(dir.path().join(zone)).unwrap();
            std::fs::write(dir.path().join(zone).join("temp"), temp).unwrap();
            std::fs::write(dir.path().join(zone).join("type"), kind).unwrap();
        }
        assert_eq!(hottest_zone(dir.path()), Some((61.9, "gpu-thermal".into())));
        assert_eq!(hottest_zone(&dir.path().join("none")), None);
    }

    #[test]
    fn disk_space_of_a_path_not_made_yet_comes_from_its_parent() {
        let dir = tempfile::tempdir().unwrap();
        let (free, total) = disk_space(&dir.path().join("recordings/later")).unwrap();
        assert!(total > 0 && free <= total);
    }

    #[test]
    fn a_live_sample_measures_this_process() {
        let mut s = SystemSampler::new();
        let t = Instant::now();
        let mut x = 0u64;
        while t.elapsed().as_millis() < 300 {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
        }
        std::hint::black_box(x);
        let sample = s.sample(Some(Path::new(".")));
        assert!(sample.process_cpu_percent.unwrap() > 20.0, "{sample:?}");
        assert!(sample.rss_bytes.unwrap() > 1_000_000);
        assert!(sample.mem_total_bytes.unwrap() >= sample.mem_available_bytes.unwrap());
        assert!(sample.system_uptime_s.unwrap() > 0.0 && sample.disk_free_bytes.is_some());
    }
}

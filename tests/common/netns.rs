//! A network namespace made by a test, joined to this one by a veth pair,
//! so a server can sit behind a link the test shapes (`tc tbf` on the
//! host's end: what the box sends into the namespace). Loopback is never
//! shaped: other tests share it. Needs root (CAP_NET_ADMIN); `create`
//! says why when it cannot.

use super::{free_port, run_with_timeout};
use std::process::Command;
use std::time::Duration;

pub struct Netns {
    pub name: String,
    /// The host's end of the veth pair.
    host_dev: String,
    /// The namespace's end.
    ns_dev: String,
    pub host_ip: String,
    /// The address of the namespace's end, where its server listens.
    pub ns_ip: String,
}

fn ip(args: &[&str]) -> Result<(), String> {
    let out = run_with_timeout(Command::new("ip").args(args), Duration::from_secs(10));
    if out.status.success() { Ok(()) } else { Err(format!("ip {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim())) }
}

fn tc(args: &[&str]) -> Result<(), String> {
    let out = run_with_timeout(Command::new("tc").args(args), Duration::from_secs(10));
    if out.status.success() { Ok(()) } else { Err(format!("tc {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim())) }
}

impl Netns {
    /// A fresh namespace and veth pair on a /30 of its own, or why not.
    pub fn create() -> Result<Netns, String> {
        // Names and subnet unique to this process (a free port is a cheap unique number).
        let n = u32::from(free_port());
        let name = format!("fcns{n}");
        let (host_dev, ns_dev) = (format!("fch{n}"), format!("fcn{n}"));
        let (a, b) = ((n >> 6) & 0xff, (n & 0x3f) * 4);
        let (host_ip, ns_ip) = (format!("10.{}.{a}.{}", 200 + (n >> 14), b + 1), format!("10.{}.{a}.{}", 200 + (n >> 14), b + 2));
        ip(&["netns", "add", &name])?;
        let ns = Netns { name: name.clone(), host_dev: host_dev.clone(), ns_dev: ns_dev.clone(), host_ip: host_ip.clone(), ns_ip: ns_ip.clone() };
        ip(&["link", "add", &host_dev, "type", "veth", "peer", "name", &ns_dev])?;
        ip(&["link", "set", &ns_dev, "netns", &name])?;
        ip(&["addr", "add", &format!("{host_ip}/30"), "dev", &host_dev])?;
        ip(&["link", "set", &host_dev, "up"])?;
        ip(&["netns", "exec", &name, "ip", "addr", "add", &format!("{ns_ip}/30"), "dev", &ns_dev])?;
        ip(&["netns", "exec", &name, "ip", "link", "set", &ns_dev, "up"])?;
        ip(&["netns", "exec", &name, "ip", "link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// A command run inside the namespace.
    pub fn command(&self, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name, program]);
        c
    }

    /// Caps what the host sends into the namespace at `kbit` kbit/s (a token
    /// bucket; packets queued longer than 100 ms are dropped, as a congested
    /// uplink would).
    pub fn shape(&self, kbit: u32) -> Result<(), String> {
        tc(&["qdisc", "replace", "dev", &self.host_dev, "root", "tbf", "rate", &format!("{kbit}kbit"), "burst", "16kb", "latency", "100ms"])
    }

    /// The far end unplugged: its side of the link goes down, so whatever
    /// the host sends is lost without a word (no reset, no ICMP), as when a
    /// receiver's network drops off. Its server keeps running.
    pub fn cut(&self) -> Result<(), String> {
        ip(&["netns", "exec", &self.name, "ip", "link", "set", &self.ns_dev, "down"])
    }

    /// Plugged in again.
    pub fn mend(&self) -> Result<(), String> {
        ip(&["netns", "exec", &self.name, "ip", "link", "set", &self.ns_dev, "up"])
    }

    /// The link at full speed again.
    pub fn unshape(&self) -> Result<(), String> {
        tc(&["qdisc", "del", "dev", &self.host_dev, "root"])
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Deleting the namespace removes its end of the pair, and with it the host's.
        let _ = ip(&["netns", "del", &self.name]);
        let _ = ip(&["link", "del", &self.host_dev]);
    }
}

#!/usr/bin/env python3
"""Benchmark: what the crew's page costs the daemon.

Runs the release fieldcast on the small 3-rung ladder (test pattern
640x360, recording to a temporary folder, the HTTP server on a free
loopback port with a password), then measures the daemon's own CPU (from
/proc/<pid>/stat) and RSS (sampled every 0.5 s) over the same window with
no page open and with the page open in PAGES browser contexts (headless
Chromium through playwright-core, bench/page.cjs: each logged in, its SSE
stream connected, its thumbnail refreshing every 1.5 s). Only the daemon
is measured; the browsers' own CPU is theirs. Standard library only.

Usage: bench/page.py [SECONDS] [PAGES]   (default 30 s, 5 pages; run
scripts/install-test-deps.sh and `cargo build --release` first, or use
bench/page.sh). Each figure is the median of ROUNDS (default 3) rounds.
"""

import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.environ.get("FIELDCAST_BIN") or os.path.join(ROOT, "target", "release", "fieldcast")
MODULES = os.path.join(os.environ["HOME"], ".cache", "fieldcast", "node", "node_modules")
TICKS = os.sysconf("SC_CLK_TCK")
PASSWORD = "bench-page-crew-9Kq"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def rss_mb(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def window(pid, seconds):
    """(CPU seconds, mean RSS MB, peak RSS MB) of `pid` over `seconds`."""
    start, samples = cpu_seconds(pid), []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        samples.append(rss_mb(pid))
        time.sleep(0.5)
    return cpu_seconds(pid) - start, statistics.mean(samples), max(samples)


def main():
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 30.0
    pages = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    rounds = int(os.environ.get("ROUNDS", "3"))
    tmp = tempfile.mkdtemp(prefix="fieldcast-bench-page-")
    digest = subprocess.run([BIN, "passwd"], input=PASSWORD + "\n", capture_output=True, text=True, check=True).stdout.strip()
    port = free_port()
    config = os.path.join(tmp, "config.toml")
    with open(config, "w") as f:
        f.write(
            f'device_id = "bench-page"\nstate_dir = "{tmp}/state"\n'
            '[source]\nkind = "test"\nwidth = 640\nheight = 360\n[audio]\nsource = "test"\n'
            '[ladder]\nrungs = [{ name = "r360", width = 640, height = 360, bitrate_kbps = 800 }, '
            '{ name = "r270", width = 480, height = 270, bitrate_kbps = 500 }, { name = "r180", width = 320, height = 180, bitrate_kbps = 300 }]\n'
            f'[recording]\ndir = "{tmp}/rec"\nmin_free_mb = 0\n'
            f'[http]\nlisten = "127.0.0.1:{port}"\npassword_hash = "{digest}"\n'
        )
    log = open(os.path.join(tmp, "fieldcast.log"), "w")
    daemon = subprocess.Popen([BIN, "run", "-c", config], stdout=log, stderr=log)
    results = {"none": [], "open": []}
    try:
        time.sleep(8)  # the start and the encoders' first seconds
        env = dict(os.environ, NODE_PATH=MODULES, FIELDCAST_URL=f"http://127.0.0.1:{port}/", FIELDCAST_PASSWORD=PASSWORD, PAGES=str(pages))
        for _ in range(rounds):
            results["none"].append(window(daemon.pid, seconds))
            node = subprocess.Popen(["node", os.path.join(ROOT, "bench", "page.cjs")], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            line = node.stdout.readline()
            if not line.startswith("READY"):
                raise SystemExit(f"the pages did not open: {line!r}")
            time.sleep(3)  # every page's first thumbnail and SSE snapshot
            results["open"].append(window(daemon.pid, seconds))
            node.stdin.close()
            node.wait(timeout=30)
            time.sleep(3)
    finally:
        daemon.terminate()
        daemon.wait(timeout=30)
    for name, label in (("none", "no page open"), ("open", f"{pages} pages open")):
        cpu = statistics.median(r[0] for r in results[name])
        print(f"{label:>14}: {cpu / seconds * 100:5.1f}% of a core ({cpu:.2f} CPU s in {seconds:.0f} s), "
              f"RSS mean {statistics.median(r[1] for r in results[name]):.0f} MB, peak {statistics.median(r[2] for r in results[name]):.0f} MB "
              f"(median of {rounds})")


if __name__ == "__main__":
    main()

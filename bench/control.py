#!/usr/bin/env python3
"""Benchmark: fleet control latency and the supervisor's footprint.

Starts a private mosquitto and nginx-rtmp on free loopback ports and the
release fieldcast under [mqtt] (test pattern, a 3-rung 360p/270p/180p
ladder), then measures, over N rounds:

  status -> reply, while idle (a trivial command: the cost of control itself);
  start  -> reply at the dashboard, -> first coded video frame of every rung
            in nginx's recording (the channel has a picture);
  stop   -> reply, -> no TCP connection left to nginx;

and the supervisor process's RSS and CPU share while idle (connected,
telemetry every 5 s) and while live. Standard library only; the broker and
clients are mosquitto's, the channel nginx's.

Usage: bench/control.py [ROUNDS] [small|standard]   (default 5 rounds of
the small ladder; "standard" is 1080p/720p/540p/360p from 1080p30; run scripts/install-deps.sh
and `cargo build --release` first, or use bench/control.sh). FIELDCAST_BIN
runs another binary (e.g. a build of an older commit, to compare). The
broker runs with `set_tcp_nodelay true`: with Nagle on its side too, every
reply waits ~40 ms in mosquitto (for the delayed ACK of the command it just
forwarded to the same subscriber), which would hide what the box costs.
"""

import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.environ.get("FIELDCAST_BIN") or os.path.join(ROOT, "target", "release", "fieldcast")
DEVICE = "bench-box"
SMALL = [("r360", 640, 360, 800), ("r270", 480, 270, 500), ("r180", 320, 180, 300)]
# ingest.md's "standard" ladder, from a 1080p30 test pattern: what a box on a
# stadium roof runs.
STANDARD = [("1080p", 1920, 1080, 5500), ("720p", 1280, 720, 3000), ("540p", 960, 540, 1600), ("360p", 640, 360, 800)]
LADDERS = {"small": SMALL, "standard": STANDARD}
TICKS = os.sysconf("SC_CLK_TCK")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait(cond, timeout, step=0.002):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(step)
    return False


def accepts(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
        return True
    except OSError:
        return False


def flv_has_video_frame(path):
    try:
        b = open(path, "rb").read()
    except OSError:
        return False
    i = 13
    while i + 11 <= len(b):
        kind, size = b[i], int.from_bytes(b[i + 1:i + 4], "big")
        data = i + 11
        if data + size > len(b):
            return False
        if kind == 9 and size >= 2 and b[data] & 0x0F == 7 and b[data + 1] == 1:
            return True
        i = data + size + 4
    return False


def connections_to(port):
    want = ":%04X" % port
    n = 0
    for line in open("/proc/net/tcp").read().splitlines()[1:]:
        f = line.split()
        if len(f) > 3 and f[2].endswith(want) and f[3] == "01":
            n += 1
    return n


def cpu_ticks(pid):
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return int(f[11]) + int(f[12])


def rss_mb(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


class Dashboard:
    """mosquitto_sub on the device's topics; each line stamped on arrival."""

    def __init__(self, port):
        self.port = port
        self.lines = []
        self.lock = threading.Lock()
        self.proc = subprocess.Popen(
            ["mosquitto_sub", "-h", "127.0.0.1", "-p", str(port), "-V", "5", "-q", "1", "-v", "-t", f"fieldcast/{DEVICE}/#"],
            stdout=subprocess.PIPE, text=True, bufsize=1)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            with self.lock:
                self.lines.append((time.monotonic(), line.rstrip("\n")))

    def reply(self, cid, timeout=20):
        topic = f"fieldcast/{DEVICE}/reply/{cid} "
        found = []

        def seen():
            with self.lock:
                found[:] = [(t, l) for t, l in self.lines if l.startswith(topic)]
            return bool(found)

        if not wait(seen, timeout):
            raise SystemExit(f"no reply to {cid}")
        t, line = found[0]
        return t, json.loads(line[len(topic):])

    def command(self, name, cid):
        t0 = time.monotonic()
        subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(self.port), "-q", "1",
                        "-t", f"fieldcast/{DEVICE}/cmd/{name}", "-m", json.dumps({"id": cid})], check=True)
        return t0


def main():
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    name = sys.argv[2] if len(sys.argv) > 2 else "small"
    if name not in LADDERS:
        raise SystemExit(f"ladder must be one of {', '.join(LADDERS)}, not {name!r}")
    rungs = LADDERS[name]
    src_w, src_h = rungs[0][1], rungs[0][2]
    if not os.path.exists(BIN):
        raise SystemExit("build first: cargo build --release")
    work = tempfile.mkdtemp(prefix="fieldcast-bench-control-")
    procs = []
    try:
        mport, rport = free_port(), free_port()
        open(f"{work}/mosquitto.conf", "w").write(
            f"listener {mport} 127.0.0.1\nallow_anonymous true\npersistence false\nset_tcp_nodelay true\n" + ("user root\n" if os.geteuid() == 0 else ""))
        procs.append(subprocess.Popen(["/usr/sbin/mosquitto", "-c", f"{work}/mosquitto.conf"], stderr=subprocess.DEVNULL))
        rec = f"{work}/rec"
        os.makedirs(rec)
        os.chmod(rec, 0o777)
        open(f"{work}/nginx.conf", "w").write(
            "load_module /usr/lib/nginx/modules/ngx_rtmp_module.so;\n"
            f"daemon off; {'user root; ' if os.geteuid() == 0 else ''}pid {work}/nginx.pid; error_log {work}/nginx.err;\n"
            "events { worker_connections 64; }\n"
            f"rtmp {{ server {{ listen 127.0.0.1:{rport}; application live {{ live on; record all; record_path {rec}; }} }} }}\n")
        procs.append(subprocess.Popen(["nginx", "-c", f"{work}/nginx.conf", "-p", work]))
        if not wait(lambda: accepts(mport) and accepts(rport), 10, 0.05):
            raise SystemExit("mosquitto/nginx did not start")
        ladder = ", ".join(f'{{ name = "{n}", width = {w}, height = {h}, bitrate_kbps = {k} }}' for n, w, h, k in rungs)
        open(f"{work}/config.toml", "w").write(
            f'device_id = "{DEVICE}"\nstate_dir = "{work}/state"\n'
            f'[source]\nkind = "test"\nwidth = {src_w}\nheight = {src_h}\n[ladder]\nrungs = [{ladder}]\n'
            f'[recording]\nenabled = false\n'
            f'[[destination]]\nname = "primary"\nurl = "rtmp://127.0.0.1:{rport}/live"\nstream = "{{rung}}"\n'
            f'[mqtt]\nbroker = "mqtt://127.0.0.1:{mport}"\nautostart = false\ntelemetry_seconds = 5\n')
        dash = Dashboard(mport)
        procs.append(dash.proc)
        time.sleep(0.3)
        dev = subprocess.Popen([BIN, "run", "-c", f"{work}/config.toml"], stdout=subprocess.DEVNULL,
                               stderr=open(f"{work}/fieldcast.log", "w"), env={**os.environ, "FIELDCAST_LOG": "info"})
        procs.append(dev)
        if not wait(lambda: any('"online":true' in l for _, l in dash.lines), 20, 0.05):
            raise SystemExit("the device never came online")

        time.sleep(5)
        # A trivial command, idle: what fleet control itself costs per command.
        status_reply = []
        for i in range(max(rounds, 10)):
            t0 = dash.command("status", f"status-{i}")
            t_reply, r = dash.reply(f"status-{i}")
            assert r["ok"], r
            status_reply.append(t_reply - t0)
        c0, t0 = cpu_ticks(dev.pid), time.monotonic()
        time.sleep(30)
        idle_cpu = (cpu_ticks(dev.pid) - c0) / TICKS / (time.monotonic() - t0) * 100
        idle_rss = rss_mb(dev.pid)

        start_reply, start_frame, stop_reply, stop_closed, live_cpu, live_rss, idle_rss_after = [], [], [], [], [], [], []
        live_s = float(os.environ.get("BENCH_LIVE_SECONDS", "10"))
        for i in range(rounds):
            for n, *_ in rungs:
                for f in os.listdir(rec):
                    os.remove(os.path.join(rec, f))
            files = [os.path.join(rec, f"{n}.flv") for n, *_ in rungs]
            t0 = dash.command("start", f"start-{i}")
            t_reply, r = dash.reply(f"start-{i}")
            assert r["ok"] and r["state"] == "live", r
            if not wait(lambda: all(flv_has_video_frame(f) for f in files), 20):
                raise SystemExit("not every rung reached the channel")
            start_frame.append(time.monotonic() - t0)
            start_reply.append(t_reply - t0)
            time.sleep(3)
            c0, tl = cpu_ticks(dev.pid), time.monotonic()
            time.sleep(live_s)
            live_cpu.append((cpu_ticks(dev.pid) - c0) / TICKS / (time.monotonic() - tl) * 100)
            live_rss.append(rss_mb(dev.pid))
            t0 = dash.command("stop", f"stop-{i}")
            t_reply, r = dash.reply(f"stop-{i}")
            assert r["ok"] and r["state"] == "idle", r
            stop_reply.append(t_reply - t0)
            if not wait(lambda: connections_to(rport) == 0, 10):
                raise SystemExit("publishes still connected after stop")
            stop_closed.append(time.monotonic() - t0)
            time.sleep(1)
            idle_rss_after.append(rss_mb(dev.pid))

        ms = lambda xs: f"median {statistics.median(xs) * 1000:6.0f} ms  (min {min(xs) * 1000:.0f}, max {max(xs) * 1000:.0f})"
        print(f"fieldcast control benchmark, {rounds} rounds, {os.cpu_count()} cores, ladder {'/'.join(n for n, *_ in rungs)}")
        print(f"status -> reply (idle)             {ms(status_reply)}")
        print(f"start -> reply                     {ms(start_reply)}")
        print(f"start -> every rung's first frame  {ms(start_frame)}")
        print(f"stop  -> reply                     {ms(stop_reply)}")
        print(f"stop  -> no connection to nginx    {ms(stop_closed)}")
        print(f"idle (connected, telemetry 5 s):   RSS {idle_rss:.0f} MB, CPU {idle_cpu:.2f} % of a core")
        print(f"live:                              RSS {statistics.median(live_rss):.0f} MB, CPU {statistics.median(live_cpu):.1f} % of a core")
        print(f"idle after each stop:              RSS {' '.join(f'{r:.0f}' for r in idle_rss_after)} MB")
        print("(times include ~5 ms of mosquitto_pub start-up)")
    finally:
        for p in reversed(procs):
            p.terminate()
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

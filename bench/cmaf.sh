#!/bin/sh
# Benchmark: the same session pushed over CMAF ingest and over RTMP. The
# built-in test pattern (1080p30) through the standard ladder, SECONDS long,
# once to a local HTTP sink (a few lines of Python answering every POST 200,
# keep-alive: one connection per track) and once to a local nginx-rtmp.
# Reports CPU seconds, CPU share of the 2 cores and peak RSS of fieldcast.
# Usage: bench/cmaf.sh [SECONDS]   (default 20)
set -eu
cd "$(dirname "$0")/.."
SECS="${1:-20}"
scripts/install-deps.sh
cargo build --release --locked --quiet
B="$PWD/target/bench-cmaf"; rm -rf "$B"; mkdir -p "$B/nginx"
HTTP_PORT=$(shuf -i 20000-30000 -n 1); RTMP_PORT=$(shuf -i 30001-40000 -n 1)
cat > "$B/sink.py" <<'PY'
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
class Sink(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(200); self.send_header("Content-Length", "0"); self.end_headers()
    def log_message(self, *a): pass
ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Sink).serve_forever()
PY
python3 "$B/sink.py" "$HTTP_PORT" & SINK=$!
cat > "$B/nginx/nginx.conf" <<CONF
load_module /usr/lib/nginx/modules/ngx_rtmp_module.so;
daemon off; user root; pid $B/nginx/nginx.pid; error_log $B/nginx/error.log;
events {}
rtmp { server { listen 127.0.0.1:$RTMP_PORT; application live { live on; } } }
CONF
nginx -c "$B/nginx/nginx.conf" -p "$B/nginx" & NGINX=$!
trap 'kill $SINK $NGINX 2>/dev/null || true' EXIT
sleep 0.5
run() { # name, destination TOML
  printf 'state_dir = "%s/state"\n[recording]\nenabled = false\n%s\n' "$B" "$2" > "$B/$1.toml"
  /usr/bin/time -f "%e %U %S %M" -o "$B/$1.time" target/release/fieldcast run -c "$B/$1.toml" --duration "$SECS" >"$B/$1.log" 2>&1 \
    || echo "$1 failed, see $B/$1.log"
  read -r wall user sys rss < "$B/$1.time"
  printf "%-5s wall %6.2f s  cpu %6.2f s (%3.0f%% of 2 cores)  peak RSS %4d MB\n" \
    "$1" "$wall" "$(echo "$user + $sys" | bc)" "$(echo "($user + $sys) * 50 / $wall" | bc -l)" "$((rss / 1024))"
}
run cmaf "[[destination]]
protocol = \"cmaf\"
url = \"http://127.0.0.1:$HTTP_PORT/live/ch1\""
run rtmp "[[destination]]
url = \"rtmp://127.0.0.1:$RTMP_PORT/live\""

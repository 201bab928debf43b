#!/bin/sh
# The main job on the built-in default, no hardware needed: a live test
# pattern, the standard 4-rung ladder + AAC, recorded locally AND pushed to a
# private nginx-rtmp channel on this machine; then ffprobe shows what the
# channel received and what was recorded. Usage: scripts/demo.sh [SECONDS]
set -eu
cd "$(dirname "$0")/.."
SECS="${1:-20}"
scripts/install-deps.sh
cargo build --release --locked --quiet
OUT="$PWD/demo-output"
rm -rf "$OUT"; mkdir -p "$OUT/nginx/logs" "$OUT/channel"
chmod 777 "$OUT/channel"
PORT=$(shuf -i 20000-40000 -n 1)
cat > "$OUT/nginx/nginx.conf" <<CONF
load_module /usr/lib/nginx/modules/ngx_rtmp_module.so;
daemon off;
user root;
pid $OUT/nginx/nginx.pid;
error_log $OUT/nginx/logs/error.log;
events { worker_connections 64; }
rtmp { server { listen 127.0.0.1:$PORT; application live { live on; record all; record_path $OUT/channel; } } }
CONF
nginx -c "$OUT/nginx/nginx.conf" -p "$OUT/nginx" &
NGINX=$!
trap 'kill $NGINX 2>/dev/null || true' EXIT
sleep 0.5
cat > "$OUT/config.toml" <<CONF
# The built-in default, plus a push to the local channel.
state_dir = "$OUT/state"
[[destination]]
name = "local"
url = "rtmp://127.0.0.1:$PORT/live"
stream = "video_{kbps}"
CONF
echo "== fieldcast check-config"
target/release/fieldcast check-config "$OUT/config.toml"
echo "== fieldcast run for $SECS s"
/usr/bin/time -f "fieldcast: %e s wall, %U s user, %S s sys, peak RSS %M KB" \
  target/release/fieldcast run --config "$OUT/config.toml" --duration "$SECS"
kill $NGINX 2>/dev/null || true
sleep 0.5
summary() {
  f="$1"
  s=$(ffprobe -v error -select_streams v:0 -show_entries stream=codec_name,profile,width,height,r_frame_rate -of csv=p=0 "$f")
  a=$(ffprobe -v error -select_streams a:0 -show_entries stream=codec_name,sample_rate -of csv=p=0 "$f")
  d=$(ffprobe -v error -show_entries format=duration -of csv=p=0 "$f")
  kf=$(ffprobe -v error -select_streams v:0 -show_entries packet=pts_time,flags -of csv=p=0 "$f" | awk -F, '$2 ~ /K/ {printf "%.3f ", $1}' | cut -c1-60)
  vb=$(ffprobe -v error -select_streams v:0 -show_entries packet=size -of csv=p=0 "$f" | awk -v d="$d" '{s+=$1} END {printf "%.0f", s*8/d/1000}')
  printf "  %-22s video %s, %s kbit/s | audio %s | %.1f s | keyframes at %s...\n" "$(basename "$f")" "$s" "$vb" "$a" "$d" "$kf"
}
echo "== what the channel received (nginx-rtmp recordings)"
for f in "$OUT"/channel/*.flv; do summary "$f"; done
echo "== local recordings"
for f in "$OUT"/state/recordings/*/*; do summary "$f"; done
echo "everything is under $OUT"

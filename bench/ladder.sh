#!/bin/sh
# Benchmark: the standard ladder (1080p/720p/540p/360p H.264 + AAC), pushed to
# a local nginx-rtmp, then over SRT (MPEG-TS, one SRT stream per rung, to one
# libsrt listener: tests/tools/srt_listener.py) by fieldcast, by a
# hand-written gst-launch pipeline and by ffmpeg, side by side on the SAME pre-rendered raw input (ffmpeg's moving
# testsrc2, decoded once to Y4M and paced in real time by each tool), with the
# same x264 settings (superfast, zerolatency, CBR with filler, GOP 60, no
# scenecut). Reports CPU seconds, CPU share of the 2 cores, peak RSS, and the
# frames that reached the channel (300 = kept real time).
# Usage: bench/ladder.sh [SECONDS]   (default 10)
#   LEGS="fieldcast srt-fieldcast" bench/ladder.sh   runs only those legs
set -eu
cd "$(dirname "$0")/.."
SECS="${1:-10}"
scripts/install-deps.sh
cargo build --release --locked --quiet
B="$PWD/target/bench"; mkdir -p "$B"
IN="$B/testsrc2-1080p30-${SECS}s.y4m"
[ -f "$IN" ] || ffmpeg -v error -f lavfi -i "testsrc2=size=1920x1080:rate=30:duration=$SECS" -pix_fmt yuv420p "$IN"
PORT=$(shuf -i 20000-40000 -n 1)
rm -rf "$B/nginx"; mkdir -p "$B/nginx/rec"; chmod 777 "$B/nginx/rec"
cat > "$B/nginx/nginx.conf" <<CONF
load_module /usr/lib/nginx/modules/ngx_rtmp_module.so;
daemon off; user root; pid $B/nginx/nginx.pid; error_log $B/nginx/error.log;
events { worker_connections 64; }
rtmp { server { listen 127.0.0.1:$PORT; application live { live on; record all; record_path $B/nginx/rec; } } }
CONF
nginx -c "$B/nginx/nginx.conf" -p "$B/nginx" & NGINX=$!
trap 'kill $NGINX 2>/dev/null || true' EXIT
sleep 0.5
URL="rtmp://127.0.0.1:$PORT/live"
X264="speed-preset=superfast tune=zerolatency pass=cbr vbv-buf-capacity=1000 key-int-max=60 bframes=0 option-string=scenecut=0:filler=1:force-cfr=1"
measure() { # name, command...
  name="$1"; shift
  case " ${LEGS:-all} " in *" all "*|*" $name "*) ;; *) return 0 ;; esac
  /usr/bin/time -f "%e %U %S %M" -o "$B/$name.time" "$@" >"$B/$name.log" 2>&1 || echo "$name failed, see $B/$name.log"
  read -r wall user sys rss < "$B/$name.time" || { echo "$name: no timing (failed early), see $B/$name.log"; return 0; }
  case "$name" in
    srt-*) got="$B/srt/${name#srt-}_5500-1.ts" ;;
    *) got="$B/nginx/rec/${name}_5500.flv" ;;
  esac
  frames=$(ffprobe -v error -select_streams v:0 -count_packets -show_entries stream=nb_read_packets -of csv=p=0 "$got" 2>/dev/null | head -n 1)
  printf "%-10s wall %6.2f s  cpu %6.2f s (%3.0f%% of 2 cores)  peak RSS %4d MB  1080p frames at the channel %s/%d\n" \
    "$name" "$wall" "$(echo "$user + $sys" | bc)" "$(echo "($user + $sys) * 50 / $wall" | bc -l)" "$((rss / 1024))" "$frames" "$((SECS * 30))"
}

cat > "$B/fieldcast.toml" <<CONF
state_dir = "$B/state"
[source]
kind = "file"
path = "$IN"
at_end = "stop"
[audio]
source = "test"
[recording]
enabled = false
[[destination]]
url = "$URL"
stream = "fieldcast_{kbps}"
CONF
measure fieldcast target/release/fieldcast run --config "$B/fieldcast.toml"

R="video/x-raw,width"
measure gst gst-launch-1.0 -e filesrc location="$IN" ! y4mdec ! clocksync ! tee name=c \
  audiotestsrc is-live=true wave=ticks samplesperbuffer=1600 num-buffers=$((SECS * 30)) ! audioconvert ! audio/x-raw,rate=48000,channels=2 ! voaacenc bitrate=128000 ! aacparse ! tee name=a \
  c. ! queue ! x264enc bitrate=5500 $X264 ! video/x-h264,profile=high ! h264parse ! flvmux name=m1 streamable=true ! rtmp2sink location="$URL/gst_5500" a. ! queue ! m1. \
  c. ! queue ! videoscale ! $R=1280,height=720 ! tee name=s720 ! queue ! x264enc bitrate=3000 $X264 ! video/x-h264,profile=high ! h264parse ! flvmux name=m2 streamable=true ! rtmp2sink location="$URL/gst_3000" a. ! queue ! m2. \
  s720. ! queue ! videoscale ! $R=960,height=540 ! tee name=s540 ! queue ! x264enc bitrate=1600 $X264 ! video/x-h264,profile=high ! h264parse ! flvmux name=m3 streamable=true ! rtmp2sink location="$URL/gst_1600" a. ! queue ! m3. \
  s540. ! queue ! videoscale ! $R=640,height=360 ! x264enc bitrate=800 $X264 ! video/x-h264,profile=high ! h264parse ! flvmux name=m4 streamable=true ! rtmp2sink location="$URL/gst_800" a. ! queue ! m4.

XP="-c:v libx264 -preset superfast -tune zerolatency -profile:v high -g 60 -keyint_min 60 -sc_threshold 0 -bf 0 -x264-params filler=1:force-cfr=1 -c:a aac -b:a 128k -ar 48000 -f flv"
measure ffmpeg ffmpeg -v error -re -i "$IN" -f lavfi -re -i "sine=frequency=1000:sample_rate=48000:duration=$SECS" \
  -filter_complex "[0:v]split=2[v1][s];[s]scale=1280:720,split=2[v2][t];[t]scale=960:540,split=2[v3][u];[u]scale=640:360[v4]" \
  -map "[v1]" -map 1:a $XP -b:v 5500k -maxrate 5500k -bufsize 5500k "$URL/ffmpeg_5500" \
  -map "[v2]" -map 1:a $XP -b:v 3000k -maxrate 3000k -bufsize 3000k "$URL/ffmpeg_3000" \
  -map "[v3]" -map 1:a $XP -b:v 1600k -maxrate 1600k -bufsize 1600k "$URL/ffmpeg_1600" \
  -map "[v4]" -map 1:a $XP -b:v 800k -maxrate 800k -bufsize 800k "$URL/ffmpeg_800"

# SRT: one libsrt listener takes every rung's caller (stream id per rung).
SPORT=$(shuf -i 40001-60000 -n 1)
rm -rf "$B/srt"; mkdir -p "$B/srt"
python3 tests/tools/srt_listener.py "$SPORT" "$B/srt" > "$B/srt/events" 2>&1 & LISTENER=$!
trap 'kill $NGINX $LISTENER 2>/dev/null || true' EXIT
sleep 0.5
SRT="srt://127.0.0.1:$SPORT"
cat > "$B/fieldcast-srt.toml" <<CONF
state_dir = "$B/state"
[source]
kind = "file"
path = "$IN"
at_end = "stop"
[audio]
source = "test"
[recording]
enabled = false
[[destination]]
url = "$SRT"
streamid = "fieldcast_{kbps}"
latency_ms = 500
CONF
measure srt-fieldcast target/release/fieldcast run --config "$B/fieldcast-srt.toml"

TS="mpegtsmux alignment=7"
SS="srtsink latency=500 wait-for-connection=false"
measure srt-gst gst-launch-1.0 -e filesrc location="$IN" ! y4mdec ! clocksync ! tee name=c \
  audiotestsrc is-live=true wave=ticks samplesperbuffer=1600 num-buffers=$((SECS * 30)) ! audioconvert ! audio/x-raw,rate=48000,channels=2 ! voaacenc bitrate=128000 ! aacparse ! tee name=a \
  c. ! queue ! x264enc bitrate=5500 $X264 ! video/x-h264,profile=high ! h264parse ! $TS name=m1 ! $SS uri="$SRT?streamid=gst_5500" a. ! queue ! m1. \
  c. ! queue ! videoscale ! $R=1280,height=720 ! tee name=s720 ! queue ! x264enc bitrate=3000 $X264 ! video/x-h264,profile=high ! h264parse ! $TS name=m2 ! $SS uri="$SRT?streamid=gst_3000" a. ! queue ! m2. \
  s720. ! queue ! videoscale ! $R=960,height=540 ! tee name=s540 ! queue ! x264enc bitrate=1600 $X264 ! video/x-h264,profile=high ! h264parse ! $TS name=m3 ! $SS uri="$SRT?streamid=gst_1600" a. ! queue ! m3. \
  s540. ! queue ! videoscale ! $R=640,height=360 ! x264enc bitrate=800 $X264 ! video/x-h264,profile=high ! h264parse ! $TS name=m4 ! $SS uri="$SRT?streamid=gst_800" a. ! queue ! m4.

XT=$(echo "$XP" | sed 's/-f flv/-f mpegts/')
measure srt-ffmpeg ffmpeg -v error -re -i "$IN" -f lavfi -re -i "sine=frequency=1000:sample_rate=48000:duration=$SECS" \
  -filter_complex "[0:v]split=2[v1][s];[s]scale=1280:720,split=2[v2][t];[t]scale=960:540,split=2[v3][u];[u]scale=640:360[v4]" \
  -map "[v1]" -map 1:a $XT -b:v 5500k -maxrate 5500k -bufsize 5500k "$SRT?streamid=ffmpeg_5500&latency=500000" \
  -map "[v2]" -map 1:a $XT -b:v 3000k -maxrate 3000k -bufsize 3000k "$SRT?streamid=ffmpeg_3000&latency=500000" \
  -map "[v3]" -map 1:a $XT -b:v 1600k -maxrate 1600k -bufsize 1600k "$SRT?streamid=ffmpeg_1600&latency=500000" \
  -map "[v4]" -map 1:a $XT -b:v 800k -maxrate 800k -bufsize 800k "$SRT?streamid=ffmpeg_800&latency=500000"

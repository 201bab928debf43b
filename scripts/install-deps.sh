#!/bin/sh
# Installs what fieldcast needs to build, run and test on Debian 12 (bookworm).
# Idempotent and quick when everything is present.
set -eu
PKGS="pkg-config build-essential libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev
gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad
gstreamer1.0-plugins-ugly gstreamer1.0-libav gstreamer1.0-tools gstreamer1.0-x
nginx libnginx-mod-rtmp libnginx-mod-stream ffmpeg mosquitto mosquitto-clients openssl bc
srt-tools"
missing=""
for p in $PKGS; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  echo "installing:$missing"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
  # The distribution's nginx service is not needed: tests start private instances.
  $SUDO systemctl disable --now nginx >/dev/null 2>&1 || true
fi
if ! command -v cargo >/dev/null 2>&1; then
  curl -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal
  . "$HOME/.cargo/env"
fi

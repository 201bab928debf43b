#!/bin/sh
# Builds the .deb (amd64, and arm64 when the cross route is set up: see
# scripts/cross-setup.sh), checks its contents, and installs, removes and
# purges the amd64 one on this machine (no systemd needed).
set -eu
cd "$(dirname "$0")/.."
command -v cargo-deb >/dev/null || cargo install cargo-deb --locked
cargo deb
DEB=$(ls -t target/debian/fieldcast_*_amd64.deb | head -1)
for f in ./usr/bin/fieldcast ./usr/lib/systemd/system/fieldcast.service ./usr/lib/systemd/system/fieldcast.socket ./etc/fieldcast/config.toml \
         ./lib/udev/rules.d/60-fieldcast.rules ./usr/share/fieldcast/board/generic.toml ./usr/share/fieldcast/board/rpi4.toml; do
  dpkg-deb --contents "$DEB" | awk '{print $6}' | grep -qx "$f" || { echo "missing $f in $DEB"; exit 1; }
done
dpkg-deb -I "$DEB" conffiles | grep -qx /etc/fieldcast/config.toml
dpkg -i "$DEB"
id fieldcast | grep -q video
[ "$(stat -c %G /etc/fieldcast/config.toml)" = fieldcast ]
FIELDCAST_BOARD_DIR=/usr/share/fieldcast/board /usr/bin/fieldcast check-config /etc/fieldcast/config.toml >/dev/null
dpkg -r fieldcast
[ ! -e /usr/bin/fieldcast ] && [ -e /etc/fieldcast/config.toml ]
dpkg -P fieldcast
[ ! -e /etc/fieldcast ] && ! id fieldcast 2>/dev/null
echo "package test: $DEB installs, runs check-config, removes and purges cleanly"
if [ -d /opt/fieldcast-arm64-sysroot ]; then
  cargo deb --target aarch64-unknown-linux-gnu
  ARM=$(ls -t target/debian/fieldcast_*_arm64.deb | head -1)
  dpkg-deb --contents "$ARM" | awk '{print $6}' | grep -qx ./usr/bin/fieldcast
  dpkg-deb -f "$ARM" Architecture | grep -qx arm64
  echo "package test: $ARM built ($(dpkg-deb --contents "$ARM" | awk '$6 == "./usr/bin/fieldcast" {print $3}') bytes of binary)"
fi

#!/usr/bin/env bash
# Prepare a Debian 12 (bookworm) amd64 machine to cross-build fieldcast for
# aarch64 and run the arm64 binaries (and the test suite) under qemu-user.
# No Docker. Idempotent and fast when everything is already in place: CI calls
# it on every run.
#
#   scripts/cross-setup.sh          # prepare (apt, rustup, private sysroot)
#   scripts/cross-setup.sh --check  # exit 1 if anything is missing, change nothing
#
# What it does (see shared/docs/field-notes.md):
# - dpkg --add-architecture arm64; install the cross linker, qemu-user and the
#   arm64 GStreamer runtime + plugins by multiarch (they co-install with the
#   amd64 ones);
# - libgstreamer-plugins-base1.0-dev:arm64 is NOT co-installable with the amd64
#   one in bookworm, so it is `apt-get download`ed and `dpkg -x`ed into a
#   private sysroot ($FIELDCAST_ARM64_SYSROOT), with its .pc files pointed at
#   that folder and its .so link names pointed at the real arm64 libraries in
#   /usr/lib/aarch64-linux-gnu;
# - rustup target add aarch64-unknown-linux-gnu.
# scripts/cross-env.sh then exports the pkg-config variables for that sysroot.
#
# armv7 (armhf) is not set up: it would need a second set of ~470 multiarch
# packages, a second sysroot and qemu-arm runs, for boards (rpi4 32-bit OS) we
# do not ship to. Same recipe with armhf / arm-linux-gnueabihf if needed.
set -euo pipefail

SYSROOT=${FIELDCAST_ARM64_SYSROOT:-/opt/fieldcast-arm64-sysroot}
RUST_TARGET=aarch64-unknown-linux-gnu
CHECK_ONLY=0
[ "${1:-}" = "--check" ] && CHECK_ONLY=1

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

HOST_PKGS=(gcc-aarch64-linux-gnu qemu-user)
ARM64_PKGS=(
  libc6-dev:arm64
  libgstreamer1.0-dev:arm64
  gstreamer1.0-plugins-base:arm64
  gstreamer1.0-plugins-good:arm64
  gstreamer1.0-plugins-bad:arm64
  gstreamer1.0-plugins-ugly:arm64
  # avenc_aac (the pipeline's AAC encoder). Multi-Arch: same, co-installs.
  gstreamer1.0-libav:arm64
  # Named in Requires.private of the plugins-base .pc files (video, audio,
  # pbutils); pkg-config wants them even for dynamic linking.
  liborc-0.4-dev:arm64
  zlib1g-dev:arm64
)
# Extracted, not installed (would remove the amd64 -dev package).
PRIVATE_PKG=libgstreamer-plugins-base1.0-dev
# The runtime package whose version the private -dev package must match.
PRIVATE_PKG_RUNTIME=libgstreamer-plugins-base1.0-0:arm64

log() { printf 'cross-setup: %s\n' "$*" >&2; }

installed() { # pkg... -> 0 if all are installed
  local p
  for p in "$@"; do
    dpkg-query -W -f='${db:Status-Status}\n' "$p" 2>/dev/null | grep -qx installed || return 1
  done
}

missing=()
dpkg --print-foreign-architectures | grep -qx arm64 || missing+=("dpkg arch arm64")
installed "${HOST_PKGS[@]}" "${ARM64_PKGS[@]}" || missing+=("apt packages")
rustup target list --installed 2>/dev/null | grep -qx "$RUST_TARGET" || missing+=("rustup target")
want_ver=$(dpkg-query -W -f='${Version}' "$PRIVATE_PKG_RUNTIME" 2>/dev/null || true)
have_ver=$(cat "$SYSROOT/.version" 2>/dev/null || true)
if [ -z "$want_ver" ] || [ "$want_ver" != "$have_ver" ]; then missing+=("sysroot"); fi

if [ ${#missing[@]} -eq 0 ]; then
  log "ready (sysroot $SYSROOT, $PRIVATE_PKG $have_ver)"
  exit 0
fi
if [ $CHECK_ONLY = 1 ]; then
  log "missing: ${missing[*]}"
  exit 1
fi
log "setting up: ${missing[*]}"

if ! dpkg --print-foreign-architectures | grep -qx arm64; then
  $SUDO dpkg --add-architecture arm64
  need_update=1
fi
if ! installed "${HOST_PKGS[@]}" "${ARM64_PKGS[@]}"; then
  export DEBIAN_FRONTEND=noninteractive
  # A fresh arch has no package lists yet; otherwise refresh only if apt can't find them.
  if [ "${need_update:-0}" = 1 ] || ! apt-cache show libgstreamer1.0-dev:arm64 >/dev/null 2>&1; then
    $SUDO apt-get update -q
  fi
  # --no-install-recommends: qemu-user-binfmt (cannot register in a sandbox,
  # not needed: cargo's runner calls qemu-aarch64 explicitly) and a lot of
  # arm64 X11/desktop libraries stay out.
  $SUDO apt-get install -y -q --no-install-recommends "${HOST_PKGS[@]}" "${ARM64_PKGS[@]}"
fi

if ! rustup target list --installed | grep -qx "$RUST_TARGET"; then
  rustup target add "$RUST_TARGET"
fi

want_ver=$(dpkg-query -W -f='${Version}' "$PRIVATE_PKG_RUNTIME")
if [ "$want_ver" != "$(cat "$SYSROOT/.version" 2>/dev/null || true)" ]; then
  tmp=$(mktemp -d)
  chmod 755 "$tmp" # apt-get download drops to user _apt
  trap 'rm -rf "$tmp"' EXIT
  (cd "$tmp" && apt-get download -q "$PRIVATE_PKG:arm64=$want_ver")
  $SUDO rm -rf "$SYSROOT.new"
  $SUDO mkdir -p "$SYSROOT.new"
  $SUDO dpkg -x "$tmp"/${PRIVATE_PKG}_*_arm64.deb "$SYSROOT.new"
  libdir="$SYSROOT.new/usr/lib/aarch64-linux-gnu"
  # .pc files: prefix=/usr -> the sysroot, so -L (and -I) point into it. The
  # final path is $SYSROOT (renamed below), not $SYSROOT.new.
  for pc in "$libdir"/pkgconfig/*.pc; do
    $SUDO sed -i "s|^prefix=.*|prefix=$SYSROOT/usr|" "$pc"
  done
  # Link names: libgstvideo-1.0.so -> libgstvideo-1.0.so.0 (relative, absent
  # here). Point each at the real arm64 runtime library in /usr/lib/aarch64-linux-gnu.
  for so in "$libdir"/*.so; do
    target=$(readlink "$so")
    real="/usr/lib/aarch64-linux-gnu/$(basename "$target")"
    [ -e "$real" ] || { log "missing runtime library $real for $so"; exit 1; }
    $SUDO ln -sfn "$real" "$so"
  done
  echo "$want_ver" | $SUDO tee "$SYSROOT.new/.version" >/dev/null
  $SUDO rm -rf "$SYSROOT"
  $SUDO mv "$SYSROOT.new" "$SYSROOT"
  log "sysroot $SYSROOT: $PRIVATE_PKG:arm64 $want_ver"
fi
log "ready"

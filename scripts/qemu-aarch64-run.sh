#!/usr/bin/env bash
# Cargo runner for aarch64-unknown-linux-gnu (see .cargo/config.toml): runs an
# arm64 binary on this amd64 machine under qemu-user, with the GStreamer
# settings that work there.
#
# - No binfmt_misc handler is registered here (none can be in a sandbox), so
#   the kernel cannot exec an arm64 ELF by itself: neither GStreamer's arm64
#   gst-plugin-scanner helper nor an arm64 binary spawned by a test. Hence
#   GST_REGISTRY_FORK=no (plugins are scanned in-process) and
#   FIELDCAST_TEST_EXEC_WRAPPER, which tests that spawn the fieldcast binary
#   must put in front of it. x86 helpers (nginx, mosquitto, ffprobe) spawned
#   from the emulated process run natively: qemu-user passes execve through.
# - A registry file of its own: the amd64 one lists x86 plugin paths.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
export QEMU_LD_PREFIX=${QEMU_LD_PREFIX:-/}
export GST_REGISTRY_FORK=no
export GST_REGISTRY=${FIELDCAST_ARM64_GST_REGISTRY:-${XDG_CACHE_HOME:-$HOME/.cache}/gstreamer-1.0/registry.aarch64-qemu.bin}
# Only the arm64 plugins; an inherited amd64 GST_PLUGIN_PATH would be scanned
# (and fail to load) on every run.
export GST_PLUGIN_SYSTEM_PATH=/usr/lib/aarch64-linux-gnu/gstreamer-1.0
unset GST_PLUGIN_PATH GST_PLUGIN_SCANNER
export FIELDCAST_TEST_EXEC_WRAPPER="$here/qemu-aarch64-run.sh"
mkdir -p "$(dirname "$GST_REGISTRY")"
exec qemu-aarch64 -L "$QEMU_LD_PREFIX" "$@"

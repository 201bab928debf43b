#!/bin/sh
# The whole test suite cross-built for aarch64 and run under qemu-aarch64
# (user mode). The arm64 fieldcast binary pushes to the x86 nginx-rtmp over
# loopback; encoding end-to-end tests use a smaller ladder under emulation.
set -eu
cd "$(dirname "$0")/.."
scripts/install-test-deps.sh
scripts/cross-setup.sh
export FIELDCAST_BOARD_DIR="$PWD/board"
cargo test --locked --target aarch64-unknown-linux-gnu -- --test-threads=1

#!/bin/sh
# Runs every test: unit tests in parallel, then the end-to-end tests one at a
# time (each encodes a live ladder; the machines have 2 cores).
set -eu
cd "$(dirname "$0")/.."
scripts/install-test-deps.sh
export FIELDCAST_BOARD_DIR="$PWD/board"
cargo build --all-targets --locked
cargo test --locked --lib --bins
# Integration tests only (`--tests` would run the unit tests a second time).
cargo test --locked --test '*' -- --test-threads=1

#!/bin/sh
# Fleet-control benchmark (bench/control.py): start/stop latency over MQTT to
# the channel, and the supervisor's idle and live RSS/CPU.
# Usage: bench/control.sh [ROUNDS] [small|standard]   (default 5, small)
set -eu
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cargo build --release --locked --quiet
exec python3 bench/control.py "$@"

#!/bin/sh
# The crew's page's cost to the daemon (bench/page.py): CPU and RSS with the
# page open in N headless Chromium contexts against none, same ladder.
# Usage: bench/page.sh [SECONDS] [PAGES]   (default 30, 5)
set -eu
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/install-test-deps.sh
cargo build --release --locked --quiet
exec python3 bench/page.py "$@"

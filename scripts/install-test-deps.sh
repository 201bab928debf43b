#!/bin/sh
# What only the tests need, on top of scripts/install-deps.sh.
set -eu
cd "$(dirname "$0")/.."
scripts/install-deps.sh
# A broker that speaks only MQTT 3.1.1 (amqtt, pinned), for the test of the
# MQTT 5 -> 3.1.1 fallback. In its own venv, out of the system's way.
AMQTT_VENV="$HOME/.cache/fieldcast/amqtt-venv"
AMQTT_VERSION=0.12.1
if ! "$AMQTT_VENV/bin/python" -m pip show amqtt 2>/dev/null | grep -q "^Version: $AMQTT_VERSION$"; then
  echo "installing amqtt $AMQTT_VERSION into $AMQTT_VENV"
  rm -rf "$AMQTT_VENV"
  if ! python3 -m venv "$AMQTT_VENV" 2>/dev/null; then
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends python3-venv >/dev/null
    rm -rf "$AMQTT_VENV"
    /usr/bin/python3 -m venv "$AMQTT_VENV"
  fi
  "$AMQTT_VENV/bin/python" -m pip install -q --disable-pip-version-check "amqtt==$AMQTT_VERSION"
fi
# The independent MP4 box parser that judges CMAF ingest (tests/cmaf_ingest.rs,
# tests/tools/cmaf_boxes.py): pymp4 from PyPI, pinned, in the same venv.
PYMP4_VERSION=1.4.0
if ! "$AMQTT_VENV/bin/python" -m pip show pymp4 2>/dev/null | grep -q "^Version: $PYMP4_VERSION$"; then
  echo "installing pymp4 $PYMP4_VERSION into $AMQTT_VENV"
  "$AMQTT_VENV/bin/python" -m pip install -q --disable-pip-version-check "pymp4==$PYMP4_VERSION"
fi
# The Prometheus client library's OpenMetrics parser (pinned), the judge of
# GET /metrics in tests/http_metrics.rs. Its own venv, like amqtt's.
PROM_VENV="$HOME/.cache/fieldcast/prom-venv"
PROM_VERSION=0.21.1
if ! "$PROM_VENV/bin/python" -m pip show prometheus_client 2>/dev/null | grep -q "^Version: $PROM_VERSION$"; then
  echo "installing prometheus_client $PROM_VERSION into $PROM_VENV"
  rm -rf "$PROM_VENV"
  /usr/bin/python3 -m venv "$PROM_VENV"
  "$PROM_VENV/bin/python" -m pip install -q --disable-pip-version-check "prometheus_client==$PROM_VERSION"
fi
# A real browser for tests/http_browser.rs: Debian's Chromium, driven by
# playwright-core (pinned, from npm, no browser download of its own).
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
if ! command -v chromium >/dev/null 2>&1; then
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends chromium >/dev/null
fi
if ! command -v npm >/dev/null 2>&1; then
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
fi
NODE_PREFIX="$HOME/.cache/fieldcast/node"
PLAYWRIGHT_VERSION=1.49.1
if ! grep -q "\"version\": \"$PLAYWRIGHT_VERSION\"" "$NODE_PREFIX/node_modules/playwright-core/package.json" 2>/dev/null; then
  echo "installing playwright-core $PLAYWRIGHT_VERSION into $NODE_PREFIX"
  mkdir -p "$NODE_PREFIX"
  PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm install --prefix "$NODE_PREFIX" --no-audit --no-fund --silent "playwright-core@$PLAYWRIGHT_VERSION"
fi

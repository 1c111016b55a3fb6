#!/usr/bin/env bash
# Install the test dependencies (redis-server, redis-tools, openssl, nutcracker and
# prometheus-redis-exporter from Debian, the project with its test extras) and run every test.
set -euo pipefail
cd "$(dirname "$0")"
if ! command -v openssl >/dev/null || ! command -v redis-server >/dev/null || ! command -v redis-cli >/dev/null || ! command -v redis-benchmark >/dev/null || ! command -v nutcracker >/dev/null || ! command -v prometheus-redis-exporter >/dev/null; then
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; fi
  $SUDO apt-get update
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y redis-server redis-tools openssl nutcracker prometheus-redis-exporter
fi
if [ -z "${CONSTDB_SKIP_INSTALL:-}" ]; then
  python3 -m pip install -e '.[test]'
fi
exec python3 -m pytest "$@"

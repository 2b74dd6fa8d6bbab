#!/usr/bin/env bash
# Installs nats-server from Debian's packages when it is missing.
# Sourced or run by scripts/run.sh, scripts/test.sh and .ci/run.
set -euo pipefail

if command -v nats-server >/dev/null 2>&1; then
  exit 0
fi
echo "nats-server not found; installing Debian's package" >&2
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq nats-server >/dev/null
command -v nats-server >/dev/null

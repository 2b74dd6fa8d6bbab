#!/usr/bin/env bash
# The whole test suite: unit tests and integration tests that start their
# own nats-server processes (free port, temporary store) and drive the real
# HTTP server. Installs what it needs on a fresh Debian machine with Rust.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/ensure-nats.sh

if ! cargo nextest --version >/dev/null 2>&1; then
  echo "cargo-nextest not found; installing it from crates.io" >&2
  cargo install cargo-nextest --locked
fi

# nextest runs every test in its own process: each test owns its logs,
# metrics registry and nats-server.
exec cargo nextest run --locked --no-fail-fast "$@"

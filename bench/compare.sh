#!/usr/bin/env bash
# Two gateway builds side by side: a change's speed-up measured as a ratio
# taken in one run, against one nats-server, with the rows interleaved
# (base, new, base, new, ...) so that the machine's drift hits both alike.
#
#   BASE_BIN=/tmp/at-gateway-before bash bench/compare.sh
#
#   BASE_BIN=target/release/at-gateway BUILD=0 NEW_ENV="LOG_LEVEL=info" bash bench/compare.sh
#
# Knobs: BASE_BIN (required: a copy of the binary before the change),
# NEW_BIN (target/release/at-gateway, built unless BUILD=0), BASE_ENV and
# NEW_ENV (extra VAR=value settings for one side, space-separated: compares
# two configurations of one build), ROUNDS (3),
# BACKENDS ("jetstream memory"), FRESH_NATS (0), RATE (closed loop),
# CONNECTIONS (64), DURATION (10), WARMUP (2).
# Output: one table per backend and the median ratio new/base of accepted/s
# and of gateway CPU per request; bench/results/compare.md.
set -euo pipefail
cd "$(dirname "$0")/.."

CONNECTIONS="${CONNECTIONS:-64}"
DURATION="${DURATION:-10}"
WARMUP="${WARMUP:-2}"
ROUNDS="${ROUNDS:-3}"
BACKENDS="${BACKENDS:-jetstream memory}"
# FRESH_NATS=1: a new nats-server with an empty store for every row, for a
# change to how the streams or buckets are configured (a bucket keeps the
# configuration of the build that created it).
FRESH_NATS="${FRESH_NATS:-0}"
# RATE=N: open loop at N requests/s (latency without coordinated omission)
# instead of closed loop; give it enough CONNECTIONS (run.sh uses 256).
RATE="${RATE:-}"

# shellcheck source=bench/lib.sh
. bench/lib.sh

[ -n "${BASE_BIN:-}" ] || die "BASE_BIN must name the binary to compare against"
[ -z "${NEW_BIN:-}" ] || GATEWAY_BIN="$NEW_BIN"
build_all # copies the new build to $tmp/at-gateway
cp "$BASE_BIN" "$tmp/at-gateway-base"
machine_before="$(machine_note)"
start_nats

results="$tmp/results.json"
: >"$results"
for backend in $BACKENDS; do
  for round in $(seq 1 "$ROUNDS"); do
    for build in base new; do
      if [ "$build" = base ]; then
        gw_exe="$tmp/at-gateway-base" extra="${BASE_ENV:-}"
      else
        gw_exe="$tmp/at-gateway" extra="${NEW_ENV:-}"
      fi
      if [ "$FRESH_NATS" = 1 ]; then
        stop "$nats_pid"
        rm -rf "$tmp/jetstream"
        start_nats
      fi
      # shellcheck disable=SC2086 # extra is a list of VAR=value words
      start_gateway "$build-$backend" STORE_BACKEND="$backend" $extra
      # shellcheck disable=SC2086 # RATE, when set, adds two words
      load "$build" "http://127.0.0.1:$gw_port/webhooks/alpha" "$gw_pid" ${RATE:+--rate "$RATE"} |
        python3 -c 'import json,sys; r=json.load(sys.stdin); r["backend"]=sys.argv[1]; r["round"]=int(sys.argv[2]); print(json.dumps(r))' \
          "$backend" "$round" >>"$results"
      gateway_log_check "$build-$backend"
      stop "$gw_pid"
    done
  done
done

fresh_note=""
[ "$FRESH_NATS" != 1 ] || fresh_note=", a fresh nats-server per row"
mkdir -p bench/results
{
  python3 bench/report.py compare "$results"
  echo "- base: $BASE_BIN ${BASE_ENV:-}; new: ${NEW_BIN:-target/release/at-gateway} ${NEW_ENV:-}; ${RATE:+open loop at $RATE/s, }$CONNECTIONS connections, ${DURATION} s measured per row$fresh_note"
  echo "- machine: $machine_before before the run; load average $(cut -d' ' -f1-3 /proc/loadavg) after; $(date -u '+%F %H:%M UTC')"
} | tee bench/results/compare.md

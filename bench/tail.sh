#!/usr/bin/env bash
# The open-loop tail over time: ROWS rows of one target at a fixed rate
# against ONE nats-server whose store grows row by row, each row printed
# with its start (seconds since nats-server started). Shows whether a slow
# tail follows the target or nats-server's age and size.
#
#   bash bench/tail.sh                      # the gateway, 5 rows at 6000/s
#   TARGET=minimal bash bench/tail.sh       # the minimal same-work program
#   TARGET=bare bash bench/tail.sh          # no NATS at all: the machine's own tail
#   SHM=1 NATS_GOGC=400 bash bench/tail.sh  # store on tmpfs; nats-server's GOGC
#   GATEWAY_ENV="STORE_BACKEND=memory" bash bench/tail.sh  # the gateway configured otherwise
#
# Knobs: TARGET (gateway | minimal | bare), ROWS (5), RATE (6000), CONNECTIONS
# (256), DURATION (10), WARMUP (2), SHM (0: the store on tmpfs when 1),
# NATS_GOGC (Go's default, 100), GATEWAY_ENV (VAR=value settings for the
# gateway, space-separated). nats-server runs with GODEBUG=gctrace=1;
# its collector's lines are counted per row. Output: one line per row.
set -euo pipefail
cd "$(dirname "$0")/.."

TARGET="${TARGET:-gateway}"
ROWS="${ROWS:-5}"
RATE="${RATE:-6000}"
CONNECTIONS="${CONNECTIONS:-256}"
DURATION="${DURATION:-10}"
WARMUP="${WARMUP:-2}"

# shellcheck source=bench/lib.sh
. bench/lib.sh

build_all
if [ "${SHM:-0}" = 1 ]; then
  mkdir -p "/dev/shm/at-gateway-bench-$$"
  ln -s "/dev/shm/at-gateway-bench-$$" "$tmp/jetstream"
  trap 'cleanup; rm -rf "/dev/shm/at-gateway-bench-$$"' EXIT
fi
GODEBUG=gctrace=1 GOGC="${NATS_GOGC:-100}" start_nats
t0="$(date +%s.%N)"

for row in $(seq 1 "$ROWS"); do
  if [ "$TARGET" = bare ]; then
    start_bare
  elif [ "$TARGET" = minimal ]; then
    start_minimal
  else
    # shellcheck disable=SC2086 # GATEWAY_ENV is a list of VAR=value words
    start_gateway "row$row" ${GATEWAY_ENV:-}
    port="$gw_port" pid="$gw_pid"
  fi
  start="$(date +%s.%N)"
  gcs_before="$(grep -c '^gc ' "$tmp/nats-0.log" || true)"
  load "$TARGET" "http://127.0.0.1:$port/webhooks/alpha" "$pid" --rate "$RATE" 2>/dev/null |
    python3 -c '
import json, re, sys
r = json.loads(sys.stdin.read())
row, start, gcs_before, log = sys.argv[1], float(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
gcs = [l for l in open(log) if l.startswith("gc ")][gcs_before:]
marks = [float(l.split("+")[1]) for l in gcs if "ms clock" in l]
heap = gcs[-1].split(",")[2].split("->")[-1].strip() if gcs else "-"
rate, p50, p99, p999, lag = (r[k] for k in ("accepted_per_sec", "p50_ms", "p99_ms", "p999_ms", "send_lag_p99_ms"))
print(f"row {row} at +{start:.0f} s: {rate:.0f}/s, p50 {p50:.2f} ms, p99 {p99:.1f} ms, "
      f"p99.9 {p999:.1f} ms, sent late p99 {lag:.1f} ms; nats-server: {len(gcs)} collections, "
      f"longest mark {max(marks, default=0):.0f} ms, live heap {heap}")
' "$row" "$(python3 -c "print($start - $t0)")" "$gcs_before" "$tmp/nats-0.log"
  stop "$pid"
done
echo "- $TARGET, open loop at $RATE/s on $CONNECTIONS connections, $DURATION s per row; one nats-server$([ "${SHM:-0}" = 1 ] && echo ', store on tmpfs'), GOGC ${NATS_GOGC:-100}"
echo "- machine: $(machine_note); $(date -u '+%F %H:%M UTC')"

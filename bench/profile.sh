#!/usr/bin/env bash
# Where the gateway's CPU time goes: `perf record` (software cpu-clock
# sampling; these VMs expose no hardware counters) on the gateway and on
# nats-server while loadgen drives the gateway closed loop, then the samples
# grouped by component (bench/perf_groups.py) and the top symbols.
#
# Knobs: STORE_BACKEND (jetstream), CONNECTIONS (64), DURATION (10), WARMUP (2),
# FREQ sampling Hz (999). Output: bench/results/profile-<backend>.md.
set -euo pipefail
cd "$(dirname "$0")/.."

STORE_BACKEND="${STORE_BACKEND:-jetstream}"
CONNECTIONS="${CONNECTIONS:-64}"
DURATION="${DURATION:-10}"
WARMUP="${WARMUP:-2}"
FREQ="${FREQ:-999}"
# CALLGRAPH=1: also record the gateway with DWARF call graphs (lower rate)
# and list inclusive time of the gateway's own functions.
CALLGRAPH="${CALLGRAPH:-0}"

# shellcheck source=bench/lib.sh
. bench/lib.sh

command -v perf >/dev/null || die "perf is not installed (apt-get install -y linux-perf)"
build_all
start_nats
start_gateway gateway STORE_BACKEND="$STORE_BACKEND"
url="http://127.0.0.1:$gw_port/webhooks/alpha"

load gateway "$url" "$gw_pid" >"$tmp/load.json" &
load_pid=$!
sleep "$WARMUP"
if [ "$CALLGRAPH" = 1 ]; then
  perf record -e cpu-clock -F 199 --call-graph dwarf,16384 -p "$gw_pid" -o "$tmp/gw-cg.data" \
    -- sleep "$DURATION" 2>"$tmp/perf-gw.log" &
else
  perf record -e cpu-clock -F "$FREQ" -p "$gw_pid" -o "$tmp/gw.data" -- sleep "$DURATION" 2>"$tmp/perf-gw.log" &
fi
perf_gw=$!
perf record -e cpu-clock -F "$FREQ" -p "$nats_pid" -o "$tmp/nats.data" -- sleep "$DURATION" 2>"$tmp/perf-nats.log" &
perf_nats=$!
wait "$perf_gw" "$perf_nats"
wait "$load_pid"

mkdir -p bench/results
out="bench/results/profile-$STORE_BACKEND.md"
{
  echo "## perf: gateway (STORE_BACKEND=$STORE_BACKEND), $CONNECTIONS connections closed loop, ${DURATION} s"
  echo
  python3 - "$tmp/load.json" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
s, n = r["procs"]["server"], r["procs"]["nats"]
print(f"{r['accepted_per_sec']:.0f} accepted/s; CPU per accepted request: gateway "
      f"{s['cpu_us_per_accepted']} µs, nats-server {n['cpu_us_per_accepted']} µs (while sampled)")
EOF
  echo
  if [ "$CALLGRAPH" = 1 ]; then
    echo "Inclusive share of samples (self + callees) of the gateway's own functions, DWARF call graphs at 199 Hz:"
    echo
    perf report -i "$tmp/gw-cg.data" --stdio --children --sort sym -g none --percent-limit 0.3 2>/dev/null |
      python3 bench/perf_groups.py --inclusive gateway
  else
    perf report -i "$tmp/gw.data" --stdio --no-children --sort dso,sym --percent-limit 0 2>/dev/null |
      python3 bench/perf_groups.py gateway
  fi
  echo
  perf report -i "$tmp/nats.data" --stdio --no-children --sort dso,sym --percent-limit 0 2>/dev/null |
    python3 bench/perf_groups.py nats-server
} | tee "$out"
cp "$tmp"/*.data bench/results/ 2>/dev/null || true
echo "bench: profile in $out" >&2

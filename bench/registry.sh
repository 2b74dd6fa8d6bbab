#!/usr/bin/env bash
# The source registry at platform scale (issue 16), in one run on one
# nats-server (the pinned 2.15.1, fsync before every ack):
#
#   1. the cost of the gateway's source lookup in a table of 1 and of
#      SOURCES sources (`registry lookup`, in-process);
#   2. gateway A with the registry enabled and empty: its RSS at rest;
#   3. SOURCES custom sources written to the registry (`registry fill`),
#      how long until A serves all of them, and A's RSS at rest again:
#      the memory per registry source;
#   4. load on A: one source (alpha, from the configuration), then spread
#      over the SOURCES registry sources (request k to src{k mod SOURCES}),
#      closed loop, CONNECTIONS connections: what a lookup among thousands
#      costs end to end;
#   5. replica B started with the full registry (time until it serves every
#      source), then ROUNDS rounds of add-then-disable of a TradingView
#      source, each timed until both replicas answer accordingly.
#
# Knobs: SOURCES (10000), ROUNDS (20), CONNECTIONS (64), DURATION (10),
# WARMUP (2), BUILD=0. Output: a Markdown summary on stdout and in
# bench/results/registry.md, JSON lines in bench/results/registry.json.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh

SOURCES="${SOURCES:-10000}"
ROUNDS="${ROUNDS:-20}"
CONNECTIONS="${CONNECTIONS:-64}"
DURATION="${DURATION:-10}"
WARMUP="${WARMUP:-2}"
mkdir -p bench/results
json=bench/results/registry.json
: >"$json"

build_all
start_nats
echo "bench: $(machine_note)" >&2
# Not a real key: a fresh one per run, never written anywhere but $tmp.
key="$(python3 -c 'import base64, os; print(base64.b64encode(os.urandom(32)).decode())')"
registry_env=(SOURCE_REGISTRY=true "SOURCE_REGISTRY_KEY=$key")

# registry_sources PORT: how many sources the gateway serves from the registry.
registry_sources() {
  curl -fsS --max-time 2 "http://127.0.0.1:$1/healthz" |
    python3 -c 'import json,sys; print(json.load(sys.stdin).get("registry",{}).get("sources",-1))'
}

# until_sources PORT N PID: seconds until the gateway serves N registry sources.
until_sources() {
  local t0=$SECONDS start
  start="$(date +%s.%N)"
  while [ "$(registry_sources "$1")" != "$2" ]; do
    kill -0 "$3" 2>/dev/null || die "gateway exited"
    [ $((SECONDS - t0)) -lt 120 ] || die "the gateway never served $2 registry sources"
    sleep 0.05
  done
  python3 -c "import time; print(round(time.time() - $start, 2))"
}

echo "bench: lookup cost" >&2
target/release/registry lookup --count "$SOURCES" | tee -a "$json" >&2

start_gateway gw-a "${registry_env[@]}"
a_port=$gw_port a_pid=$gw_pid
until_sources "$a_port" 0 "$a_pid" >/dev/null
sleep 2
rss_empty="$(status_kb "$a_pid" VmRSS)"

echo "bench: writing $SOURCES sources to the registry" >&2
target/release/registry fill --nats "${nats_url%%,*}" --key "$key" --count "$SOURCES" \
  --secret "$SECRET" | tee -a "$json" >&2
applied="$(until_sources "$a_port" "$SOURCES" "$a_pid")"
sleep 2
rss_full="$(status_kb "$a_pid" VmRSS)"

echo "bench: load on one source, then over $SOURCES registry sources" >&2
load "one source" "http://127.0.0.1:$a_port/webhooks/alpha" "$a_pid" | tee -a "$json" >/dev/null
load "$SOURCES registry sources" "http://127.0.0.1:$a_port/webhooks/src{i}" "$a_pid" \
  --sources "$SOURCES" | tee -a "$json" >/dev/null
gateway_log_check gw-a

start_gateway gw-b "${registry_env[@]}"
b_port=$gw_port b_pid=$gw_pid
b_read="$(until_sources "$b_port" "$SOURCES" "$b_pid")"
echo "bench: $ROUNDS rounds of add, then disable, on two replicas" >&2
target/release/registry propagate --nats "${nats_url%%,*}" --rounds "$ROUNDS" \
  --gateways "http://127.0.0.1:$a_port,http://127.0.0.1:$b_port" | tee -a "$json" >/dev/null
gateway_log_check gw-b

python3 - "$json" "$SOURCES" "$rss_empty" "$rss_full" "$applied" "$b_read" <<'EOF' | tee bench/results/registry.md
import json, statistics, sys
path, n, rss_empty, rss_full, applied, b_read = sys.argv[1:]
n, rss_empty, rss_full = int(n), int(rss_empty), int(rss_full)
lines = [json.loads(l) for l in open(path) if l.strip()]
lookups = [l for l in lines if "lookup_ns" in l]
loads = [l for l in lines if "target" in l]
rounds = [l for l in lines if "round" in l]
fill = next(l for l in lines if "filled" in l)
print(f"### Source registry, {n} sources\n")
print("| measure | figure |\n|---|---|")
for l in lookups:
    print(f"| source lookup (parse + table get), table of {l['sources']} | {l['lookup_ns']:.0f} ns |")
print(f"| {n} records written (256 puts in flight) | {fill['seconds']:.1f} s |")
print(f"| until replica A served all {n} (changes arriving as they were written) | {applied} s |")
print(f"| until replica B, started afterwards, served all {n} (first read) | {b_read} s |")
print(f"| replica A's RSS at rest, empty registry / {n} sources | {rss_empty/1024:.1f} / {rss_full/1024:.1f} MiB |")
print(f"| memory per registry source | {(rss_full - rss_empty) * 1024 / n:.0f} B |")
for l in loads:
    cpu = l["procs"]["server"]["cpu_us_per_accepted"]
    print(f"| load: {l['target']} | {l['accepted_per_sec']:.0f} accepted/s, p99 {l['p99_ms']:.1f} ms, {cpu} µs gateway CPU/request, {l['non_2xx']} non-2xx |")
if len(loads) == 2:
    print(f"| spread over {n} / one source (throughput) | {loads[1]['accepted_per_sec'] / loads[0]['accepted_per_sec']:.2f} |")
for key, what in (("added_ms", "a source added"), ("disabled_ms", "a source disabled")):
    v = [r[key] for r in rounds if r[key] is not None]
    missed = len(rounds) - len(v)
    if v:
        print(f"| {what}: in force on both replicas, p50 / max of {len(v)} | {statistics.median(v):.0f} / {max(v):.0f} ms{f' ({missed} never)' if missed else ''} |")
# Not a speed check: a change never applied, or a registry source not
# served under load, means the registry does not work.
broken = [r for r in rounds if r["added_ms"] is None or r["disabled_ms"] is None]
refused = [l for l in loads if l["non_2xx"]]
if broken or refused:
    print(f"registry: {len(broken)} rounds never in force, {len(refused)} loads with refusals", file=sys.stderr)
    sys.exit(1)
EOF

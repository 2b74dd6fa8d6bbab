#!/usr/bin/env bash
# The gateway side by side with what it is compared against, same machine,
# same run, same nats-server, same load generator. See bench/README.md.
#
# Targets, one at a time (each started, loaded, stopped):
#   bare             actix-web answering 202, nothing else
#   minimal          the same work done minimally (bench/src/bin/minimal.rs)
#   gateway          at-gateway, full configuration (STORE_BACKEND=jetstream)
#   gateway-open     the same gateway, open loop at half its measured maximum
#   bare-open        bare, open loop at that same rate: the instrument's floor
#   gateway-memory   at-gateway with STORE_BACKEND=memory (no KV claims)
#   gateway-stream   at-gateway with STORE_BACKEND=stream: claims in the
#                    signal's own atomic batch (on a fresh nats-server: its
#                    stream covers signals.> too)
#   seed             FastAPI + uvicorn (2 workers) + nats-py (bench/seed/app.py)
# For each: accepted/s, latency percentiles, CPU per accepted request of the
# server process(es) and of nats-server, peak RSS; then the ratios.
# Raw JSON lines go to bench/results/latest.json, the table to
# bench/results/latest.md.
#
# Knobs (environment): CONNECTIONS (64), DURATION seconds (10), WARMUP
# seconds (2), SEED=0 skips the FastAPI target, OPEN_LOOP=0 skips the
# open-loop row, OPEN_CONNECTIONS (256) connections for the open loop,
# NATS_NODES=3 runs every row against a three-node cluster with R3 streams
# (results then go to bench/results/latest-r3.*), NATS_SYNC (lib.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

CONNECTIONS="${CONNECTIONS:-64}"
DURATION="${DURATION:-10}"
WARMUP="${WARMUP:-2}"
SEED="${SEED:-1}"
OPEN_LOOP="${OPEN_LOOP:-1}"
OPEN_CONNECTIONS="${OPEN_CONNECTIONS:-256}"

# shellcheck source=bench/lib.sh
. bench/lib.sh

# The seed's stack, from PyPI, into a venv kept between runs (re-made when
# bench/seed/requirements.txt changes).
seed_venv=target/seed-venv
install_seed() {
  local stamp="$seed_venv/.requirements"
  if [ -x "$seed_venv/bin/uvicorn" ] && cmp -s bench/seed/requirements.txt "$stamp"; then
    return 0
  fi
  echo "bench: installing the seed's stack (FastAPI, uvicorn, nats-py) into $seed_venv" >&2
  rm -rf "$seed_venv"
  python3 -m venv "$seed_venv" || die "python3 -m venv failed (SEED=0 skips the seed target)"
  "$seed_venv/bin/pip" install -q --disable-pip-version-check -r bench/seed/requirements.txt ||
    die "pip install failed (SEED=0 skips the seed target)"
  cp bench/seed/requirements.txt "$stamp"
}

build_all
[ "$SEED" = 1 ] && install_seed
machine_before="$(machine_note)"
start_nats
echo "bench: $CONNECTIONS connections, ${WARMUP} s warm-up + ${DURATION} s per target" >&2

results="$tmp/results.json"
: >"$results"
record() { printf '%s\n' "$1" >>"$results"; }

# --- (a) bare ----------------------------------------------------------------
start_bare
record "$(load bare "http://127.0.0.1:$port/webhooks/alpha" "$pid")"
# Kept (idle) for the open-loop calibration row below.
bare_port="$port" bare_pid="$pid"

# --- (b) minimal same-work program ----------------------------------------------
start_minimal
record "$(load minimal "http://127.0.0.1:$port/webhooks/alpha" "$pid")"
stop "$pid"

# --- (c) the gateway, full configuration, then open loop at half its max -------
start_gateway gateway
gw_json="$(load gateway "http://127.0.0.1:$gw_port/webhooks/alpha" "$gw_pid")"
record "$gw_json"
if [ "$OPEN_LOOP" = 1 ]; then
  rate="$(python3 -c 'import json,sys; print(max(1, round(json.loads(sys.argv[1])["accepted_per_sec"] / 2)))' "$gw_json")"
  # Enough connections that the arrival process, not the connection count,
  # decides how many requests are in flight.
  record "$(CONNECTIONS="$OPEN_CONNECTIONS" load gateway-open "http://127.0.0.1:$gw_port/webhooks/alpha" \
    "$gw_pid" --rate "$rate")"
fi
gateway_log_check gateway
stop "$gw_pid"
if [ "$OPEN_LOOP" = 1 ]; then
  # The same schedule against bare: what the instrument itself adds (tokio's
  # 1 ms timer, the shared cores) to open-loop latencies.
  record "$(CONNECTIONS="$OPEN_CONNECTIONS" load bare-open "http://127.0.0.1:$bare_port/webhooks/alpha" \
    "$bare_pid" --rate "$rate")"
fi
stop "$bare_pid"

# --- (c') the gateway, claims in memory ----------------------------------------
start_gateway gateway-memory STORE_BACKEND=memory
record "$(load gateway-memory "http://127.0.0.1:$gw_port/webhooks/alpha" "$gw_pid")"
gateway_log_check gateway-memory
stop "$gw_pid"

# --- (c'') the gateway, claims in the signal's atomic batch ----------------------
# Its stream covers signals.> too, which two streams on one server cannot:
# a fresh nats-server (cluster) for this row.
restart_nats_fresh
start_gateway gateway-stream STORE_BACKEND=stream
record "$(load gateway-stream "http://127.0.0.1:$gw_port/webhooks/alpha" "$gw_pid")"
gateway_log_check gateway-stream
stop "$gw_pid"

# --- (d) the seed's stack -------------------------------------------------------
if [ "$SEED" = 1 ]; then
  port="$(free_port)"
  SEED_NATS_URL="nats://127.0.0.1:$nats_port" SEED_HMAC_SECRET="$SECRET" SEED_ALLOWED_SOURCES=alpha \
    "$seed_venv/bin/uvicorn" app:app --app-dir bench/seed --host 127.0.0.1 --port "$port" \
    --workers 2 --log-level warning --no-access-log >"$tmp/seed.log" 2>&1 &
  pid=$!
  pids+=("$pid")
  # Each request lands on one worker: ask a few times so both are likely up.
  for _ in 1 2 3 4 5 6; do
    wait_http "http://127.0.0.1:$port/readyz" "$pid" seed "$tmp/seed.log"
  done
  workers=""
  for _ in $(seq 1 100); do
    workers="$(descendants "$pid")"
    [ "$(echo "$workers" | tr ',' '\n' | wc -l)" -ge 3 ] && break
    sleep 0.1
  done
  record "$(load seed "http://127.0.0.1:$port/webhooks/alpha" "$workers")"
  stop "$pid"
fi

mkdir -p bench/results
name=latest
[ "$NATS_NODES" = 1 ] || name=latest-r3
cp "$results" "bench/results/$name.json"
{
  echo "- nats-server: $NATS_NODES node(s), streams R$replicas, JetStream sync $NATS_SYNC"
  python3 bench/report.py run "$results"
  echo "- machine: $machine_before before the run; load average $(cut -d' ' -f1-3 /proc/loadavg) after; $(date -u '+%F %H:%M UTC')"
} | tee "bench/results/$name.md"

# A run where any target accepted nothing is a failed run.
if grep -q '"accepted":0,' "$results"; then
  die "a target accepted no request (see above)"
fi

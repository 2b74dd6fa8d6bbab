#!/usr/bin/env bash
# How the gateway's throughput and latency change with connections, body
# size and the number of configured sources, and what a replay-cache entry
# costs in memory. Closed loop, one fresh gateway (and one nats-server for
# the whole script) per row. See bench/README.md.
#
#   connections   1, 8, 64, 256                  (STORE_BACKEND=jetstream, 124 B bodies)
#   payload       200 B, 4 KiB, 64 KiB, 1 MiB    (jetstream, 64 connections)
#   sources       1, 100, 10 000 configured      (jetstream, 64 connections; a generated
#                                                  --config with one [sources.srcN] each,
#                                                  ALLOWED_SOURCES listing them, load
#                                                  spread evenly over them)
#   memory        RSS after MEM_N accepted requests, STORE_BACKEND=memory, 300 s replay
#                 window (nonces kept 600 s): (RSS after - RSS before) / MEM_N; then the
#                 same with IDEMPOTENCY_TTL_SEC=1 so that only the nonce entries stay
#
# Knobs: PARTS ("connections payload sources memory"), DURATION (5), WARMUP (2),
# CONNECTIONS (64, for payload and sources), MEM_N (300000).
# Output: bench/results/scaling.md (tables) and scaling-*.json (raw lines).
set -euo pipefail
cd "$(dirname "$0")/.."

PARTS="${PARTS:-connections payload sources memory}"
DURATION="${DURATION:-5}"
WARMUP="${WARMUP:-2}"
CONNECTIONS="${CONNECTIONS:-64}"
MEM_N="${MEM_N:-300000}"

# shellcheck source=bench/lib.sh
. bench/lib.sh

build_all
start_nats
mkdir -p bench/results
out=bench/results/scaling.md
echo "Machine: $(machine_note) at the start, $(date -u '+%F %H:%M UTC')." >"$out"
section() { printf '\n### %s\n\n' "$1" | tee -a "$out"; }

for part in $PARTS; do
  case "$part" in
  connections)
    section "Connections (closed loop, STORE_BACKEND=jetstream, 124 B bodies, ${DURATION} s each)"
    json=bench/results/scaling-connections.json
    : >"$json"
    for c in 1 8 64 256; do
      start_gateway "gw-c$c"
      CONNECTIONS="$c" load "connections=$c" "http://127.0.0.1:$gw_port/webhooks/alpha" "$gw_pid" >>"$json"
      gateway_log_check "gw-c$c"
      stop "$gw_pid"
    done
    python3 bench/report.py scaling "$json" connections | tee -a "$out"
    ;;
  payload)
    section "Body size (closed loop, STORE_BACKEND=jetstream, $CONNECTIONS connections, ${DURATION} s each)"
    json=bench/results/scaling-payload.json
    : >"$json"
    # Requests signed ahead per second of run: enough for each size on this
    # machine, small enough that signing 1 MiB bodies stays short.
    for spec in 200:60000 4096:40000 65536:8000 1048576:800; do
      size="${spec%%:*}"
      start_gateway "gw-b$size"
      load "body=$size" "http://127.0.0.1:$gw_port/webhooks/alpha" "$gw_pid" \
        --body-size "$size" --expected-rps "${spec##*:}" >>"$json"
      gateway_log_check "gw-b$size"
      stop "$gw_pid"
    done
    python3 bench/report.py scaling "$json" body_bytes | tee -a "$out"
    ;;
  sources)
    section "Configured sources (closed loop, STORE_BACKEND=jetstream, $CONNECTIONS connections, load spread over all, ${DURATION} s each)"
    json=bench/results/scaling-sources.json
    : >"$json"
    for n in 1 100 10000; do
      python3 - "$n" "$tmp/sources-$n.toml" <<'EOF'
import sys
n, path = int(sys.argv[1]), sys.argv[2]
with open(path, "w") as f:
    for i in range(n):
        f.write(f'[sources.src{i}]\nkind = "custom"\n\n')
EOF
      allowed="$(python3 -c 'import sys; print(",".join(f"src{i}" for i in range(int(sys.argv[1]))))' "$n")"
      start_gateway "gw-s$n" ALLOWED_SOURCES="$allowed" -- --config "$tmp/sources-$n.toml"
      load "sources=$n" "http://127.0.0.1:$gw_port/webhooks/src{i}" "$gw_pid" --sources "$n" >>"$json"
      gateway_log_check "gw-s$n"
      stop "$gw_pid"
    done
    python3 bench/report.py scaling "$json" sources | tee -a "$out"
    ;;
  memory)
    section "Memory per replay-cache entry (STORE_BACKEND=memory, replay window 300 s, $MEM_N requests)"
    json=bench/results/scaling-memory.json
    : >"$json"
    {
      echo "| gateway | requests accepted | RSS before MiB | RSS after MiB | RSS delta / accepted request |"
      echo "|---|---:|---:|---:|---:|"
    } | tee -a "$out"
    for variant in both nonce-only; do
      extra=()
      [ "$variant" = nonce-only ] && extra=(IDEMPOTENCY_TTL_SEC=1)
      start_gateway "gw-mem-$variant" STORE_BACKEND=memory "${extra[@]}"
      url="http://127.0.0.1:$gw_port/webhooks/alpha"
      # Warm up first (threads, buffers, allocator arenas, JetStream
      # client), so the delta is what the entries hold.
      load "mem-warm" "$url" "$gw_pid" --count 20000 >/dev/null
      sleep 2
      before="$(status_kb "$gw_pid" VmRSS)"
      line="$(load "mem-$variant" "$url" "$gw_pid" --count "$MEM_N")"
      printf '%s\n' "$line" >>"$json"
      sleep 2 # idempotency entries of the nonce-only run expire (1 s TTL)
      after="$(status_kb "$gw_pid" VmRSS)"
      accepted="$(json_field "$line" accepted)"
      label="nonce + idempotency entry per request (IDEMPOTENCY_TTL_SEC=86400)"
      [ "$variant" = nonce-only ] && label="nonce entry only (IDEMPOTENCY_TTL_SEC=1)"
      python3 -c '
import sys
label, n, b, a = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
per = (a - b) * 1024 / n if n else float("nan")
print(f"| {label} | {n} | {b/1024:.1f} | {a/1024:.1f} | {per:.0f} B |")' "$label" "$accepted" "$before" "$after" | tee -a "$out"
      gateway_log_check "gw-mem-$variant"
      stop "$gw_pid"
    done
    ;;
  *) die "unknown part '$part' (PARTS: connections payload sources memory)" ;;
  esac
done
echo "Load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)." | tee -a "$out"
echo "bench: tables in $out" >&2

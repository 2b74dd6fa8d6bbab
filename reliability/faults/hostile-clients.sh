#!/usr/bin/env bash
# Campaign 6: slow and hostile clients. See reliability/sections/faults.md.
#
# One nats-server and one release gateway (own loopback ports, temporary
# store). For each attack, hostile.py holds SLOTS bad connections (opening a
# new one whenever the gateway closes one) for WINDOW seconds while probe.py
# sends normal signed traffic at RATE/s. Reported per attack: how long each
# bad connection stayed open and what the gateway answered, normal traffic's
# success rate and p99 meanwhile, the gateway's peak RSS; the stream is read
# back at the end (every 2xx'd probe key must be in it).
#
# Verdict per attack: every bad connection closed by the gateway within the
# configured timeout that governs it (+2 s), and >= 99 % of normal requests 2xx.
#
# QUICK=1 (CI, < 2 minutes without the build): shorter gateway timeouts
# (head 2 s, body 3 s, keep-alive 5 s), 1 000 idle connections instead of
# 10 000, 8 s windows. The defaults (head 5 s, body 10 s, keep-alive 30 s)
# are the production ones from config/default.toml.
# Knobs: ATTACKS, RATE (20), SLOTS (200), IDLE_CONNS (10000), WINDOW (20),
# SKIP_BUILD=1, KEEP_TMP=1. Results: reliability/faults/results/.
FAULTS_TAG=hostile-clients
source "$(dirname "$0")/lib.sh"

QUICK="${QUICK:-0}"
if [ "$QUICK" = 1 ]; then
  HEAD_S=2 BODY_S=3 KEEPALIVE_S=5
  : "${IDLE_CONNS:=1000}" "${SLOTS:=50}" "${WINDOW:=8}"
else
  HEAD_S=5 BODY_S=10 KEEPALIVE_S=30
  : "${IDLE_CONNS:=10000}" "${SLOTS:=200}" "${WINDOW:=20}"
fi
ATTACKS="${ATTACKS:-slowloris half_body trickle chunked chunked_flood big_cl idle}"
RATE="${RATE:-20}"
RESULTS="$FAULTS_DIR/results"
mkdir -p "$RESULTS"

# 10 000 idle connections need 10 000 descriptors on each side (the gateway
# inherits this shell's limit).
ulimit -n "$(ulimit -Hn)"
need=$((IDLE_CONNS + 1000))
[ "$(ulimit -n)" -ge "$need" ] || die "ulimit -n is $(ulimit -n); $need needed (lower IDLE_CONNS)"

ensure_venv
ensure_gateway
export FAULTS_SECRET="$SECRET"
start_nats "$tmp/js"
start_gateway "[http]
client_request_timeout_ms = $((HEAD_S * 1000))
body_read_timeout_ms = $((BODY_S * 1000))
keep_alive_sec = $KEEPALIVE_S"
log "gateway on $GW_PORT (head ${HEAD_S}s, body ${BODY_S}s, keep-alive ${KEEPALIVE_S}s), nofile $(ulimit -n)"

# The timeout that should close each kind of bad connection.
bound_for() {
  case "$1" in
    slowloris) echo "$HEAD_S" ;;
    idle) echo "$KEEPALIVE_S" ;;
    big_cl) echo 1 ;;        # 413 on the announced length, before reading the body
    chunked_flood) echo 1 ;; # 413 once 1 MiB has arrived, at loopback speed
    *) echo "$BODY_S" ;;
  esac
}

HOSTILE_OUT="$RESULTS/hostile.conns.jsonl"
: >"$HOSTILE_OUT"
rows=()
failed=()
probes=()
for attack in $ATTACKS; do
  slots="$SLOTS"
  [ "$attack" = idle ] && slots="$IDLE_CONNS"
  MARKS="$RESULTS/hostile-$attack.marks.jsonl"
  PROBE_OUT="$RESULTS/hostile-$attack.probe.jsonl"
  : >"$MARKS"
  : >"$PROBE_OUT"
  probes+=("$PROBE_OUT")
  bound="$(bound_for "$attack")"
  log "=== $attack: $slots connections for ${WINDOW}s, probe ${RATE}/s"
  "$PY" "$FAULTS_DIR/probe.py" --url "$GW_URL/webhooks/alpha" --rate "$RATE" --duration 600 \
    --timeout 30 --prefix "hostile-$attack-$$" --pid "$GW_PID" --out "$PROBE_OUT" &
  probe=$!
  pids+=("$probe")
  sleep 2
  mark fault_start
  # Connections are given up on after bound + 15 s: well past the timeout
  # that should close them, and the run stays bounded.
  "$PY" "$FAULTS_DIR/hostile.py" --port "$GW_PORT" --attack "$attack" --slots "$slots" \
    --duration "$WINDOW" --cap "$((bound + 15))" --out "$HOSTILE_OUT" || failed+=("$attack: hostile.py failed")
  mark fault_end
  sleep 2
  kill -TERM "$probe"
  wait "$probe" || true
  "$PY" "$FAULTS_DIR/report.py" --probe "$PROBE_OUT" --marks "$MARKS" >"$RESULTS/hostile-$attack.probe-summary.json"
  if "$PY" "$FAULTS_DIR/hostile_report.py" --hostile "$HOSTILE_OUT" --attack "$attack" --bound "$bound" \
    --probe-summary "$RESULTS/hostile-$attack.probe-summary.json" >"$RESULTS/hostile-$attack.report.txt"; then :; else
    failed+=("$attack")
  fi
  head -n 1 "$RESULTS/hostile-$attack.report.txt"
  rows+=("$(sed -n 2p "$RESULTS/hostile-$attack.report.txt")")
  kill -0 "$GW_PID" 2>/dev/null || die "the gateway died during $attack"
done

log "verifying the stream against the probe's answers"
"$PY" "$FAULTS_DIR/verify_stream.py" --nats "nats://127.0.0.1:$NATS_PORT" --probe "${probes[@]}" \
  | tee "$RESULTS/hostile.verify.json" || failed+=("a 2xx'd probe key is missing from the stream")
grep -iE 'panic' "$tmp/gateway.log" | tail -n 3 >&2 && failed+=("the gateway panicked")
cp "$tmp/gateway.log" "$RESULTS/hostile.gateway.log"

echo
echo "| attack | bad conns | gateway's answers | open s p50 / max (bound) | normal 2xx during | normal p99 ms | peak RSS MiB | verdict |"
echo "|---|---:|---|---|---|---:|---:|---|"
printf '%s\n' "${rows[@]}"
if [ "${#failed[@]}" -gt 0 ]; then
  printf 'faults: FAIL %s\n' "${failed[@]}" >&2
  exit 1
fi
echo "faults: PASS every bad connection closed by its timeout; normal traffic served"

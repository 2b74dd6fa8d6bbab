#!/usr/bin/env bash
# Campaign 5: graceful shutdown (SIGTERM) under load. See
# reliability/sections/crashes.md.
#
# One nats-server (free loopback port, temporary store) and the release
# gateway (production timeouts; http.shutdown_timeout_sec 30). probe.py in
# its retrying mode sends RATE logical requests/s for DURATION seconds and
# retries every 503 and transport error with the same Idempotency-Key (fresh
# nonce and signature) for up to RETRY_FOR seconds. It records, per attempt,
# when the request was completely written and whether it went on a new or a
# kept-alive connection.
#
# Two SIGTERMs, each followed by waiting for the process to exit and starting
# the gateway again on the same port:
#   #1 at T1 s: under steady load;
#   #2 at T2 s: nats-server is SIGSTOPped STALL s before it (so requests are
#      in flight, waiting on JetStream), and SIGCONTed RESUME s after it.
#
# Asserted (exit 1 otherwise):
# - no attempt whose request was completely written before the SIGTERM ends
#   without an HTTP answer (cut off): the connections it accepted are
#   drained, each request on them gets its 2xx or 503;
# - the process exits within EXIT_BOUND s (the ack cap is 5 s);
# - every stored request (2xx, or 409 duplicate on a retry) is in the
#   stream exactly once, with the event id it was answered.
# Requests sent after the SIGTERM may be refused or reset (not accepted; the
# caller retries them) -- reported, not a failure.
#
# Knobs: DURATION (40), RATE (40), T1 (10), T2 (28), STALL (1.5), RESUME (2),
# RETRY_FOR (60), EXIT_BOUND (10), SKIP_BUILD=1, KEEP_TMP=1, TAG ("shutdown").
# Results: reliability/faults/results/.
FAULTS_TAG=shutdown
source "$(dirname "$0")/lib.sh"

DURATION="${DURATION:-40}"
RATE="${RATE:-40}"
T1="${T1:-10}"
T2="${T2:-28}"
STALL="${STALL:-1.5}"
RESUME="${RESUME:-2}"
RETRY_FOR="${RETRY_FOR:-60}"
EXIT_BOUND="${EXIT_BOUND:-10}"
TAG="${TAG:-shutdown}"
setup_campaign

start_nats "$tmp/js"
start_gateway
log "nats-server on $NATS_PORT, gateway on $GW_PORT; ${RATE} req/s for ${DURATION}s; SIGTERM at ${T1}s and ${T2}s (NATS stalled)"
start_probe --timeout 30 --retry-for "$RETRY_FOR"

exit_codes=()
# sigterm N: SIGTERM, wait for the exit (bounded), restart on the same port.
sigterm() {
  local n="$1" code=0
  mark "sigterm_$n"
  kill -TERM "$GW_PID"
  for _ in $(seq 1 $((EXIT_BOUND * 20 + 200))); do kill -0 "$GW_PID" 2>/dev/null || break; sleep 0.05; done
  if kill -0 "$GW_PID" 2>/dev/null; then
    log "gateway still running $((EXIT_BOUND + 10))s after SIGTERM: SIGKILL"
    kill -KILL "$GW_PID"
  fi
  wait "$GW_PID" 2>/dev/null || code=$?
  mark "exited_$n"
  exit_codes+=("$code")
  forget_pid "$GW_PID"
  log "gateway exited with $code after SIGTERM #$n; restarting on port $GW_PORT"
  restart_gateway
  mark "up_$n"
}

until_s "$T1"
sigterm 1

until_s "$(awk -v t="$T2" -v s="$STALL" 'BEGIN { print t - s }')"
mark stop_1
kill_nats STOP
until_s "$T2"
# The restart waits for /readyz, which needs NATS: continue it first.
( sleep "$RESUME"; kill -CONT "$NATS_PID" ) &
resumer=$!
mark "sigterm_2"
kill -TERM "$GW_PID"
code=0
for _ in $(seq 1 $((EXIT_BOUND * 20 + 200))); do kill -0 "$GW_PID" 2>/dev/null || break; sleep 0.05; done
if kill -0 "$GW_PID" 2>/dev/null; then
  log "gateway still running $((EXIT_BOUND + 10))s after SIGTERM: SIGKILL"
  kill -KILL "$GW_PID"
fi
wait "$GW_PID" 2>/dev/null || code=$?
mark "exited_2"
exit_codes+=("$code")
forget_pid "$GW_PID"
wait "$resumer" || true
mark cont_1
log "gateway exited with $code after SIGTERM #2 (NATS stalled); restarting on port $GW_PORT"
restart_gateway
mark "up_2"

log "waiting for the probe (its retries may take up to ${RETRY_FOR}s)"
wait "$probe" || true
forget_pid "$probe"
rc=0
verify_and_report cut_off_total\<=0 \
  shutdown_1.exit_after_sigterm_s\<="$EXIT_BOUND" shutdown_2.exit_after_sigterm_s\<="$EXIT_BOUND" || rc=1
for c in "${exit_codes[@]}"; do
  [ "$c" = 0 ] || { log "FAIL gateway exit status $c after SIGTERM"; rc=1; }
done

"$PY" - "$RESULTS/$TAG.report.json" "${exit_codes[*]}" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
st = s["final_statuses"]
two = sum(v for k, v in st.items() if k.startswith("2"))
print(f"logical requests          {s['requests']} ({s['attempts']} attempts, at most {s['max_attempts']} for one)")
print(f"attempt answers           {s['attempt_statuses']}  errors {s['attempt_errors']}")
print(f"stored: 2xx / 409 dup     {two} / {s['stored_by_409_duplicate']}; not stored (gave up) {s['not_stored_gave_up']}")
print(f"messages in the stream    {s['stream_messages']}")
print(f"stored but missing        {s['missing_2xx']}")
print(f"duplicated messages       {s['duplicated_msg_ids']}")
print(f"answer names wrong event  {s['wrong_event_id']}")
print(f"exit statuses             {sys.argv[2]}")
for n in ("1", "2"):
    d = s.get("shutdown_" + n, {})
    print(f"SIGTERM #{n}: exit after {d.get('exit_after_sigterm_s')}s; in flight {d.get('in_flight_at_sigterm')} "
          f"{d.get('in_flight_statuses')} (last answer +{d.get('in_flight_max_answer_after_sigterm_s')}s); "
          f"cut off {d.get('cut_off')}; sent while stopping {d.get('sent_while_stopping')} "
          f"{d.get('sent_while_stopping_statuses')} {d.get('sent_while_stopping_errors')}")
    for c in d.get("cut_off_examples", []):
        print(f"    cut off: {c}")
PY
if [ "$rc" != 0 ]; then
  echo "faults: FAIL (see $RESULTS/$TAG.*)" >&2
  exit 1
fi
echo "faults: PASS every request sent before SIGTERM answered; every stored request in the stream once"

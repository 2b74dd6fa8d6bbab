#!/usr/bin/env bash
# Campaign 4: the gateway crashes (SIGKILL) under load and is restarted. See
# reliability/sections/crashes.md.
#
# One nats-server (free loopback port, temporary store) and the release
# gateway (production timeouts). probe.py in its retrying mode sends RATE
# logical requests/s for DURATION seconds, each with its own Idempotency-Key,
# and retries every answer that is not 2xx/4xx -- 503s and transport errors --
# with the same key and body and a fresh nonce and signature, for up to
# RETRY_FOR seconds, as API_SPEC.md tells callers to. At each time in KILLS
# the gateway is SIGKILLed and DOWN seconds later started again on the same
# port. At the end the whole stream is read back.
#
# A logical request is stored when it got a 2xx, or a 409 `duplicate` on a
# retry (an earlier attempt was stored). Must be 0: stored requests missing
# from the stream, Nats-Msg-Ids stored twice, answers naming another event id
# than the stored one. Requests that gave up without being stored are
# reported (they must not be in the stream with a 2xx, which is allowed only
# as "stored anyway" after a 503).
#
# RETRY_FOR (90 s) exceeds the claim lease (message window 30 s + 5 s): a
# request in flight when the gateway died leaves a pending claim that its
# retry can take over only when the lease has run out.
#
# Knobs: DURATION (60), RATE (100), KILLS ("8 14 20 26 32 38 44 50"), DOWN (1), RETRY_FOR (90),
# SKIP_BUILD=1, KEEP_TMP=1, TAG ("gateway-crash"). Results:
# reliability/faults/results/.
FAULTS_TAG=gateway-crash
source "$(dirname "$0")/lib.sh"

DURATION="${DURATION:-60}"
RATE="${RATE:-100}"
KILLS="${KILLS:-8 14 20 26 32 38 44 50}"
DOWN="${DOWN:-1}"
RETRY_FOR="${RETRY_FOR:-90}"
TAG="${TAG:-gateway-crash}"
setup_campaign

start_nats "$tmp/js"
start_gateway
log "nats-server on $NATS_PORT, gateway on $GW_PORT; ${RATE} req/s for ${DURATION}s, retrying for ${RETRY_FOR}s; SIGKILL at: $KILLS"
start_probe --timeout 30 --retry-for "$RETRY_FOR"

n=0
for at in $KILLS; do
  n=$((n + 1))
  until_s "$at"
  kill -KILL "$GW_PID"
  mark "kill_$n"
  { wait "$GW_PID" || true; } 2>/dev/null
  forget_pid "$GW_PID"
  log "gateway SIGKILLed (#$n); restarting in ${DOWN}s on port $GW_PORT"
  sleep "$DOWN"
  restart_gateway
  mark "up_$n"
done

log "waiting for the probe (its retries may take up to ${RETRY_FOR}s)"
wait "$probe" || true
forget_pid "$probe"
rc=0
verify_and_report || rc=1
# Claims a restarted gateway took over from a killed one (lease run out),
# and of those, signals it continued under the killed gateway's event id.
took_over="$(grep -c 'took over an abandoned claim' "$tmp/gateway.log" || true)"
continued="$(grep -c 'continuing a signal whose gateway crashed' "$tmp/gateway.log" || true)"
echo "claims taken over after a crash: $took_over (continued under the crashed gateway's event id: $continued)"

"$PY" - "$RESULTS/$TAG.report.json" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
st = s["final_statuses"]
two = sum(v for k, v in st.items() if k.startswith("2"))
print(f"logical requests          {s['requests']} ({s['attempts']} attempts, at most {s['max_attempts']} for one)")
print(f"attempt answers           {s['attempt_statuses']}  errors {s['attempt_errors']}")
print(f"stored: 2xx               {two}")
print(f"stored: 409 duplicate     {s['stored_by_409_duplicate']}")
print(f"not stored (gave up)      {s['not_stored_gave_up']}  final {st}")
print(f"messages in the stream    {s['stream_messages']}")
print(f"stored but missing        {s['missing_2xx']}")
print(f"duplicated messages       {s['duplicated_msg_ids']}")
print(f"answer names wrong event  {s['wrong_event_id']}")
for e in s["events"]:
    print(f"  {e['mark']:8} at {e['at_s']:6}s  " + ", ".join(f"{k}={v}" for k, v in e.items() if k not in ('mark', 'at_s')))
PY
if [ "$rc" != 0 ]; then
  echo "faults: FAIL stored signal missing, duplicated or misnamed (see $RESULTS/$TAG.*)" >&2
  exit 1
fi
echo "faults: PASS every stored request is in the stream exactly once"

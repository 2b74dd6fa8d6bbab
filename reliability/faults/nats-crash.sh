#!/usr/bin/env bash
# Campaign 1: nats-server crashes under load. See reliability/sections/crashes.md.
#
# One nats-server (free loopback port, temporary store) and the release
# gateway with the production timeouts. probe.py sends RATE signed requests/s,
# open loop, each with its own Idempotency-Key, for DURATION seconds. At each
# time in KILLS (seconds from the start) nats-server is SIGKILLed, and DOWN
# seconds later started again on the same port and the same store. At the
# end the whole stream is read back.
#
# Figures: requests sent, 2xx / 503 received, messages in the stream, 2xx
# whose message is missing (must be 0), Nats-Msg-Ids stored twice (must be
# 0), 2xx carrying another event id than the stored one (must be 0), time
# from each restart (nats-server listening) to the first 2xx.
#
# Knobs: DURATION (60), RATE (20), KILLS ("15 40"), DOWN (2), SKIP_BUILD=1,
# KEEP_TMP=1, TAG (results file prefix, "nats-crash"). Results:
# reliability/faults/results/.
FAULTS_TAG=nats-crash
source "$(dirname "$0")/lib.sh"

DURATION="${DURATION:-60}"
RATE="${RATE:-20}"
KILLS="${KILLS:-15 40}"
DOWN="${DOWN:-2}"
TAG="${TAG:-nats-crash}"
setup_campaign

STORE="$tmp/js"
start_nats "$STORE"
start_gateway
log "nats-server on $NATS_PORT, gateway on $GW_PORT; ${RATE} req/s for ${DURATION}s; SIGKILL at: $KILLS"
start_probe --timeout 60 --pid "$GW_PID"

n=0
for at in $KILLS; do
  n=$((n + 1))
  until_s "$at"
  mark "kill_$n"
  kill_nats KILL
  log "nats-server SIGKILLed (#$n); restarting in ${DOWN}s on the same port and store"
  sleep "$DOWN"
  restart_nats "$STORE"
  mark "up_$n"
done

wait "$probe" || true
forget_pid "$probe"
rc=0
verify_and_report || rc=1

"$PY" - "$RESULTS/$TAG.report.json" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
st = s["final_statuses"]
two = sum(v for k, v in st.items() if k.startswith("2"))
rec = [e["recovery_s"] for e in s["events"] if "recovery_s" in e]
print(f"requests sent             {s['requests']}")
print(f"2xx received              {two}")
print(f"503 received              {st.get('503', 0)}  ({', '.join(f'{k}×{v}' for k, v in s['final_errors'].items())})")
print(f"other answers             { {k: v for k, v in st.items() if not k.startswith('2') and k != '503'} }")
print(f"messages in the stream    {s['stream_messages']}")
print(f"2xx missing from stream   {s['missing_2xx']}")
print(f"duplicated messages       {s['duplicated_msg_ids']}")
print(f"2xx with wrong event id   {s['wrong_event_id']}")
print(f"503'd but stored anyway   {s['non_2xx_stored_anyway']}")
print(f"restart -> first 2xx (s)  {rec}")
print(f"in flight at each kill    {[e.get('in_flight_statuses') for e in s['events'] if e['mark'].startswith('kill_')]}")
PY
if [ "$rc" != 0 ]; then
  echo "faults: FAIL acknowledged loss, duplicates or wrong event ids (see $RESULTS/$TAG.*)" >&2
  exit 1
fi
echo "faults: PASS every 2xx is in the stream exactly once"

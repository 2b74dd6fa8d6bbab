#!/usr/bin/env bash
# Campaign 8: soak with NATS faults. See reliability/sections/crashes.md.
#
# One nats-server (free loopback port, temporary store) and the release
# gateway (production timeouts), DURATION seconds (10 minutes) at a steady
# RATE. probe.py in its retrying mode (each 503 or transport error retried
# with the same Idempotency-Key for up to RETRY_FOR s) samples the gateway's
# VmRSS every 5 s. Every EVERY seconds a NATS fault, alternating (or only
# one kind, with FAULTS=kill or FAULTS=pause):
#   kill:  SIGKILL, restarted DOWN s later on the same port and store;
#   pause: SIGSTOP for PAUSE s, then SIGCONT.
# At the end the whole stream is read back.
#
# Asserted (exit 1 otherwise): every stored request (2xx, or 409 duplicate on
# a retry) in the stream exactly once with the event id it was answered; the
# gateway's RSS over the last two minutes at most RSS_SLACK_MIB above its
# peak in minutes 1-3 (no growth without bound).
#
# Knobs: DURATION (600), RATE (20), EVERY (120), DOWN (2), PAUSE (10),
# RETRY_FOR (60), RSS_SLACK_MIB (32), FAULTS (alternate), SKIP_BUILD=1,
# KEEP_TMP=1, TAG ("soak").
# Results: reliability/faults/results/.
FAULTS_TAG=soak
source "$(dirname "$0")/lib.sh"

DURATION="${DURATION:-600}"
RATE="${RATE:-20}"
EVERY="${EVERY:-120}"
DOWN="${DOWN:-2}"
PAUSE="${PAUSE:-10}"
RETRY_FOR="${RETRY_FOR:-60}"
RSS_SLACK_MIB="${RSS_SLACK_MIB:-32}"
FAULTS="${FAULTS:-alternate}"
case "$FAULTS" in alternate | kill | pause) ;; *) die "FAULTS must be alternate, kill or pause" ;; esac
TAG="${TAG:-soak}"
setup_campaign

STORE="$tmp/js"
start_nats "$STORE"
start_gateway
log "nats-server on $NATS_PORT, gateway on $GW_PORT; ${RATE} req/s for ${DURATION}s; a NATS fault every ${EVERY}s"
start_probe --timeout 30 --retry-for "$RETRY_FOR" --pid "$GW_PID" --rss-every 5

n=0
at="$EVERY"
while [ "$at" -lt "$DURATION" ]; do
  n=$((n + 1))
  until_s "$at"
  if [ "$FAULTS" = kill ] || { [ "$FAULTS" = alternate ] && [ $((n % 2)) = 1 ]; }; then
    mark "kill_$n"
    kill_nats KILL
    log "fault #$n: nats-server SIGKILLed; restarting in ${DOWN}s"
    sleep "$DOWN"
    restart_nats "$STORE"
    mark "up_$n"
  else
    mark "stop_$n"
    kill_nats STOP
    log "fault #$n: nats-server SIGSTOPped for ${PAUSE}s"
    sleep "$PAUSE"
    kill_nats CONT
    mark "cont_$n"
  fi
  at=$((at + EVERY))
done

wait "$probe" || true
forget_pid "$probe"
rc=0
verify_and_report || rc=1

"$PY" - "$RESULTS/$TAG.report.json" "$RSS_SLACK_MIB" <<'PY' || rc=1
import json, sys
s = json.load(open(sys.argv[1]))
slack = float(sys.argv[2])
st = s["final_statuses"]
two = sum(v for k, v in st.items() if k.startswith("2"))
print(f"logical requests          {s['requests']} ({s['attempts']} attempts, at most {s['max_attempts']} for one)")
print(f"attempt answers           {s['attempt_statuses']}  errors {s['attempt_errors']}")
print(f"stored: 2xx / 409 dup     {two} / {s['stored_by_409_duplicate']}; not stored (gave up) {s['not_stored_gave_up']}")
print(f"messages in the stream    {s['stream_messages']}")
print(f"stored but missing        {s['missing_2xx']}")
print(f"duplicated messages       {s['duplicated_msg_ids']}")
print(f"answer names wrong event  {s['wrong_event_id']}")
for e in s["events"]:
    print(f"  {e['mark']:8} at {e['at_s']:7}s  " + ", ".join(f"{k}={v}" for k, v in e.items() if k not in ('mark', 'at_s')))
rss = s.get("rss_mib_max_per_bucket", [])
print(f"RSS MiB, max per minute   {rss}")
if len(rss) >= 5:
    early, late = max(rss[1:4]), max(rss[-2:])
    if late > early + slack:
        print(f"faults: FAIL RSS grew: {late} MiB in the last two minutes vs {early} MiB in minutes 1-3", file=sys.stderr)
        sys.exit(1)
PY
if [ "$rc" != 0 ]; then
  echo "faults: FAIL (see $RESULTS/$TAG.*)" >&2
  exit 1
fi
echo "faults: PASS no acknowledged loss, no duplicates, flat memory"

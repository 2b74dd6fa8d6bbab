#!/usr/bin/env bash
# Campaign 2: NATS silently unreachable. See reliability/sections/faults.md.
#
# For each case: its own nats-server (free loopback port, temporary store),
# the release gateway with the default (production) timeouts, and a probe
# sending signed requests at a steady rate, each with its own
# Idempotency-Key. After PRE seconds the fault is injected for FAULT_SEC
# seconds, then cleared; the probe runs POST seconds more. Then the stream is
# read back: every 2xx'd key must be in it.
#
#   drop      nftables drops loopback TCP to/from our nats-server's port
#   pause     nats-server SIGSTOPped, then SIGCONTed
#   diskfull  the JetStream store on a 64 MiB loop-mounted ext4 that a
#             filler file fills up; then the filler is removed
#
# Needs root (nftables, mount). Installs nftables with apt-get if missing.
# Knobs: CASES ("drop pause diskfull"), RATE (20/s), PRE (5), FAULT_SEC (12),
# POST (20), SKIP_BUILD=1, KEEP_TMP=1. Results: reliability/faults/results/.
FAULTS_TAG=nats-unreachable
source "$(dirname "$0")/lib.sh"

CASES="${CASES:-drop pause diskfull}"
RATE="${RATE:-20}"
PRE="${PRE:-5}"
FAULT_SEC="${FAULT_SEC:-12}"
POST="${POST:-20}"
RESULTS="$FAULTS_DIR/results"
mkdir -p "$RESULTS"
[ "$(id -u)" = 0 ] || die "needs root (nftables, loop mounts)"
ensure_venv
ensure_gateway
export FAULTS_SECRET="$SECRET"

# A table of our own, named after this shell, holding only rules for NATS_PORT.
NFT_TABLE="at_faults_$$"
drop_nats_traffic() {
  command -v nft >/dev/null || { log "installing nftables"; apt-get install -y -q nftables >/dev/null; }
  [ "$NATS_PORT" != 4222 ] || die "refusing to firewall the shared NATS"
  on_exit "nft delete table inet $NFT_TABLE 2>/dev/null"
  nft -f - <<NFT
table inet $NFT_TABLE {
  chain out { type filter hook output priority 0; policy accept;
    oifname "lo" tcp dport $NATS_PORT drop
    oifname "lo" tcp sport $NATS_PORT drop
  }
  chain in { type filter hook input priority 0; policy accept;
    iifname "lo" tcp dport $NATS_PORT drop
    iifname "lo" tcp sport $NATS_PORT drop
  }
}
NFT
}
allow_nats_traffic() { nft delete table inet "$NFT_TABLE"; }

# Loop-mounted ext4 without root-reserved blocks: "full" means full.
mount_small_fs() {
  local img="$tmp/js.img" mnt="$tmp/jsmnt"
  truncate -s 64M "$img"
  mkfs.ext4 -q -m 0 -F "$img"
  mkdir -p "$mnt"
  mount -o loop "$img" "$mnt"
  # After the processes are gone (cleanup kills them first).
  on_exit "umount '$mnt' 2>/dev/null || umount -l '$mnt' 2>/dev/null"
  STORE="$mnt/js"
}
fill_fs() {
  dd if=/dev/zero of="$tmp/jsmnt/filler" bs=1M status=none 2>/dev/null || true
  sync
  log "store fs: $(df -h --output=avail "$tmp/jsmnt" | tail -1 | tr -d ' ') free"
}

# Waits until a request sent after fault_end got a 2xx (or LIMIT seconds).
wait_for_2xx_after_end() {
  local limit="$1" end_t
  end_t="$(grep fault_end "$MARKS" | sed 's/.*"t":\([0-9.]*\).*/\1/')"
  for _ in $(seq 1 $((limit * 5))); do
    if "$PY" - "$PROBE_OUT" "$end_t" <<'PY'; then return 0; fi
import json, sys
end = float(sys.argv[2])
ok = any(200 <= r.get("status", 0) < 300 and r["t0"] >= end
         for r in map(json.loads, open(sys.argv[1])) if "k" in r)
sys.exit(0 if ok else 1)
PY
    sleep 0.2
  done
  return 1
}

run_case() {
  local case="$1"
  log "=== case $case: ${PRE}s before, ${FAULT_SEC}s fault, ${POST}s after, ${RATE} req/s"
  STORE="$tmp/$case-js"
  NATS_PORT=""
  [ "$case" = diskfull ] && mount_small_fs
  start_nats "$STORE"
  start_gateway
  MARKS="$RESULTS/$case.marks.jsonl"
  PROBE_OUT="$RESULTS/$case.probe.jsonl"
  : >"$MARKS"
  : >"$PROBE_OUT"
  local total=$((PRE + FAULT_SEC + POST))
  # Room for the 15 s wait and a nats-server restart after the disk is freed.
  [ "$case" = diskfull ] && total=$((total + 25))
  "$PY" "$FAULTS_DIR/probe.py" --url "$GW_URL/webhooks/alpha" --rate "$RATE" \
    --duration "$total" --timeout 60 --prefix "$case-$$" --pid "$GW_PID" --out "$PROBE_OUT" &
  local probe=$!
  pids+=("$probe")
  sleep "$PRE"

  mark fault_start
  case "$case" in
    drop) drop_nats_traffic ;;
    pause) kill -STOP "$NATS_PID" ;;
    diskfull) fill_fs ;;
  esac
  sleep "$FAULT_SEC"
  case "$case" in
    drop) allow_nats_traffic ;;
    pause) kill -CONT "$NATS_PID" ;;
    diskfull) rm -f "$tmp/jsmnt/filler" && sync ;;
  esac
  mark fault_end

  if [ "$case" = diskfull ] && ! wait_for_2xx_after_end 15; then
    # nats-server 2.9 turned JetStream off after a write error and only a
    # restart brought it back (not yet re-measured on 2.15). That is NATS's
    # recovery, recorded as such.
    log "no 2xx 15 s after space was freed: restarting nats-server (same port, same store)"
    grep -iE 'disabl|no space|resource' "$tmp/nats.log" | tail -n 3 >&2 || true
    # It does not always stop on SIGTERM in that state (seen: hung for
    # minutes), so SIGKILL after 5 s; written data is in the page cache.
    kill "$NATS_PID"
    for _ in $(seq 1 50); do kill -0 "$NATS_PID" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$NATS_PID" 2>/dev/null; then
      log "nats-server ignored SIGTERM for 5 s: SIGKILL"
      mark nats_sigkill
      kill -KILL "$NATS_PID"
    fi
    wait "$NATS_PID" 2>/dev/null || true
    mark nats_restart
    start_nats "$STORE"
  fi

  wait "$probe" || true
  log "verifying the stream against the probe's answers"
  "$PY" "$FAULTS_DIR/verify_stream.py" --nats "nats://127.0.0.1:$NATS_PORT" --probe "$PROBE_OUT" \
    >"$RESULTS/$case.verify.json" || verdict_fail+=("$case: 2xx'd key missing from the stream")
  "$PY" "$FAULTS_DIR/report.py" --probe "$PROBE_OUT" --marks "$MARKS" --markdown "$case" \
    >"$RESULTS/$case.report.txt"
  cat "$RESULTS/$case.report.txt" "$RESULTS/$case.verify.json"
  # Hard limits of the promise: nothing that was not stored answered 2xx
  # (checked above), and answers bounded by the ack wait, not minutes.
  "$PY" - "$RESULTS/$case.report.txt" <<'PY' || verdict_fail+=("$case: unbounded latency or no recovery")
import json, sys
s = json.loads(open(sys.argv[1]).readline())
bad = []
if (s["in_flight_during_fault_max_ms"] or 0) > 15000:
    bad.append(f"answer took {s['in_flight_during_fault_max_ms']} ms during the fault")
if s["recovery_s"] is None:
    bad.append("no 2xx after the fault cleared")
for b in bad:
    print("faults: FAIL " + b, file=sys.stderr)
sys.exit(1 if bad else 0)
PY
  grep -iE 'panic' "$tmp/gateway.log" | tail -n 3 >&2 || true
  cp "$tmp/gateway.log" "$RESULTS/$case.gateway.log"
  cp "$tmp/nats.log" "$RESULTS/$case.nats.log"

  # Tear this case down before the next one (the trap would do it at exit).
  kill "$GW_PID" "$NATS_PID" 2>/dev/null || true
  wait "$GW_PID" "$NATS_PID" 2>/dev/null || true
  : >"$tmp/gateway.log"
  : >"$tmp/nats.log"
  if [ "$case" = diskfull ]; then umount "$tmp/jsmnt"; fi
}

verdict_fail=()
for c in $CASES; do run_case "$c"; done
echo
echo "| case | fault s | sent during | statuses during | p99 / max in flight ms | statuses after | recovery s | RSS MiB before / during / after |"
echo "|---|---:|---:|---|---:|---|---:|---|"
for c in $CASES; do sed -n 2p "$RESULTS/$c.report.txt"; done
if [ "${#verdict_fail[@]}" -gt 0 ]; then
  printf 'faults: FAIL %s\n' "${verdict_fail[@]}" >&2
  exit 1
fi
echo "faults: PASS every 2xx'd key is in the stream; answers bounded; recovered"

#!/usr/bin/env bash
# Campaign 3: clustered JetStream, leader killed under load. See
# reliability/sections/cluster.md.
#
# Three nats-servers (n1, n2, n3) clustered on free loopback ports (client,
# route and monitoring port each, their own temporary store), the release
# gateway with all three URLs in NATS_URL and `nats.stream_replicas = 3`
# (the stream and both key-value buckets are R3), production timeouts
# otherwise. cluster_probe.py sends RATE new signed requests/s, each with its
# own Idempotency-Key, and retries 503s and unanswered requests with the same
# key (fresh nonce) every second, as API_SPEC tells callers to.
#
# After PRE seconds the stream's leader (asked from the monitoring
# endpoints) is SIGKILLed; DOWN seconds later it is restarted on its ports
# and store; GAP seconds of steady load follow. That is repeated KILLS times
# (each time on the then-current stream leader, once every replica is
# current again), then POST seconds more. The whole stream is then read back
# and checked against every answer (cluster_report.py): any 2xx or 409 whose
# signal is missing, a message stored twice, a key under two event ids, or a
# gateway not answering 2xx at the end fails the campaign (exit 1). Replicas
# whose last sequence numbers still differ after SETTLE seconds are only a
# warning (NATS's matter).
#
# With FAULT=stop the leader is SIGSTOPped instead, and SIGCONTed after DOWN
# seconds (a hung server: its TCP connections stay open and silent).
#
# With QUORUM_LOSS=SEC (default 0: off), after the kills the stream leader
# and one more node are SIGKILLed together for SEC seconds (one node of three
# left: no quorum, nothing can be acknowledged), then both are restarted.
#
# Knobs: RATE (20/s), PRE (10), DOWN (15), GAP (20), KILLS (2), POST (15),
# FAULT (kill), QUORUM_LOSS (0), SETTLE (30), HOLD (0: seconds to keep the
# cluster up at the end, for a look), SKIP_BUILD=1, GATEWAY_BIN (a prebuilt
# at-gateway to test instead of building target/release/at-gateway),
# KEEP_TMP=1, STORE_BACKEND (jetstream; `stream`: claims in the signal's atomic
# batch). Results: reliability/faults/results/cluster.*.
FAULTS_TAG=cluster
source "$(dirname "$0")/lib.sh"

RATE="${RATE:-20}"
PRE="${PRE:-10}"
DOWN="${DOWN:-15}"
GAP="${GAP:-20}"
KILLS="${KILLS:-2}"
POST="${POST:-15}"
QUORUM_LOSS="${QUORUM_LOSS:-0}"
FAULT="${FAULT:-kill}"
case "$FAULT" in kill | stop) ;; *) die "FAULT is kill or stop" ;; esac
RESULTS="$FAULTS_DIR/results"
mkdir -p "$RESULTS"
ensure_nats
ensure_venv
if [ -z "${GATEWAY_BIN:-}" ]; then
  ensure_gateway
  GATEWAY_BIN="$REPO/target/release/at-gateway"
fi
# A private copy: target/ is shared, and a rebuild must not change the
# binary under test halfway.
cp "$GATEWAY_BIN" "$tmp/at-gateway" || die "no gateway binary at $GATEWAY_BIN"
log "gateway binary $GATEWAY_BIN (sha256 $(sha256sum "$tmp/at-gateway" | cut -c1-12))"
export FAULTS_SECRET="$SECRET"

MARKS="$RESULTS/cluster.marks.jsonl"
PROBE_OUT="$RESULTS/cluster.probe.jsonl"
: >"$MARKS"
: >"$PROBE_OUT"

# cmark NAME [JSON_FIELDS]: a timestamped event with extra fields.
cmark() { printf '{"mark":"%s","t":%s%s}\n' "$1" "$(date +%s.%N)" "${2:+,$2}" >>"$MARKS"; }

# A process that is gone is no longer ours to clean up (its number may be
# reused by somebody else's process).
cluster_forget_pid() {
  local keep=() p
  for p in "${pids[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
  pids=("${keep[@]}")
}

declare -a CPORT RPORT MPORT NPID
for i in 1 2 3; do
  CPORT[$i]="$(free_port)"
  RPORT[$i]="$(free_port)"
  MPORT[$i]="$(free_port)"
done
MON="${MPORT[1]},${MPORT[2]},${MPORT[3]}"
NATS_URLS="nats://127.0.0.1:${CPORT[1]},nats://127.0.0.1:${CPORT[2]},nats://127.0.0.1:${CPORT[3]}"
ROUTES="nats-route://127.0.0.1:${RPORT[1]}, nats-route://127.0.0.1:${RPORT[2]}, nats-route://127.0.0.1:${RPORT[3]}"

# start_node I: nats-server nI on its ports and store; sets NPID[I].
start_node() {
  local i="$1" p
  for p in "${CPORT[$i]}" "${RPORT[$i]}" "${MPORT[$i]}"; do
    [ "$p" != 4222 ] || die "refusing to use the shared NATS port"
  done
  mkdir -p "$tmp/n$i-js"
  cat >"$tmp/n$i.conf" <<CONF
server_name: n$i
listen: 127.0.0.1:${CPORT[$i]}
http: 127.0.0.1:${MPORT[$i]}
max_payload: 8MB
jetstream {
  store_dir: "$tmp/n$i-js"
$([ "$NATS_SYNC" = timer ] || echo '  sync_interval: always')
}
cluster {
  name: at-faults
  listen: 127.0.0.1:${RPORT[$i]}
  routes: [ $ROUTES ]
}
CONF
  "$NATS_SERVER_BIN" -c "$tmp/n$i.conf" >>"$tmp/n$i.log" 2>&1 &
  NPID[$i]=$!
  pids+=("${NPID[$i]}")
  wait_listening "${CPORT[$i]}" "${NPID[$i]}" "$tmp/n$i.log" "n$i"
}

kill_node() {
  local i="$1"
  kill -KILL "${NPID[$i]}"
  { wait "${NPID[$i]}" || true; } 2>/dev/null
  cluster_forget_pid "${NPID[$i]}"
}

tool() { "$PY" "$FAULTS_DIR/cluster_tool.py" "$@" --mon "$MON"; }

# wait_until SECONDS CMD...: polls CMD every 0.2 s.
wait_until() {
  local limit="$1"
  shift
  for _ in $(seq 1 $((limit * 5))); do
    "$@" && return 0
    sleep 0.2
  done
  return 1
}

# The gateway (lib.sh's start_gateway) with the three URLs, R3, and the
# private copy of the binary.
start_cluster_gateway() {
  GATEWAY_BIN="$tmp/at-gateway" GW_LOG_LEVEL="${GW_LOG_LEVEL:-info}" NATS_URL_OVERRIDE="$NATS_URLS" \
    start_gateway $'[nats]\nstream_replicas = 3\n'
}

log "starting n1 n2 n3 (client ports ${CPORT[*]}, monitoring $MON)"
for i in 1 2 3; do start_node "$i"; done
wait_until 30 tool meta || die "no JetStream metadata leader after 30 s"
start_cluster_gateway
wait_until 30 tool current || die "stream and buckets not R3 and current after 30 s"
log "gateway $GW_URL ready; leaders: $(tool leaders)"

total=$((PRE + KILLS * (DOWN + GAP) + POST))
[ "$QUORUM_LOSS" -gt 0 ] && total=$((total + QUORUM_LOSS + GAP))
"$PY" "$FAULTS_DIR/cluster_probe.py" --url "$GW_URL/webhooks/alpha" --rate "$RATE" \
  --duration "$total" --retry-until $((total + 15)) --timeout 30 \
  --prefix "cluster-$$" --out "$PROBE_OUT" &
probe=$!
pids+=("$probe")
sleep "$PRE"

for k in $(seq 1 "$KILLS"); do
  if [ "$k" -gt 1 ] && ! wait_until 30 tool current; then
    log "replicas not all current 30 s after the restart; killing the leader anyway"
  fi
  leaders="$(tool leaders)"
  node="$("$PY" -c 'import json,sys; print(json.loads(sys.argv[1])["streams"].get(sys.argv[2], ""))' \
    "$leaders" trading-events)"
  case "$node" in n1 | n2 | n3) ;; *) die "no stream leader found: $leaders" ;; esac
  i="${node#n}"
  led="$("$PY" -c 'import json,sys; d=json.loads(sys.argv[1]); n=sys.argv[2]
print(json.dumps((["meta"] if d["meta"]==n else [])+sorted(s for s,l in d["streams"].items() if l==n)))' \
    "$leaders" "$node")"
  if [ "$FAULT" = stop ]; then
    log "kill $k: SIGSTOP $node (leader of $led)"
    cmark "kill$k" "\"node\":\"$node\",\"led\":$led,\"signal\":\"STOP\""
    kill -STOP "${NPID[$i]}"
    sleep "$DOWN"
    log "SIGCONT $node"
    kill -CONT "${NPID[$i]}"
  else
    log "kill $k: SIGKILL $node (leader of $led)"
    cmark "kill$k" "\"node\":\"$node\",\"led\":$led"
    kill_node "$i"
    sleep "$DOWN"
    log "restart $node"
    start_node "$i"
  fi
  cmark "restart$k" "\"node\":\"$node\""
  sleep "$GAP"
done

if [ "$QUORUM_LOSS" -gt 0 ]; then
  wait_until 30 tool current || log "replicas not all current before the quorum loss"
  leaders="$(tool leaders)"
  node="$("$PY" -c 'import json,sys; print(json.loads(sys.argv[1])["streams"].get(sys.argv[2], ""))' \
    "$leaders" trading-events)"
  case "$node" in n1 | n2 | n3) ;; *) die "no stream leader found: $leaders" ;; esac
  a="${node#n}"
  b=$((a % 3 + 1))
  log "quorum loss: SIGKILL n$a (stream leader) and n$b for ${QUORUM_LOSS}s"
  cmark qloss "\"node\":\"n$a+n$b\",\"led\":[\"trading-events\"]"
  kill_node "$a"
  kill_node "$b"
  sleep "$QUORUM_LOSS"
  log "restart n$a and n$b"
  start_node "$a"
  start_node "$b"
  cmark qrestore "\"node\":\"n$a+n$b\""
  sleep "$GAP"
fi
sleep "$POST"

wait "$probe" || true
cluster_forget_pid "$probe"
log "probe done; waiting for every replica to be current"
wait_until 30 tool current || log "replicas not all current after 30 s"
# Followers apply a moment after they report current: let the seqs settle
# (up to SETTLE seconds; every sample is kept).
: >"$RESULTS/cluster.replicas-samples.jsonl"
for _ in $(seq 1 $((${SETTLE:-30} * 2))); do
  tool replicas >"$RESULTS/cluster.replicas.json"
  printf '{"t":%s,"r":%s}\n' "$(date +%s.%N)" "$(cat "$RESULTS/cluster.replicas.json")" \
    >>"$RESULTS/cluster.replicas-samples.jsonl"
  "$PY" -c 'import json,sys
d=json.load(open(sys.argv[1]))
sys.exit(0 if d and all(len(v)==3 and len({x["last_seq"] for x in v.values()})==1 for v in d.values()) else 1)' \
    "$RESULTS/cluster.replicas.json" && break
  sleep 0.5
done
if [ "${HOLD:-0}" -gt 0 ]; then
  log "HOLD: cluster up for ${HOLD}s (monitoring $MON, NATS $NATS_URLS)"
  sleep "$HOLD"
fi
readyz="$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$GW_URL/readyz" || true)"

rc=0
"$PY" "$FAULTS_DIR/cluster_report.py" --probe "$PROBE_OUT" --marks "$MARKS" --nats "$NATS_URLS" \
  --replicas "$RESULTS/cluster.replicas.json" --readyz "$readyz" --markdown \
  >"$RESULTS/cluster.report.txt" || rc=$?
cp "$tmp/gateway.log" "$RESULTS/cluster.gateway.log"
for i in 1 2 3; do cp "$tmp/n$i.log" "$RESULTS/cluster.n$i.log"; done
head -n 1 "$RESULTS/cluster.report.txt" >"$RESULTS/cluster.report.json"
tail -n +2 "$RESULTS/cluster.report.txt"
"$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); print(json.dumps({k: d[k] for k in
  ("keys","attempts","first_attempt_statuses","codes_non_2xx","final_per_key","stream_messages",
   "keys_stored","stored_without_2xx_or_409","replica_last_seq","readyz_at_end","failures","warnings")}, indent=1))' \
  "$RESULTS/cluster.report.json"
grep -iE 'panic' "$tmp/gateway.log" | tail -n 3 >&2 || true
"$PY" -c 'import json,sys; [print("faults: WARNING", w) for w in json.load(open(sys.argv[1]))["warnings"]]' \
  "$RESULTS/cluster.report.json" >&2
if [ "$rc" != 0 ]; then
  log "FAIL (see $RESULTS/cluster.report.json)"
  exit 1
fi
echo "faults: PASS every 2xx'd and 409'd key is in the stream once; no duplicates; the gateway serves after every failover"

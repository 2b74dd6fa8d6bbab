# Sourced by the fault campaigns in this directory: their own nats-server and
# gateway on free loopback ports, a Python venv with the probe's packages,
# and one cleanup that always runs. Never touches the shared NATS on 4222.
#
# The sourcing script sets FAULTS_TAG (for the temp dir name) and may push
# extra cleanup commands with `on_exit 'cmd'` (run last-in, first-out).

set -euo pipefail
FAULTS_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$FAULTS_DIR/../.." && pwd)"
VENV="$REPO/target/faults-venv"
PY="$VENV/bin/python"
# Not a real secret: it only has to be the same for the gateway and the probe.
SECRET="faults-only-hmac-secret-0123456789"

tmp="$(mktemp -d -t "at-gateway-${FAULTS_TAG:-faults}.XXXXXX")"
pids=()
exit_cmds=()

on_exit() { exit_cmds+=("$1"); }

cleanup() {
  local rc=$? pid i
  # Processes first (a nats-server may be stopped: SIGCONT so it can die).
  for pid in "${pids[@]}"; do kill -CONT "$pid" 2>/dev/null || true; kill "$pid" 2>/dev/null || true; done
  for _ in $(seq 1 50); do
    local alive=0
    for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
    [ "$alive" = 0 ] && break
    sleep 0.1
  done
  for pid in "${pids[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
  # Then what the campaign registered (firewall rules, mounts), newest first.
  for ((i = ${#exit_cmds[@]} - 1; i >= 0; i--)); do eval "${exit_cmds[$i]}" || true; done
  if [ "${KEEP_TMP:-0}" = 1 ]; then echo "faults: kept $tmp" >&2; else rm -rf "$tmp"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

die() {
  echo "faults: $*" >&2
  exit 1
}
log() { echo "faults: $*" >&2; }

# A loopback port nothing listens on, below Linux's ephemeral range, never 4222.
used_ports=" 4222 "
free_port() {
  local port
  for _ in $(seq 1 200); do
    port=$((20000 + RANDOM % 12000))
    case "$used_ports" in *" $port "*) continue ;; esac
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      used_ports+="$port "
      echo "$port"
      return 0
    fi
  done
  die "no free port found"
}

# The probe's packages, once, into target/faults-venv.
ensure_venv() {
  if ! "$PY" -c 'import aiohttp, nats' 2>/dev/null; then
    log "creating $VENV (aiohttp, nats-py)"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q aiohttp nats-py
  fi
}

# GATEWAY_BIN: another gateway binary (a copy kept aside to compare two
# builds); nothing is built then.
GATEWAY_BIN="${GATEWAY_BIN:-}"
ensure_gateway() {
  if [ -n "$GATEWAY_BIN" ]; then
    [ -x "$GATEWAY_BIN" ] || die "GATEWAY_BIN=$GATEWAY_BIN is not executable"
    return 0
  fi
  if [ "${SKIP_BUILD:-0}" != 1 ]; then
    (cd "$REPO" && cargo build --release --bin at-gateway)
  fi
  [ -x "$REPO/target/release/at-gateway" ] || die "target/release/at-gateway missing"
  GATEWAY_BIN="$REPO/target/release/at-gateway"
}

# The pinned nats-server (2.15.1, scripts/ensure-nats.sh), never the one on
# the PATH. NATS_SYNC: `always` (the default: JetStream fsyncs every write
# before the ack, what the project recommends) or `timer` (nats-server's own
# default, a flush every two minutes), for a run that says so.
NATS_SYNC="${NATS_SYNC:-always}"
case "$NATS_SYNC" in
  always | timer) ;;
  *) die "NATS_SYNC must be always or timer, not '$NATS_SYNC'" ;;
esac
NATS_SERVER_BIN=""
ensure_nats() {
  [ -n "$NATS_SERVER_BIN" ] && return 0
  NATS_SERVER_BIN="$(bash "$REPO/scripts/ensure-nats.sh")" || die "scripts/ensure-nats.sh failed"
  log "$("$NATS_SERVER_BIN" --version), JetStream sync: $NATS_SYNC"
}

# nats_conf [EXTRA_CONF]: the campaigns' nats-server settings on stdout.
nats_conf() {
  printf 'max_payload: 8MB\n'
  [ "$NATS_SYNC" = timer ] || printf 'jetstream {\n  sync_interval: always\n}\n'
  printf '%s\n' "${1:-}"
}

# start_nats STORE_DIR [EXTRA_CONF]: sets NATS_PORT and NATS_PID.
start_nats() {
  ensure_nats
  local store="$1" extra="${2:-}"
  NATS_PORT="${NATS_PORT:-$(free_port)}"
  [ "$NATS_PORT" != 4222 ] || die "refusing to use the shared NATS port"
  nats_conf "$extra" >"$tmp/nats.conf"
  "$NATS_SERVER_BIN" -a 127.0.0.1 -p "$NATS_PORT" -js -sd "$store" -c "$tmp/nats.conf" \
    >>"$tmp/nats.log" 2>&1 &
  NATS_PID=$!
  pids+=("$NATS_PID")
  wait_listening "$NATS_PORT" "$NATS_PID" "$tmp/nats.log" nats-server
}

# wait_listening PORT PID LOG NAME: returns once PORT on loopback accepts
# connections; dies, with LOG's last lines, if PID exits first or after 10 s.
wait_listening() {
  local port="$1" pid="$2" log="$3" name="$4"
  for _ in $(seq 1 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
    kill -0 "$pid" 2>/dev/null || { tail -n 20 "$log" >&2; die "$name exited at start"; }
    sleep 0.1
  done
  die "$name not listening after 10 s"
}

# start_gateway [EXTRA_TOML]: the release binary (or $GATEWAY_BIN) against our
# NATS; sets GW_PORT, GW_PID, GW_URL. Waits for /readyz. EXTRA_TOML defaults
# to $GW_TOML (extra settings for a campaign's gateway). With GW_PORT_WANTED
# set it listens there (a restart on the same port). GW_WRAP: a command put in
# front of the binary (e.g. "heaptrack -o FILE"; GW_PID is then the wrapper's).
# NATS_URL_OVERRIDE: the NATS_URL to give it instead (several servers).
start_gateway() {
  GW_PORT="${GW_PORT_WANTED:-$(free_port)}"
  printf '%s\n' "${1:-${GW_TOML:-}}" >"$tmp/gateway.toml"
  env -u TRADINGVIEW_TOKEN \
    HTTP_ADDR="127.0.0.1:$GW_PORT" \
    NATS_URL="${NATS_URL_OVERRIDE:-nats://127.0.0.1:$NATS_PORT}" \
    ALLOWED_SOURCES=alpha \
    API_KEY_HMAC_SECRET="$SECRET" \
    RATE_LIMIT_RPS=1000000 \
    RATE_LIMIT_BURST=1000000 \
    LOG_LEVEL="${GW_LOG_LEVEL:-warn}" \
    STORE_BACKEND="${STORE_BACKEND:-jetstream}" \
    ${GW_WRAP:-} "${GATEWAY_BIN:-$REPO/target/release/at-gateway}" --config "$tmp/gateway.toml" >>"$tmp/gateway.log" 2>&1 &
  GW_PID=$!
  pids+=("$GW_PID")
  GW_URL="http://127.0.0.1:$GW_PORT"
  for _ in $(seq 1 150); do
    curl -fsS -o /dev/null --max-time 1 "$GW_URL/readyz" 2>/dev/null && return 0
    kill -0 "$GW_PID" 2>/dev/null || { tail -n 20 "$tmp/gateway.log" >&2; die "gateway exited at start"; }
    sleep 0.2
  done
  tail -n 20 "$tmp/gateway.log" >&2
  die "gateway /readyz not 200 after 30 s"
}

# mark NAME: a timestamped event the report aligns the probe's records with.
mark() { printf '{"mark":"%s","t":%s}\n' "$1" "$(date +%s.%N)" >>"$MARKS"; }

# kill_nats SIGNAL: sends SIGNAL to our nats-server and, unless it is STOP or
# CONT, waits until the process is gone.
kill_nats() {
  local sig="$1"
  [ "$NATS_PORT" != 4222 ] || die "refusing to signal the shared NATS"
  kill -"$sig" "$NATS_PID"
  case "$sig" in STOP | CONT) return 0 ;; esac
  for _ in $(seq 1 100); do kill -0 "$NATS_PID" 2>/dev/null || break; sleep 0.05; done
  { wait "$NATS_PID" || true; } 2>/dev/null
  forget_pid "$NATS_PID"
}

# forget_pid PID: a process that is gone is no longer ours to clean up (its
# number may be reused by somebody else's process).
forget_pid() {
  local keep=() p
  for p in "${pids[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
  pids=("${keep[@]}")
}

# restart_nats STORE_DIR: a new nats-server on the same port and store.
restart_nats() { start_nats "$1"; }

# restart_gateway [EXTRA_TOML]: the gateway again, on the same port.
restart_gateway() { GW_PORT_WANTED="$GW_PORT" start_gateway "$@"; }

# setup_campaign: the results directory ($RESULTS), the probe's venv, the
# gateway binary, and the probe's signing secret. For the campaigns that
# drive one gateway with probe.py (nats-crash, gateway-crash, shutdown, soak).
setup_campaign() {
  RESULTS="$FAULTS_DIR/results"
  mkdir -p "$RESULTS"
  ensure_venv
  ensure_gateway
  export FAULTS_SECRET="$SECRET"
}

# start_probe [PROBE_ARGS...]: probe.py against the gateway at $RATE for
# $DURATION s, recording into $MARKS and $PROBE_OUT ($RESULTS/$TAG.*, both
# emptied); sets `probe` (its pid) and `t_start` (the clock of until_s).
start_probe() {
  MARKS="$RESULTS/$TAG.marks.jsonl"
  PROBE_OUT="$RESULTS/$TAG.probe.jsonl"
  : >"$MARKS"
  : >"$PROBE_OUT"
  "$PY" "$FAULTS_DIR/probe.py" --url "$GW_URL/webhooks/alpha" --rate "$RATE" --duration "$DURATION" \
    --prefix "$TAG-$$" --out "$PROBE_OUT" "$@" &
  probe=$!
  pids+=("$probe")
  t_start="$(date +%s.%N)"
}

# until_s SECONDS: sleeps until SECONDS after the probe started (at once if
# that has passed).
until_s() {
  local now
  now="$(date +%s.%N)"
  sleep "$(awk -v a="$1" -v s="$t_start" -v n="$now" 'BEGIN { w = s + a - n; print (w > 0 ? w : 0) }')"
}

# verify_and_report [REQUIRE...]: reads the whole stream back for the probe's
# records ($PROBE_OUT, $MARKS) into $RESULTS/$TAG.verify.json and
# $TAG.report.json, keeps the gateway's and NATS's logs beside them, and
# fails (status 1) on any stored signal missing, a duplicate, an answer
# naming a wrong event id, or a failed extra REQUIRE (crash_report.py form).
verify_and_report() {
  local failed=0
  log "reading the stream back"
  "$PY" "$FAULTS_DIR/verify_stream.py" --nats "nats://127.0.0.1:$NATS_PORT" --probe "$PROBE_OUT" \
    >"$RESULTS/$TAG.verify.json" || failed=1
  "$PY" "$FAULTS_DIR/crash_report.py" --probe "$PROBE_OUT" --marks "$MARKS" --verify "$RESULTS/$TAG.verify.json" \
    --require missing_2xx\<=0 duplicated_msg_ids\<=0 wrong_event_id\<=0 "$@" \
    >"$RESULTS/$TAG.report.json" || failed=1
  cp "$tmp/gateway.log" "$RESULTS/$TAG.gateway.log"
  cp "$tmp/nats.log" "$RESULTS/$TAG.nats.log"
  grep -i panic "$tmp/gateway.log" | tail -n 3 >&2 || true
  return "$failed"
}

# Shared by the bench scripts (sourced, not run).
#
# Processes started here are tracked in `pids` and stopped on exit; the
# temporary directory `tmp` (NATS store, logs, generated configs) is removed.
# Nothing here touches a nats-server it did not start.

# Not a real secret: it only has to be the same for servers and load generator.
SECRET="bench-only-hmac-secret-0123456789"

tmp="$(mktemp -d -t at-gateway-bench.XXXXXX)"
pids=()

cleanup() {
  local pid
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  # Give them a moment to exit cleanly, then make sure.
  for _ in $(seq 1 50); do
    local alive=0
    for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
    [ "$alive" = 0 ] && break
    sleep 0.1
  done
  for pid in "${pids[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

die() {
  echo "bench: $*" >&2
  exit 1
}

# A loopback port nothing listens on, below Linux's ephemeral range (so no
# outgoing connection holds it) and not one already handed out.
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

# wait_port PORT PID NAME LOG: until PORT accepts connections (30 s at most).
wait_port() {
  for _ in $(seq 1 300); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    kill -0 "$2" 2>/dev/null || { tail -n 20 "$4" >&2; die "$3 exited at start"; }
    sleep 0.1
  done
  tail -n 20 "$4" >&2
  die "$3 is not listening on 127.0.0.1:$1 after 30 s"
}

# wait_http URL PID NAME LOG: until URL answers 200 (30 s at most).
wait_http() {
  for _ in $(seq 1 150); do
    curl -fsS -o /dev/null --max-time 1 "$1" 2>/dev/null && return 0
    kill -0 "$2" 2>/dev/null || { tail -n 20 "$4" >&2; die "$3 exited at start"; }
    sleep 0.2
  done
  tail -n 20 "$4" >&2
  die "$3: $1 not 200 after 30 s"
}

# stop PID: SIGTERM, then SIGKILL after 10 s, and the same for any process
# it started (uvicorn's workers) that outlived it; forget it.
stop() {
  local pid="$1" p kids
  kids="$(descendants "$pid")"
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 1 100); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -9 "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  for p in ${kids//,/ }; do
    [ "$p" = "$pid" ] && continue
    for _ in $(seq 1 50); do
      kill -0 "$p" 2>/dev/null || break
      sleep 0.1
    done
    kill -9 "$p" 2>/dev/null || true
  done
  local keep=()
  for p in "${pids[@]}"; do [ "$p" = "$pid" ] || keep+=("$p"); done
  pids=("${keep[@]}")
}

# descendants PID: PID and every process below it, comma-separated.
descendants() {
  local all="$1" frontier="$1" next child
  while [ -n "$frontier" ]; do
    next=""
    for child in $(ps -o pid= --ppid "$(echo "$frontier" | tr ' ' ',')" 2>/dev/null); do
      all+=",$child"
      next+="$child "
    done
    frontier="${next% }"
  done
  echo "$all"
}

# One line about the machine and how busy it was (1/5/15-minute load average).
machine_note() {
  local model
  model="$(awk -F': *' '/^model name/ { print $2; exit }' /proc/cpuinfo)"
  echo "$(nproc) cores ($model), load average $(cut -d' ' -f1-3 /proc/loadavg)"
}

# /proc/PID/status field in kB (VmRSS, VmHWM).
status_kb() {
  awk -v key="$2:" '$1 == key { print $2 }' "/proc/$1/status"
}

# Builds (unless BUILD=0) and copies the gateway binary into $tmp, so that
# every row of a run uses the same binary even if target/release is rebuilt
# meanwhile (other work shares the checkout).
build_all() {
  if [ "${BUILD:-1}" != 0 ]; then
    echo "bench: building release binaries" >&2
    cargo build --release -p at-gateway-bench
    cargo build --release --bin at-gateway
  fi
  # GATEWAY_BIN: another gateway binary (e.g. a copy kept for a series of runs).
  local bin="${GATEWAY_BIN:-target/release/at-gateway}" dirty
  cp "$bin" "$tmp/at-gateway"
  dirty="$(git status --porcelain -- src Cargo.toml Cargo.lock config 2>/dev/null | wc -l || echo '?')"
  echo "bench: gateway $bin, built $(date -u -r "$bin" '+%F %T UTC'); checkout at $(git rev-parse --short HEAD 2>/dev/null || echo '?') with $dirty changed files under src/, Cargo.*, config/ now" >&2
}

# --- NATS with JetStream, our own ------------------------------------------
# The pinned nats-server (2.15.1, scripts/ensure-nats.sh), never the one on
# the PATH.
NATS_SERVER_BIN="$(bash scripts/ensure-nats.sh)" || die "scripts/ensure-nats.sh failed"
# NATS_SYNC: `always` (the default, what the project recommends: JetStream
# fsyncs every write before the ack) or `timer` (nats-server's own default,
# a flush every two minutes), for a row that says so.
NATS_SYNC="${NATS_SYNC:-always}"
case "$NATS_SYNC" in
  always | timer) ;;
  *) die "NATS_SYNC must be always or timer, not '$NATS_SYNC'" ;;
esac

# NATS_NODES: 1 (the default: one node, R1 streams) or 3 (three local
# nats-servers in one JetStream cluster, every stream R3), for the R3 rows.
NATS_NODES="${NATS_NODES:-1}"
case "$NATS_NODES" in
  1 | 3) ;;
  *) die "NATS_NODES must be 1 or 3, not '$NATS_NODES'" ;;
esac

# Sets nats_port (the first node's), nats_url (every node), nats_pid (every
# node's pid, comma-separated, for the load generator's CPU watch) and
# replicas (the streams' replicas: NATS_NODES).
start_nats() {
  local i routes="" route_ports=() client_ports=() node_pids=() monitor_ports=()
  replicas="$NATS_NODES"
  for i in $(seq 1 "$NATS_NODES"); do
    client_ports+=("$(free_port)")
    route_ports+=("$(free_port)")
    monitor_ports+=("$(free_port)")
    routes+="${routes:+, }\"nats-route://127.0.0.1:${route_ports[-1]}\""
  done
  echo "bench: $("$NATS_SERVER_BIN" --version) x $NATS_NODES, JetStream sync: $NATS_SYNC" >&2
  for i in $(seq 0 $((NATS_NODES - 1))); do
    local conf="$tmp/nats-$i.conf"
    # 1 MiB bodies become messages of a little over 1 MiB (the default max).
    printf 'max_payload: 8MB\n' >"$conf"
    [ "$NATS_SYNC" = timer ] || printf 'jetstream {\n  sync_interval: always\n}\n' >>"$conf"
    if [ "$NATS_NODES" -gt 1 ]; then
      printf 'server_name: n%s\ncluster {\n  name: bench\n  listen: 127.0.0.1:%s\n  routes: [%s]\n}\n' \
        "$i" "${route_ports[$i]}" "$routes" >>"$conf"
    fi
    "$NATS_SERVER_BIN" -a 127.0.0.1 -p "${client_ports[$i]}" -m "${monitor_ports[$i]}" -js \
      -sd "$tmp/jetstream-$i" -c "$conf" \
      >"$tmp/nats-$i.log" 2>&1 &
    node_pids+=("$!")
    pids+=("$!")
  done
  for i in $(seq 0 $((NATS_NODES - 1))); do
    wait_port "${client_ports[$i]}" "${node_pids[$i]}" "nats-server n$i" "$tmp/nats-$i.log"
  done
  # A cluster serves JetStream once it has elected its meta leader: until
  # then a stream cannot be created. /healthz says ok from then on.
  for i in $(seq 0 $((NATS_NODES - 1))); do
    wait_http "http://127.0.0.1:${monitor_ports[$i]}/healthz" "${node_pids[$i]}" "nats-server n$i" \
      "$tmp/nats-$i.log"
  done
  nats_port="${client_ports[0]}"
  nats_url="$(printf 'nats://127.0.0.1:%s,' "${client_ports[@]}")"
  nats_url="${nats_url%,}"
  nats_pid="$(IFS=,; echo "${node_pids[*]}")"
}

# Stops every node and starts them again on an empty store (new ports): a
# row whose stream cannot share a server with an earlier row's.
restart_nats_fresh() {
  local p
  for p in ${nats_pid//,/ }; do stop "$p"; done
  rm -rf "$tmp"/jetstream-*
  start_nats
}

# --- the bench crate's servers ------------------------------------------------
# start_bare / start_minimal: on a free port; set port and pid.
start_bare() {
  port="$(free_port)"
  target/release/bare --addr "127.0.0.1:$port" >"$tmp/bare.log" 2>&1 &
  pid=$!
  pids+=("$pid")
  wait_port "$port" "$pid" bare "$tmp/bare.log"
}

start_minimal() {
  port="$(free_port)"
  target/release/minimal --addr "127.0.0.1:$port" --nats "$nats_url" --replicas "$replicas" \
    --secret "$SECRET" --sources alpha "$@" >"$tmp/minimal.log" 2>&1 &
  pid=$!
  pids+=("$pid")
  wait_port "$port" "$pid" minimal "$tmp/minimal.log"
}

# --- the gateway ------------------------------------------------------------
# start_gateway LOGNAME [VAR=value...] [-- gateway args]: sets gw_port, gw_pid.
# Runs $gw_exe if set (compare.sh), else the copy build_all made.
# Rate limits out of the way: the bench measures throughput, not the limiter.
start_gateway() {
  local name="$1"
  shift
  local envs=() args=()
  while [ $# -gt 0 ]; do
    if [ "$1" = "--" ]; then
      shift
      args=("$@")
      break
    fi
    envs+=("$1")
    shift
  done
  gw_port="$(free_port)"
  env -u TRADINGVIEW_TOKEN \
    HTTP_ADDR="127.0.0.1:$gw_port" \
    NATS_URL="$nats_url" \
    NATS_STREAM_REPLICAS="$replicas" \
    ALLOWED_SOURCES=alpha \
    API_KEY_HMAC_SECRET="$SECRET" \
    RATE_LIMIT_RPS=1000000 \
    RATE_LIMIT_BURST=1000000 \
    LOG_LEVEL=warn \
    STORE_BACKEND=jetstream \
    "${envs[@]}" \
    "${gw_exe:-$tmp/at-gateway}" "${args[@]}" >"$tmp/$name.log" 2>&1 &
  gw_pid=$!
  pids+=("$gw_pid")
  wait_http "http://127.0.0.1:$gw_port/readyz" "$gw_pid" "gateway ($name)" "$tmp/$name.log"
}

gateway_log_check() { # LOGNAME
  if grep -qiE 'panic|error' "$tmp/$1.log"; then
    echo "bench: the gateway ($1) logged errors (last lines):" >&2
    grep -iE 'panic|error' "$tmp/$1.log" | tail -n 5 >&2
  fi
}

# load NAME URL SERVER_PIDS [loadgen options...]: one JSON line on stdout.
load() {
  local name="$1" url="$2" server="$3"
  shift 3
  target/release/loadgen --target "$name" --url "$url" --secret "$SECRET" \
    --connections "$CONNECTIONS" --duration "$DURATION" --warmup "$WARMUP" \
    --watch "server=$server" --watch "nats=$nats_pid" "$@"
}

# json_field JSON KEY: a top-level number of a loadgen line.
json_field() {
  python3 -c 'import json,sys; v=json.loads(sys.argv[1]).get(sys.argv[2]); print("" if v is None else v)' "$1" "$2"
}

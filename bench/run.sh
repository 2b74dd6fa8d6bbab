#!/usr/bin/env bash
# Gateway vs. bare actix-web: accepted requests/s and latency, same machine,
# same run. See bench/README.md.
#
# Starts its own nats-server (free loopback port, temporary store), the
# release gateway and the `bare` baseline, loads bare first and then the
# gateway with the same settings, and prints a Markdown table and the
# throughput ratio. Raw JSON lines go to bench/results/latest.json.
#
# Knobs (environment): CONNECTIONS (64), DURATION seconds (10), WARMUP seconds (2),
# STORE_BACKEND (jetstream, as in production; or memory).
set -euo pipefail
cd "$(dirname "$0")/.."

CONNECTIONS="${CONNECTIONS:-64}"
DURATION="${DURATION:-10}"
WARMUP="${WARMUP:-2}"
STORE_BACKEND="${STORE_BACKEND:-jetstream}"
# Not a real secret: it only has to be the same for gateway and load generator.
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

# wait_port PORT PID NAME LOG: until PORT accepts connections (10 s at most).
wait_port() {
  for _ in $(seq 1 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    kill -0 "$2" 2>/dev/null || { tail -n 20 "$4" >&2; die "$3 exited at start"; }
    sleep 0.1
  done
  tail -n 20 "$4" >&2
  die "$3 is not listening on 127.0.0.1:$1 after 10 s"
}

command -v nats-server >/dev/null || die "nats-server is not on the PATH (scripts/ensure-nats.sh installs it)"

echo "bench: building release binaries" >&2
cargo build --release --manifest-path bench/Cargo.toml
cargo build --release --bin at-gateway

# --- NATS with JetStream, our own ------------------------------------------
nats_port="$(free_port)"
printf 'max_payload: 8MB\n' >"$tmp/nats.conf"
nats-server -a 127.0.0.1 -p "$nats_port" -js -sd "$tmp/jetstream" -c "$tmp/nats.conf" \
  >"$tmp/nats.log" 2>&1 &
pids+=($!)
wait_port "$nats_port" "$!" nats-server "$tmp/nats.log"

# --- the gateway ------------------------------------------------------------
gw_port="$(free_port)"
# Rate limits out of the way: the bench measures throughput, not the limiter.
env -u TRADINGVIEW_TOKEN \
  HTTP_ADDR="127.0.0.1:$gw_port" \
  NATS_URL="nats://127.0.0.1:$nats_port" \
  ALLOWED_SOURCES=alpha \
  API_KEY_HMAC_SECRET="$SECRET" \
  RATE_LIMIT_RPS=1000000 \
  RATE_LIMIT_BURST=1000000 \
  LOG_LEVEL=warn \
  STORE_BACKEND="$STORE_BACKEND" \
  target/release/at-gateway >"$tmp/gateway.log" 2>&1 &
gw_pid=$!
pids+=("$gw_pid")
ready=0
for _ in $(seq 1 150); do # 150 x 0.2 s = 30 s
  if curl -fsS -o /dev/null --max-time 1 "http://127.0.0.1:$gw_port/readyz" 2>/dev/null; then
    ready=1
    break
  fi
  kill -0 "$gw_pid" 2>/dev/null || { tail -n 20 "$tmp/gateway.log" >&2; die "gateway exited at start"; }
  sleep 0.2
done
[ "$ready" = 1 ] || { tail -n 20 "$tmp/gateway.log" >&2; die "gateway /readyz not 200 after 30 s"; }

# --- the baseline -----------------------------------------------------------
bare_port="$(free_port)"
bench/target/release/bare --addr "127.0.0.1:$bare_port" >"$tmp/bare.log" 2>&1 &
pids+=($!)
wait_port "$bare_port" "$!" bare "$tmp/bare.log"

# --- load: bare first, then the gateway, same settings -----------------------
load() { # TARGET PORT
  bench/target/release/loadgen --target "$1" --url "http://127.0.0.1:$2/webhooks/alpha" \
    --secret "$SECRET" --connections "$CONNECTIONS" --duration "$DURATION" --warmup "$WARMUP"
}
echo "bench: $CONNECTIONS connections, ${WARMUP} s warm-up + ${DURATION} s per target, store $STORE_BACKEND" >&2
bare_json="$(load bare "$bare_port")"
gw_json="$(load gateway "$gw_port")"

mkdir -p bench/results
printf '%s\n%s\n' "$bare_json" "$gw_json" >bench/results/latest.json

if grep -qiE 'panic|error' "$tmp/gateway.log"; then
  echo "bench: the gateway logged errors (last lines):" >&2
  grep -iE 'panic|error' "$tmp/gateway.log" | tail -n 5 >&2
fi

# --- report -----------------------------------------------------------------
# The JSON is flat and produced by loadgen, so awk's regexes are enough.
printf '%s\n%s\n' "$bare_json" "$gw_json" | awk '
  function num(key,   m) {
    if (match($0, "\"" key "\":[-0-9.e]+")) return substr($0, RSTART + length(key) + 3, RLENGTH - length(key) - 3)
    return "n/a"
  }
  function str(key) {
    if (match($0, "\"" key "\":\"[^\"]*\"")) return substr($0, RSTART + length(key) + 4, RLENGTH - length(key) - 5)
    return "?"
  }
  BEGIN {
    print "| target | accepted/s | p50 ms | p99 ms | p99.9 ms | non-2xx |"
    print "|---|---:|---:|---:|---:|---:|"
  }
  {
    t = str("target"); rate[t] = num("accepted_per_sec")
    bad = num("non_2xx")
    statuses = ""
    if (match($0, /"statuses":\{[^}]*\}/)) statuses = substr($0, RSTART + 12, RLENGTH - 13)
    if (bad > 0) bad = bad " (" statuses ")"
    if (num("errors") > 0) bad = bad ", " num("errors") " errors"
    if (num("exhausted") == "n/a" && index($0, "\"exhausted\":true")) bad = bad ", pool exhausted"
    printf "| %s | %.0f | %s | %s | %s | %s |\n", t, rate[t], num("p50_ms"), num("p99_ms"), num("p999_ms"), bad
    cpu = cpu sep t " " num("loadgen_cpu_pct") "%"; sep = ", "
  }
  END {
    print ""
    if (rate["bare"] > 0) printf "gateway/bare throughput: %.2f\n", rate["gateway"] / rate["bare"]
    else print "gateway/bare throughput: n/a (bare accepted nothing)"
    print "load generator CPU during the window (100% = one core): " cpu
  }'

# A run where either target accepted nothing is a failed run.
for json in "$bare_json" "$gw_json"; do
  case "$json" in *'"accepted":0,'*) die "a target accepted no request (see above)" ;; esac
done

#!/usr/bin/env bash
# Bar-close bursts (issue 17): N TradingView-style alerts spread evenly over
# W seconds, every alert on a fresh connection with TradingView's 3 s
# timeout (bench/src/bin/burst.rs), against the gateway and the minimal
# same-work program, side by side in one run, one nats-server.
#
# One pinned nats-server (bench/lib.sh: fresh file store, sync_interval:
# always), the release gateway (POST /webhooks/tradingview?token=, plain HTTP
# and its own HTTPS listener with a self-signed CA + leaf made here by
# openssl), and `minimal --tradingview-token` (plain HTTP). For every burst
# size, each row in turn under the same burst:
#   minimal/http  gateway/http  gateway/tls  gateway/tls-resume
# then the largest burst each row answers entirely with 2xx within the
# timeout with p99 <= 2 s, and the ratio gateway/minimal over plain HTTP.
# JSON lines: bench/results/burst.json; table: bench/results/burst.md.
#
# Knobs: BURSTS ("500 1000 2000 3000 5000"), WINDOW seconds (1), TIMEOUT_MS
# (3000), ROWS (the four above, as target/transport), PAUSE seconds between
# bursts (3), KEY (ec | rsa: the server key, P-256 or RSA-2048), BUILD=0
# (use built binaries; GATEWAY_BIN picks the gateway binary), GATEWAY_CONFIG
# (a TOML file the gateway reads with --config, e.g. other [lanes]), STORE_BACKEND
# (jetstream; stream: claims in the batch), NATS_NODES=3 (an R3 cluster, lib.sh),
# SMOKE=1 (tiny bursts, under 30 s, fails unless every alert got a 2xx: for CI),
# RESEND=1 (the client re-sends a 500-599 answer but 504 as TradingView does:
# 5 s later, up to 3 times; the report adds what was delivered in the end).
set -euo pipefail
cd "$(dirname "$0")/.."

SMOKE="${SMOKE:-0}"
if [ "$SMOKE" = 1 ]; then
  BURSTS="${BURSTS:-20 60}"
  PAUSE="${PAUSE:-0.3}"
else
  BURSTS="${BURSTS:-500 1000 2000 3000 5000}"
  PAUSE="${PAUSE:-3}"
fi
WINDOW="${WINDOW:-1}"
TIMEOUT_MS="${TIMEOUT_MS:-3000}"
ROWS="${ROWS:-minimal/http gateway/http gateway/tls gateway/tls-resume}"
KEY="${KEY:-ec}"

# shellcheck source=bench/lib.sh
. bench/lib.sh

# Not a real token: it only has to match between servers and client.
TV_TOKEN="bench-tradingview-token-0123456789"

# Every alert holds a socket at both ends until it is answered.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

if [ "${BUILD:-1}" != 0 ]; then
  echo "bench: building release binaries" >&2
  cargo build --release -p at-gateway-bench --bin burst --bin minimal
  [ -n "${GATEWAY_BIN:-}" ] || cargo build --release --bin at-gateway
fi
BUILD=0 build_all

# --- a CA and a leaf for 127.0.0.1 / localhost ---------------------------------
case "$KEY" in
  ec) keyopt=(-algorithm EC -pkeyopt ec_paramgen_curve:P-256) ;;
  rsa) keyopt=(-algorithm RSA -pkeyopt rsa_keygen_bits:2048) ;;
  *) die "KEY must be ec or rsa, not '$KEY'" ;;
esac
(
  cd "$tmp"
  openssl genpkey "${keyopt[@]}" -out ca.key 2>/dev/null
  openssl req -x509 -new -key ca.key -subj "/CN=at-gateway bench CA" -days 2 -out ca.pem \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign" 2>/dev/null
  openssl genpkey "${keyopt[@]}" -out leaf.key 2>/dev/null
  openssl req -new -key leaf.key -subj "/CN=localhost" -out leaf.csr 2>/dev/null
  printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' >leaf.ext
  openssl x509 -req -in leaf.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
    -extfile leaf.ext -out leaf.pem 2>/dev/null
) || die "openssl could not make the test certificates"

machine_before="$(machine_note)"
start_nats
nats_version="$("$NATS_SERVER_BIN" --version)"

# --- the minimal same-work program, TradingView route on ----------------------
min_port="$(free_port)"
target/release/minimal --addr "127.0.0.1:$min_port" --nats "$nats_url" --replicas "$replicas" \
  --secret "$SECRET" --sources tradingview --tradingview-token "$TV_TOKEN" >"$tmp/minimal.log" 2>&1 &
min_pid=$!
pids+=("$min_pid")
wait_port "$min_port" "$min_pid" minimal "$tmp/minimal.log"

# --- the gateway: plain HTTP and its own HTTPS listener ------------------------
tls_port="$(free_port)"
gateway_args=()
[ -z "${GATEWAY_CONFIG:-}" ] || gateway_args=(-- --config "$GATEWAY_CONFIG")
start_gateway gateway TRADINGVIEW_TOKEN="$TV_TOKEN" ALLOWED_SOURCES=tradingview \
  STORE_BACKEND="${STORE_BACKEND:-jetstream}" \
  TLS_ADDR="127.0.0.1:$tls_port" TLS_CERT_FILE="$tmp/leaf.pem" TLS_KEY_FILE="$tmp/leaf.key" \
  "${gateway_args[@]}"
wait_port "$tls_port" "$gw_pid" "gateway (TLS)" "$tmp/gateway.log"

path="/webhooks/tradingview?token=$TV_TOKEN"
echo "bench: bursts of $BURSTS alerts over ${WINDOW} s, timeout ${TIMEOUT_MS} ms, rows: $ROWS, server key $KEY" >&2

results="$tmp/burst.json"
: >"$results"
for n in $BURSTS; do
  for row in $ROWS; do
    target="${row%/*}" transport="${row#*/}"
    case "$target" in
      minimal) port="$min_port" tls_p="" server="$min_pid" ;;
      gateway) port="$gw_port" tls_p="$tls_port" server="$gw_pid" ;;
      *) die "ROWS: unknown target '$target'" ;;
    esac
    args=()
    [ "${RESEND:-0}" = 1 ] && args+=(--resend)
    case "$transport" in
      http) url="http://127.0.0.1:$port$path" ;;
      tls | tls-resume)
        [ -n "$tls_p" ] || die "ROWS: $target has no TLS listener"
        url="https://127.0.0.1:$tls_p$path"
        args+=(--ca "$tmp/ca.pem")
        [ "$transport" = tls-resume ] && args+=(--resume)
        ;;
      *) die "ROWS: unknown transport '$transport'" ;;
    esac
    target/release/burst --target "$target" --url "$url" --count "$n" --window "$WINDOW" \
      --timeout-ms "$TIMEOUT_MS" --tag "$target-$transport-$n-$RANDOM" \
      --watch "server=$server" --watch "nats=$nats_pid" "${args[@]}" >>"$results"
    sleep "$PAUSE"
  done
done
# Peak resident memory over the whole run (the largest burst sets it).
peak_rss() { awk '/^VmHWM/ { printf "%.0f MiB", $2 / 1024 }' "/proc/$1/status" 2>/dev/null || echo "?"; }
rss_line="- peak RSS over the run: gateway $(peak_rss "$gw_pid"), minimal program $(peak_rss "$min_pid")"
# What the gateway's publishes met: retries show as error / timeout counts.
echo "bench: gateway publish counters after the run:" >&2
counters="$(curl -fsS "http://127.0.0.1:$gw_port/metrics" | grep '^gateway_nats_publish_total' || true)"
echo "$counters" >&2
gateway_log_check gateway
# With re-sends every alert should be stored exactly once: the gateway's
# stored signals against its distinct alerts (every body is unique) and the
# ones it delivered.
stored_line=""
if [ "${RESEND:-0}" = 1 ]; then
  stored="$(echo "$counters" | awk '/status="ok",subject="signals.normalized"/ { print $2 }')"
  # The TLS-resumption rows' priming requests are alerts too.
  read -r sent got < <(python3 -c '
import json, sys
rows = [r for r in map(json.loads, open(sys.argv[1])) if r["target"] == "gateway"]
print(sum(r["count"] + r["primed"] for r in rows), sum(r["resend"]["delivered"] for r in rows))' "$results")
  stored_line="- gateway: ${stored:-?} signals stored for $sent distinct alerts, $got of the bursts' alerts delivered to the sender (a 2xx or 409 duplicate)"
fi

mkdir -p bench/results
cp "$results" bench/results/burst.json
{
  python3 bench/burst_report.py "$results"
  echo "$rss_line"
  [ -z "$stored_line" ] || echo "$stored_line"
  echo "- $nats_version x $NATS_NODES node(s), streams R$replicas (sync_interval: $NATS_SYNC), fresh store; STORE_BACKEND=${STORE_BACKEND:-jetstream}; gateway binary ${GATEWAY_BIN:-target/release/at-gateway}${GATEWAY_CONFIG:+ with --config $GATEWAY_CONFIG} at $(git rev-parse --short HEAD 2>/dev/null || echo '?'); server key $KEY"
  echo "- machine: $machine_before before the run; load average $(cut -d' ' -f1-3 /proc/loadavg) after; $(date -u '+%F %H:%M UTC')"
} | tee bench/results/burst.md

if [ "$SMOKE" = 1 ] && grep -q '"all_2xx":false' "$results"; then
  die "smoke: an alert of a tiny burst did not get a 2xx (see above)"
fi
if [ "$SMOKE" = 1 ] && [ "${RESEND:-0}" = 1 ] && [ "${stored:-}" != "$sent" ]; then
  die "smoke: the gateway stored ${stored:-?} signals for $sent distinct alerts"
fi

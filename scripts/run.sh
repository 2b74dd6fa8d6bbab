#!/usr/bin/env bash
# Runs the gateway against a local NATS with JetStream.
#
# - installs the pinned nats-server (2.15.1, scripts/ensure-nats.sh) under
#   target/ if it is not there yet;
# - if NATS_URL is set, uses that server. If not, it does NOT use whatever
#   answers at nats://127.0.0.1:4222 (often an old server the gateway would
#   refuse): it starts the pinned nats-server on a free loopback port, with
#   JetStream storing under .dev/nats and fsyncing every write before the
#   ack (`sync_interval: always`), and says so; a later run reuses that
#   server while it is still running (.dev/nats.pid, .dev/nats.port);
# - if TRADINGVIEW_TOKEN / API_KEY_HMAC_SECRET are unset, generates them
#   once into .dev/secrets.env (git-ignored) and uses them from there;
# - runs the gateway (release build) on HTTP_ADDR (default 0.0.0.0:8001).
#
# Extra arguments go to the gateway, e.g. `scripts/run.sh --config my.toml`.
set -euo pipefail
cd "$(dirname "$0")/.."

nats_bin="$(bash scripts/ensure-nats.sh)"

export ALLOWED_SOURCES="${ALLOWED_SOURCES:-tradingview,demo}"
mkdir -p .dev

answers() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

if [ -n "${NATS_URL:-}" ]; then
  echo "using NATS at $NATS_URL (NATS_URL)" >&2
else
  pid=$(cat .dev/nats.pid 2>/dev/null || true)
  port=$(cat .dev/nats.port 2>/dev/null || true)
  if [ -n "$pid" ] && [ -n "$port" ] && [ "$(readlink "/proc/$pid/exe" 2>/dev/null)" = "$nats_bin" ] \
    && answers "$port"; then
    echo "NATS_URL not set: using the pinned nats-server this script started before (pid $pid, nats://127.0.0.1:$port, store .dev/nats)" >&2
  else
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    echo "NATS_URL not set: starting the pinned nats-server ($("$nats_bin" --version)) on nats://127.0.0.1:$port" \
      "(JetStream, sync_interval: always, store .dev/nats, log .dev/nats.log)" >&2
    printf 'max_payload: 8MB\njetstream {\n  sync_interval: always\n}\n' > .dev/nats.conf
    "$nats_bin" -a 127.0.0.1 -p "$port" -js -sd "$PWD/.dev/nats" -c .dev/nats.conf >>.dev/nats.log 2>&1 &
    pid=$!
    for _ in $(seq 1 100); do
      answers "$port" && break
      kill -0 "$pid" 2>/dev/null || { tail -n 20 .dev/nats.log >&2; echo "nats-server exited at start" >&2; exit 1; }
      sleep 0.1
    done
    answers "$port" || { tail -n 20 .dev/nats.log >&2; echo "nats-server not listening after 10 s" >&2; exit 1; }
    echo "$pid" > .dev/nats.pid
    echo "$port" > .dev/nats.port
  fi
  export NATS_URL="nats://127.0.0.1:$port"
fi

if [ -z "${TRADINGVIEW_TOKEN:-}" ] || [ -z "${API_KEY_HMAC_SECRET:-}" ]; then
  if [ ! -f .dev/secrets.env ]; then
    umask 077
    {
      echo "TRADINGVIEW_TOKEN=$(head -c 24 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=')"
      echo "API_KEY_HMAC_SECRET=$(head -c 32 /dev/urandom | base64 | tr -d '=')"
    } > .dev/secrets.env
    echo "generated development secrets in .dev/secrets.env" >&2
  fi
  set -a; . .dev/secrets.env; set +a
fi

exec cargo run --release --locked --bin at-gateway -- "$@"

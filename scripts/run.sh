#!/usr/bin/env bash
# Runs the gateway against a local NATS with JetStream.
#
# - installs nats-server from Debian's packages if missing;
# - if nothing answers at NATS_URL (default nats://127.0.0.1:4222), starts a
#   nats-server with JetStream there, storing under .dev/nats;
# - if TRADINGVIEW_TOKEN / API_KEY_HMAC_SECRET are unset, generates them
#   once into .dev/secrets.env (git-ignored) and uses them from there;
# - runs the gateway (release build) on HTTP_ADDR (default 0.0.0.0:8001).
#
# Extra arguments go to the gateway, e.g. `scripts/run.sh --config my.toml`.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/ensure-nats.sh

export NATS_URL="${NATS_URL:-nats://127.0.0.1:4222}"
export ALLOWED_SOURCES="${ALLOWED_SOURCES:-tradingview,demo}"
mkdir -p .dev

hostport="${NATS_URL#*://}"; hostport="${hostport##*@}"; hostport="${hostport%%,*}"
host="${hostport%:*}"; port="${hostport##*:}"
if ! (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null; then
  echo "no NATS at $NATS_URL; starting nats-server with JetStream (store: .dev/nats, log: .dev/nats.log)" >&2
  printf 'max_payload: 8MB\n' > .dev/nats.conf
  nats-server -a "$host" -p "$port" -js -sd .dev/nats -c .dev/nats.conf >.dev/nats.log 2>&1 &
  for _ in $(seq 1 50); do
    (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null && break
    sleep 0.1
  done
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

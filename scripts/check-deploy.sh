#!/usr/bin/env bash
# Checks the dev stack without a container engine: alert rules and
# Prometheus config (promtool), YAML and dashboard JSON parse, the NATS
# config starts a server, and the Dockerfile's build command compiles.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v promtool >/dev/null 2>&1; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq prometheus >/dev/null
fi
promtool check rules deploy/prometheus/alerts.yml
promtool check config deploy/prometheus/prometheus.yml

venv=target/check-venv
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/python" -c 'import yaml' 2>/dev/null || "$venv/bin/pip" install --quiet --disable-pip-version-check pyyaml
"$venv/bin/python" - <<'PY'
import json, yaml, glob
for f in ["docker-compose.dev.yml"] + glob.glob("deploy/**/*.yml", recursive=True):
    yaml.safe_load(open(f))
    print("parsed", f)
for f in glob.glob("deploy/grafana/dashboards/*.json"):
    json.load(open(f))
    print("parsed", f)
PY

# The NATS config: the dev stack's image is the version the project pins,
# the config is durable (fsync before ack), the pinned server accepts it
# (-t) and starts with it on a free port and a temporary store, and then
# reports sync_always.
nats_bin="$(bash scripts/ensure-nats.sh)"
nats_version="$("$nats_bin" --version | sed 's/^nats-server: v//')"
grep -Eq "image: nats:(${nats_version}|${nats_version%.*})-alpine\$" docker-compose.dev.yml \
  || { echo "docker-compose.dev.yml: the nats image is not ${nats_version} (scripts/ensure-nats.sh)" >&2; exit 1; }
grep -Eq '^\s*sync_interval: always\s*$' deploy/nats/nats-server.conf \
  || { echo "deploy/nats/nats-server.conf: no 'sync_interval: always' in its jetstream block" >&2; exit 1; }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
http_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
sed "s/^port: .*/port: $port/; s/^http_port: .*/http_port: $http_port/; s#/data/jetstream#$tmp/js#" \
  deploy/nats/nats-server.conf > "$tmp/nats.conf"
"$nats_bin" -t -c "$tmp/nats.conf"
"$nats_bin" -a 127.0.0.1 -c "$tmp/nats.conf" > "$tmp/nats.log" 2>&1 &
nats_pid=$!
jsz=""
for _ in $(seq 1 50); do
  jsz=$(python3 -c "import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:$http_port/jsz?config=1', timeout=1).read().decode())" 2>/dev/null) && break
  sleep 0.1
done
kill "$nats_pid"; wait "$nats_pid" 2>/dev/null || true
grep -q "Server is ready" "$tmp/nats.log" || { cat "$tmp/nats.log"; exit 1; }
echo "$jsz" | python3 -c 'import json,sys; c=json.load(sys.stdin)["config"]; sys.exit(0 if c.get("sync_always") else 1)' \
  || { echo "the dev stack's nats-server does not report sync_always: $jsz" >&2; exit 1; }
echo "nats config: nats-server $nats_version accepts it and starts with JetStream fsyncing every write"

# What the Dockerfile's build stage runs.
cargo build --release --locked --bin at-gateway
echo "deploy checks passed"

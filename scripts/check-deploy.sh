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

# The NATS config, on a free port and a temporary store.
bash scripts/ensure-nats.sh
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
sed "s/^port: .*/port: $port/; s/^http_port: .*/http_port: 0/; s#/data/jetstream#$tmp/js#" \
  deploy/nats/nats-server.conf > "$tmp/nats.conf"
timeout 3 nats-server -c "$tmp/nats.conf" > "$tmp/nats.log" 2>&1 || true
grep -q "Server is ready" "$tmp/nats.log" || { cat "$tmp/nats.log"; exit 1; }
echo "nats config starts a server"

# What the Dockerfile's build stage runs.
cargo build --release --locked --bin at-gateway
echo "deploy checks passed"

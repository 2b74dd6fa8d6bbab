#!/usr/bin/env bash
# Campaign 9: power loss of the NATS nodes under load. See the durability
# table in RELIABILITY.md.
#
# A power loss differs from a process crash in what it takes with it: the
# writes still in the operating system's page cache, not yet fsynced. Each
# nats-server here keeps its store on LazyFS (https://github.com/dsrhaslab/lazyfs,
# the FUSE file system Jepsen used for its NATS analysis), which holds every
# write in a cache of its own until the writer fsyncs, and on
# `lazyfs::clear-cache` drops whatever was not fsynced, as a power loss
# would.
#
# NODES nats-servers (1: an R1 stream; 3: a cluster, R3 stream and buckets),
# each store on its own LazyFS mount, fsync as NATS_SYNC says (`always`, the
# default, or `timer`: nats-server's own default, a flush every two minutes);
# the release gateway; probe.py at RATE signed requests/s, each with its own
# key, for DURATION s. At LOSS s every nats-server is SIGKILLed and every
# mount's unsynced writes dropped at once (a power loss of the whole
# deployment); DOWN s later the servers start again on what the disks kept.
# At the end the stream is read back against every answer.
#
# Reported (reliability/faults/results/$TAG.*): 2xx answered before the loss,
# and how many of them the stream no longer holds. With NATS_SYNC=always
# that must be 0 (exit 1 otherwise); with timer the loss is the finding.
#
# Needs: root (FUSE), fusermount3 (Debian: fuse3), and a LazyFS binary in
# LAZYFS (reliability/faults/build-lazyfs.sh builds one from its source).
# Knobs: NODES (1), NATS_SYNC (always), RATE (20), DURATION (20), LOSS (12),
# DOWN (2), SKIP_BUILD=1, KEEP_TMP=1, TAG (power-loss-rNODES-NATS_SYNC).
FAULTS_TAG=power-loss
source "$(dirname "$0")/lib.sh"

NODES="${NODES:-1}"
RATE="${RATE:-20}"
DURATION="${DURATION:-20}"
LOSS="${LOSS:-12}"
DOWN="${DOWN:-2}"
TAG="${TAG:-power-loss-r$NODES-$NATS_SYNC}"
case "$NODES" in 1 | 3) ;; *) die "NODES is 1 or 3" ;; esac
[ -x "${LAZYFS:-}" ] || die "LAZYFS must name a LazyFS binary (reliability/faults/build-lazyfs.sh)"
command -v fusermount3 >/dev/null || die "fusermount3 not found (Debian: apt install fuse3)"
setup_campaign
ensure_nats

declare -a CPORT RPORT NPID FIFO MNT
for i in $(seq 1 "$NODES"); do
  CPORT[$i]="$(free_port)"
  RPORT[$i]="$(free_port)"
done
ROUTES=""
for i in $(seq 1 "$NODES"); do ROUTES+="nats-route://127.0.0.1:${RPORT[$i]}, "; done

# mount_lazyfs I: node I's store directory on a LazyFS mount with its own
# fault FIFO.
mount_lazyfs() {
  local i="$1"
  MNT[$i]="$tmp/n$i-mnt"
  FIFO[$i]="$tmp/n$i-faults.fifo"
  mkdir -p "${MNT[$i]}" "$tmp/n$i-disk"
  cat >"$tmp/n$i-lazyfs.toml" <<CONF
[faults]
fifo_path="${FIFO[$i]}"
[cache]
apply_eviction=false
[cache.simple]
custom_size="512mb"
blocks_per_page=1
[filesystem]
log_all_operations=false
logfile=""
CONF
  "$LAZYFS" "${MNT[$i]}" --config-path "$tmp/n$i-lazyfs.toml" -o modules=subdir \
    -o subdir="$tmp/n$i-disk" -f >>"$tmp/n$i-lazyfs.log" 2>&1 &
  # Not in pids: unmounted (which ends it) after the servers are gone.
  on_exit "fusermount3 -u '${MNT[$i]}' 2>/dev/null || kill $!"
  for _ in $(seq 1 100); do
    mountpoint -q "${MNT[$i]}" && [ -p "${FIFO[$i]}" ] && return 0
    sleep 0.1
  done
  tail -n 20 "$tmp/n$i-lazyfs.log" >&2
  die "LazyFS for n$i not mounted after 10 s"
}

# start_node I: nats-server nI with its store on its LazyFS mount.
start_node() {
  local i="$1"
  {
    printf 'server_name: n%s\nlisten: 127.0.0.1:%s\nmax_payload: 8MB\n' "$i" "${CPORT[$i]}"
    # LazyFS reports no free space; nats-server would then allow none.
    printf 'jetstream {\n  store_dir: "%s/js"\n  max_file_store: 1GB\n' "${MNT[$i]}"
    [ "$NATS_SYNC" = timer ] || printf '  sync_interval: always\n'
    printf '}\n'
    [ "$NODES" = 1 ] || printf 'cluster {\n  name: at-power\n  listen: 127.0.0.1:%s\n  routes: [ %s ]\n}\n' \
      "${RPORT[$i]}" "${ROUTES%, }"
  } >"$tmp/n$i.conf"
  "$NATS_SERVER_BIN" -c "$tmp/n$i.conf" >>"$tmp/n$i.log" 2>&1 &
  NPID[$i]=$!
  pids+=("${NPID[$i]}")
  wait_listening "${CPORT[$i]}" "${NPID[$i]}" "$tmp/n$i.log" "n$i"
}

for i in $(seq 1 "$NODES"); do mount_lazyfs "$i"; done
for i in $(seq 1 "$NODES"); do start_node "$i"; done
NATS_URLS=""
for i in $(seq 1 "$NODES"); do NATS_URLS+="nats://127.0.0.1:${CPORT[$i]},"; done
NATS_URLS="${NATS_URLS%,}"
# lib.sh's start_gateway and verify_and_report speak to NATS_PORT: node 1
# (and keep nats.log, node 1's).
NATS_PORT="${CPORT[1]}"
ln -sf "$tmp/n1.log" "$tmp/nats.log"
GW_TOML=""
[ "$NODES" = 1 ] || GW_TOML=$'[nats]\nstream_replicas = 3\n'
NATS_URL_OVERRIDE="$NATS_URLS" start_gateway
log "$NODES nats-server(s) on LazyFS (sync: $NATS_SYNC), gateway on $GW_PORT; ${RATE} req/s for ${DURATION}s; power loss at ${LOSS}s"
start_probe --timeout 10

until_s "$LOSS"
mark "kill_1"
# The power goes: every server stops at once, then what no fsync reached
# the disk is gone.
for i in $(seq 1 "$NODES"); do kill -KILL "${NPID[$i]}" 2>/dev/null || true; done
for i in $(seq 1 "$NODES"); do
  { wait "${NPID[$i]}" || true; } 2>/dev/null
  forget_pid "${NPID[$i]}"
done
for i in $(seq 1 "$NODES"); do echo "lazyfs::clear-cache" >"${FIFO[$i]}"; done
log "power loss: every nats-server killed, unsynced writes dropped; back in ${DOWN}s"
sleep "$DOWN"
for i in $(seq 1 "$NODES"); do start_node "$i"; done
mark "up_1"

wait "$probe" || true
forget_pid "$probe"
# The cluster may need a moment to elect leaders again before the read.
sleep 3
rc=0
verify_and_report || rc=1
"$PY" - "$RESULTS/$TAG.report.json" "$RESULTS/$TAG.probe.jsonl" "$RESULTS/$TAG.marks.jsonl" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
loss = next(json.loads(l)["t"] for l in open(sys.argv[3]) if '"kill_1"' in l)
keys = [json.loads(l) for l in open(sys.argv[2])]
keys = [k for k in keys if "k" in k]
before = sum(1 for k in keys if 200 <= k["status"] < 300 and k["t0"] + k["lat_ms"] / 1000 < loss)
st = s["final_statuses"]
print(f"requests sent              {s['requests']}  answers {st}")
print(f"2xx answered before loss   {before}")
print(f"messages in the stream     {s['stream_messages']}")
print(f"2xx missing from stream    {s['missing_2xx']}")
print(f"duplicated messages        {s['duplicated_msg_ids']}")
print(f"2xx with wrong event id    {s['wrong_event_id']}")
PY
if [ "$rc" != 0 ]; then
  if [ "$NATS_SYNC" = timer ]; then
    echo "faults: acknowledged signals lost without fsync per write (the finding, not a failure)"
    exit 0
  fi
  echo "faults: FAIL acknowledged loss with fsync per write (see $RESULTS/$TAG.*)" >&2
  exit 1
fi
echo "faults: PASS every 2xx survived the power loss"

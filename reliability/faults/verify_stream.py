"""Reads the stream back and checks the central promise for a probe run:
every request the gateway answered 2xx is in JetStream.

For each 2xx record of the probe file, the message with
`Nats-Msg-Id: <source>:h:<key>:raw` must be on the raw subject and carry the
event id the gateway answered, and `...:normalized` must be on the
normalized subject. Also counts (for information only) keys answered
non-2xx that landed anyway, which API_SPEC allows for `publish_timeout`, and
any Nats-Msg-Id stored twice (never allowed).

A retrying probe's logical request that ended in 409 `duplicate` carries
`"stored": true` (its signal was stored by an earlier attempt): it is checked
like a 2xx, against the original event id the 409 named.

Prints one JSON object; exits 1 if a 2xx'd (or stored) key is missing, carries
another event id than the gateway answered, or any Nats-Msg-Id is stored twice.
"""

import argparse
import asyncio
import json
import sys
from collections import Counter

import nats


async def read_ids(url, stream):
    """{msg_id: [(subject, event_id), ...]} for every message in the stream."""
    nc = await nats.connect(url, connect_timeout=5, max_reconnect_attempts=3)
    try:
        jsm = nc.jsm()
        info = await jsm.stream_info(stream)
        first, last = info.state.first_seq, info.state.last_seq
        found = {}
        if info.state.messages == 0:
            return found, info.state.messages
        for seq in range(first, last + 1):
            try:
                msg = await jsm.get_msg(stream, seq=seq)
            except nats.js.errors.NotFoundError:
                continue  # deleted or never written (a gap)
            if msg.subject.startswith("at-gateway.claims."):
                continue  # STORE_BACKEND=stream: a claim, not a signal
            msg_id = (msg.headers or {}).get("Nats-Msg-Id")
            event_id = None
            try:
                event_id = json.loads(msg.data).get("event_id")
            except ValueError:
                pass
            found.setdefault(msg_id, []).append((msg.subject, event_id))
        return found, info.state.messages
    finally:
        await nc.close()


def load_probe(path):
    with open(path) as f:
        return [r for r in map(json.loads, f) if "k" in r]


async def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--nats", required=True)
    p.add_argument("--stream", default="trading-events")
    p.add_argument("--source", default="alpha")
    p.add_argument("--probe", required=True, nargs="+", help="probe JSON lines file(s)")
    args = p.parse_args()

    found, stored = await read_ids(args.nats, args.stream)
    records = [r for path in args.probe for r in load_probe(path)]
    is_2xx = lambda r: 200 <= r.get("status", 0) < 300  # noqa: E731
    ok = [r for r in records if is_2xx(r) or r.get("stored")]
    missing, wrong_event = [], []
    for r in ok:
        base = f"{args.source}:h:{r['k']}"
        raw = found.get(base + ":raw", [])
        norm = found.get(base + ":normalized", [])
        if not raw or not norm:
            missing.append(r["k"])
        elif any(ev != r.get("event_id") for _, ev in raw + norm):
            wrong_event.append(r["k"])
    duplicated = [k for k, v in found.items() if len(v) > 1]
    not_ok_keys = {r["k"] for r in records if not (is_2xx(r) or r.get("stored"))}
    landed_anyway = sum(1 for k in not_ok_keys if f"{args.source}:h:{k}:raw" in found)
    report = {
        "stream_messages": stored,
        "probe_requests": len(records),
        "acknowledged_2xx": sum(1 for r in records if is_2xx(r)),
        "stored_by_409_duplicate": sum(1 for r in records if r.get("stored") and not is_2xx(r)),
        "missing_2xx": len(missing),
        "wrong_event_id": len(wrong_event),
        "duplicated_msg_ids": len(duplicated),
        "non_2xx_stored_anyway": landed_anyway,
        "statuses": dict(Counter(str(r.get("status")) for r in records)),
        "examples_missing": missing[:5],
        "examples_wrong_event_id": wrong_event[:5],
        "examples_duplicated": duplicated[:5],
    }
    print(json.dumps(report))
    return 1 if (missing or wrong_event or duplicated) else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))

"""Cluster campaign: reads the whole stream back and checks it against every
answer the load generator (cluster_probe.py) got, then times the failovers.

Checks (any failure → exit 1):
  - every key answered 2xx has `<source>:h:<key>:raw` and `...:normalized`
    in the stream, carrying the event id of that 2xx answer;
  - every key answered 409 `duplicate` is in the stream, under the event id
    the 409 named;
  - no `Nats-Msg-Id` is stored twice, and no key is stored under two event
    ids (raw and normalized of one signal share one);
  - the gateway still serves: every first attempt sent from 10 s after the
    last cluster event to the end was answered 2xx.
Replicas whose last sequence numbers still differ at the end are reported
as a warning (a NATS matter, not the gateway's promise).

Timing, per SIGKILL of a leader (marks `kill<N>`, and `qloss` when two
nodes are killed together): the 503 window is from
the kill to the first 2xx answer of a request sent after the kill; also
what the first attempts sent in it were answered, and whether any non-2xx
came after the window (until the next event).

Prints one JSON object; with --markdown also the tables for the section.
"""

import argparse
import asyncio
import json
import sys
from collections import Counter, defaultdict

import nats


async def read_stream(urls, stream):
    """{msg_id: [(subject, event_id), ...]}, the stream's message count and last seq."""
    nc = await nats.connect(servers=urls, connect_timeout=5, max_reconnect_attempts=3)
    try:
        jsm = nc.jsm()
        info = await jsm.stream_info(stream)
        found = {}
        if info.state.messages:
            for seq in range(info.state.first_seq, info.state.last_seq + 1):
                try:
                    msg = await jsm.get_msg(stream, seq=seq)
                except nats.js.errors.NotFoundError:
                    continue
                if msg.subject.startswith("at-gateway.claims."):
                    continue  # STORE_BACKEND=stream: a claim, not a signal
                msg_id = (msg.headers or {}).get("Nats-Msg-Id")
                try:
                    event_id = json.loads(msg.data).get("event_id")
                except ValueError:
                    event_id = None
                found.setdefault(msg_id, []).append((msg.subject, event_id))
        return found, info.state.messages, info.cluster.leader if info.cluster else None
    finally:
        await nc.close()


def ok(r):
    return 200 <= r["status"] < 300


def fmt(counter):
    return ", ".join(f"{k}×{v}" for k, v in sorted(counter.items())) or "–"


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--probe", required=True)
    p.add_argument("--marks", required=True)
    p.add_argument("--nats", required=True, help="comma-separated NATS URLs")
    p.add_argument("--stream", default="trading-events")
    p.add_argument("--source", default="alpha")
    p.add_argument("--replicas", help="cluster_tool.py replicas output (JSON file)")
    p.add_argument("--readyz", default="", help="HTTP status of /readyz at the end")
    p.add_argument("--markdown", action="store_true")
    args = p.parse_args()

    recs = [json.loads(line) for line in open(args.probe)]
    recs = [r for r in recs if "k" in r]
    marks = [json.loads(line) for line in open(args.marks)]
    found, stored, leader = asyncio.run(read_stream(args.nats.split(","), args.stream))

    by_key = defaultdict(list)
    for r in recs:
        by_key[r["k"]].append(r)
    for v in by_key.values():
        v.sort(key=lambda r: r["a"])

    def stored_events(key):
        base = f"{args.source}:h:{key}"
        raw, norm = found.get(base + ":raw", []), found.get(base + ":normalized", [])
        return raw, norm

    missing_2xx, wrong_event_2xx, missing_409, wrong_event_409 = [], [], [], []
    two_event_ids, stored_non_final = [], []
    finals = Counter()
    for key, attempts in by_key.items():
        raw, norm = stored_events(key)
        events = {ev for _, ev in raw + norm}
        if len(events) > 1:
            two_event_ids.append(key)
        final = attempts[-1]
        finals[str(final["status"]) + ("" if final["status"] != 409 else f" {final.get('code')}")] += 1
        for r in attempts:
            if ok(r):
                if not raw or not norm:
                    missing_2xx.append(key)
                elif events != {r.get("event_id")}:
                    wrong_event_2xx.append(key)
            elif r["status"] == 409:
                if not raw or not norm:
                    missing_409.append(key)
                elif events != {r.get("event_id")}:
                    wrong_event_409.append(key)
        if not any(ok(r) or r["status"] == 409 for r in attempts) and (raw or norm):
            stored_non_final.append(key)
    duplicated = [k for k, v in found.items() if len(v) > 1]
    ours = {f"{args.source}:h:{k}:{role}" for k in by_key for role in ("raw", "normalized")}
    foreign = [k for k in found if k not in ours]
    keys_stored = sum(1 for k in by_key if any(stored_events(k)))

    first = sorted((r for r in recs if r["a"] == 0), key=lambda r: r["t0"])
    events = sorted(marks, key=lambda m: m["t"])
    def is_fault(m):
        return m["mark"].startswith("kill") or m["mark"] == "qloss"

    kills = [m for m in events if is_fault(m)]
    end_t = max((r["t0"] for r in first), default=0)

    windows = []
    for m in kills:
        t = m["t"]
        nxt = min((e["t"] for e in events if e["t"] > t and is_fault(e)), default=float("inf"))
        want = "qrestore" if m["mark"] == "qloss" else "restart" + m["mark"][4:]
        restart = next((e for e in events if e["mark"] == want), None)
        after = [r for r in recs if r["t0"] >= t]
        first_ok = min((r["t0"] + r["lat_ms"] / 1000 for r in after if ok(r)), default=None)
        window = round(first_ok - t, 2) if first_ok is not None else None
        w_end = first_ok if first_ok is not None else nxt
        sent_in = [r for r in first if t <= r["t0"] < w_end]
        answered_late = [r for r in recs if r["t0"] < t < r["t0"] + r["lat_ms"] / 1000]
        later_bad = [r for r in first if w_end <= r["t0"] < nxt and not ok(r)]
        windows.append({
            "event": m["mark"],
            "node": m.get("node"),
            "led": m.get("led"),
            "window_s": window,
            "restart_after_s": round(restart["t"] - t, 1) if restart else None,
            "from_restart_s": round(first_ok - restart["t"], 2) if restart and first_ok else None,
            "first_attempts_in_window": len(sent_in),
            "statuses_in_window": dict(Counter(f"{r['status']} {r.get('code') or r.get('err')}" for r in sent_in)),
            "max_latency_in_window_ms": max((r["lat_ms"] for r in sent_in), default=None),
            "in_flight_at_kill": dict(Counter(str(r["status"]) for r in answered_late)),
            "non_2xx_after_window": dict(Counter(f"{r['status']} {r.get('code') or r.get('err')}" for r in later_bad)),
        })

    last_event = max((e["t"] for e in events), default=0)
    tail = [r for r in first if r["t0"] >= last_event + 10]
    tail_bad = [r for r in tail if not ok(r)]

    replicas = json.load(open(args.replicas)) if args.replicas else {}
    replica_view = {s: {n: v["last_seq"] for n, v in nodes.items()} for s, nodes in replicas.items()}
    replicas_agree = all(len(set(v.values())) == 1 and len(v) == 3 for v in replica_view.values()) if replicas else None

    report = {
        "keys": len(by_key),
        "attempts": len(recs),
        "first_attempt_statuses": dict(Counter(str(r["status"]) for r in first)),
        "all_attempt_statuses": dict(Counter(str(r["status"]) for r in recs)),
        "answers_2xx": sum(1 for r in recs if ok(r)),
        "answers_503": sum(1 for r in recs if r["status"] == 503),
        "answers_409": sum(1 for r in recs if r["status"] == 409),
        "answers_none": sum(1 for r in recs if r["status"] == 0),
        "codes_non_2xx": dict(Counter(f"{r['status']} {r.get('code') or r.get('err')}" for r in recs if not ok(r))),
        "final_per_key": dict(finals),
        "stream_messages": stored,
        "stream_leader_at_end": leader,
        "distinct_msg_ids": len(found),
        "keys_stored": keys_stored,
        "missing_2xx": len(missing_2xx),
        "wrong_event_id_2xx": len(wrong_event_2xx),
        "missing_409": len(missing_409),
        "wrong_event_id_409": len(wrong_event_409),
        "duplicated_msg_ids": len(duplicated),
        "keys_with_two_event_ids": len(two_event_ids),
        "stored_without_2xx_or_409": len(stored_non_final),
        "foreign_msg_ids": len(foreign),
        "tail_first_attempts": len(tail),
        "tail_non_2xx": len(tail_bad),
        "readyz_at_end": args.readyz,
        "replica_last_seq": replica_view,
        "replicas_agree": replicas_agree,
        "windows": windows,
        "probe_span_s": round(end_t - (first[0]["t0"] if first else end_t), 1),
        "examples": {
            "missing_2xx": missing_2xx[:5], "wrong_event_id_2xx": wrong_event_2xx[:5],
            "missing_409": missing_409[:5], "duplicated": duplicated[:5], "two_event_ids": two_event_ids[:5],
        },
    }
    failures = []
    for name in ("missing_2xx", "wrong_event_id_2xx", "missing_409", "wrong_event_id_409",
                 "duplicated_msg_ids", "keys_with_two_event_ids"):
        if report[name]:
            failures.append(f"{name}: {report[name]}")
    if tail_bad or not tail:
        failures.append(f"gateway not serving at the end: {len(tail_bad)} of {len(tail)} late first attempts non-2xx")
    if args.readyz and args.readyz != "200":
        failures.append(f"/readyz {args.readyz} at the end")
    if any(w["window_s"] is None for w in windows):
        failures.append("no 2xx after a kill")
    # Not the gateway's promise, but worth knowing: the replicas of each
    # stream should hold the same sequence numbers once they are current.
    warnings = []
    if replicas and not replicas_agree:
        warnings.append(f"replica last_seq differ: {replica_view}")
    report["failures"] = failures
    report["warnings"] = warnings
    print(json.dumps(report))

    if args.markdown:
        print()
        print("| event | node (led) | 503 window s | first attempts sent in it | max ms | non-2xx after it |")
        print("|---|---|---:|---|---:|---|")
        for w in windows:
            since = f" ({w['from_restart_s']} after restart)" if (
                w["window_s"] is not None and w["restart_after_s"] is not None
                and w["window_s"] > w["restart_after_s"]) else ""
            print(f"| {w['event']} | {w['node']} ({', '.join(w['led'] or [])}) | {w['window_s']}{since} | "
                  f"{w['first_attempts_in_window']}: {fmt(w['statuses_in_window'])} | "
                  f"{w['max_latency_in_window_ms']} | {fmt(w['non_2xx_after_window'])} |")
        print()
        print("| keys sent | attempts | 2xx | 503 | 409 | no answer | stream msgs | keys stored | "
              "2xx missing | dup msg ids | wrong event id | tail non-2xx |")
        print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        print(f"| {report['keys']} | {report['attempts']} | {report['answers_2xx']} | {report['answers_503']} | "
              f"{report['answers_409']} | {report['answers_none']} | {stored} | {keys_stored} | "
              f"{len(missing_2xx) + len(missing_409)} | {len(duplicated)} | "
              f"{len(wrong_event_2xx) + len(wrong_event_409)} | {len(tail_bad)} of {len(tail)} |")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

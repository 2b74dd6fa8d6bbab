"""Asks the cluster campaign's nats-servers about themselves, through their
monitoring endpoints (`http: 127.0.0.1:PORT`, `/jsz`). Standard library only.

  meta     --mon P1,P2,P3 [--size 3]     exit 0 once the reachable nodes agree on a
                                           metadata leader and see a cluster of --size
  leaders  --mon P1,P2,P3                {"meta": "n2", "streams": {"trading-events":
                                           "n1", "KV_...": "n3"}} as the leaders say it
  replicas --mon P1,P2,P3                per node and stream: messages, first/last seq,
                                           and whether the followers are current
  current  --mon P1,P2,P3 [--size 3]     exit 0 if every stream's leader sees its
                                           --size - 1 followers current

A node that does not answer is skipped (it may be the one we killed).
"""

import argparse
import json
import sys
import urllib.request


def jsz(port, detail=True):
    q = "?accounts=true&streams=true" if detail else ""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/jsz{q}", timeout=2) as r:
            return json.load(r)
    except Exception:
        return None


def streams_of(doc):
    for acc in doc.get("account_details") or []:
        for s in acc.get("stream_detail") or []:
            yield s


def server_name(port):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/varz", timeout=2) as r:
            return json.load(r).get("server_name")
    except Exception:
        return None


def cmd_meta(ports, size):
    leaders = set()
    for p in ports:
        doc = jsz(p, detail=False)
        if doc is None:
            continue
        meta = doc.get("meta_cluster") or {}
        if not meta.get("leader") or meta.get("cluster_size") != size:
            return 1
        leaders.add(meta["leader"])
    return 0 if len(leaders) == 1 else 1


def cmd_leaders(ports):
    out = {"meta": None, "streams": {}}
    for p in ports:
        doc = jsz(p)
        if doc is None:
            continue
        name = server_name(p)
        meta = (doc.get("meta_cluster") or {}).get("leader")
        if meta and (out["meta"] is None or meta == name):
            out["meta"] = meta
        for s in streams_of(doc):
            leader = (s.get("cluster") or {}).get("leader")
            # A node's word about itself wins; a follower's view may lag.
            if leader and (s["name"] not in out["streams"] or leader == name):
                out["streams"][s["name"]] = leader
    print(json.dumps(out))
    return 0


def cmd_replicas(ports):
    out = {}
    for p in ports:
        doc = jsz(p)
        if doc is None:
            continue
        name = server_name(p)
        for s in streams_of(doc):
            st = s.get("state") or {}
            cl = s.get("cluster") or {}
            out.setdefault(s["name"], {})[name] = {
                "messages": st.get("messages"),
                "first_seq": st.get("first_seq"),
                "last_seq": st.get("last_seq"),
                "leader": cl.get("leader"),
                "followers_current": [r.get("current") for r in cl.get("replicas") or []],
            }
    print(json.dumps(out))
    return 0


def cmd_current(ports, size):
    seen, led = set(), set()
    for p in ports:
        doc = jsz(p)
        if doc is None:
            continue
        name = server_name(p)
        for s in streams_of(doc):
            seen.add(s["name"])
            cl = s.get("cluster") or {}
            if cl.get("leader") != name:
                continue
            reps = cl.get("replicas") or []
            if len(reps) != size - 1 or not all(r.get("current") for r in reps):
                return 1
            led.add(s["name"])
    return 0 if seen and led == seen else 1


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("cmd", choices=["meta", "leaders", "replicas", "current"])
    p.add_argument("--mon", required=True, help="monitoring ports, comma-separated")
    p.add_argument("--size", type=int, default=3)
    a = p.parse_args()
    ports = [int(x) for x in a.mon.split(",") if x]
    if a.cmd == "meta":
        return cmd_meta(ports, a.size)
    if a.cmd == "current":
        return cmd_current(ports, a.size)
    if a.cmd == "leaders":
        return cmd_leaders(ports)
    return cmd_replicas(ports)


if __name__ == "__main__":
    sys.exit(main())

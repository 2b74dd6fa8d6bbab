"""Summarises one hostile attack: how the gateway treated the bad connections
(hostile.py's lines) and how normal traffic fared meanwhile (report.py's
summary of the probe), as one JSON object and one Markdown row.

Verdict for the attack (exit 1 on failure):
  - every bad connection was closed by the gateway, within --bound seconds
    (the configured timeout that should close it) plus --slack;
  - normal traffic kept at least --min-success of its requests 2xx.
"""

import argparse
import json
import sys
from collections import Counter


def pct(values, q):
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))] if s else None


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--hostile", required=True)
    p.add_argument("--probe-summary", required=True, help="report.py's JSON output")
    p.add_argument("--attack", required=True)
    p.add_argument("--bound", type=float, required=True, help="seconds the gateway should take at most")
    p.add_argument("--slack", type=float, default=2.0)
    p.add_argument("--min-success", type=float, default=0.99)
    args = p.parse_args()

    conns = [json.loads(line) for line in open(args.hostile)]
    conns = [c for c in conns if c["attack"] == args.attack]
    probe = json.loads(open(args.probe_summary).readline())
    during = probe["during"]
    ok = sum(v for k, v in during["statuses"].items() if k.startswith("2"))
    success = ok / during["n"] if during["n"] else None
    life = [c["life_s"] for c in conns]
    by_server = [c for c in conns if c["closed_by"] == "server"]
    summary = {
        "attack": args.attack,
        "bad_connections": len(conns),
        "closed_by_gateway": len(by_server),
        "still_open_at_cap": len(conns) - len(by_server),
        "life_p50_s": pct(life, 0.5),
        "life_max_s": max(life, default=None),
        "answers": dict(Counter(str(c["status"]) for c in conns)),
        "answer_max_s": max((c.get("status_s") or 0 for c in conns), default=None),
        "bytes_sent_max": max((c["sent"] for c in conns), default=0),
        "normal_requests": during["n"],
        "normal_success": round(success, 4) if success is not None else None,
        "normal_statuses": during["statuses"],
        "normal_p99_ms": during["p99_ms"],
        "normal_max_ms": during["max_ms"],
        "rss_peak_kb": max(v for v in probe["rss_kb"].values() if v) if any(probe["rss_kb"].values()) else None,
        "bound_s": args.bound,
    }
    fails = []
    if not conns:
        fails.append("no bad connection was made")
    if summary["still_open_at_cap"]:
        fails.append(f"{summary['still_open_at_cap']} bad connections never closed by the gateway")
    if life and summary["life_max_s"] > args.bound + args.slack:
        fails.append(f"a bad connection lived {summary['life_max_s']} s (bound {args.bound} s)")
    if success is None or success < args.min_success:
        fails.append(f"normal traffic success {success}")
    summary["verdict"] = "PASS" if not fails else "FAIL: " + "; ".join(fails)
    print(json.dumps(summary))
    answers = ", ".join(f"{k}×{v}" for k, v in sorted(summary["answers"].items()))
    rss = summary["rss_peak_kb"]
    rate = f"{success * 100:.2f}%" if success is not None else "n/a"
    print(f"| {args.attack} | {len(conns)} | {answers} | {summary['life_p50_s']} / {summary['life_max_s']} "
          f"(bound {args.bound}) | {rate} of {during['n']} | "
          f"{during['p99_ms']} | {rss / 1024 if rss else 0:.0f} | {summary['verdict'][:4]} |")
    return 0 if not fails else 1


if __name__ == "__main__":
    sys.exit(main())

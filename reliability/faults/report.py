"""Summarises one probe run around a fault: before / during / after.

Inputs: the probe's JSON lines and a marks file with `fault_start` and
`fault_end` (written by the campaign script). A request belongs to the phase
in which it was sent; "in flight" also counts requests sent before the fault
that were still waiting when it began, so a stalled answer cannot hide.

Recovery: from `fault_end` to the moment the first request sent after it is
answered 2xx (and the first 2xx of any request, answered after fault_end).

Prints one JSON object (and a Markdown row with --markdown CASE).
"""

import argparse
import json
from collections import Counter


def pct(values, q):
    if not values:
        return None
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


def phase_stats(recs):
    lat = [r["lat_ms"] for r in recs]
    return {
        "n": len(recs),
        "statuses": dict(sorted(Counter(str(r["status"]) for r in recs).items())),
        "codes": dict(sorted(Counter(str(r.get("code")) for r in recs if r["status"] >= 300 or r["status"] == 0).items())),
        "p50_ms": pct(lat, 0.50),
        "p99_ms": pct(lat, 0.99),
        "max_ms": max(lat) if lat else None,
    }


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--probe", required=True)
    p.add_argument("--marks", required=True)
    p.add_argument("--markdown", metavar="CASE", help="also print a Markdown table row")
    args = p.parse_args()

    reqs, rss = [], []
    with open(args.probe) as f:
        for line in f:
            r = json.loads(line)
            (reqs if "k" in r else rss).append(r)
    marks = {}
    with open(args.marks) as f:
        for line in f:
            m = json.loads(line)
            marks.setdefault(m["mark"], m["t"])
    start, end = marks["fault_start"], marks["fault_end"]

    before = [r for r in reqs if r["t0"] < start]
    during = [r for r in reqs if start <= r["t0"] < end]
    after = [r for r in reqs if r["t0"] >= end]
    in_flight = [r for r in reqs if r["t0"] < end and r["t0"] + r["lat_ms"] / 1000 > start]

    ok = lambda r: 200 <= r["status"] < 300  # noqa: E731
    first_ok_sent_after = next((r for r in sorted(after, key=lambda r: r["t0"]) if ok(r)), None)
    answered_after = sorted((r for r in reqs if ok(r) and r["t0"] + r["lat_ms"] / 1000 >= end),
                            key=lambda r: r["t0"] + r["lat_ms"] / 1000)
    recovery = None
    if first_ok_sent_after:
        recovery = round(first_ok_sent_after["t0"] + first_ok_sent_after["lat_ms"] / 1000 - end, 2)
    # A 2xx answered during the fault (e.g. a write that beat the fault) is
    # allowed only if it is in the stream: verify_stream.py checks that.
    ok_during = sum(1 for r in during if ok(r))

    def rss_in(lo, hi):
        v = [s["rss_kb"] for s in rss if lo <= s["t"] < hi]
        return max(v) if v else None

    summary = {
        "fault_s": round(end - start, 1),
        "before": phase_stats(before),
        "during": phase_stats(during),
        "in_flight_during_fault_max_ms": max((r["lat_ms"] for r in in_flight), default=None),
        "after": phase_stats(after),
        "ok_sent_during_fault": ok_during,
        "recovery_s": recovery,
        "first_2xx_answered_after_end_s": round(answered_after[0]["t0"] + answered_after[0]["lat_ms"] / 1000 - end, 2)
        if answered_after else None,
        "rss_kb": {
            "before_max": rss_in(0, start),
            "during_max": rss_in(start, end),
            "after_max": rss_in(end, float("inf")),
            "last": rss[-1]["rss_kb"] if rss else None,
        },
        "marks": {k: round(v - start, 2) for k, v in marks.items()},
    }
    print(json.dumps(summary))
    if args.markdown:
        d, a = summary["during"], summary["after"]
        r = summary["rss_kb"]
        mb = lambda kb: f"{kb / 1024:.0f}" if kb else "n/a"  # noqa: E731
        print(f"| {args.markdown} | {summary['fault_s']} | {d['n']} | {fmt(d['statuses'])} | "
              f"{d['p99_ms']} / {summary['in_flight_during_fault_max_ms']} | {fmt(a['statuses'])} | "
              f"{summary['recovery_s']} | {mb(r['before_max'])} / {mb(r['during_max'])} / {mb(r['after_max'])} |")


def fmt(statuses):
    return ", ".join(f"{k}×{v}" for k, v in statuses.items()) or "-"


if __name__ == "__main__":
    main()

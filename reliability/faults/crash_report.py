"""Figures of a crash campaign (1, 4, 5, 8) from the probe's records, the
campaign's marks and verify_stream.py's answer.

Marks (JSON lines {"mark": name, "t": unix time}) the campaigns write:
  kill_N / up_N       nats-server or gateway SIGKILLed / listening again
  stop_N / cont_N     nats-server SIGSTOPped / SIGCONTed
  sigterm_N / exited_N  gateway sent SIGTERM / its process ended
For every up_N and cont_N: recovery, the time from the mark to the first 2xx
answer to an attempt sent after it. For every kill_N and sigterm: the
attempts in flight at that moment and how they ended.

Shutdown (sigterm): an attempt whose request was completely written before
the SIGTERM (t_sent, from the probe's retrying mode) and that got no HTTP
answer (status 0) was cut off; `cut_off` counts them.

Prints one JSON object; with --markdown also a table row per section.
"""

import argparse
import json
import sys
from collections import Counter


def load(path):
    keys, attempts, rss = [], [], []
    with open(path) as f:
        for line in f:
            r = json.loads(line)
            if "k" in r:
                keys.append(r)
            elif "a" in r:
                attempts.append(r)
            elif "rss_kb" in r:
                rss.append(r)
    return keys, attempts, rss


def statuses(recs):
    return dict(sorted(Counter(str(r["status"]) for r in recs).items()))


def errors(recs):
    return dict(sorted(Counter(r.get("err") or str(r.get("code")) for r in recs if r["status"] == 0 or r["status"] >= 500).items()))


def end(r):
    return r["t0"] + r["lat_ms"] / 1000


def fmt(d):
    return ", ".join(f"{k}×{v}" for k, v in d.items()) or "-"


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--probe", required=True)
    p.add_argument("--marks", required=True)
    p.add_argument("--verify", required=True, help="verify_stream.py's JSON output")
    p.add_argument("--rss-bucket", type=float, default=60.0, help="seconds per RSS figure")
    p.add_argument("--require", nargs="*", default=[], metavar="FIELD<=N",
                   help="verdict: e.g. missing_2xx<=0 shutdown.cut_off<=0; exit 1 if one fails")
    args = p.parse_args()

    keys, attempts, rss = load(args.probe)
    # Open-loop runs have no attempt lines: each key is its one attempt.
    tries = attempts or keys
    marks = []
    with open(args.marks) as f:
        marks = [json.loads(line) for line in f if line.strip()]
    verify = json.load(open(args.verify))
    start = min((r["t0"] for r in tries), default=0)

    ok = lambda r: 200 <= r["status"] < 300  # noqa: E731
    events = []
    for m in marks:
        name, t = m["mark"], m["t"]
        ev = {"mark": name, "at_s": round(t - start, 2)}
        if name.startswith(("up_", "cont_")) or name == "up":
            first = min((end(r) for r in tries if ok(r) and r["t0"] >= t), default=None)
            ev["recovery_s"] = round(first - t, 3) if first else None
        if name.startswith(("kill_", "sigterm")):
            flight = [r for r in tries if r["t0"] <= t < end(r)]
            ev["in_flight"] = len(flight)
            ev["in_flight_statuses"] = statuses(flight)
        events.append(ev)

    summary = {
        "requests": len(keys),
        "final_statuses": statuses(keys),
        "final_errors": errors(keys),
        "stored_by_409_duplicate": sum(1 for r in keys if r.get("stored") and not ok(r)),
        "not_stored_gave_up": sum(1 for r in keys if not (ok(r) or r.get("stored"))),
        "events": events,
        "stream_messages": verify.get("stream_messages"),
        "missing_2xx": verify.get("missing_2xx"),
        "wrong_event_id": verify.get("wrong_event_id"),
        "duplicated_msg_ids": verify.get("duplicated_msg_ids"),
        "non_2xx_stored_anyway": verify.get("non_2xx_stored_anyway"),
    }
    if attempts:
        summary["attempts"] = len(attempts)
        summary["attempt_statuses"] = statuses(attempts)
        summary["attempt_errors"] = errors(attempts)
        summary["max_attempts"] = max(r["attempts"] for r in keys) if keys else 0

    # One shutdown section per sigterm_N (or sigterm) mark, with its exited_N.
    for m in marks:
        if not m["mark"].startswith("sigterm"):
            continue
        sigterm, suffix = m["t"], m["mark"][len("sigterm"):]
        exited = next((x["t"] for x in marks if x["mark"] == "exited" + suffix), None)
        sent_before = [r for r in attempts if r.get("t_sent") is not None and r["t_sent"] < sigterm]
        in_flight = [r for r in sent_before if end(r) > sigterm]
        cut = [r for r in sent_before if r["status"] == 0]
        after = [r for r in attempts if r["t0"] >= sigterm and (exited is None or r["t0"] < exited)]
        summary["shutdown" + suffix] = {
            "exit_after_sigterm_s": round(exited - sigterm, 3) if exited else None,
            "sent_before_sigterm": len(sent_before),
            "in_flight_at_sigterm": len(in_flight),
            "in_flight_statuses": statuses(in_flight),
            "in_flight_max_answer_after_sigterm_s": round(max((end(r) - sigterm for r in in_flight), default=0), 3),
            "cut_off": len(cut),
            "cut_off_examples": [{k: r.get(k) for k in ("a", "n", "t0", "t_sent", "conn", "t_conn", "err")} for r in cut[:5]],
            "sent_while_stopping": len(after),
            "sent_while_stopping_statuses": statuses(after),
            "sent_while_stopping_errors": errors(after),
        }
        summary["cut_off_total"] = summary.get("cut_off_total", 0) + len(cut)

    if rss:
        t0 = rss[0]["t"]
        buckets = {}
        for s in rss:
            buckets.setdefault(int((s["t"] - t0) // args.rss_bucket), []).append(s["rss_kb"])
        summary["rss_mib_max_per_bucket"] = [round(max(v) / 1024, 1) for _, v in sorted(buckets.items())]
        summary["rss_mib_first_last"] = [round(rss[0]["rss_kb"] / 1024, 1), round(rss[-1]["rss_kb"] / 1024, 1)]
    print(json.dumps(summary))
    failed = []
    for req in args.require:
        field, limit = req.split("<=")
        value = summary
        for part in field.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        if value is None or value > float(limit):
            failed.append(f"{field} = {value} (must be <= {limit})")
    for f in failed:
        print(f"faults: FAIL {f}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

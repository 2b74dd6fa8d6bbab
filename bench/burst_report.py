#!/usr/bin/env python3
"""Markdown from bench/burst.sh's JSON lines (one per burst and row).

Usage: burst_report.py FILE.json
Rows are in increasing burst size. A row passes a burst when every alert got a 2xx within the timeout and the
2xx p99 is at most 2 s; the summary gives each row's largest passing burst with no smaller one failing
and the ratio gateway/minimal over plain HTTP (both measured in this run).
"""
import json
import sys


def fmt(v, unit=""):
    return "–" if v is None else f"{v:g}{unit}"


def main(path):
    rows = [json.loads(line) for line in open(path) if line.strip()]
    print("| row | alerts | 2xx | other answers | 2xx p50 / p90 / p99 / max ms "
          "| connect p50 / p99 ms | TLS handshake p50 / p99 ms | resumed "
          "| server CPU µs/alert | nats CPU µs/alert | client CPU ms | pass |")
    print("|---|---:|---:|---|---|---|---|---:|---:|---:|---:|---|")
    best = {}
    for r in rows:
        name = f"{r['target']}/{r['transport']}"
        lat, con, hs = r["latency_2xx"], r["connect"], r["handshake"]
        other = ", ".join(f"{k}: {v}" for k, v in r["outcomes"].items()
                          if not k.startswith("2")) or "–"
        tls = r["transport"] != "http"
        print(f"| {name} | {r['count']} | {r['ok']} | {other} "
              f"| {fmt(lat['p50_ms'])} / {fmt(lat['p90_ms'])} / {fmt(lat['p99_ms'])} / {fmt(lat['max_ms'])} "
              f"| {fmt(con['p50_ms'])} / {fmt(con['p99_ms'])} "
              f"| {(fmt(hs['p50_ms']) + ' / ' + fmt(hs['p99_ms'])) if tls else '–'} "
              f"| {r['resumed'] if tls else '–'} "
              f"| {fmt(r['cpu'].get('server_cpu_us_per_alert'))} | {fmt(r['cpu'].get('nats_cpu_us_per_alert'))} "
              f"| {fmt(r['client_cpu_ms'])} | {'yes' if r['pass'] else 'no'} |")
        best.setdefault(name, [0, 0, False])
        best[name][1] = max(best[name][1], r["count"])
        # The largest size that passed with no smaller size failing.
        if r["pass"] and not best[name][2]:
            best[name][0] = max(best[name][0], r["count"])
        elif not r["pass"]:
            best[name][2] = True
    print()
    for name, (ok, tried, _) in best.items():
        note = f" (every size tried passed; the ceiling is above {tried})" if ok == tried else ""
        print(f"- largest burst answered all-2xx within the timeout, p99 ≤ 2 s: **{name}: {ok}**{note}")
    g, m = best.get("gateway/http", [0])[0], best.get("minimal/http", [0])[0]
    if m:
        print(f"- ratio gateway/minimal (plain HTTP): **{g / m:.2f}**")
    resent = [r for r in rows if r.get("resend")]
    if resent:
        print()
        print("With TradingView's re-sends (a 500-599 answer but 504 sent again 5 s later, up to 3 times; "
              "delivered: a 2xx or a 409 `duplicate`; latency from the first due time):")
        print()
        print("| row | alerts | delivered | of them on a re-send | never delivered (last answer) "
              "| delivery p50 / p99 / max ms | sends |")
        print("|---|---:|---:|---:|---|---|---:|")
        for r in resent:
            x, d = r["resend"], r["resend"]["delivery"]
            lost = ", ".join(f"{k}: {v}" for k, v in x["last_outcomes"].items()
                             if not (k.startswith("2") or k == "409 duplicate")) or "–"
            print(f"| {r['target']}/{r['transport']} | {r['count']} | {x['delivered']} "
                  f"| {x['delivered_on_resend']} | {lost} "
                  f"| {fmt(d['p50_ms'])} / {fmt(d['p99_ms'])} / {fmt(d['max_ms'])} | {x['sends']} |")


if __name__ == "__main__":
    main(sys.argv[1])

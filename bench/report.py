#!/usr/bin/env python3
"""Markdown tables from loadgen's JSON lines (bench/run.sh, bench/scaling.sh).

    report.py run FILE             the side-by-side table and the ratios
    report.py scaling FILE KEY     one scaling table, first column KEY
                                   (connections, body_bytes or sources)
    report.py compare FILE         two builds interleaved (bench/compare.sh)
"""

import json
import sys


def load(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def fmt(value, spec="{:.0f}"):
    return "n/a" if value is None else spec.format(value)


def proc(row, name, key):
    return (row.get("procs", {}).get(name) or {}).get(key)


def problems(row):
    bad = []
    if row["non_2xx"]:
        bad.append(f"{row['non_2xx']} non-2xx {row['statuses']}")
    if row["errors"]:
        bad.append(f"{row['errors']} errors")
    if row.get("exhausted"):
        bad.append("request pool ran out")
    return "; ".join(bad) or "0"


def mib(kb):
    return None if kb is None else kb / 1024


def ms(v):
    return fmt(v, "{:.2f}")


LABELS = {
    "bare": "(a) bare actix-web, 202",
    "minimal": "(b) minimal same-work program",
    "gateway": "(c) gateway, STORE_BACKEND=jetstream",
    "gateway-open": "(c) gateway, open loop at ½ max",
    "bare-open": "(a) bare actix-web, open loop, same rate",
    "gateway-memory": "(c) gateway, STORE_BACKEND=memory",
    "gateway-stream": "(c) gateway, STORE_BACKEND=stream (claims in the batch)",
    "seed": "(d) seed stack: FastAPI + uvicorn ×2 + nats-py",
}


def run_table(rows):
    print(
        "| target | accepted/s | p50 ms | p99 ms | p99.9 ms | server CPU µs/req "
        "| nats-server CPU µs/req | server peak RSS MiB | loadgen CPU % | non-2xx / errors |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for r in rows:
        label = LABELS.get(r["target"], r["target"])
        if r["mode"] == "open":
            label += f" ({r['rate']:.0f}/s offered)"
        print(
            f"| {label} | {fmt(r['accepted_per_sec'])} | {ms(r['p50_ms'])} | {ms(r['p99_ms'])} "
            f"| {ms(r['p999_ms'])} | {fmt(proc(r, 'server', 'cpu_us_per_accepted'))} "
            f"| {fmt(proc(r, 'nats', 'cpu_us_per_accepted'))} "
            f"| {fmt(mib(proc(r, 'server', 'vmhwm_kb')), '{:.1f}')} "
            f"| {fmt(r['loadgen_cpu_pct'])} | {problems(r)} |"
        )
    by = {r["target"]: r for r in rows}

    def ratio(a, b):
        if a in by and b in by and by[b]["accepted_per_sec"]:
            return f"{by[a]['accepted_per_sec'] / by[b]['accepted_per_sec']:.2f}"
        return "n/a"

    print()
    print(f"- throughput c/b, gateway / minimal same-work program: **{ratio('gateway', 'minimal')}** (target ≥ 0.9)")
    print(f"- throughput c/d, gateway / seed stack: **{ratio('gateway', 'seed')}** (target ≥ 5)")
    print(f"- throughput gateway / bare actix-web: {ratio('gateway', 'bare')}")
    print(f"- throughput gateway (memory claims) / minimal: {ratio('gateway-memory', 'minimal')}")
    print(f"- throughput gateway (claims in the batch) / minimal: **{ratio('gateway-stream', 'minimal')}**; "
          f"/ gateway (key-value claims): {ratio('gateway-stream', 'gateway')}")
    if "gateway-stream" in by:
        g = by["gateway-stream"]
        print(f"- gateway (claims in the batch) closed loop at {g['connections']} connections: "
              f"p99 {ms(g['p99_ms'])} ms (target ≤ 10)")
    for o in rows:
        if o["mode"] != "open":
            continue
        target = " (target ≤ 20)" if o["target"].startswith("gateway") else ""
        print(
            f"- {o['target']}, open loop at {o['rate']:.0f}/s on {o['connections']} connections: "
            f"p99.9 {ms(o['p999_ms'])} ms{target}; the load generator sent late by "
            f"p99 {ms(o['send_lag_p99_ms'])} ms, max {ms(o['send_lag_max_ms'])} ms"
        )
    if "gateway" in by:
        print(f"- gateway closed loop at {by['gateway']['connections']} connections: p99 {ms(by['gateway']['p99_ms'])} ms (target ≤ 10); "
              f"gateway CPU {fmt(proc(by['gateway'], 'server', 'cpu_us_per_accepted'))} µs per accepted request (target ≤ 50)")
    lg = ", ".join(
        f"{r['target']} {fmt(r['loadgen_cpu_pct'])} % ({fmt(r['loadgen_cpu_us_per_accepted'], '{:.1f}')} µs/req)"
        for r in rows
    )
    print(f"- load generator CPU (100 % = one core): {lg}")
    print(
        f"- {rows[0]['connections']} connections, {rows[0]['window_s']} s measured per target, "
        f"{rows[0]['body_bytes']} B bodies"
    )


def scaling_table(rows, key):
    names = {"connections": "connections", "body_bytes": "body bytes", "sources": "sources"}
    print(
        f"| {names.get(key, key)} | accepted/s | p50 ms | p99 ms | p99.9 ms "
        "| gateway CPU µs/req | nats-server CPU µs/req | gateway peak RSS MiB | loadgen CPU % | non-2xx / errors |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for r in rows:
        print(
            f"| {r[key]} | {fmt(r['accepted_per_sec'])} | {ms(r['p50_ms'])} | {ms(r['p99_ms'])} "
            f"| {ms(r['p999_ms'])} | {fmt(proc(r, 'server', 'cpu_us_per_accepted'))} "
            f"| {fmt(proc(r, 'nats', 'cpu_us_per_accepted'))} "
            f"| {fmt(mib(proc(r, 'server', 'vmhwm_kb')), '{:.1f}')} "
            f"| {fmt(r['loadgen_cpu_pct'])} | {problems(r)} |"
        )


def median(values):
    values = sorted(v for v in values if v is not None)
    if not values:
        return None
    mid = len(values) // 2
    return values[mid] if len(values) % 2 else (values[mid - 1] + values[mid]) / 2


def compare_table(rows):
    for backend in dict.fromkeys(r["backend"] for r in rows):
        group = [r for r in rows if r["backend"] == backend]
        print(f"### STORE_BACKEND={backend}")
        print()
        print(
            "| round | build | accepted/s | p50 ms | p99 ms | p99.9 ms | gateway CPU µs/req "
            "| nats-server CPU µs/req | gateway peak RSS MiB | non-2xx / errors |"
        )
        print("|---:|---|---:|---:|---:|---:|---:|---:|---:|---|")
        for r in group:
            print(
                f"| {r['round']} | {r['target']} | {fmt(r['accepted_per_sec'])} | {ms(r['p50_ms'])} "
                f"| {ms(r['p99_ms'])} | {ms(r['p999_ms'])} "
                f"| {fmt(proc(r, 'server', 'cpu_us_per_accepted'))} "
                f"| {fmt(proc(r, 'nats', 'cpu_us_per_accepted'))} "
                f"| {fmt(mib(proc(r, 'server', 'vmhwm_kb')), '{:.1f}')} | {problems(r)} |"
            )
        # Ratios within a round (adjacent rows), then their median.
        rounds = sorted({r["round"] for r in group})

        def ratios(value):
            out = []
            for n in rounds:
                pair = {r["target"]: r for r in group if r["round"] == n}
                base, new = value(pair.get("base")), value(pair.get("new"))
                if base and new is not None:
                    out.append(new / base)
            return out

        tput = ratios(lambda r: r and r["accepted_per_sec"])
        cpu = ratios(lambda r: r and proc(r, "server", "cpu_us_per_accepted"))
        p99 = ratios(lambda r: r and r["p99_ms"])
        print()
        print(
            f"- new/base, median of {len(tput)} rounds: accepted/s **{fmt(median(tput), '{:.2f}')}**"
            f" ({', '.join(f'{x:.2f}' for x in tput)}); gateway CPU per request "
            f"**{fmt(median(cpu), '{:.2f}')}**; p99 {fmt(median(p99), '{:.2f}')}"
        )
        print()


def main():
    if len(sys.argv) >= 3 and sys.argv[1] == "run":
        run_table(load(sys.argv[2]))
    elif len(sys.argv) == 3 and sys.argv[1] == "compare":
        compare_table(load(sys.argv[2]))
    elif len(sys.argv) == 4 and sys.argv[1] == "scaling":
        scaling_table(load(sys.argv[2]), sys.argv[3])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Medians of several tenorite_bench runs: a markdown table, ratios, and a gnuplot data file.

    python3 docs/bench_summary.py run1.txt run2.txt run3.txt [--dat docs/bench.dat]
"""
import math
import re
import statistics
import sys

files = [a for a in sys.argv[1:] if not a.startswith("--")]
dat = sys.argv[sys.argv.index("--dat") + 1] if "--dat" in sys.argv else None
if dat in files:
    files.remove(dat)
values, units = {}, {}
for f in files:
    for line in open(f):
        m = re.match(r"impl=(\S+) scenario=(\S+) value=(\S+) unit=(\S+)", line)
        if m:
            values.setdefault((m[1], m[2]), []).append(float(m[3]))
            units[m[2]] = m[4]
# tenorite_task: the same kv worker as a hand-written coroutine loop (tenorite runs it as a
# handler_service, whose loop is no coroutine); shown for reference, not in the ratios.
impls = ["tenorite", "asio_channel", "std_threads", "asio_floor"]
scenarios = list(dict.fromkeys(s for _, s in values))


def med(i, s):
    v = [x for x in values.get((i, s), []) if not math.isnan(x)]
    return statistics.median(v) if v else float("nan")


def better(s, t, b):
    if math.isnan(t) or math.isnan(b):
        return "n/a"
    higher = units[s].startswith("calls")
    return f"{(t / b if higher else b / t):.2f}x"


print(f"Medians of {len(files)} runs.\n")
print("| scenario | unit | tenorite | tenorite_task | asio_channel | std_threads | asio_floor | vs asio_channel | vs std_threads | tenorite / floor |")
print("|---|---|---|---|---|---|---|---|---|---|")
for s in scenarios:
    t, a, st, fl = (med(i, s) for i in impls)
    fmt = lambda x: "n/a" if math.isnan(x) else f"{x:,.0f}"
    floor = "n/a" if math.isnan(fl) or math.isnan(t) else f"{t / fl:.2f}"
    print(f"| {s} | {units[s]} | {fmt(t)} | {fmt(med('tenorite_task', s))} | {fmt(a)} | {fmt(st)} | {fmt(fl)} | {better(s, t, a)} | {better(s, t, st)} | {floor} |")
if dat:
    with open(dat, "w") as out:
        out.write("# scenario tenorite_vs_asio_channel tenorite_vs_std_threads tenorite_vs_asio_floor"
                  " (x better)\n")
        for s in scenarios:
            if s.endswith(("_p50", "_p99")):
                continue
            t, a, st, fl = (med(i, s) for i in impls)
            if math.isnan(a) and math.isnan(st):
                continue  # tenorite-only figures (pools, metrics) have no ratio to chart
            r = [better(s, t, b).rstrip("x") for b in (a, st, fl)]
            out.write(s + "".join(f" {x if x != 'n/a' else 0}" for x in r) + "\n")

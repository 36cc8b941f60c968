#!/usr/bin/env python3
"""One benchmark row as a ratio to the no-op, measured in alternation.

On a shared machine the no-op's own rate drifts by 2x within minutes (other
builds, other benchmarks), so a ratio to one no-op run taken before a row says
as much about the drift as about tokend. This runs PAIRS short pairs
(no-op, then the scenario, each DURATION after a short warm-up) and reports the
median of the per-pair ratios with their spread, and the scenario's overall
rate and its median p50/p99.

  bench/paired.py LOADGEN ADDR SCENARIO CONCURRENCY LABEL [loadgen args...]
  env: PAIRS (default 5), PAIR_DURATION (default 2s), PAIR_WARMUP (default 500ms)
"""
import json
import os
import statistics
import subprocess
import sys


def run(loadgen, addr, scenario, concurrency, label, extra):
    out = subprocess.run(
        [loadgen, "--addr", addr, "--scenario", scenario, "--concurrency", concurrency,
         "--duration", os.environ.get("PAIR_DURATION", "2s"),
         "--warmup", os.environ.get("PAIR_WARMUP", "500ms"), "--label", label, *extra],
        check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]
    return json.loads(out)


def main():
    loadgen, addr, scenario, concurrency, label, *extra = sys.argv[1:]
    pairs = int(os.environ.get("PAIRS", "5"))
    noops, rows = [], []
    for _ in range(pairs):
        noops.append(run(loadgen, addr, "noop", concurrency, f"{label} noop", []))
        rows.append(run(loadgen, addr, scenario, concurrency, label, extra))
    ratios = [r["rps"] / n["rps"] for n, r in zip(noops, rows)]
    print(json.dumps({
        "scenario": label,
        "concurrency": int(concurrency),
        "pairs": pairs,
        "rps": round(statistics.mean(r["rps"] for r in rows)),
        "noop_rps": round(statistics.mean(n["rps"] for n in noops)),
        "ratio_to_noop": round(statistics.median(ratios), 3),
        "ratio_min": round(min(ratios), 3),
        "ratio_max": round(max(ratios), 3),
        "p50_us": statistics.median(r["p50_us"] for r in rows),
        "p99_us": statistics.median(r["p99_us"] for r in rows),
        "unexpected": sum(r["unexpected"] for r in rows),
        "codes": rows[-1]["codes"],
    }))


if __name__ == "__main__":
    main()

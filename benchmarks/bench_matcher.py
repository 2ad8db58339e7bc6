"""Matcher benchmark: accuracy on the labelled synthetic corpus, throughput, CLI wall time.

    .venv/bin/python benchmarks/bench_matcher.py [--runs 5] [--noise 0.08]

Prints per-shape precision/recall/F1, the confusion matrix (rows = truth, columns = top
match, "steady" = nothing matched) and macro F1 at moderate noise; then series of 1,440
points matched per second on one core (single process, medians over --runs), and the wall
time of `hostdiag signatures match FILE` (a fresh interpreter each run). Targets (issue 4):
macro F1 >= 0.9, >= 1,000 series/s, <= 0.5 s wall.
"""
from __future__ import annotations

import argparse
import collections
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "matcher"))

import numpy as np  # noqa: E402
from corpus import SHAPES, corpus, make  # noqa: E402

from hostdiag import catalog  # noqa: E402
from hostdiag.matcher import analyse, match  # noqa: E402


def accuracy(noise: float, seed: int, per_cell: int):
    conf = collections.Counter()
    for label, _p, t, v, c in corpus(seed=seed, per_cell=per_cell, noises=(noise,),
                                      lengths=(60, 300, 1440, 10080)):
        a = analyse(t, v, counter=c)
        conf[(label, a.hits[0].shape if a.hits else "steady")] += 1
    rows, f1s = [], []
    for s in SHAPES:
        tp = conf[(s, s)]
        fp = sum(conf[(o, s)] for o in SHAPES if o != s)
        fn = sum(conf[(s, o)] for o in SHAPES if o != s)
        p = tp / (tp + fp) if tp + fp else 0.0
        r = tp / (tp + fn) if tp + fn else 0.0
        f1 = 2 * p * r / (p + r) if p + r else 0.0
        rows.append((s, p, r, f1, tp + fn))
        f1s.append(f1)
    return rows, conf, sum(f1s) / len(f1s)


def throughput(runs: int) -> float:
    rng = np.random.default_rng(1)
    data = [make(s, rng, n=1440, noise=0.08, scale=1e6, offset=3e6) for s in SHAPES for _ in range(60)]
    data = [(np.asarray(t), np.asarray(v, float), c) for t, v, c in data]
    cat = catalog.load()
    rates = []
    for _ in range(runs):
        t0 = time.perf_counter()
        for t, v, c in data:
            match(t, v, metric="memory.available_bytes", counter=c, catalog=cat)
        rates.append(len(data) / (time.perf_counter() - t0))
    return statistics.median(rates)


def cli_wall(runs: int) -> float:
    t, v, _ = make("stair_step", np.random.default_rng(2), n=1440, noise=0.05, scale=1e8, offset=1e9)
    with tempfile.NamedTemporaryFile("w", suffix=".csv", delete=False) as f:
        f.write("timestamp,value\n" + "".join(f"{a},{b}\n" for a, b in zip(t, v)))
    exe = [sys.executable, "-m", "hostdiag", "signatures", "match", f.name, "--metric", "process.rss_bytes"]
    walls = []
    try:
        for _ in range(runs):
            t0 = time.perf_counter()
            subprocess.run(exe, check=True, capture_output=True, env=dict(os.environ, PYTHONDONTWRITEBYTECODE="1"))
            walls.append(time.perf_counter() - t0)
    finally:
        os.unlink(f.name)
    return statistics.median(walls)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--noise", type=float, default=0.08, help="noise sd as a fraction of the shape's amplitude")
    ap.add_argument("--per-cell", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()

    rows, conf, macro = accuracy(a.noise, a.seed, a.per_cell)
    n = sum(r[4] for r in rows)
    print(f"accuracy: {n} series, noise {a.noise:g}, lengths 60/300/1440/10080, "
          "variants plain / irregular+gaps+NaN / counter with reset / daily seasonal")
    print(f"{'shape':20s} {'prec':>5s} {'recall':>6s} {'F1':>5s} {'n':>4s}")
    for s, p, r, f1, cnt in rows:
        print(f"{s:20s} {p:5.2f} {r:6.2f} {f1:5.2f} {cnt:4d}")
    print(f"{'macro F1':20s} {'':5s} {'':6s} {macro:5.2f}   (target >= 0.90)")
    print("\nconfusion (rows = truth, columns = top match):")
    short = [s[:6] for s in SHAPES]
    print(" " * 20 + " ".join(f"{s:>6s}" for s in short))
    for s in SHAPES:
        print(f"{s:20s}" + " ".join(f"{conf[(s, o)]:6d}" for o in SHAPES))
    rate = throughput(a.runs)
    print(f"\nthroughput: {rate:,.0f} series of 1,440 points/s on one core (median of {a.runs}; target >= 1,000)")
    wall = cli_wall(a.runs)
    print(f"`hostdiag signatures match FILE` (1,440 points): {wall:.3f} s wall (median of {a.runs}; target <= 0.5 s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Matcher benchmark: accuracy on the synthetic and the real (dev) corpus, throughput, CLI time.

    .venv/bin/python benchmarks/bench_matcher.py [--runs 5] [--noise 0.08]
        [--dev-data DIR] [--dev-labels FILE]

1. Synthetic corpus (tests/matcher/corpus.py): per-shape precision/recall/F1, the confusion
   matrix (rows = truth, columns = top match, "steady" = nothing matched) and macro F1.
2. Development corpus of 106 real windows (labels and rules in shared/devseries/README.md; the
   CSVs are rebuilt into ~/.cache/hostdiag-data/devseries by its rebuild.py and are never
   copied into a repository). Skipped with a message when the directory is missing. Same
   table, plus the reliability table: top-match score bins vs the share of those matches that
   are right, which is what "calibrated" means here (0.8 = about 80 % right).
3. Series of 1,440 points matched per second on one core (medians over --runs), and the
   wall time of `hostdiag signatures match FILE` (a fresh interpreter each run).
Targets (issue 13): dev top-1 >= 0.85, recall >= 0.7 per label, precision >= 0.8 per
non-steady label; synthetic macro F1 >= 0.92; >= 1,000 series/s.
"""
from __future__ import annotations

import argparse
import collections
import json
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
from hostdiag.matcher.series_io import read_series  # noqa: E402

DEV_LABELS = ("stair_step", "cliff_drop", "oscillating", "flatline", "spike_then_settle",
              "plateau_under_peak", "ramp", "steady")


def dev_paths(data: str | None, labels: str | None) -> tuple[Path, Path]:
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    d = Path(data) if data else cache / "hostdiag-data" / "devseries"
    if labels:
        return d, Path(labels)
    for up in (ROOT.parent, ROOT.parent.parent):          # /work/main or /work/wt/<name>
        if (up / "shared" / "devseries" / "labels.json").is_file():
            return d, up / "shared" / "devseries" / "labels.json"
    return d, ROOT / "shared" / "devseries" / "labels.json"


def dev_accuracy(data: Path, labels: Path):
    """[(label, predicted, top score or None, confidence)] over the dev corpus."""
    out = []
    for lab in json.loads(labels.read_text()):
        t, v = read_series((data / lab["file"]).read_text())
        a = analyse(t, v)
        top = a.hits[0] if a.hits else None
        out.append((lab["label"], top.shape if top else "steady", top.score if top else None,
                    lab.get("confidence")))
    return out


def table(pairs, labels):
    conf = collections.Counter((g, p) for g, p in pairs)
    rows, f1s = [], []
    for s in labels:
        tp = conf[(s, s)]
        fp = sum(conf[(o, s)] for o in labels if o != s)
        fn = sum(conf[(s, o)] for o in labels if o != s)
        p = tp / (tp + fp) if tp + fp else 0.0
        r = tp / (tp + fn) if tp + fn else 0.0
        f1 = 2 * p * r / (p + r) if p + r else 0.0
        rows.append((s, p, r, f1, tp + fn))
        f1s.append(f1)
    return rows, conf, sum(f1s) / len(f1s)


def print_table(rows, conf, labels, macro, target):
    print(f"{'shape':20s} {'prec':>5s} {'recall':>6s} {'F1':>5s} {'n':>4s}")
    for s, p, r, f1, cnt in rows:
        print(f"{s:20s} {p:5.2f} {r:6.2f} {f1:5.2f} {cnt:4d}")
    print(f"{'macro F1':20s} {'':5s} {'':6s} {macro:5.2f}   ({target})")
    print("confusion (rows = truth, columns = top match):")
    print(" " * 20 + " ".join(f"{s[:6]:>6s}" for s in labels))
    for s in labels:
        print(f"{s:20s}" + " ".join(f"{conf[(s, o)]:6d}" for o in labels))


def reliability(results) -> None:
    """Score bins of the top match vs the share of those matches that are right."""
    bins = [(0.5, 0.6), (0.6, 0.7), (0.7, 0.8), (0.8, 0.9), (0.9, 1.01)]
    print("reliability (top match score vs share right; 'no match' = called steady):")
    print(f"  {'score':11s} {'n':>4s} {'right':>6s}  plot (# = right, . = wrong; | = bin centre)")
    for lo, hi in bins:
        sel = [(g, p) for g, p, sc, _ in results if sc is not None and lo <= sc < hi]
        ok = sum(g == p for g, p in sel)
        acc = ok / len(sel) if sel else float("nan")
        bar = "#" * round(20 * acc) + "." * (20 - round(20 * acc)) if sel else ""
        mid = round(20 * (lo + min(hi, 1.0)) / 2)
        bar = bar[:mid] + "|" + bar[mid + 1:] if bar else ""
        print(f"  {lo:.1f}-{min(hi, 1.0):.1f}    {len(sel):4d} {acc:6.2f}  {bar}")
    sel = [(g, p) for g, p, sc, _ in results if sc is None]
    ok = sum(g == p for g, p in sel)
    print(f"  no match   {len(sel):4d} {ok / len(sel) if sel else float('nan'):6.2f}")


def accuracy(noise: float, seed: int, per_cell: int):
    pairs = []
    for label, _p, t, v, c in corpus(seed=seed, per_cell=per_cell, noises=(noise,),
                                      lengths=(60, 300, 1440, 10080)):
        a = analyse(t, v, counter=c)
        pairs.append((label, a.hits[0].shape if a.hits else "steady"))
    return table(pairs, SHAPES)


def throughput(runs: int) -> float:
    rng = np.random.default_rng(1)
    data = [make(s, rng, n=1440, noise=0.08, scale=1e6, offset=3e6) for s in SHAPES for _ in range(60)]
    data = [(np.asarray(t), np.asarray(v, float), c) for t, v, c in data]
    cat = catalog.load()
    rates = []
    for _ in range(runs):
        # CPU time of this process: on a shared 2-CPU machine wall time mostly measures the
        # neighbours; one core's worth of matching is what the target is about
        t0 = time.process_time()
        for t, v, c in data:
            match(t, v, metric="memory.available_bytes", counter=c, catalog=cat)
        rates.append(len(data) / (time.process_time() - t0))
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
    ap.add_argument("--dev-data", help="dev corpus CSVs (default ~/.cache/hostdiag-data/devseries)")
    ap.add_argument("--dev-labels", help="dev corpus labels.json (default shared/devseries/ beside the checkout)")
    a = ap.parse_args()

    rows, conf, macro = accuracy(a.noise, a.seed, a.per_cell)
    n = sum(r[4] for r in rows)
    print(f"synthetic accuracy: {n} series, noise {a.noise:g}, lengths 60/300/1440/10080, "
          "variants plain / irregular+gaps+NaN / counter with reset / daily seasonal")
    print_table(rows, conf, SHAPES, macro, "target >= 0.92")
    data, labels = dev_paths(a.dev_data, a.dev_labels)
    print()
    if not data.is_dir() or not labels.is_file():
        print(f"dev corpus: skipped: {data if not data.is_dir() else labels} is missing "
              "(rebuild it with shared/devseries/rebuild.py; see its README)")
    else:
        res = dev_accuracy(data, labels)
        rows, conf, macro = table([(g, p) for g, p, _, _ in res], DEV_LABELS)
        top1 = sum(g == p for g, p, _, _ in res) / len(res)
        high = [(g, p) for g, p, _, c in res if c == "high"]
        print(f"dev corpus: {len(res)} real windows ({len(high)} high confidence) from {data}")
        print_table(rows, conf, DEV_LABELS, macro, "targets: recall >= 0.7, precision >= 0.8 but steady")
        print(f"top-1 {top1:.2f} (target >= 0.85); high-confidence top-1 "
              f"{sum(g == p for g, p in high) / max(1, len(high)):.2f}")
        reliability(res)
    rate = throughput(a.runs)
    print(f"\nthroughput: {rate:,.0f} series of 1,440 points per CPU-second (median of {a.runs}; target >= 1,000)")
    wall = cli_wall(a.runs)
    print(f"`hostdiag signatures match FILE` (1,440 points): {wall:.3f} s wall (median of {a.runs}; target <= 0.5 s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

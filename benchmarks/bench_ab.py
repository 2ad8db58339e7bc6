#!/usr/bin/env python3
"""Interleaved A/B of one hostdiag command line across builds: medians of wall, CPU, peak RSS.

    .venv/bin/python benchmarks/bench_ab.py --runs 11 \\
        --build new=.venv/bin/hostdiag --build old=/tmp/old/.venv/bin/hostdiag -- capture --window 1

Each round runs every build once, the order rotating per round, so load from other jobs on the
machine falls on all builds alike. `{tmp}` in the arguments becomes a fresh temporary directory per
build (e.g. `--store {tmp}/h.db`). Children run with bytecode cached (see bench_snapshot.CHILD_ENV),
after one unmeasured warm-up run each. Prints a markdown table; --json for the raw runs.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_snapshot import hostdiag_ok, measure, med  # noqa: E402  (spawn + wait4, same env)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build", action="append", required=True, metavar="LABEL=CMD",
                    help="a hostdiag command (repeatable; the first is the reference)")
    ap.add_argument("--runs", type=int, default=11)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("args", nargs=argparse.REMAINDER, help="-- then the hostdiag arguments")
    a = ap.parse_args(argv)
    args = a.args[1:] if a.args[:1] == ["--"] else a.args
    builds = []
    for b in a.build:
        label, sep, cmd = b.partition("=")
        if not sep or not cmd.strip():
            ap.error(f"--build {b!r}: expected LABEL=CMD")
        builds.append((label, cmd.split()))
    tmps = {label: tempfile.mkdtemp(prefix="hostdiag-ab-") for label, _ in builds}
    try:
        def argv_of(label, cmd):
            return cmd + [x.replace("{tmp}", tmps[label]) for x in args]
        for label, cmd in builds:
            measure(argv_of(label, cmd))       # warm-up: bytecode, page cache, a store's schema
        runs: dict[str, list] = {label: [] for label, _ in builds}
        fails = []
        for i in range(a.runs):
            k = i % len(builds)
            for label, cmd in builds[k:] + builds[:k]:
                r, tail = measure(argv_of(label, cmd))
                runs[label].append(r)
                if not hostdiag_ok(r.rc):
                    fails.append(f"{label} run {i + 1}: rc {r.rc}: {tail[-200:]}")
                print(f"[ab] {i + 1}/{a.runs} {label}: {r.wall_s:.3f}s wall {r.cpu_s:.3f}s cpu", file=sys.stderr)
    finally:
        for d in tmps.values():
            shutil.rmtree(d, ignore_errors=True)
    ref = builds[0][0]
    summary = {label: {"wall_s": med(r.wall_s for r in rs), "cpu_s": med(r.cpu_s for r in rs),
                       "maxrss_mb": med(r.maxrss_mb for r in rs), "runs": len(rs)} for label, rs in runs.items()}
    if a.json:
        print(json.dumps({"args": args, "summary": summary, "failures": fails,
                          "raw": {k: [asdict(r) for r in v] for k, v in runs.items()}}, indent=1))
    else:
        print(f"`hostdiag {' '.join(args)}`, {a.runs} interleaved runs each, medians:\n")
        print(f"| build | wall | CPU | peak RSS | wall vs {ref} | CPU vs {ref} |")
        print("|---|---:|---:|---:|---:|---:|")
        for label, s in summary.items():
            rw = s["wall_s"] / summary[ref]["wall_s"]
            rc = s["cpu_s"] / summary[ref]["cpu_s"] if summary[ref]["cpu_s"] else float("nan")
            print(f"| {label} | {s['wall_s']:.3f} s | {s['cpu_s']:.3f} s | {s['maxrss_mb']:.0f} MB | {rw:.2f}x | {rc:.2f}x |")
        for f in fails:
            print(f"- failure: {f}")
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())

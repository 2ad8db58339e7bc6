"""Shipping benchmark: `signatures match --prometheus` over a fleet, pyz start-up and size.

    .venv/bin/python benchmarks/bench_ship.py [--runs 5] [--series 1000]

1. A real Prometheus (Debian's, on loopback) holding --series hosts x 6 h at 1 min (360
   points each, 2 % of them with an injected stair-step), backfilled with promtool. Timed, as
   fresh processes: the raw range query alone (urllib, the floor) and the whole command
   `hostdiag signatures match --prometheus URL --query Q --json`. Target: <= 2 s end to end.
2. hostdiag.pyz (built now) vs the venv: `--version` and `snapshot --window 0 --json`, both
   under Debian's /usr/bin/python3 -I -S (pyz) and the venv's python -m hostdiag. Target:
   pyz <= 1.5x the venv.
3. Sizes: the pyz vs the venv's installed runtime packages.
Medians over --runs, runs interleaved (A, B, A, B, ...).
"""
from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "ship"))
from promtools import PROMTOOL, start_prometheus, stop  # noqa: E402

QUERY = "fleet_memory_used_bytes"
POINTS = 360


CPU: dict[str, list[float]] = {}


def wall(cmd, stdin=None, key: str | None = None) -> float:
    """Wall seconds of one child; its CPU seconds (user+sys, from wait4) go to CPU[key]."""
    t = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, stdin=stdin)
    err = p.stderr.read()
    _, status, ru = os.wait4(p.pid, 0)
    dt = time.perf_counter() - t
    p.returncode = os.waitstatus_to_exitcode(status)
    if p.returncode not in (0, 1, 2):
        raise SystemExit(f"{cmd[:4]}... failed {p.returncode}: {err.decode()[-500:]}")
    if key:
        CPU.setdefault(key, []).append(ru.ru_utime + ru.ru_stime)
    return dt


def interleaved(runs: int, **cmds) -> dict[str, float]:
    times = {k: [] for k in cmds}
    for _ in range(runs):
        for k, c in cmds.items():
            times[k].append(wall(c, key=k))
    return {k: statistics.median(v) for k, v in times.items()}


def cpu(key: str) -> float:
    return statistics.median(CPU.pop(key))


def fleet_file(path: Path, n: int) -> None:
    end = int(time.time()) - 60
    start = end - (POINTS - 1) * 60
    rnd = random.Random(1)
    with open(path, "w") as f:
        f.write(f"# TYPE {QUERY} gauge\n")
        for h in range(n):
            base = 4e9 + rnd.random() * 2e9
            stair = h % 50 == 7
            for i in range(POINTS):
                x = base + rnd.gauss(0, base * 0.01) + ((i // 60) * 5e8 if stair and i >= 120 else 0)
                f.write(f'{QUERY}{{instance="host-{h:04d}:9100"}} {x:.1f} {start + i * 60}\n')
        f.write("# EOF\n")


def du(paths) -> int:
    return sum(p.stat().st_size for d in paths for p in Path(d).rglob("*") if p.is_file())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--series", type=int, default=1000)
    a = ap.parse_args()
    py = sys.executable
    with tempfile.TemporaryDirectory(prefix="bench-ship-") as tmp:
        tmp = Path(tmp)
        if PROMTOOL and shutil.which("prometheus"):
            fleet_file(tmp / "fleet.om", a.series)
            t = time.perf_counter()
            subprocess.run([PROMTOOL, "tsdb", "create-blocks-from", "openmetrics", "-q", str(tmp / "fleet.om"),
                            str(tmp / "data")], check=True, capture_output=True)
            print(f"backfill: {a.series} series x {POINTS} points in {time.perf_counter() - t:.1f} s (promtool)")
            proc, url = start_prometheus(tmp / "data", tmp)
            try:
                floor = ("import sys,time,urllib.request,urllib.parse;e=time.time();"
                         "d=urllib.parse.urlencode({'query':sys.argv[2],'start':e-21600,'end':e,'step':'60'}).encode();"
                         "urllib.request.urlopen(sys.argv[1]+'/api/v1/query_range',d).read()")
                m = interleaved(a.runs,
                                query=[py, "-c", floor, url, QUERY],
                                match=[py, "-m", "hostdiag", "signatures", "match", "--prometheus", url,
                                       "--query", QUERY, "--json"])
                print(f"match --prometheus, {a.series} series x {POINTS} points: {m['match']:.2f} s wall, "
                      f"{cpu('match'):.2f} s CPU median (target <= 2 s; the bare range query alone: "
                      f"{m['query']:.2f} s wall, {cpu('query'):.2f} s CPU; load average {os.getloadavg()[0]:.1f})")
            finally:
                stop(proc)
        else:
            print("prometheus/promtool not installed: fleet benchmark skipped")
        pyz = tmp / "hostdiag.pyz"
        subprocess.run(["/usr/bin/python3", str(ROOT / "packaging" / "build-pyz"), "--out", str(pyz)],
                       check=True, capture_output=True)
        base = [py, "-m", "hostdiag"]
        z = ["/usr/bin/python3", "-I", "-S", str(pyz)]
        v = interleaved(a.runs * 2, venv=base + ["--version"], pyz=z + ["--version"])
        s = interleaved(a.runs, venv=base + ["snapshot", "--window", "0", "--json"],
                        pyz=z + ["snapshot", "--window", "0", "--json"])
        with open(pyz, "rb") as f:
            stage = (ROOT / "packaging" / "stage.py").read_text()
            t = []
            for _ in range(a.runs):
                f.seek(0)
                t.append(wall(["/usr/bin/python3", "-I", "-S", "-c", stage, "--version"], stdin=f))
        CPU.clear()
        print(f"--version: venv {v['venv']:.3f} s, pyz {v['pyz']:.3f} s ({v['pyz'] / v['venv']:.2f}x), "
              f"pyz via stdin stage {statistics.median(t):.3f} s")
        print(f"snapshot --window 0: venv {s['venv']:.3f} s, pyz {s['pyz']:.3f} s ({s['pyz'] / s['venv']:.2f}x; target <= 1.5x)")
        import psutil
        import rich
        import typer
        site = Path(typer.__file__).parent.parent
        runtime = [Path(m.__file__).parent for m in (psutil, rich, typer)]
        runtime += [p for p in site.glob("*") if p.name.split("-")[0].lower() in
                    ("pygments", "markdown_it", "mdurl", "shellingham", "annotated_doc", "click")]
        np_dir = [site / "numpy", site / "numpy.libs"]
        print(f"size: pyz {pyz.stat().st_size / 1e6:.2f} MB (x86_64 + aarch64, no numpy); venv runtime packages "
              f"{du(runtime) / 1e6:.1f} MB + numpy {du(np_dir) / 1e6:.1f} MB (one Python version, one machine)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

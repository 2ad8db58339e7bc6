"""Journal read throughput and peak RSS per backend on a 1,000,000-entry journal.

    .venv/bin/python benchmarks/bench_journal.py [--entries 1000000] [--dir /tmp/hostdiag-bench-journal]

The journal is generated once into --dir (systemd-journal-remote; ~1 min) and reused. Entries are
spread evenly over the 24 h before generation, so the default 30-minute window holds ~2% of them
only when run soon after generating: the window is taken as the last 30 minutes of the journal.
Each measurement runs in its own process so peak RSS (ru_maxrss) is that run's alone.
Targets (issue 3): the default 30-minute window in <= 2 s and <= 100 MB.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "journal"))


def generate(d: str, n: int) -> float:
    import journalgen

    os.makedirs(d, exist_ok=True)
    meta = os.path.join(d, "meta.json")
    if os.path.exists(meta):
        m = json.load(open(meta))
        if m["entries"] == n:
            return m["end"]
    for f in os.listdir(d):
        os.unlink(os.path.join(d, f))
    end = time.time()
    t0 = time.monotonic()
    journalgen.write_journal(os.path.join(d, "bench.journal"), journalgen.bulk(end - 86400, end, n))
    print(f"generated {n} entries in {time.monotonic() - t0:.1f}s", file=sys.stderr)
    json.dump({"entries": n, "end": end}, open(meta, "w"))
    return end


def one(backend: str, mode: str, d: str, end: float) -> dict:
    """Runs inside the child: read through one backend, return counts and timings."""
    from hostdiag import catalog, logs
    from hostdiag.collectors import journal as J
    from hostdiag.core.context import Context

    since = end - (86400 + 60 if mode == "full" else J.DEFAULT_WINDOW_S)
    cap = 10**9 if mode == "full" else logs.MAX_ENTRIES
    ctx = Context(journal_path=d, since=since, until=end, timeout_s=2.0 if mode != "full" else 300.0)
    pats = catalog.load().log_patterns()
    t0 = time.monotonic()
    rd = logs.open_journal(ctx, since, end, cap=cap, backends=(backend,))
    if mode == "full":
        n = sum(1 for _ in rd.entries)
    else:
        n = J.analyse(rd.entries, since, end, pats)["entries"]
    dt = time.monotonic() - t0
    import resource

    sub = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024   # the journalctl process, if any
    return {"journalctl_rss_mb": round(sub, 1) if sub else None, "backend": backend, "mode": mode, "entries": n, "seconds": round(dt, 3),
            "entries_per_s": round(n / dt) if dt else None, "truncated": rd.truncated}


def measure(backend: str, mode: str, d: str, end: float) -> dict:
    p = subprocess.Popen([sys.executable, __file__, "--child", backend, mode, d, str(end)], stdout=subprocess.PIPE)
    out = p.stdout.read()
    _, status, ru = os.wait4(p.pid, 0)
    res = json.loads(out)
    res["peak_rss_mb"] = round(ru.ru_maxrss / 1024, 1)   # KiB on Linux
    return res


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--entries", type=int, default=1_000_000)
    ap.add_argument("--dir", default="/tmp/hostdiag-bench-journal")
    ap.add_argument("--child", nargs=4)
    a = ap.parse_args()
    if a.child:
        backend, mode, d, end = a.child
        print(json.dumps(one(backend, mode, d, float(end))))
        return
    end = generate(a.dir, a.entries)
    rows = [measure(b, m, a.dir, end) for m in ("window30m", "full") for b in ("systemd-python", "journalctl")]
    print(f"{'backend':15} {'mode':10} {'entries':>9} {'seconds':>8} {'entries/s':>10} {'peak RSS MB':>12} {'journalctl MB':>13}")
    for r in rows:
        print(f"{r['backend']:15} {r['mode']:10} {r['entries']:>9} {r['seconds']:>8} {r['entries_per_s'] or '-':>10} "
              f"{r['peak_rss_mb']:>12} {r['journalctl_rss_mb'] or '-':>13}")
    w = [r for r in rows if r["mode"] == "window30m"]
    ok = all(r["seconds"] <= 2 and r["peak_rss_mb"] <= 100 for r in w)
    print("30-minute window target (<= 2 s, <= 100 MB):", "met" if ok else "NOT met")


if __name__ == "__main__":
    main()

"""Benchmark the capture store (issue 12 targets), medians, against baselines measured in the same run.

  1. `hostdiag capture` (--window 0 and the default --window 1) wall, CPU, peak RSS vs
     `hostdiag snapshot --window 0 --json`, alternating, N runs each (os.wait4 of each child).
  2. Store bytes per capture: real captures of this host appended to a fresh store, then the same
     host's record replayed (with per-capture jitter and process churn) through the store API.
  3. 14 days at one capture a minute (20,160 captures) synthesised through the store API with the
     real retention code (synchronous=OFF and one checkpoint at the end, to run in seconds): size.
  4. `hostdiag history --since 24h` wall on that store (CLI), and the read a snapshot would do over
     14 days through History.open_ro (every host series, finding spans, one process), in-process.
  5. sadc (sysstat) bytes per sample in the same run, if installed: `-S DISK` (Debian's default) and `-S XALL`.

Usage: python benchmarks/bench_history.py [--runs 7] [--real 20]
"""
from __future__ import annotations

import argparse
import copy
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
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
from bench_snapshot import measure  # noqa: E402  (spawn + wait4: wall, CPU, peak RSS)

HD = [sys.executable, "-m", "hostdiag"]
DAY = 86400


def log(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def bench_capture(runs: int, tmp: Path) -> dict:
    store = tmp / "cap.db"
    env_store = ["--store", str(store)]
    res: dict[str, list] = {"capture --window 0": [], "capture --window 1": [], "snapshot --window 0": []}
    measure([*HD, "capture", *env_store, "--window", "0"])      # warm caches, create the store
    for i in range(runs):
        for label, argv in (("capture --window 0", [*HD, "capture", *env_store, "--window", "0"]),
                            ("snapshot --window 0", [*HD, "snapshot", "--window", "0", "--json"]),
                            ("capture --window 1", [*HD, "capture", *env_store, "--window", "1"])):
            r, tail = measure(argv)
            if label.startswith("capture") and r.rc != 0:
                raise SystemExit(f"capture failed: {tail}")
            res[label].append(r)
    return {k: {"wall_s": med([r.wall_s for r in v]), "cpu_s": med([r.cpu_s for r in v]),
                "rss_mb": med([r.maxrss_mb for r in v])} for k, v in res.items()}


def real_bytes_per_capture(n: int, tmp: Path) -> tuple[float, dict]:
    """n real captures (--window 0) into a fresh store; bytes per capture from the used pages."""
    from hostdiag.history.store import History

    store = tmp / "real.db"

    def used() -> int:
        with History.open_ro(str(store)) as h:
            c = h.conn
            return ((c.execute("PRAGMA page_count").fetchone()[0] - c.execute("PRAGMA freelist_count").fetchone()[0])
                    * c.execute("PRAGMA page_size").fetchone()[0])

    first = None
    for i in range(n):
        p = subprocess.run([*HD, "capture", "--store", str(store), "--window", "0"], capture_output=True, text=True)
        if p.returncode:
            raise SystemExit(p.stderr)
        if i == 0:
            first = used()      # the schema's first page per table is a fixed cost, not growth
    with History.open_ro(str(store)) as h:
        rows = {t: h.conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] / n
                for t in ("proc_sample", "mount_sample", "finding_sample", "dev_sample", "port_sample")}
    return (used() - first) / (n - 1), rows


def host_record() -> dict:
    """One real record of this host (what a capture would store), to replay."""
    from hostdiag.commands import snapshot as snap_cmd
    from hostdiag.core.context import Context
    from hostdiag.history import record

    rep = snap_cmd.run(snap_cmd.Options(window_s=1.0, interval_s=1.0), Context(since=time.time() - 60))
    scan = getattr(rep.snapshot, "scan", None)
    return record.from_report(rep.to_dict(), time.time(), record.procs_from_scan(scan) if scan else None)


def jitter(base: dict, i: int, t: float, rng: random.Random) -> dict:
    rec = copy.deepcopy(base)
    rec["t"] = t
    for k, v in rec["host"].items():
        if isinstance(v, (int, float)) and v:
            rec["host"][k] = round(v * rng.uniform(0.9, 1.1), 2) if isinstance(v, float) else int(v * rng.uniform(0.99, 1.01))
    for p in rec["procs"]:
        if p.get("cpu_pct") is not None:
            p["cpu_pct"] = round(rng.uniform(0, 5), 1)
        if p.get("rss_bytes"):
            p["rss_bytes"] = int(p["rss_bytes"] * rng.uniform(0.98, 1.02))
    for k in range(2):    # a couple of short-lived processes per capture (cron jobs, ssh, probes)
        rec["procs"].append({"pid": 100000 + (i * 2 + k) % 4000000, "start": int(t), "name": f"job{k}",
                             "cpu_pct": 3.0, "rss_bytes": 5_000_000, "fds": 8, "io_bps": 0})
    for m in rec["mounts"].values():
        if m.get("used_bytes"):
            m["used_bytes"] += i * 4096
    return rec


def synth(path: str, base: dict, n: int, t0: float, seed: int = 1) -> float:
    """n captures a minute apart via the store's own expire/insert code; returns seconds taken."""
    from hostdiag.history.store import Store

    rng = random.Random(seed)
    st = Store.open(path)
    st.conn.execute("PRAGMA synchronous = OFF")       # benchmark fill only: no fsync per capture
    t_start = time.perf_counter()
    for i in range(n):
        t = t0 + 60 * i
        ms = int(t * 1000)
        st._begin()
        st._expire(ms)
        st._insert(ms, jitter(base, i, t, rng))
        st.conn.execute("COMMIT")
    st._shrink()
    st.close()
    return time.perf_counter() - t_start


def bench_reads(path: str, last_t: float, runs: int) -> dict:
    from hostdiag.history.store import History

    env = dict(os.environ, HOSTDIAG_NOW=str(last_t + 30), PYTHONDONTWRITEBYTECODE="1")
    walls = []
    for _ in range(runs):
        t = time.perf_counter()
        p = subprocess.run([*HD, "history", "--store", path, "--since", "24h"], capture_output=True, env=env)
        walls.append(time.perf_counter() - t)
        assert p.returncode == 0, p.stderr
    snap_reads, snap_cpu, all_14d = [], [], []
    for _ in range(runs):
        # what a snapshot would read (hostdiag/history/enrich.py): every series over the last 24 h
        # at full resolution (shapes over hours), disk/inode series over 14 days bucketed to 1,440
        # points (time-to-full from the multi-day slope), since-when of 5 findings, 5 processes' 24 h
        t, c = time.perf_counter(), time.process_time()
        with History.open_ro(path) as h:
            series = h.series("*", last_t - DAY, None)
            slopes = [s.slope() for s in series]
            disk = h.series("disk.*", last_t - 14 * DAY, None, max_points=1440)
            slopes += [s.slope() for s in disk]
            fids = [r[0] for r in h.conn.execute("SELECT fid FROM finding LIMIT 5")]
            since = [h.since_when(f) for f in fids]
            pids = [r[0] for r in h.conn.execute("SELECT pid FROM proc ORDER BY id LIMIT 5")]
            procs = [s for pid in pids for s in h.process_series(pid, "rss_bytes", last_t - DAY)]
        snap_reads.append(time.perf_counter() - t)
        snap_cpu.append(time.process_time() - c)
        t = time.perf_counter()
        with History.open_ro(path) as h:
            every = h.series("*", last_t - 14 * DAY, None, max_points=1440)
            slopes += [s.slope() for s in every]
        all_14d.append(time.perf_counter() - t)
    return {"history_24h_wall_s": med(walls), "snapshot_read_s": med(snap_reads), "snapshot_read_cpu_s": med(snap_cpu), "all_14d_s": med(all_14d),
            "series_read": len(series), "points_per_series": len(series[0].v) if series else 0,
            "disk_series": len(disk), "since_when": len(since), "process_points": sum(len(s.v) for s in procs),
            "every": len(every)}


def sadc_bytes(tmp: Path, samples: int = 11) -> dict:
    sadc = shutil.which("sadc") or next((p for p in ("/usr/lib/sysstat/sadc", "/usr/libexec/sysstat/sadc")
                                          if os.path.exists(p)), None)
    if not sadc:
        return {}
    out = {}
    for opt in ("DISK", "XALL"):
        f = tmp / f"sa-{opt}"
        one = tmp / f"sa1-{opt}"
        subprocess.run([sadc, "-S", opt, "1", "1", str(one)], check=True, capture_output=True)
        subprocess.run([sadc, "-S", opt, "1", str(samples), str(f)], check=True, capture_output=True)
        # growth per sample, without the file header: (size(N) - size(1)) / (N - 1)
        out[opt] = (f.stat().st_size - one.stat().st_size) / (samples - 1)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--real", type=int, default=40, help="real captures for bytes per capture")
    ap.add_argument("--days", type=float, default=14)
    a = ap.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="bench-history-"))
    try:
        log(f"capture vs snapshot, {a.runs} alternating runs")
        cap = bench_capture(a.runs, tmp)
        log(f"{a.real} real captures")
        real_bpc, rows = real_bytes_per_capture(a.real, tmp)
        base = host_record()
        n = int(a.days * 1440)
        store = str(tmp / "14d.db")
        log(f"synthesising {n} captures")
        t0 = time.time() - n * 60
        fill_s = synth(store, base, n, t0)
        size = os.path.getsize(store)
        log("reads")
        reads = bench_reads(store, t0 + 60 * (n - 1), a.runs)
        sa = sadc_bytes(tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    snap = cap["snapshot --window 0"]
    print(f"hostdiag history benchmark, {os.cpu_count()} CPUs, Python {sys.version.split()[0]}, "
          f"medians of {a.runs}; {time.strftime('%Y-%m-%d')}\n")
    print("| run | wall | CPU | peak RSS | wall vs snapshot --window 0 |")
    print("|---|---:|---:|---:|---:|")
    for k, v in cap.items():
        print(f"| hostdiag {k} | {v['wall_s']:.3f} s | {v['cpu_s']:.3f} s | {v['rss_mb']:.0f} MB | "
              f"{v['wall_s'] / snap['wall_s']:.2f}x |")
    print()
    print(f"- store growth per capture over {a.real} real captures of this host (page-granular): {real_bpc:,.0f} B "
          f"(rows per capture: " + ", ".join(f"{k} {v:.1f}" for k, v in rows.items()) + ")")
    print(f"- {n:,} captures ({a.days:g} days at 1/min) synthesised from this host's record in {fill_s:.1f} s: "
          f"store {size / 2 ** 20:.1f} MiB = {size / n:,.0f} B per capture "
          f"({len(base['procs'])} process rows + 2 churned per capture, {len(base['findings'])} findings)")
    print(f"- `hostdiag history --since 24h` on it: {reads['history_24h_wall_s']:.3f} s wall")
    print(f"- snapshot-style read with {a.days:g} days stored (open_ro; {reads['series_read']} series x "
          f"{reads['points_per_series']:,} points of the last 24 h + slopes; {reads['disk_series']} disk series over "
          f"{a.days:g} days bucketed to 1,440 points; since-when of {reads['since_when']} findings; 5 processes' 24 h): "
          f"{reads['snapshot_read_s']:.3f} s wall, {reads['snapshot_read_cpu_s']:.3f} s CPU")
    print(f"- every series ({reads['every']}) over all {a.days:g} days bucketed to 1,440 points + slopes: "
          f"{reads['all_14d_s']:.3f} s")
    if sa:
        print("- sadc (sysstat) in the same run, bytes per sample: "
              + ", ".join(f"-S {k} {v:,.0f} B" for k, v in sa.items()))
    else:
        print("- sadc (sysstat) not installed: no peer comparison")
    return 0


if __name__ == "__main__":
    sys.exit(main())

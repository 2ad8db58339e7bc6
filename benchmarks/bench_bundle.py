"""`hostdiag bundle` time, size and peak RSS for a 2-hour busy window, beside `sos report`.

    .venv/bin/python benchmarks/bench_bundle.py [--entries 100000] [--runs 5] [--dir /tmp/hostdiag-bench-bundle]

A journal of --entries entries spread over the last 2 hours is generated with
systemd-journal-remote (tests/journal/journalgen.py) and passed with --journal-dir. Each run is a
child process (`bundle --since 2h -o -` to /dev/null, so the disk is not part of the measure);
wall time and peak RSS (ru_maxrss) come from os.wait4() of that child. Runs alternate between
the scenarios; medians are reported. Scenarios:
  busy-2h       --since 2h --journal-dir (100k entries) --window 0   (the collection cost)
  busy-2h-w5    the same with the default 5 s sampling window
  typical       the live host, default window, --since 30m (size of a typical bundle)
sos report: a 7-plugin run (`sos report --batch --only-plugins ...`), when `sos` is installed
(apt-get install sosreport), in the same alternation. Targets (issue 14): <= 10 s, <= 150 MB RSS,
typical bundle <= 5 MB.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "journal"))
SOS_PLUGINS = "kernel,memory,process,networking,logs,filesys,block"


def generate(d: str, n: int) -> float:
    import journalgen

    os.makedirs(d, exist_ok=True)
    for f in os.listdir(d):
        os.unlink(os.path.join(d, f))
    end = time.time()
    t0 = time.monotonic()
    journalgen.write_journal(os.path.join(d, "busy.journal"), journalgen.bulk(end - 7200, end - 1, n))
    print(f"generated {n} entries over 2 h in {time.monotonic() - t0:.1f}s", file=sys.stderr)
    return end


def measure(argv: list[str], out_path: str | None = None, cwd: str | None = None) -> dict:
    """Run argv as a child; wall, peak RSS (MB), output bytes."""
    out = open(out_path, "wb") if out_path else subprocess.DEVNULL
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1", NO_COLOR="1")
    t0 = time.monotonic()
    p = subprocess.Popen(argv, stdout=out, stderr=subprocess.PIPE, env=env, cwd=cwd)
    err = p.stderr.read()
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.monotonic() - t0
    if out_path:
        out.close()
    rc = os.waitstatus_to_exitcode(status)
    return {"wall": wall, "rss_mb": ru.ru_maxrss / 1024, "rc": rc, "stderr": err.decode(errors="replace")[-400:],
            "bytes": os.path.getsize(out_path) if out_path else None}


def hostdiag(args: list[str], tmp: str) -> dict:
    out = os.path.join(tmp, "b.tar.gz")
    if os.path.exists(out):
        os.unlink(out)
    r = measure([sys.executable, "-m", "hostdiag", "bundle", *args, "-o", "-"], out)
    if r["rc"] == 0:
        from hostdiag.bundle.verify import verify

        res = verify(open(out, "rb"), keep=lambda n: False)
        man = res.manifest or {}
        r["ok"] = res.ok
        r["members"] = {m["name"]: m["size"] for m in man.get("members", [])}
        r["journal_entries"] = (man.get("journal") or {}).get("entries")
        r["redactions"] = (man.get("redaction") or {}).get("total")
    return r


def sos_available() -> str | None:
    if shutil.which("sos") or shutil.which("sosreport"):
        return None
    return "sos not installed (apt-get install sosreport)"


def sos_run(tmp: str) -> dict:
    d = tempfile.mkdtemp(dir=tmp, prefix="sos-")
    exe = shutil.which("sos")
    argv = ([exe, "report"] if exe else [shutil.which("sosreport")]) + [
        "--batch", "--quiet", "--only-plugins", SOS_PLUGINS, "--tmp-dir", d]
    r = measure(argv)
    files = [os.path.join(d, f) for f in os.listdir(d) if f.startswith("sosreport") and not f.endswith((".md5", ".sha256"))]
    r["bytes"] = max((os.path.getsize(f) for f in files), default=None)
    shutil.rmtree(d, ignore_errors=True)
    return r


def med(rs, key):
    xs = [r[key] for r in rs if r.get(key) is not None]
    return statistics.median(xs) if xs else None


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--entries", type=int, default=100_000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--dir", default="/tmp/hostdiag-bench-bundle")
    ap.add_argument("--no-sos", action="store_true")
    a = ap.parse_args()
    jdir = os.path.join(a.dir, "journal")
    generate(jdir, a.entries)
    tmp = tempfile.mkdtemp(prefix="bench-bundle-")
    scen = {
        "busy-2h": ["--since", "2h", "--journal-dir", jdir, "--window", "0"],
        "busy-2h-w5": ["--since", "2h", "--journal-dir", jdir],
        "typical": ["--since", "30m"],
    }
    why_no_sos = "skipped (--no-sos)" if a.no_sos else sos_available()
    results: dict[str, list] = {k: [] for k in scen}
    results["sos"] = []
    hostdiag(scen["busy-2h"], tmp)          # warm-up: page cache, imports
    for i in range(a.runs):
        for name, args in scen.items():
            results[name].append(hostdiag(args, tmp))
        if not why_no_sos:
            results["sos"].append(sos_run(tmp))
    shutil.rmtree(tmp, ignore_errors=True)
    print(f"hostdiag bundle benchmark: {a.entries} journal entries over 2 h, {a.runs} alternating runs, medians; "
          f"{os.cpu_count()} CPUs, Python {sys.version.split()[0]}")
    print("| run | wall | peak RSS | archive | journal lines | ok |")
    print("|---|---:|---:|---:|---:|---|")
    for name, rs in results.items():
        if not rs:
            continue
        bad = [r for r in rs if r["rc"] != 0]
        size = med(rs, "bytes")
        print(f"| {name} | {med(rs, 'wall'):.2f} s | {med(rs, 'rss_mb'):.0f} MB | "
              f"{(size or 0) / 1e6:.2f} MB | {rs[0].get('journal_entries', '-')} | "
              f"{'all verified' if name != 'sos' and all(r.get('ok') for r in rs) else ('rc!=0: ' + bad[0]['stderr'] if bad else 'n/a')} |")
    if why_no_sos:
        print(f"sos report: {why_no_sos}")
    busy = results["busy-2h"][-1]
    if busy.get("members"):
        print("busy-2h members (bytes, uncompressed): " + json.dumps(busy["members"]))
    w, r = med(results["busy-2h"], "wall"), med(results["busy-2h"], "rss_mb")
    t = med(results["typical"], "bytes") or 0
    print(f"targets: busy 2h wall {w:.2f} s <= 10 s {'met' if w <= 10 else 'MISSED'}; RSS {r:.0f} MB <= 150 MB "
          f"{'met' if r <= 150 else 'MISSED'}; typical bundle {t / 1e6:.2f} MB <= 5 MB {'met' if t <= 5e6 else 'MISSED'}")
    if results["sos"]:
        sw = med(results["sos"], "wall")
        print(f"ratio sos report / hostdiag bundle (busy-2h-w5): {sw / med(results['busy-2h-w5'], 'wall'):.1f}x wall")


if __name__ == "__main__":
    main()

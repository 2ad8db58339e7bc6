#!/usr/bin/env python3
"""Benchmark `hostdiag snapshot --window 0 --json` against the raw-read floor.

For each scenario (idle host; +5,000 sleeping processes; +5,000 processes and 20,000
ESTABLISHED loopback TCP sockets) it runs, alternately, N times each:

* hostdiag: `hostdiag snapshot --window 0 --json > /dev/null`, as a child process;
* the floor: the commands a responder would type for the same facts (ps, ss -tanp, ss -s,
  df -P, df -iP, ls -f /proc/[0-9]*/fd, cat of the /proc files hostdiag reads), back to back.

Wall time is measured around spawn..reap; CPU time (user+sys) and peak RSS (ru_maxrss)
come from os.wait4() of that exact child. Medians are reported, with the issue-2 targets.
It also times `hostdiag --version`. Progress goes to stderr; the markdown table (or
--json) to stdout. See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import atexit
import glob
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import loadgen  # noqa: E402  (sibling module; benchmarks/ is not a package)

REPO = Path(__file__).resolve().parent.parent
SNAPSHOT_ARGS = ["snapshot", "--window", "0", "--json"]
# /proc files hostdiag reads for the facts the floor gathers (issue 2 brief).
PROC_FILES = ["/proc/stat", "/proc/meminfo", "/proc/vmstat", "/proc/loadavg", "/proc/diskstats",
              "/proc/net/snmp", "/proc/net/netstat", "/proc/net/tcp", "/proc/net/tcp6",
              "/proc/sys/fs/file-nr"]
RUN_TIMEOUT_S = 120.0  # one command; a hung df (dead NFS) must not hang the benchmark
TARGETS = {  # issue 2: benchmark targets, not timed tests
    "version_wall_s": 0.3,
    "idle_wall_s": 1.0,
    "loaded_wall_s": 3.0,
    "loaded_rss_mb": 150.0,
    "loaded_ratio": 3.0,
}
SCENARIOS = ("idle", "procs", "loaded")


def _child_env() -> dict:
    """Children run with their bytecode cached, as an installed hostdiag (deb, wheel, pyz) does:
    with PYTHONDONTWRITEBYTECODE set and no __pycache__ in a checkout, every run would compile
    every module it imports (~60 ms at idle, more for more code), and a version with more code
    would look slower for it. The cache goes to a private temporary directory, never into the
    checkout; the unmeasured warm-up run fills it."""
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    if "PYTHONPYCACHEPREFIX" not in env:
        d = tempfile.mkdtemp(prefix="hostdiag-bench-pyc-")
        atexit.register(shutil.rmtree, d, True)
        env["PYTHONPYCACHEPREFIX"] = d
    return env


CHILD_ENV = _child_env()


@dataclass
class Run:
    """One measured child process."""
    wall_s: float
    cpu_s: float
    maxrss_mb: float
    rc: int


@dataclass
class Scenario:
    """Results of one scenario: raw runs and what the host looked like."""
    name: str
    processes: int = 0
    tcp_sockets: dict = field(default_factory=dict)
    setup_s: float | None = None
    hostdiag: list = field(default_factory=list)        # list[Run]
    floor: list = field(default_factory=list)           # list[list[tuple[label, Run]]]
    probe: dict = field(default_factory=dict)           # what hostdiag itself reported
    others: dict = field(default_factory=dict)          # --compare label -> list[Run]
    failures: list = field(default_factory=list)


def log(msg: str) -> None:
    """Progress to stderr so stdout stays a clean table/JSON."""
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def measure(argv: list[str], stdout=subprocess.DEVNULL, timeout_s: float = RUN_TIMEOUT_S) -> tuple[Run, str]:
    """Spawn argv, reap it with wait4; return its wall/CPU/peak RSS and the tail of stderr."""
    with tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=stdout, stderr=err, env=CHILD_ENV)
        killer = threading.Timer(timeout_s, _kill_quietly, (p.pid,))
        killer.daemon = True
        killer.start()
        try:
            _, status, ru = os.wait4(p.pid, 0)
        finally:
            killer.cancel()
        wall = time.perf_counter() - t0
        p.returncode = os.waitstatus_to_exitcode(status)  # so Popen never waits again
        err.seek(0)
        tail = err.read()[-800:].decode(errors="replace").strip()
    # Linux ru_maxrss is in KiB
    return Run(wall, ru.ru_utime + ru.ru_stime, ru.ru_maxrss / 1024, p.returncode), tail


def _kill_quietly(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def floor_commands() -> list[tuple[str, list[str]]]:
    """The commands a responder would type for the same facts, as (label, argv)."""
    files = [f for f in PROC_FILES + sorted(glob.glob("/proc/pressure/*")) if os.path.exists(f)]
    cmds = [
        ("ps", ["ps", "-eo", "pid,ppid,user,stat,rss,pcpu,etimes,comm"]),
        ("ss -tanp", ["ss", "-tanp"]),
        ("ss -s", ["ss", "-s"]),
        ("df -P", ["df", "-P"]),
        ("df -iP", ["df", "-iP"]),
        ("ls fd", ["sh", "-c", "ls -f /proc/[0-9]*/fd >/dev/null 2>&1"]),
        ("cat /proc", ["cat", *files]),
    ]
    missing = sorted({argv[0] for _, argv in cmds if not shutil.which(argv[0])})
    if missing:
        raise SystemExit(f"floor commands missing: {', '.join(missing)} (apt-get install -y procps iproute2 coreutils)")
    return cmds


def run_floor(cmds) -> tuple[Run, list[tuple[str, Run]], list[str]]:
    """Run the floor commands back to back; total wall/CPU, max RSS, per-command runs."""
    parts, errors = [], []
    for label, argv in cmds:
        r, tail = measure(argv)
        parts.append((label, r))
        if r.rc != 0 and label not in ("ls fd", "cat /proc"):  # races on exiting pids are expected
            errors.append(f"{label}: rc {r.rc}: {tail[-200:]}")
    total = Run(sum(r.wall_s for _, r in parts), sum(r.cpu_s for _, r in parts),
                max(r.maxrss_mb for _, r in parts), max(r.rc for _, r in parts))
    return total, parts, errors


def hostdiag_ok(rc: int) -> bool:
    """Exit 0/1/2 are verdicts (ok/warning/critical); 3 or anything else is a failure."""
    return rc in (0, 1, 2)


def probe(hd: list[str]) -> dict:
    """One unmeasured run that keeps the JSON: per-section status/duration and blind spots.
    It doubles as the warm-up (page cache, .pyc) before the measured runs."""
    p = subprocess.run(hd + SNAPSHOT_ARGS, stdin=subprocess.DEVNULL, capture_output=True,
                       timeout=RUN_TIMEOUT_S, env=CHILD_ENV)
    out = {"rc": p.returncode}
    try:
        doc = json.loads(p.stdout)
    except ValueError:
        out["error"] = (p.stderr.decode(errors="replace").strip()[-500:] or "no JSON on stdout")
        return out
    out["duration_s"] = doc.get("duration_s")
    out["sections"] = {k: {"status": v.get("status"), "duration_s": v.get("duration_s"),
                           "reason": v.get("reason")}
                       for k, v in (doc.get("sections") or {}).items()}
    out["blind_spots"] = len(doc.get("blind_spots") or [])
    out["findings"] = [f"{f.get('severity')}:{f.get('id')}" for f in (doc.get("findings") or [])][:10]
    return out


def run_scenario(sc: Scenario, hd: list[str], runs: int, cmds, others=()) -> None:
    """Probe once, then alternate floor and hostdiag runs `runs` times each. Each --compare
    command runs in the same loop (after one warm-up), the order of the hostdiags rotating per
    round so none always runs right after the floor."""
    sc.processes = loadgen.count_procs()
    sc.tcp_sockets = loadgen.count_tcp_sockets()
    log(f"{sc.name}: {sc.processes} processes, {sc.tcp_sockets.get('total', 0)} TCP sockets; warm-up/probe run")
    sc.probe = probe(hd)
    if "error" in sc.probe:
        sc.failures.append(f"probe: rc {sc.probe['rc']}: {sc.probe['error']}")
    for label, argv in others:
        measure(argv + SNAPSHOT_ARGS)
        sc.others[label] = []
    sides = [(None, hd), *others]
    for i in range(runs):
        total, parts, errors = run_floor(cmds)
        sc.floor.append(parts)
        sc.failures += [f"floor run {i + 1}: {e}" for e in errors]
        k = i % len(sides)
        for label, argv in sides[k:] + sides[:k]:
            r, tail = measure(argv + SNAPSHOT_ARGS)
            (sc.hostdiag if label is None else sc.others[label]).append(r)
            if not hostdiag_ok(r.rc):
                sc.failures.append(f"{label or 'hostdiag'} run {i + 1}: rc {r.rc}: {tail[-300:]}")
            log(f"{sc.name} {i + 1}/{runs}: {label or 'hostdiag'} {r.wall_s:.3f}s wall {r.cpu_s:.3f}s cpu "
                f"{r.maxrss_mb:.0f}MB rc={r.rc}")
        log(f"{sc.name} {i + 1}/{runs}: floor {total.wall_s:.3f}s")


def med(xs) -> float | None:
    xs = list(xs)
    return statistics.median(xs) if xs else None


def summarize(sc: Scenario) -> dict:
    """Medians and target verdicts for one scenario."""
    floor_totals = [sum(r.wall_s for _, r in parts) for parts in sc.floor]
    floor_cpu = [sum(r.cpu_s for _, r in parts) for parts in sc.floor]
    labels = [label for label, _ in sc.floor[0]] if sc.floor else []
    s = {
        "scenario": sc.name,
        "processes": sc.processes,
        "tcp_sockets": sc.tcp_sockets.get("total", 0),
        "tcp_established": sc.tcp_sockets.get("established", 0),
        "setup_s": sc.setup_s,
        "runs": len(sc.hostdiag),
        "hostdiag_wall_s": med(r.wall_s for r in sc.hostdiag),
        "hostdiag_wall_min_s": min((r.wall_s for r in sc.hostdiag), default=None),
        "hostdiag_wall_max_s": max((r.wall_s for r in sc.hostdiag), default=None),
        "hostdiag_cpu_s": med(r.cpu_s for r in sc.hostdiag),
        "hostdiag_maxrss_mb": med(r.maxrss_mb for r in sc.hostdiag),
        "floor_wall_s": med(floor_totals),
        "floor_cpu_s": med(floor_cpu),
        "floor_parts_wall_s": {lb: med(parts[i][1].wall_s for parts in sc.floor) for i, lb in enumerate(labels)},
        "probe": sc.probe,
        "failures": sc.failures,
    }
    # Ratio of medians (not median of per-pair ratios): robust and easy to recompute from the table.
    s["ratio"] = (s["hostdiag_wall_s"] / s["floor_wall_s"]) if s["hostdiag_wall_s"] and s["floor_wall_s"] else None
    s["targets"] = targets_for(s)
    s["compare"] = {}
    for label, rs in sc.others.items():
        w = med(r.wall_s for r in rs)
        s["compare"][label] = {
            "wall_s": w, "cpu_s": med(r.cpu_s for r in rs), "maxrss_mb": med(r.maxrss_mb for r in rs),
            "runs": len(rs), "ratio": (w / s["floor_wall_s"]) if w and s["floor_wall_s"] else None,
            "hostdiag_vs_this": (s["hostdiag_wall_s"] / w) if w and s["hostdiag_wall_s"] else None}
    return s


def targets_for(s: dict) -> list[dict]:
    """The issue-2 targets that apply to this scenario, each with met True/False."""
    t = []
    if s["scenario"] == "idle":
        t.append(("wall", "<=", TARGETS["idle_wall_s"], s["hostdiag_wall_s"], "s"))
    if s["scenario"] == "loaded":
        t.append(("wall", "<=", TARGETS["loaded_wall_s"], s["hostdiag_wall_s"], "s"))
        t.append(("RSS", "<=", TARGETS["loaded_rss_mb"], s["hostdiag_maxrss_mb"], " MB"))
        t.append(("ratio", "<=", TARGETS["loaded_ratio"], s["ratio"], "x"))
    return [{"what": w, "limit": lim, "unit": u, "value": v, "met": v is not None and v <= lim}
            for w, _, lim, v, u in t]


def fmt(v, spec=".2f", suffix="") -> str:
    return "n/a" if v is None else f"{v:{spec}}{suffix}"


def markdown(summaries: list[dict], version: dict | None, meta: dict) -> str:
    """The results as a markdown block for the README."""
    out = [f"{meta['hostdiag_version']}, {meta['cpus']} CPUs, kernel {meta['kernel']}, "
           f"Python {meta['python']}, {meta['runs']} alternating runs each, medians; "
           f"{meta['date']}", ""]
    out.append("| scenario | processes | TCP sockets | hostdiag wall | hostdiag CPU | peak RSS "
               "| floor wall | ratio | targets |")
    out.append("|---|---:|---:|---:|---:|---:|---:|---:|---|")
    for s in summaries:
        tg = ", ".join(f"{t['what']} <= {t['limit']:g}{t['unit']} {'met' if t['met'] else 'MISSED'}"
                       for t in s["targets"]) or "-"
        out.append(f"| {s['scenario']} | {s['processes']:,} | {s['tcp_sockets']:,} "
                   f"| {fmt(s['hostdiag_wall_s'], '.3f', ' s')} | {fmt(s['hostdiag_cpu_s'], '.3f', ' s')} "
                   f"| {fmt(s['hostdiag_maxrss_mb'], '.0f', ' MB')} | {fmt(s['floor_wall_s'], '.3f', ' s')} "
                   f"| {fmt(s['ratio'], '.2f', 'x')} | {tg} |")
    if any(s["compare"] for s in summaries):
        out += ["", "Same loop, same floor runs (--compare); `hostdiag / this` is the hostdiag median over this one's:", "",
                "| scenario | command | wall | CPU | peak RSS | ratio to floor | hostdiag / this |",
                "|---|---|---:|---:|---:|---:|---:|"]
        for s in summaries:
            out.append(f"| {s['scenario']} | hostdiag | {fmt(s['hostdiag_wall_s'], '.3f', ' s')} "
                       f"| {fmt(s['hostdiag_cpu_s'], '.3f', ' s')} | {fmt(s['hostdiag_maxrss_mb'], '.0f', ' MB')} "
                       f"| {fmt(s['ratio'], '.2f', 'x')} | 1.00x |")
            for label, c in s["compare"].items():
                out.append(f"| {s['scenario']} | {label} | {fmt(c['wall_s'], '.3f', ' s')} | {fmt(c['cpu_s'], '.3f', ' s')} "
                           f"| {fmt(c['maxrss_mb'], '.0f', ' MB')} | {fmt(c['ratio'], '.2f', 'x')} "
                           f"| {fmt(c['hostdiag_vs_this'], '.2f', 'x')} |")
    if version:
        ok = version["wall_s"] is not None and version["wall_s"] <= TARGETS["version_wall_s"]
        others = "".join(f"; {label} {fmt(v['wall_s'], '.3f', ' s')}" for label, v in version.get("compare", {}).items())
        out += ["", f"`hostdiag --version`: {fmt(version['wall_s'], '.3f', ' s')} wall (median of "
                    f"{version['runs']}{others}; target <= {TARGETS['version_wall_s']:g} s {'met' if ok else 'MISSED'})"]
    out.append("")
    for s in summaries:
        parts = ", ".join(f"{k} {v:.3f}" for k, v in s["floor_parts_wall_s"].items())
        out.append(f"- {s['scenario']} floor breakdown (s): {parts}")
    for s in summaries:
        pr = s["probe"]
        secs = pr.get("sections") or {}
        slow = sorted(((v.get("duration_s") or 0, k, v.get("status")) for k, v in secs.items()), reverse=True)[:4]
        bits = ", ".join(f"{k} {d:.3f}s ({st})" for d, k, st in slow)
        notok = sum(1 for v in secs.values() if v.get("status") != "ok")
        inproc = pr.get("duration_s")
        sec_sum = sum(v.get("duration_s") or 0 for v in secs.values())
        # wall - in-process = interpreter start-up + imports + JSON rendering;
        # in-process - sections = shared process scan + runner (not itemised in the JSON)
        startup = (s["hostdiag_wall_s"] - inproc) if inproc is not None and s["hostdiag_wall_s"] else None
        out.append(f"- {s['scenario']} hostdiag self-report (probe run): in-process {fmt(inproc, '.3f', ' s')} "
                   f"(sections {sec_sum:.3f} s, rest = process scan + runner), so ~{fmt(startup, '.2f', ' s')} "
                   f"of the median wall is start-up/imports/rendering; slowest sections: {bits or 'n/a'}; "
                   f"{notok} of {len(secs)} sections not ok; exit {pr.get('rc')}")
    fails = [f"{s['scenario']}: {f}" for s in summaries for f in s["failures"]]
    if fails:
        out += ["", "Failures:"] + [f"- {f}" for f in fails[:20]]
    return "\n".join(out)


def hostdiag_cmd(arg: str | None) -> list[str]:
    """The hostdiag command: --hostdiag, else the repo venv's script, else `python -m hostdiag`."""
    if arg:
        return arg.split()
    venv = REPO / ".venv" / "bin" / "hostdiag"
    return [str(venv)] if venv.exists() else [sys.executable, "-m", "hostdiag"]


def time_version(hd: list[str], runs: int, others=()) -> dict:
    """Median wall of `hostdiag --version` (and of each --compare command, alternating)."""
    sides = [(None, hd), *others]
    rs: dict = {label: [] for label, _ in sides}
    for _, argv in sides:
        measure(argv + ["--version"])  # warm-up
    for i in range(runs):
        k = i % len(sides)
        for label, argv in sides[k:] + sides[:k]:
            rs[label].append(measure(argv + ["--version"])[0])
    mine = rs.pop(None)
    return {"wall_s": med(r.wall_s for r in mine), "cpu_s": med(r.cpu_s for r in mine),
            "maxrss_mb": med(r.maxrss_mb for r in mine), "runs": runs,
            "rc": max(r.rc for r in mine),
            "compare": {label: {"wall_s": med(r.wall_s for r in v), "cpu_s": med(r.cpu_s for r in v)}
                        for label, v in rs.items()}}


def _stop_on_sigterm(signum, frame):
    raise SystemExit(128 + signum)  # unwinds through the finally/with blocks that clean up


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scenario", choices=SCENARIOS + ("all",), default="all")
    ap.add_argument("--runs", type=int, default=7, help="measured runs of each side per scenario (default 7)")
    ap.add_argument("--quick", action="store_true", help="3 runs per scenario and version")
    ap.add_argument("--json", action="store_true", help="print JSON instead of the markdown table")
    ap.add_argument("--hostdiag", help="command to run instead of .venv/bin/hostdiag, e.g. 'python -m hostdiag'")
    ap.add_argument("--compare", action="append", default=[], metavar="LABEL=CMD",
                    help="also run this hostdiag command in the same loop (repeatable), e.g. "
                         "'935cfd8=/tmp/old/.venv/bin/hostdiag'")
    ap.add_argument("--procs", type=int, default=5000, help="extra processes (procs, loaded)")
    ap.add_argument("--conns", type=int, default=10000,
                    help="ESTABLISHED loopback connections (loaded); 2 sockets each")
    ap.add_argument("--holders", type=int, default=4, help="holder processes per load kind")
    ap.add_argument("--load-ttl", type=float, default=900.0,
                    help="seconds after which the load removes itself even if this script is gone")
    a = ap.parse_args(argv)
    runs = 3 if a.quick else a.runs
    if runs < 1:
        ap.error("--runs must be >= 1")
    wanted = SCENARIOS if a.scenario == "all" else (a.scenario,)
    hd = hostdiag_cmd(a.hostdiag)
    others = []
    for c in a.compare:
        label, sep, cmd = c.partition("=")
        if not sep or not label or not cmd.strip():
            ap.error(f"--compare {c!r}: expected LABEL=CMD")
        others.append((label, cmd.split()))
    cmds = floor_commands()
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    signal.signal(signal.SIGHUP, _stop_on_sigterm)
    loadgen.become_subreaper()  # orphaned sleepers get reaped by us, not left to PID 1
    t_start = time.monotonic()

    v = subprocess.run(hd + ["--version"], capture_output=True, text=True)
    if v.returncode != 0:
        log(f"`{' '.join(hd)} --version` failed: {v.stderr.strip()[-300:]}")
        return 3
    meta = {"hostdiag_version": v.stdout.strip(), "cpus": os.cpu_count(), "kernel": platform.release(),
            "python": platform.python_version(), "runs": runs, "command": hd + SNAPSHOT_ARGS,
            "compare": {label: argv + SNAPSHOT_ARGS for label, argv in others},
            "date": time.strftime("%Y-%m-%d"), "euid": os.geteuid()}
    log(f"timing `--version` ({runs} runs)")
    version = time_version(hd, runs, others)

    results: list[Scenario] = []
    teardown_s = None
    try:
        with loadgen.Load(ttl_s=a.load_ttl, log=log) as load:
            for name in wanted:
                sc = Scenario(name)
                t0 = time.monotonic()
                if name in ("procs", "loaded") and load.procs < a.procs:
                    log(f"starting {a.procs - load.procs} extra processes")
                    load.add_procs(a.procs - load.procs, a.holders)
                if name == "loaded" and load.conns < a.conns:
                    log(f"opening {a.conns - load.conns} loopback connections")
                    load.add_conns(a.conns - load.conns, a.holders)
                sc.setup_s = time.monotonic() - t0 if name != "idle" else None
                if sc.setup_s is not None:
                    log(f"{name}: load ready in {sc.setup_s:.1f}s")
                run_scenario(sc, hd, runs, cmds, others)
                results.append(sc)
            if load.holders:
                log("tearing the load down")
            teardown_s = load.close()
    except KeyboardInterrupt:
        log("interrupted: load removed")
        return 130
    except (ValueError, RuntimeError) as e:  # load refused or failed to start; already removed
        log(f"load: {e}")
        return 3
    total_s = time.monotonic() - t_start
    left = loadgen.count_tcp_sockets()
    log(f"done in {total_s:.1f}s (teardown {teardown_s or 0:.1f}s); now {loadgen.count_procs()} processes, "
        f"{left.get('total', 0)} TCP sockets")

    summaries = [summarize(sc) for sc in results]
    meta.update(total_s=round(total_s, 1), teardown_s=teardown_s)
    if a.json:
        doc = {"meta": meta, "targets": TARGETS, "version": version, "scenarios": summaries,
               "raw": {sc.name: {"hostdiag": [asdict(r) for r in sc.hostdiag],
                                 "compare": {k: [asdict(r) for r in v] for k, v in sc.others.items()},
                                 "floor": [[[lb, asdict(r)] for lb, r in parts] for parts in sc.floor]}
                       for sc in results}}
        print(json.dumps(doc, indent=2))
    else:
        print(markdown(summaries, version, meta))
    return 1 if any(s["failures"] for s in summaries) else 0


if __name__ == "__main__":
    sys.exit(main())

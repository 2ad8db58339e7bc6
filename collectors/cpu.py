"""cpu: utilisation per CPU and total, load vs cores, run queue, PSI cpu, cgroup throttling,
top consumers. Reads /proc/stat, /proc/loadavg, /proc/pressure/cpu, cgroup cpu.stat; root not
needed (per-process CPU of other users' processes is visible to all)."""
from __future__ import annotations

import os

from hostdiag.core import cgroups
from hostdiag.core.model import Finding
from hostdiag.core.procfs import PSI_ABSENT, read_psi
from hostdiag.core.thresholds import Threshold

NAME = "cpu"
DEFAULT_ENABLED = True
NEEDS = {"procs"}
READS = ["/proc/stat", "/proc/loadavg", "/proc/pressure/cpu", "/sys/fs/cgroup/**/cpu.stat"]

FIELDS = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")
UNITS = {f"{f}_s": ("seconds", True) for f in FIELDS} | {
    "busy_s": ("seconds", True),
    "load1": ("load", False),
    "procs_running": ("count", False),
    "procs_blocked": ("count", False),
    "psi_some_avg10": ("percent", False),
}
THRESHOLDS = {
    "cpu.busy_pct": Threshold(90, 98, "percent", "all-CPU busy time over the window (100 - idle - iowait)"),
    "cpu.load_per_core": Threshold(2.0, 4.0, "ratio", "1-minute load average divided by online CPUs"),
    "cpu.steal_pct": Threshold(10, 25, "percent", "time the hypervisor ran someone else while we were runnable"),
    "cpu.psi_some_avg10": Threshold(25, 60, "percent", "PSI cpu some avg10: share of time tasks waited for a CPU"),
    "cpu.throttled_pct": Threshold(25, 50, "percent", "share of CFS periods a cgroup was throttled during the window"),
}
TOP = 5
_HZ = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def parse_stat(text: str) -> dict[str, dict[str, float]]:
    """/proc/stat cpu lines -> {'all': {'user': s, ...}, '0': {...}} in seconds; plus
    {'_': {'procs_running': n, 'procs_blocked': n}}. Missing trailing fields (old kernels
    have no steal) are absent, not zero."""
    out: dict[str, dict[str, float]] = {"_": {}}
    for line in text.splitlines():
        parts = line.split()
        if not parts:
            continue
        if parts[0].startswith("cpu"):
            cpu = parts[0][3:] or "all"
            out[cpu] = {f: int(v) / _HZ for f, v in zip(FIELDS, parts[1:])}
        elif parts[0] in ("procs_running", "procs_blocked") and len(parts) > 1:
            out["_"][parts[0]] = int(parts[1])
    return out


def _busy(fields: dict[str, float]) -> float:
    return sum(v for k, v in fields.items() if k not in ("idle", "iowait"))


def sample(ctx, state):
    stat = parse_stat(ctx.read_proc("stat"))
    total = stat.get("all", {})
    out = {f"{f}_s": v for f, v in total.items()}
    out["busy_s"] = _busy(total)
    for cpu, fields in stat.items():
        if cpu not in ("all", "_"):
            out[f"busy_s[cpu={cpu}]"] = _busy(fields)
    out.update(stat["_"])
    la = ctx.read_proc("loadavg").split()
    out["load1"] = float(la[0])
    psi = read_psi(ctx, "cpu")
    if psi:
        out["psi_some_avg10"] = psi.get("some_avg10")
    state.setdefault("first", stat)
    state["last"] = stat
    if "cg0" not in state:
        state["cg0"] = cgroups.read_all(ctx, "cpu.stat")
    return out


def _pct(first: dict[str, float], last: dict[str, float]) -> dict[str, float | None]:
    """Per-field share of elapsed CPU time between two /proc/stat readings, in percent."""
    delta = {k: last.get(k, 0.0) - first.get(k, 0.0) for k in last}
    total = sum(delta.values())
    if total <= 0 or any(v < 0 for v in delta.values()):
        return {}
    out: dict[str, float | None] = {k: round(v / total * 100, 1) for k, v in delta.items()}
    out["busy"] = round(100 - (out.get("idle") or 0) - (out.get("iowait") or 0), 1)
    return out


def collect(job):
    ctx, state = job.ctx, job.state
    ncpu = os.cpu_count() or 1
    la = ctx.read_proc("loadavg").split()
    running, total_tasks = (int(x) for x in la[3].split("/"))
    data: dict = {
        "cpus": ncpu,
        "load": {"1m": float(la[0]), "5m": float(la[1]), "15m": float(la[2])},
        "load_per_core": round(float(la[0]) / ncpu, 2),
        "runnable": running,
        "tasks": total_tasks,
        "procs_blocked": state.get("last", {}).get("_", {}).get("procs_blocked"),
    }
    first, last = state.get("first"), state.get("last")
    if first is not None and first is not last:
        data["total_pct"] = _pct(first["all"], last["all"])
        data["per_cpu_pct"] = {c: _pct(first[c], last[c]).get("busy")
                               for c in last if c not in ("all", "_") and c in first}
    else:
        data["total_pct"] = None  # --window 0: no rates rather than fake zeros
        data["per_cpu_pct"] = None
    psi = read_psi(ctx, "cpu")
    data["psi"] = {k: v for k, v in psi.items() if "avg" in k} if psi else None
    if psi is None:
        job.blind_spot(PSI_ABSENT)

    cg1 = cgroups.read_all(ctx, "cpu.stat")
    data["throttled_cgroups"] = _throttling(state.get("cg0", {}), cg1, job.window_s)

    scan = job.scan
    if scan is not None:
        procs = list(scan.procs.values())
        if job.window_s > 0:
            procs = [p for p in procs if p.cpu_pct is not None]
            procs.sort(key=lambda p: p.cpu_pct, reverse=True)
        else:
            procs = [p for p in procs if p.cpu_s is not None]
            procs.sort(key=lambda p: p.cpu_s, reverse=True)
        data["top"] = [{"pid": p.pid, "name": p.name, "cpu_pct": None if p.cpu_pct is None else round(p.cpu_pct, 1),
                        "cpu_s": round(p.cpu_s or 0, 1), "cmdline": scan.cmdline(p.pid)} for p in procs[:TOP]]
    return data


def _throttling(before: dict[str, dict[str, int]], after: dict[str, dict[str, int]], window_s: float) -> list[dict]:
    """Cgroups whose CFS quota throttled them during the window (v1 and v2 cpu.stat)."""
    out = []
    for cg, b in before.items():
        a = after.get(cg)
        if not a or "nr_periods" not in a or "nr_throttled" not in a:
            continue
        periods = a["nr_periods"] - b.get("nr_periods", 0)
        throttled = a["nr_throttled"] - b.get("nr_throttled", 0)
        if window_s <= 0:  # point in time: lifetime ratio is the best we have
            periods, throttled = a["nr_periods"], a["nr_throttled"]
        if periods > 0 and throttled > 0:
            out.append({"cgroup": cg, "throttled_pct": round(throttled / periods * 100, 1),
                        "periods": periods, "throttled": throttled,
                        "lifetime": window_s <= 0})
    out.sort(key=lambda d: d["throttled_pct"], reverse=True)
    return out[:TOP]


def findings(section, th):
    d = section.data
    out: list[Finding] = []
    top = (d.get("top") or [None])[0]
    top_subject = {"pid": top["pid"], "name": top["name"]} if top else {}
    pct = d.get("total_pct") or {}

    level = th.level("cpu.busy_pct", pct.get("busy"))
    if level:
        who = f"; top: {top['name']} (pid {top['pid']}) {top['cpu_pct']}%" if top and top.get("cpu_pct") is not None else ""
        out.append(Finding(
            id="cpu.saturation", category="cpu", severity=level,
            title=f"CPU {pct['busy']}% busy across {d['cpus']} CPUs{who}",
            subject=top_subject,
            evidence={"busy_pct": pct["busy"], "user_pct": pct.get("user"), "system_pct": pct.get("system"),
                      "iowait_pct": pct.get("iowait"), "psi_some_avg10": (d.get("psi") or {}).get("some_avg10")},
            impact="every request waits for a CPU: latency rises across all services on the host",
            verify="top -b -n1 -o %CPU | head -20   # or: mpstat -P ALL 1 5",
            stabilize=["Find the top consumer (above) and decide whether it is expected load or a runaway",
                       "Shed or reroute load away from this host (drain it in the load balancer)",
                       "Cap a runaway batch job with a cgroup CPU quota (systemctl set-property UNIT CPUQuota=50%)",
                       "Do not kill -9 the top process blindly: if it is the service itself you turn slow into down"],
            score=pct["busy"]))

    lpc = d.get("load_per_core")
    level = th.level("cpu.load_per_core", lpc)
    if level:
        out.append(Finding(
            id="cpu.run_queue", category="cpu", severity=level,
            title=f"Load {d['load']['1m']} on {d['cpus']} CPUs ({lpc}× cores), {d.get('procs_blocked') or 0} tasks blocked in D state",
            evidence={"load_1m": d["load"]["1m"], "load_5m": d["load"]["5m"], "load_15m": d["load"]["15m"],
                      "cpus": d["cpus"], "runnable": d.get("runnable"), "procs_blocked": d.get("procs_blocked")},
            impact="runnable or uninterruptible tasks queue behind each other; everything gets slower",
            verify="vmstat 1 5   # r = run queue, b = blocked (D state); compare with nproc",
            stabilize=["If b (blocked) dominates, this is I/O, not CPU: look at the io findings",
                       "If r dominates, reduce concurrency (worker counts, batch jobs) or move load off the host",
                       "Do not add more workers to 'catch up': it deepens the queue"],
            score=lpc))

    steal = pct.get("steal")
    level = th.level("cpu.steal_pct", steal)
    if level:
        out.append(Finding(
            id="cpu.steal", category="cpu", severity=level,
            title=f"CPU steal {steal}%: the hypervisor is giving our CPU time to other guests",
            evidence={"steal_pct": steal, "busy_pct": pct.get("busy")},
            impact="the host is slower than its CPU graphs suggest; nothing inside the guest fixes it",
            verify="mpstat 1 5   # %steal column",
            stabilize=["Move the workload to another host or instance (migrate, or stop/start the VM onto new hardware)",
                       "Escalate to the platform/cloud provider with the steal numbers",
                       "Do not tune the application for this: the capacity is missing underneath it"],
            score=steal))

    psi10 = (d.get("psi") or {}).get("some_avg10")
    if th.level("cpu.psi_some_avg10", psi10) and not any(f.id == "cpu.saturation" for f in out):
        out.append(Finding(
            id="cpu.pressure", category="cpu", severity=th.level("cpu.psi_some_avg10", psi10),
            title=f"CPU pressure: tasks waited for a CPU {psi10}% of the last 10 s",
            subject=top_subject, evidence={"psi_some_avg10": psi10, "psi": d.get("psi")},
            impact="runnable work is delayed even if average utilisation looks moderate",
            verify="cat /proc/pressure/cpu",
            stabilize=["Look for a cgroup with a tight CPU quota or a few busy processes pinned to few CPUs"],
            score=psi10))

    for cg in d.get("throttled_cgroups") or []:
        level = th.level("cpu.throttled_pct", cg["throttled_pct"])
        if level and not cg.get("lifetime"):
            out.append(Finding(
                id="cpu.cgroup_throttled", category="cpu", severity=level,
                title=f"cgroup {cg['cgroup']} CPU-throttled in {cg['throttled_pct']}% of periods",
                subject={"cgroup": cg["cgroup"]}, evidence=cg,
                impact="processes in this cgroup stall at their CPU quota: latency spikes while the host looks idle",
                verify=f"cat /sys/fs/cgroup{cg['cgroup']}/cpu.stat",
                stabilize=["Raise the cgroup's CPU quota (CPUQuota= / cpu.max) if the host has idle CPU",
                           "Do not remove the quota entirely on a shared host: the neighbours then starve"],
                score=cg["throttled_pct"]))
    return out

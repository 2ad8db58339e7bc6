"""cpu: utilisation per CPU and total (user/system/iowait/irq/softirq/steal, `mpstat -P ALL`),
context switches and interrupts per second (`vmstat` cs/in), load vs cores, run queue, PSI cpu
and irq, cgroup throttling, top consumers with their user/system split. Reads /proc/stat,
/proc/loadavg, /proc/pressure/{cpu,irq}, /proc/PID/stat, /sys/devices/system/cpu/online and
cgroup cpu.stat; root not needed (other users' per-process CPU is visible to all)."""
from __future__ import annotations

import os

from hostdiag.core import cgroups, shell
from hostdiag.core.model import Finding
from hostdiag.core.procfs import PSI_ABSENT, read_psi
from hostdiag.core.thresholds import Threshold

NAME = "cpu"
DEFAULT_ENABLED = True
NEEDS = {"procs"}
READS = ["/proc/stat", "/proc/loadavg", "/proc/pressure/{cpu,irq}", "/proc/PID/stat",
         "/sys/devices/system/cpu/online", "/sys/fs/cgroup/**/cpu.stat"]

FIELDS = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")
UNITS = {f"{f}_s": ("seconds", True) for f in FIELDS} | {
    "busy_s": ("seconds", True),
    "ctxt": ("count", True),
    "intr": ("count", True),
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
    "cpu.one_cpu_busy_pct": Threshold(95, 99, "percent",
                                      "one CPU's busy time over the window while the all-CPU average stays under "
                                      "cpu.busy_pct's warning level (a single-threaded hot loop, or softirq on one core)"),
    "cpu.ctxt_per_cpu_per_s": Threshold(100_000, 250_000, "per second",
                                        "context switches per second per CPU (vmstat cs / CPUs)"),
}
TOP = 5
# USER_HZ: 100 on every Linux architecture the kernel exports to /proc, whatever the tree.
_HZ = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
IRQ_PSI_ABSENT = "irq PSI not present: kernel < 6.1 or built without CONFIG_IRQ_TIME_ACCOUNTING"
# What ties a process to a pinned CPU: bound to that CPU alone and using at least half of it,
# or last seen there using nearly a whole CPU.
PIN_OWNER_PCT = 50
PIN_ALONE_PCT = 90


def parse_stat(text: str) -> dict[str, dict[str, float]]:
    """/proc/stat cpu lines -> {'all': {'user': s, ...}, '0': {...}} in seconds; plus
    {'_': {'procs_running': n, 'procs_blocked': n, 'ctxt': n, 'intr': n, 'btime': n}}.
    Missing trailing fields (old kernels have no steal) are absent, not zero; a malformed
    line is skipped."""
    out: dict[str, dict[str, float]] = {"_": {}}
    for line in text.splitlines():
        parts = line.split()
        if not parts:
            continue
        try:
            if parts[0].startswith("cpu") and (parts[0] == "cpu" or parts[0][3:].isdigit()):
                out[parts[0][3:] or "all"] = {f: int(v) / _HZ for f, v in zip(FIELDS, parts[1:])}
            elif parts[0] in ("procs_running", "procs_blocked", "ctxt", "intr", "btime") and len(parts) > 1:
                out["_"][parts[0]] = int(parts[1])   # intr: the first number is the total
        except ValueError:
            continue
    return out


def parse_loadavg(text: str) -> dict | None:
    """'0.50 0.40 0.30 2/300 999' -> {'1m', '5m', '15m', 'runnable', 'tasks'}; None if malformed."""
    try:
        a, b, c, rt = text.split()[:4]
        running, tasks = rt.split("/")
        return {"1m": float(a), "5m": float(b), "15m": float(c), "runnable": int(running), "tasks": int(tasks)}
    except ValueError:
        return None


def parse_cpu_list(text: str) -> int | None:
    """'0-7' / '0,2-3,8' (sysfs cpu/online) -> number of CPUs; None if unreadable."""
    n = 0
    for part in text.strip().split(","):
        lo, sep, hi = part.partition("-")
        try:
            n += (int(hi) - int(lo) + 1) if sep else (1 if int(lo) >= 0 else 0)
        except ValueError:
            return None
    return n or None


def cpu_count(ctx, stat: dict | None = None) -> int | None:
    """CPUs of the host the tree belongs to (never os.cpu_count(): that is the machine we run on)."""
    n = sum(1 for c in (stat or {}) if c.isdigit())
    if n:
        return n
    text = ctx.read_optional(ctx.sys_path("devices", "system", "cpu", "online"), 4096)
    return parse_cpu_list(text) if text else None


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
    out.update({k: v for k, v in stat["_"].items() if k != "btime"})
    la = parse_loadavg(ctx.read_optional(ctx.proc_path("loadavg"), 4096) or "")
    if la:
        out["load1"] = la["1m"]
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
    out["busy"] = round(100.0 - (out.get("idle") or 0) - (out.get("iowait") or 0), 1)
    return out


def collect(job):
    ctx, state = job.ctx, job.state
    ncpu = cpu_count(ctx, state.get("last"))
    if ncpu is None:
        job.blind_spot("CPU count unknown: no cpuN lines in /proc/stat and no /sys/devices/system/cpu/online")
    la = parse_loadavg(ctx.read_optional(ctx.proc_path("loadavg"), 4096) or "")
    if la is None:
        job.blind_spot(f"{ctx.proc_path('loadavg')} missing or unreadable: load and run queue unknown")
    la = la or {}
    data: dict = {
        "cpus": ncpu,
        "load": {k: la[k] for k in ("1m", "5m", "15m")} if la else None,
        "load_per_core": round(la["1m"] / ncpu, 2) if ncpu and la else None,
        "runnable": la.get("runnable"),
        "tasks": la.get("tasks"),
        "procs_blocked": state.get("last", {}).get("_", {}).get("procs_blocked"),
    }
    first, last = state.get("first"), state.get("last")
    if first is not None and first is not last and "all" in first and "all" in last:
        data["total_pct"] = _pct(first["all"], last["all"])
        per = {c: _pct(first[c], last[c]) for c in last if c not in ("all", "_") and c in first}
        data["per_cpu_pct"] = {c: p.get("busy") for c, p in per.items()}
        data["per_cpu"] = {c: {k: p.get(k) for k in ("busy", "user", "system", "iowait", "irq", "softirq", "steal")}
                           for c, p in per.items()}
    else:
        data["total_pct"] = None  # --window 0: no rates rather than fake zeros
        data["per_cpu_pct"] = None
        data["per_cpu"] = None
    for k in ("ctxt", "intr"):
        s = job.s(k)
        r = s.rate() if s is not None else None
        data[f"{k}_per_s"] = None if r is None else round(r, 1)
    psi = read_psi(ctx, "cpu")
    data["psi"] = {k: v for k, v in psi.items() if "avg" in k} if psi else None
    data["psi_totals_us"] = {k: v for k, v in psi.items() if "total" in k} if psi else None
    if psi is None:
        job.blind_spot(PSI_ABSENT)
    irq = read_psi(ctx, "irq")
    data["irq_psi"] = irq          # 'full' only: time the CPU spent in hard/soft irq instead of tasks
    data["irq_psi_note"] = None if irq else IRQ_PSI_ABSENT   # optional kernel feature: not a blind spot

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
        data["top"] = [{"pid": p.pid, "name": p.name, "cpu_pct": _r(p.cpu_pct), "user_pct": _r(p.user_pct),
                        "system_pct": _r(p.system_pct), "cpu_s": round(p.cpu_s or 0, 1),
                        "cmdline": scan.cmdline(p.pid), "self": p.is_self} for p in procs[:TOP]]
        data["pinned"] = _pinned(ctx, data, procs)
    else:
        data["pinned"] = _pinned(ctx, data, [])
    return data


def _r(x):
    return None if x is None else round(x, 1)


def placement(proc: str, pid: int) -> tuple[int | None, int | None]:
    """(CPU the process last ran on: stat field 39, the one CPU it may run on or None:
    Cpus_allowed_list of status when it names a single CPU, as taskset/cpusets leave it)."""
    last = only = None
    try:
        with open(os.path.join(proc, str(pid), "stat"), "rb") as f:
            last = int(f.read(4096).rsplit(b")", 1)[1].split()[36])
    except (OSError, ValueError, IndexError):
        pass
    try:
        with open(os.path.join(proc, str(pid), "status"), "rb") as f:
            for line in f.read(1 << 16).splitlines():
                if line.startswith(b"Cpus_allowed_list:"):
                    v = line.split(b":", 1)[1].strip()
                    only = int(v) if v.isdigit() else None
    except (OSError, ValueError):
        pass
    return last, only


def _pinned(ctx, data: dict, procs) -> list[dict]:
    """CPUs busy near 100 % over the window, each with what pins it: softirq/irq time, or the
    process tied to that CPU: bound to it alone (taskset, cpuset) at >= PIN_OWNER_PCT of a CPU,
    or last seen on it at >= PIN_ALONE_PCT (a whole core's worth: nothing else fits there)."""
    per = data.get("per_cpu") or {}
    hot = sorted((c for c, p in per.items() if (p.get("busy") or 0) >= 90), key=int)
    out = []
    cands = [p for p in procs if not p.is_self and (p.cpu_pct or 0) >= PIN_OWNER_PCT][:20] if hot else []
    where = {p.pid: placement(ctx.proc, p.pid) for p in cands}
    for c in hot:
        p = per[c]
        irq = round((p.get("softirq") or 0) + (p.get("irq") or 0), 1)
        row = {"cpu": int(c), **{f"{k}_pct": p.get(k) for k in ("busy", "user", "system", "softirq", "irq", "steal")},
               "irq_share_pct": irq, "pid": None, "name": None, "proc_cpu_pct": None, "bound": None}
        bound = [q for q in cands if where[q.pid][1] == int(c)]
        alone = [q for q in cands if where[q.pid][0] == int(c) and q.cpu_pct >= PIN_ALONE_PCT]
        owner = (bound or alone or [None])[0]
        if owner is not None and irq < 50:
            row.update(pid=owner.pid, name=owner.name, proc_cpu_pct=_r(owner.cpu_pct), bound=bool(bound))
        out.append(row)
    return out


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
    # hostdiag is never a subject (issue 11): the first consumer that is not us.
    top = next((t for t in d.get("top") or [] if not t.get("self")), None)
    top_subject = {"pid": top["pid"], "name": top["name"]} if top else {}
    pct = d.get("total_pct") or {}

    level = th.level("cpu.busy_pct", pct.get("busy"))
    if level:
        who = f"; top: {top['name']} (pid {top['pid']}) {top['cpu_pct']}%" if top and top.get("cpu_pct") is not None else ""
        out.append(Finding(
            id="cpu.saturation", category="cpu", severity=level,
            title=f"CPU {pct['busy']}% busy across {d['cpus'] or '?'} CPUs{who}",
            subject=top_subject,
            evidence={"busy_pct": pct["busy"], "user_pct": pct.get("user"), "system_pct": pct.get("system"),
                      "iowait_pct": pct.get("iowait"), "psi_some_avg10": (d.get("psi") or {}).get("some_avg10")},
            impact="every request waits for a CPU: latency rises across all services on the host",
            verify="top -b -n1 -o %CPU | head -20   # or: mpstat -P ALL 1 5",
            stabilize=["Find the top consumer (the verify command lists it) and decide whether it is expected load or a runaway",
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
        # Host-wide: no process is tied to the waiting, so none is the subject; the top
        # consumer is evidence only.
        out.append(Finding(
            id="cpu.pressure", category="cpu", severity=th.level("cpu.psi_some_avg10", psi10),
            title=f"CPU pressure: tasks waited for a CPU {psi10}% of the last 10 s",
            subject={}, evidence={"psi_some_avg10": psi10, "psi": d.get("psi"), "top_consumer": top_subject or None},
            impact="runnable work is delayed even if average utilisation looks moderate",
            verify="cat /proc/pressure/cpu",
            stabilize=["Look for a cgroup with a tight CPU quota or a few busy processes pinned to few CPUs"],
            score=psi10))

    out += _pinned_findings(d, th, pct)

    cs = d.get("ctxt_per_s")
    per_cpu_cs = round(cs / d["cpus"]) if cs is not None and d.get("cpus") else None
    level = th.level("cpu.ctxt_per_cpu_per_s", per_cpu_cs)
    if level:
        out.append(Finding(
            id="cpu.context_switch_storm", category="cpu", severity=level,
            title=f"{cs:,.0f} context switches/s ({per_cpu_cs:,} per CPU), {d.get('intr_per_s') or 0:,.0f} interrupts/s",
            evidence={"ctxt_per_s": cs, "ctxt_per_cpu_per_s": per_cpu_cs, "intr_per_s": d.get("intr_per_s"),
                      "system_pct": pct.get("system"), "cpus": d["cpus"]},
            impact="CPU time goes to switching instead of work: lock contention, too many threads, "
                   "or tiny I/O; latency rises while utilisation looks moderate",
            verify="vmstat 1 5   # cs column; then: pidstat -wt 1 5 | sort -k4 -rn | head",
            stabilize=["Find the switching process (pidstat -w: cswch/s and nvcswch/s) and reduce its thread "
                       "count or lock contention",
                       "Check for a spinning retry loop or a thread pool sized far above the CPU count",
                       "Do not add CPUs or threads to fix it: more threads usually mean more switching"],
            score=float(per_cpu_cs)))

    for cg in d.get("throttled_cgroups") or []:
        level = th.level("cpu.throttled_pct", cg["throttled_pct"])
        if level and not cg.get("lifetime"):
            out.append(Finding(
                id="cpu.cgroup_throttled", category="cpu", severity=level,
                title=f"cgroup {cg['cgroup']} CPU-throttled in {cg['throttled_pct']}% of periods",
                subject={"cgroup": cg["cgroup"]}, evidence=cg,
                impact="processes in this cgroup stall at their CPU quota: latency spikes while the host looks idle",
                verify=shell.cmd("cat", f"/sys/fs/cgroup{cg['cgroup']}/cpu.stat"),
                stabilize=["Raise the cgroup's CPU quota (CPUQuota= / cpu.max) if the host has idle CPU",
                           "Do not remove the quota entirely on a shared host: the neighbours then starve"],
                score=cg["throttled_pct"]))
    return out


def _pinned_findings(d: dict, th, pct: dict) -> list[Finding]:
    """One CPU near 100 % while the host average is not saturated: a single-threaded hot loop
    or interrupts/softirq landing on one core. Averages hide it; mpstat -P ALL shows it."""
    avg = pct.get("busy")
    if avg is None or (d.get("cpus") or 0) < 2 or th.level("cpu.busy_pct", avg):
        return []   # saturation (all CPUs) is its own finding
    out = []
    for r in d.get("pinned") or []:
        level = th.level("cpu.one_cpu_busy_pct", r["busy_pct"])
        if not level:
            continue
        cpu = r["cpu"]
        if r["irq_share_pct"] >= 50:
            what = f"softirq/irq {r['irq_share_pct']}% (interrupts of one device landing on one core)"
            subject = {"cpu": cpu}
            verify = f"mpstat -P {cpu} 1 5; grep -E 'CPU|eth|ens|mlx|nvme' /proc/interrupts | head; cat /proc/softirqs"
            stab = ["Spread the NIC's interrupts and receive processing (irqbalance, RSS queues, RPS/RFS)",
                    "Shed traffic from the host while the queue is saturated",
                    "Do not pin more work to that CPU or restart the NIC driver on a remote host"]
        elif r.get("pid") is not None:
            bound = " (bound to it alone)" if r.get("bound") else ""
            what = f"by {r['name']} (pid {r['pid']}) at {r['proc_cpu_pct']}% of one CPU{bound}"
            subject = {"cpu": cpu, "pid": r["pid"], "name": r["name"]}
            # -b -n 1: one batch page that exits, also without a terminal (plain top waits for a key)
            verify = f"top -H -p {r['pid']} -b -n 1 | head -20   # or: pidstat -u -t -p {r['pid']} 1 5"
            stab = ["A single thread is the bottleneck: the process cannot go faster by adding CPUs; "
                    "check whether it is expected (a batch job) or a runaway loop",
                    "Capture a stack (py-spy dump / jstack / gdb -p) before restarting it",
                    "Do not kill -9 it before you know what it is: if it is the service, slow becomes down"]
        else:
            what = f"user {r['user_pct']}%, system {r['system_pct']}%"
            subject = {"cpu": cpu}
            verify = f"mpstat -P {cpu} 1 5; ps -eo pid,psr,pcpu,comm --sort=-pcpu | head"
            stab = ["Find what runs on that CPU (ps -eo pid,psr,pcpu,comm) and whether it is pinned "
                    "(taskset -p PID, cpusets)",
                    "Do not assume the host has CPU to spare from the average: this core does not"]
        out.append(Finding(
            id="cpu.one_cpu_pinned", category="cpu", severity=level,
            title=f"CPU {cpu} {r['busy_pct']}% busy {what}; host average {avg}%",
            subject=subject, evidence=dict(r, host_busy_pct=avg),
            impact="work bound to that core (one thread, one queue, one interrupt) is at its ceiling "
                   "even though the host looks idle on average",
            verify=verify, stabilize=stab, score=r["busy_pct"]))
    return out

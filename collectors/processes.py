"""processes: counts by state, threads, top CPU/memory, recently started, zombies by parent,
per-user tasks vs RLIMIT_NPROC, tasks vs pid_max/threads-max, cgroup pids.max. Reads /proc
(PID/stat, status, limits, sys/kernel/*), /etc/passwd and cgroup pids files; root not needed
(every user can read another process's state and limits)."""
from __future__ import annotations

import os
from collections import Counter, defaultdict

from hostdiag.core import cgroups, procscan
from hostdiag.core.model import Finding
from hostdiag.core.procfs import parse_flat_kv
from hostdiag.core.thresholds import Threshold

NAME = "processes"
DEFAULT_ENABLED = True
NEEDS = {"procs"}
READS = ["/proc/PID/{stat,status,limits}", "/proc/stat", "/proc/loadavg", "/proc/sys/kernel/pid_max",
         "/proc/sys/kernel/threads-max", "/etc/passwd", "/sys/fs/cgroup/**/pids.{max,current,events}"]

UNITS = {"forks": ("count", True), "tasks": ("count", False)}
THRESHOLDS = {
    "processes.zombies_per_parent": Threshold(10, 100, "count", "zombie children one parent has not reaped"),
    "processes.pid_pct": Threshold(70, 90, "percent", "tasks (processes + threads) as % of kernel.pid_max"),
    "processes.threads_pct": Threshold(70, 90, "percent", "tasks as % of kernel.threads-max"),
    "processes.nproc_pct": Threshold(80, 95, "percent",
                                     "a user's tasks as % of the lowest RLIMIT_NPROC soft limit among its processes"),
    "processes.cgroup_pids_pct": Threshold(80, 95, "percent", "cgroup pids.current as % of pids.max"),
}
TOP = 5
RECENT_S = 600
RECENT_MAX = 10
# /proc/PID/limits reads for RLIMIT_NPROC: a few processes per user, bounded overall.
LIMITS_PER_USER = 8
LIMITS_MAX = 200
_STATES = ("running", "sleeping", "disk-sleep", "zombie", "stopped")


def parse_passwd(text: str) -> dict[int, str]:
    """/etc/passwd -> {uid: name}; malformed lines skipped."""
    out: dict[int, str] = {}
    for line in text.splitlines():
        f = line.split(":")
        if len(f) >= 3 and f[2].isdigit() and not line.startswith("#"):
            out.setdefault(int(f[2]), f[0])
    return out


def parse_loadavg_tasks(text: str) -> int | None:
    """'0.00 0.01 0.05 1/123 4567' -> 123 (every task the kernel has: processes + threads)."""
    parts = text.split()
    if len(parts) >= 4 and "/" in parts[3]:
        try:
            return int(parts[3].split("/")[1])
        except ValueError:
            return None
    return None


def parse_forks(text: str) -> int | None:
    """The 'processes N' line of /proc/stat: forks since boot."""
    for line in text.splitlines():
        if line.startswith("processes "):
            try:
                return int(line.split()[1])
            except (IndexError, ValueError):
                return None
    return None


def _int_file(ctx, path: str) -> int | None:
    text = ctx.read_optional(path, 256)
    try:
        return int(text.strip()) if text else None
    except ValueError:
        return None


def read_cgroup_pids(ctx, deadline=None) -> dict[str, dict]:
    """{cgroup: {'current', 'max', 'events_max'}} for every cgroup with a numeric pids.max."""
    out: dict[str, dict] = {}
    for version, rel, d in cgroups.walk(ctx, "pids"):
        if deadline is not None and deadline.expired():
            break
        limit = cgroups.read_value(os.path.join(d, "pids.max"))
        if limit is None:  # 'max', the root, or no pids controller here
            continue
        ev = parse_flat_kv(ctx.read_optional(os.path.join(d, "pids.events"), 1 << 12) or "")
        out[f"v{version}:{rel}"] = {"cgroup": rel, "cgroup_version": version, "max": limit,
                                    "current": cgroups.read_value(os.path.join(d, "pids.current")),
                                    "fork_failures": ev.get("max")}
    return out


def sample(ctx, state):
    out = {}
    forks = parse_forks(ctx.read_proc("stat"))
    if forks is not None:
        out["forks"] = forks
    tasks = parse_loadavg_tasks(ctx.read_proc("loadavg"))
    if tasks is not None:
        out["tasks"] = tasks
    if "cg0" not in state:
        state["cg0"] = read_cgroup_pids(ctx)
    return out


def _user(names: dict[int, str], uid: int | None) -> str | None:
    if uid is None:
        return None
    return names.get(uid, str(uid))


def _read_nproc(ctx, pid: int) -> tuple[str, int | None]:
    """('ok'|'gone'|'denied', soft RLIMIT_NPROC or None for unlimited) from /proc/PID/limits."""
    try:
        with open(ctx.proc_path(pid, "limits")) as f:
            limits = procscan.parse_limits(f.read())
    except PermissionError:
        return "denied", None
    except OSError:  # exited (ENOENT/ESRCH) between the scan and now: skip quietly
        return "gone", None
    return ("ok" if "Max processes" in limits else "gone"), limits.get("Max processes")


def per_user(ctx, procs, names, deadline=None) -> tuple[list[dict], int]:
    """Per-uid process/thread counts vs the lowest RLIMIT_NPROC soft limit seen among a few of
    that user's processes (the kernel counts tasks per real uid; root is exempt)."""
    by_uid: dict[int, list] = defaultdict(list)
    for p in procs:
        if p.uid is not None and not _is_kthread(p):
            by_uid[p.uid].append(p)
    rows, reads, unreadable = [], 0, 0
    parents = {p.ppid for p in procs}
    for uid, ps in by_uid.items():
        threads = sum(p.threads or 1 for p in ps)
        row = {"uid": uid, "user": _user(names, uid), "processes": len(ps), "threads": threads,
               "nproc_soft": None, "nproc_pct": None, "pid": None, "name": None,
               "nproc_exempt": uid == 0}   # the kernel skips the RLIMIT_NPROC check for root
        if uid != 0:
            best = None
            # Parents first (the ones that fork), then the newest: they carry the limit currently
            # configured for this user's services.
            cands = sorted((p for p in ps if p.status != "zombie"),
                           key=lambda p: (p.pid in parents, p.create_time or 0), reverse=True)
            for p in cands[:LIMITS_PER_USER]:
                if reads >= LIMITS_MAX or (deadline is not None and deadline.expired()):
                    break
                reads += 1
                how, soft = _read_nproc(ctx, p.pid)
                if how != "ok":
                    unreadable += how == "denied"
                    continue
                # Ties go to the oldest holder: usually the parent that forks.
                if soft is not None and (best is None or soft < best[0] or
                                         soft == best[0] and (p.create_time or 0) < (best[1].create_time or 0)):
                    best = (soft, p)
            if best:
                row.update(nproc_soft=best[0], nproc_pct=round(threads / best[0] * 100, 1) if best[0] else 100.0,
                           pid=best[1].pid, name=best[1].name)
        rows.append(row)
    rows.sort(key=lambda r: (r["nproc_pct"] or 0, r["threads"]), reverse=True)
    return rows[:TOP], unreadable


def _is_kthread(p) -> bool:
    return p.pid == 2 or p.ppid == 2


def collect(job):
    ctx, state, scan = job.ctx, job.state, job.scan
    names = parse_passwd(ctx.read_optional(ctx.root_path("/etc/passwd")) or "")
    tasks = parse_loadavg_tasks(ctx.read_proc("loadavg"))
    pid_max = _int_file(ctx, ctx.proc_path("sys", "kernel", "pid_max"))
    threads_max = _int_file(ctx, ctx.proc_path("sys", "kernel", "threads-max"))
    if pid_max is None or threads_max is None:
        job.blind_spot("/proc/sys/kernel/pid_max or threads-max not readable: pid limit pressure unknown")
    forks = job.s("forks")
    rate = forks.rate() if forks is not None else None
    data: dict = {
        "tasks": tasks,
        "pid_max": pid_max,
        "pid_pct": round(tasks / pid_max * 100, 1) if tasks and pid_max else None,
        "threads_max": threads_max,
        "threads_pct": round(tasks / threads_max * 100, 1) if tasks and threads_max else None,
        "forks_per_s": None if rate is None else round(rate, 1),
    }

    cg1 = read_cgroup_pids(ctx, job.deadline)
    before = state.get("cg0") or {}
    rows = []
    for key, c in cg1.items():
        pct = round(c["current"] / c["max"] * 100, 1) if c["current"] is not None and c["max"] else None
        b = before.get(key)
        rose = (c["fork_failures"] - b["fork_failures"]) if (
            job.window_s > 0 and b and c["fork_failures"] is not None and b["fork_failures"] is not None) else None
        if (pct or 0) >= 50 or rose:
            rows.append({"cgroup": c["cgroup"], "cgroup_version": c["cgroup_version"], "pids_current": c["current"],
                         "pids_max": c["max"], "pids_pct": pct, "fork_failures": c["fork_failures"],
                         "fork_failures_window": rose})
    rows.sort(key=lambda r: (bool(r["fork_failures_window"]), r["pids_pct"] or 0), reverse=True)
    data["cgroups_pids"] = rows[:TOP]

    if scan is None:
        job.blind_spot("process scan unavailable: no per-process counts")
        return data

    procs = list(scan.procs.values())
    states = Counter(p.status or "?" for p in procs)
    data.update({
        "total": len(procs),
        "threads_total": sum(p.threads or 1 for p in procs),
        "by_state": {s: states.get(s, 0) for s in _STATES} | {k: v for k, v in states.items() if k not in _STATES},
        "zombies": states.get("zombie", 0),
    })

    by_cpu = [p for p in procs if (p.cpu_pct if job.window_s > 0 else p.cpu_s) is not None]
    by_cpu.sort(key=lambda p: (p.cpu_pct, p.cpu_s or 0) if job.window_s > 0 else (p.cpu_s, 0), reverse=True)
    data["top_cpu"] = [{"pid": p.pid, "name": p.name, "user": _user(names, p.uid),
                        "cpu_pct": None if p.cpu_pct is None else round(p.cpu_pct, 1),
                        "cpu_s": round(p.cpu_s or 0, 1), "cmdline": scan.cmdline(p.pid)} for p in by_cpu[:TOP]]
    by_rss = sorted((p for p in procs if p.rss_bytes), key=lambda p: p.rss_bytes, reverse=True)
    data["top_rss"] = [{"pid": p.pid, "name": p.name, "user": _user(names, p.uid), "rss_bytes": p.rss_bytes,
                        "threads": p.threads, "cmdline": scan.cmdline(p.pid)} for p in by_rss[:TOP]]

    me = os.getpid()
    recent = [p for p in procs if p.create_time and job.now - p.create_time <= RECENT_S
              and p.pid != me and not _is_kthread(p)]   # kworkers come and go all the time
    recent.sort(key=lambda p: p.create_time, reverse=True)
    data["recent"] = [{"pid": p.pid, "name": p.name, "ppid": p.ppid, "user": _user(names, p.uid),
                       "age_s": round(max(0.0, job.now - p.create_time), 1), "cmdline": scan.cmdline(p.pid)}
                      for p in recent[:RECENT_MAX]]
    data["recent_count"] = len(recent)

    children = Counter(p.ppid for p in procs if p.ppid)
    zombies = Counter(p.ppid for p in procs if p.status == "zombie" and p.ppid is not None)
    data["zombie_parents"] = [
        {"pid": ppid, "name": scan.procs[ppid].name if ppid in scan.procs else "?", "zombies": n,
         "children": children.get(ppid, 0), "cmdline": scan.cmdline(ppid) if ppid else None}
        for ppid, n in zombies.most_common(TOP)]
    data["top_parents"] = [
        {"pid": ppid, "name": scan.procs[ppid].name if ppid in scan.procs else "?", "children": n}
        for ppid, n in children.most_common(TOP) if ppid != 2]

    data["users"], unreadable = per_user(ctx, procs, names, job.deadline)
    if unreadable:
        job.blind_spot(f"/proc/PID/limits not readable for {unreadable} processes: RLIMIT_NPROC pressure "
                       "partly unknown (run as root)")
    return data


def _stab_pid(extra: list[str]) -> list[str]:
    return extra + ["Do not raise pid_max/NPROC as the first move on a fork storm: it lets the runaway take the "
                    "whole machine down instead of one user or cgroup",
                    "Do not kill -9 at random: a supervisor may respawn faster than you kill; stop the spawner first"]


def findings(section, th):
    d = section.data
    out: list[Finding] = []

    for z in d.get("zombie_parents") or []:
        level = th.level("processes.zombies_per_parent", z["zombies"])
        if not level:
            continue
        init = z["pid"] == 1
        stab = ([f"PID 1 ({z['name']}) is not reaping orphans: run the workload under a real init "
                 "(tini, dumb-init, docker --init) or fix PID 1"] if init else
                [f"Fix or restart the parent {z['name']} (pid {z['pid']}) so it calls wait(); once it exits, "
                 "init adopts the zombies and reaps them",
                 f"A parent with a working SIGCHLD handler may catch up if nudged: kill -s SIGCHLD {z['pid']}"])
        out.append(Finding(
            id="processes.zombie_pileup", category="processes", severity=level,
            title=f"{z['zombies']} zombie children not reaped by {z['name']} (pid {z['pid']})",
            subject={"pid": z["pid"], "name": z["name"]},
            evidence={"zombies": z["zombies"], "children": z["children"], "parent_cmdline": z.get("cmdline"),
                      "zombies_total": d.get("zombies"), "pid_pct": d.get("pid_pct")},
            impact="each zombie holds a pid and counts against the user's process limit; "
                   "a growing pile ends in 'fork: Resource temporarily unavailable'",
            verify=f"ps -o pid,ppid,stat,etime,comm --ppid {z['pid']} | awk 'NR==1 || $3 ~ /Z/'",
            stabilize=stab + ["Do not kill the zombies: they are already dead; only the parent reaping them helps"],
            score=float(z["zombies"])))

    top_parent = (d.get("top_parents") or [None])[0]
    sys_subject = {"pid": top_parent["pid"], "name": top_parent["name"]} if top_parent else {}
    for key, pct, limit_name, limit in (("processes.pid_pct", d.get("pid_pct"), "kernel.pid_max", d.get("pid_max")),
                                        ("processes.threads_pct", d.get("threads_pct"), "kernel.threads-max",
                                         d.get("threads_max"))):
        level = th.level(key, pct)
        if level:
            out.append(Finding(
                id="processes.pid_pressure", category="processes", severity=level,
                title=f"{d['tasks']} tasks = {pct}% of {limit_name} ({limit})"
                      + (f"; biggest parent: {top_parent['name']} (pid {top_parent['pid']}) with "
                         f"{top_parent['children']} children" if top_parent else ""),
                subject=sys_subject,
                evidence={"tasks": d["tasks"], "limit": limit, "limit_name": limit_name, "pct": pct,
                          "forks_per_s": d.get("forks_per_s"), "zombies": d.get("zombies"),
                          "top_parents": d.get("top_parents")},
                impact="new processes and threads fail to start host-wide (fork: Resource temporarily unavailable), "
                       "including your ssh session and the tools you need",
                verify=f"cat /proc/loadavg; sysctl {limit_name}; ps -eLf --no-headers | wc -l",
                stabilize=_stab_pid([
                    "Find the spawner (biggest parent above, or `ps -eo ppid= | sort | uniq -c | sort -rn | head`) "
                    "and stop it or its supervisor",
                    f"As a temporary relief, raise {limit_name} (sysctl -w) once the spawner is stopped"]),
                score=pct))

    for u in d.get("users") or []:
        level = th.level("processes.nproc_pct", u.get("nproc_pct"))
        if not level:
            continue
        out.append(Finding(
            id="processes.pid_pressure", category="processes", severity=level,
            title=f"user {u['user']} has {u['threads']} tasks = {u['nproc_pct']}% of its RLIMIT_NPROC "
                  f"({u['nproc_soft']}, soft limit of {u['name']} pid {u['pid']})",
            subject={"pid": u["pid"], "name": u["name"], "user": u["user"], "uid": u["uid"]},
            evidence=dict(u),
            impact=f"fork()/pthread_create() fail for every process of {u['user']} at the limit: "
                   "the service cannot spawn workers or threads",
            verify=f"ps -L -u {u['uid']} --no-headers | wc -l; grep 'Max processes' /proc/{u['pid']}/limits",
            stabilize=_stab_pid([
                f"Find which of {u['user']}'s processes spawns (ps -o ppid= -u {u['uid']} | sort | uniq -c | "
                "sort -rn | head) and stop the runaway",
                "Raise the limit for the service (LimitNPROC= in its unit, /etc/security/limits.conf) "
                "and restart it in a controlled way"]),
            score=u["nproc_pct"]))

    for c in d.get("cgroups_pids") or []:
        level = th.level("processes.cgroup_pids_pct", c.get("pids_pct"))
        if c.get("fork_failures_window"):
            level = "critical"
        if not level:
            continue
        base = "/sys/fs/cgroup" + ("" if c["cgroup_version"] == 2 else "/pids")
        fails = (f"; {c['fork_failures_window']} fork(s) refused during the window"
                 if c.get("fork_failures_window") else "")
        out.append(Finding(
            id="processes.pid_pressure", category="processes", severity=level,
            title=f"cgroup {c['cgroup']}: {c['pids_current']} of {c['pids_max']} pids ({c['pids_pct']}%){fails}",
            subject={"cgroup": c["cgroup"]}, evidence=dict(c),
            impact="fork()/thread creation fails inside this cgroup (container or unit) while the host looks fine",
            verify=f"cat {base}{c['cgroup'].rstrip('/')}/pids.{{current,max,events}}",
            stabilize=_stab_pid(["Find the spawner in this cgroup (systemd-cgtop; ps -eo pid,ppid,cgroup,comm)",
                                 "Raise pids.max (TasksMax= for a systemd unit) if the load is legitimate"]),
            score=c.get("pids_pct") or 100.0))
    return out

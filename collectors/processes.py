"""processes: counts by state, threads, top CPU/memory, recently started, zombies by parent,
per-user tasks vs RLIMIT_NPROC, tasks vs pid_max/threads-max, cgroup pids.max; per-tick RSS,
threads, fds and CPU of the top processes (series), and their time to exhaustion: RSS growth
against MemAvailable or the process's memory cgroup limit, threads against RLIMIT_NPROC,
pid_max and threads-max. Reads /proc (PID/stat, status, limits, cgroup, fd, meminfo,
sys/kernel/*), /etc/passwd and cgroup pids/memory files; root not needed except for other
users' fd counts (every user can read another process's state and limits)."""
from __future__ import annotations

import os
import re
import time
from collections import Counter, defaultdict

from hostdiag.core import cgroups, eta, procscan, shell
from hostdiag.core.model import Finding
from hostdiag.core.procfs import parse_flat_kv
from hostdiag.core.thresholds import Threshold
from hostdiag.core.units import human_bytes, human_duration

NAME = "processes"
DEFAULT_ENABLED = True
NEEDS = {"procs"}
READS = ["/proc/PID/{stat,status,limits,cgroup,fd/}", "/proc/stat", "/proc/loadavg", "/proc/meminfo",
         "/proc/sys/kernel/pid_max", "/proc/sys/kernel/threads-max", "/etc/passwd",
         "/sys/fs/cgroup/**/pids.{max,current,events}", "/sys/fs/cgroup/**/memory.{max,current,limit_in_bytes,usage_in_bytes}"]

UNITS = {"forks": ("count", True), "tasks": ("count", False),
         # per tracked process, labels name=..,pid=.. (the catalog's leak archetype reads rss_bytes)
         "rss_bytes": ("bytes", False), "threads": ("count", False), "fds": ("count", False),
         "cpu_s": ("seconds", True)}
THRESHOLDS = {
    "processes.zombies_per_parent": Threshold(10, 100, "count", "zombie children one parent has not reaped"),
    "processes.pid_pct": Threshold(70, 90, "percent", "tasks (processes + threads) as % of kernel.pid_max"),
    "processes.threads_pct": Threshold(70, 90, "percent", "tasks as % of kernel.threads-max"),
    "processes.nproc_pct": Threshold(80, 95, "percent",
                                     "a user's tasks as % of the lowest RLIMIT_NPROC soft limit among its processes"),
    "processes.cgroup_pids_pct": Threshold(80, 95, "percent", "cgroup pids.current as % of pids.max"),
    "processes.rss_eta_s": Threshold(3600, 600, "seconds",
                                     "time until a process's steady RSS growth exhausts MemAvailable or its memory "
                                     "cgroup's limit, at the window's rate", higher_is_worse=False),
    "processes.threads_eta_s": Threshold(3600, 600, "seconds",
                                         "time until a process's thread growth reaches its user's RLIMIT_NPROC, "
                                         "kernel.pid_max or kernel.threads-max", higher_is_worse=False),
}
# Per-tick series: the top TRACK_RSS by RSS and TRACK_THREADS by threads at the first tick, plus
# the TRACK_GROWERS fastest growers between the first two ticks (a leak that starts small).
TRACK_RSS, TRACK_THREADS, TRACK_GROWERS = 10, 3, 5
MAX_PIDS = 8192                  # full /proc passes (first two ticks) stop here
PASS_BUDGET_S = 0.25
# Growth counts as steady when it adds at least this much over at least MIN_GROWTH_POINTS
# samples and rises in most intervals (a start-up step then a plateau is not a leak).
MIN_RSS_GROWTH = 4 << 20
MIN_THREAD_GROWTH = 5
MIN_GROWTH_POINTS = 5
STEADY_SHARE = 0.75
# An ETA is only given this many times further out than the span it was measured over: a
# 5 s window says nothing about the next day.
EXTRAPOLATE_MAX = eta.EXTRAPOLATE_MAX   # one rule for every ETA (core/eta.py)
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
_HZ = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
_UNLIMITED = 1 << 60             # v1 memory.limit_in_bytes "no limit" is 2^63 rounded to pages
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


def parse_pid_stat(raw: bytes) -> dict | None:
    """/proc/PID/stat -> {name, ppid, threads, rss_pages, cpu_ticks, start}; None if malformed.
    The comm is taken up to the last ')' (it may hold spaces and parentheses)."""
    try:
        head, _, rest = raw.rpartition(b")")
        f = rest.split()
        return {"name": head.partition(b"(")[2].decode("utf-8", "backslashreplace"), "ppid": int(f[1]),
                "threads": int(f[17]), "rss_pages": int(f[21]), "cpu_ticks": int(f[11]) + int(f[12]),
                "start": int(f[19])}
    except (ValueError, IndexError):
        return None


def _read_stat(ctx, pid: int) -> dict | None:
    try:
        with open(ctx.proc_path(pid, "stat"), "rb") as f:
            return parse_pid_stat(f.read(4096))
    except OSError:
        return None


def _count_fds(ctx, pid: int) -> int | None:
    try:
        return len(os.listdir(ctx.proc_path(pid, "fd")))
    except OSError:   # not ours to read (run as root), or exited
        return None


_LABEL_BAD = re.compile(r"[^\w.:@+/-]")


def label(name: str) -> str:
    """A process name made safe for a series key ('name=...' inside '[...]', ',' separated)."""
    return _LABEL_BAD.sub("_", name)[:32] or "_"


def _full_pass(ctx, state) -> dict[int, dict]:
    """Every process's stat, within PASS_BUDGET_S (a host with tens of thousands of processes
    gets the first ones only, said as a blind spot)."""
    out: dict[int, dict] = {}
    skip = state["skip"]
    end = time.monotonic() + PASS_BUDGET_S
    try:
        pids = [int(n) for n in os.listdir(ctx.proc) if n.isdigit()]
    except OSError:
        return out
    for i, pid in enumerate(pids):
        if i >= MAX_PIDS or time.monotonic() > end:
            state["pass_cut"] = (i, len(pids))
            break
        st = _read_stat(ctx, pid)
        if st and pid not in skip and st["ppid"] != 2 and pid != 2:   # kernel threads have no RSS to leak
            out[pid] = st
    return out


def _pick_tracked(state, ctx, first: dict[int, dict], second: dict[int, dict] | None) -> None:
    tracked = state.setdefault("tracked", {})
    def add(pid, st):
        tracked.setdefault(pid, (st["start"], label(st["name"])))
    if second is None:
        for pid in sorted(first, key=lambda p: first[p]["rss_pages"], reverse=True)[:TRACK_RSS]:
            add(pid, first[pid])
        for pid in sorted(first, key=lambda p: first[p]["threads"], reverse=True)[:TRACK_THREADS]:
            add(pid, first[pid])
        return
    same = [p for p in second if p in first and first[p]["start"] == second[p]["start"]]
    for key in ("rss_pages", "threads"):
        grew = sorted((p for p in same if second[p][key] > first[p][key]),
                      key=lambda p: second[p][key] - first[p][key], reverse=True)
        for pid in grew[:TRACK_GROWERS]:
            add(pid, second[pid])


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
    if state.get("window_s") == 0:
        return out   # point in time: a one-point series per process says nothing; skip the /proc pass
    tick = state["tick"] = state.get("tick", -1) + 1
    if tick == 0:
        me = procscan.self_pid(ctx.proc)
        state["skip"] = {me} if me is not None else set()
        state["pass0"] = _full_pass(ctx, state)
        _pick_tracked(state, ctx, state["pass0"], None)
    elif tick == 1:
        _pick_tracked(state, ctx, state.pop("pass0", {}), _full_pass(ctx, state))
    for pid, (start, name) in list(state.get("tracked", {}).items()):
        st = _read_stat(ctx, pid)
        if st is None or st["start"] != start:   # exited, or the pid was reused
            state["tracked"].pop(pid)
            continue
        lab = f"[name={name},pid={pid}]"
        out["rss_bytes" + lab] = st["rss_pages"] * _PAGE
        out["threads" + lab] = st["threads"]
        out["cpu_s" + lab] = st["cpu_ticks"] / _HZ
        fds = _count_fds(ctx, pid)
        if fds is not None:
            out["fds" + lab] = fds
    return out


def _r(x: float | None) -> float | None:
    return None if x is None else round(x, 1)


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
    if not procs:   # a tree without pid directories, or a scan cut at once: say so, not an empty "ok"
        job.blind_spot(f"no process directory readable under {job.ctx.proc}: per-process counts unknown")
    states = Counter(p.status or "?" for p in procs)
    data.update({
        "total": len(procs),
        "threads_total": sum(p.threads or 1 for p in procs),
        "by_state": {s: states.get(s, 0) for s in _STATES} | {k: v for k, v in states.items() if k not in _STATES},
        "zombies": states.get("zombie", 0),
    })

    by_cpu = [p for p in procs if (p.cpu_pct if job.window_s > 0 else p.cpu_s) is not None]
    by_cpu.sort(key=lambda p: (p.cpu_pct, p.cpu_s or 0) if job.window_s > 0 else (p.cpu_s, 0), reverse=True)
    # "self": hostdiag marks itself in its tables (issue 11) rather than hiding what it costs.
    data["top_cpu"] = [{"pid": p.pid, "name": p.name, "user": _user(names, p.uid),
                        "cpu_pct": _r(p.cpu_pct), "user_pct": _r(p.user_pct), "system_pct": _r(p.system_pct),
                        "cpu_s": round(p.cpu_s or 0, 1), "cmdline": scan.cmdline(p.pid), "self": p.is_self}
                       for p in by_cpu[:TOP]]
    by_rss = sorted((p for p in procs if p.rss_bytes), key=lambda p: p.rss_bytes, reverse=True)
    data["top_rss"] = [{"pid": p.pid, "name": p.name, "user": _user(names, p.uid), "rss_bytes": p.rss_bytes,
                        "threads": p.threads, "cmdline": scan.cmdline(p.pid), "self": p.is_self}
                       for p in by_rss[:TOP]]

    me = os.getpid()
    recent = [p for p in procs if p.create_time and job.now - p.create_time <= RECENT_S
              and p.pid != me and not p.is_self and not _is_kthread(p)]   # kworkers come and go all the time
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
    note = scan.blind_spot()
    if note:
        job.blind_spot(note)
    if state.get("pass_cut"):
        job.blind_spot("per-process series: the first pass stopped after {} of {} processes "
                       "(time bound): the biggest or fastest-growing may not be tracked".format(*state["pass_cut"]))
    data["growth"] = growth(job, data, procs)
    return data


def _steady(s, min_change: float) -> float | None:
    """Slope per second of a gauge that rose by at least min_change, rising in most intervals and
    falling in none (core/eta's steadiness rule at its strictest); None otherwise."""
    pts = [(t, v) for t, v in zip(s.t, s.v) if v is not None]
    if not eta.steady(pts, rising=True, min_change=min_change, min_points=MIN_GROWTH_POINTS,
                      share=STEADY_SHARE, max_setback=0):
        return None
    g = eta.slope(pts)
    return g if g and g > 0 else None


def _meminfo_available(ctx) -> int | None:
    for line in (ctx.read_optional(ctx.proc_path("meminfo"), 1 << 16) or "").splitlines():
        if line.startswith("MemAvailable:"):
            try:
                return int(line.split()[1]) * 1024
            except (IndexError, ValueError):
                return None
    return None


def memory_cgroup_headroom(ctx, pid: int) -> dict | None:
    """The tightest memory limit over a process's cgroup and its ancestors: {'cgroup',
    'limit_bytes', 'usage_bytes', 'working_set_bytes', 'headroom_bytes', 'cgroup_version'};
    None if unlimited. Headroom is the limit minus the working set (usage less inactive file cache)."""
    text = ctx.read_optional(ctx.proc_path(pid, "cgroup"), 1 << 16) or ""
    rel = {}
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) == 3:
            if "memory" in parts[1].split(","):
                rel[1] = parts[2]
            elif parts[0] == "0" and parts[1] == "":
                rel[2] = parts[2]
    best = None
    for version, root in cgroups.roots(ctx, "memory"):
        path = rel.get(version)
        if path is None:
            continue
        files = ("memory.limit_in_bytes", "memory.usage_in_bytes") if version == 1 else ("memory.max", "memory.current")
        parts = [p for p in path.strip("/").split("/") if p and p != ".."]
        for depth in range(len(parts), -1, -1):
            cg = "/" + "/".join(parts[:depth])
            d = os.path.join(root, *parts[:depth])
            limit = cgroups.read_value(os.path.join(d, files[0]))
            usage = cgroups.read_value(os.path.join(d, files[1]))
            if limit is None or usage is None or limit >= _UNLIMITED:
                continue
            # Inactive file cache is reclaimed before anything is OOM-killed: it is headroom.
            st = parse_flat_kv(ctx.read_optional(os.path.join(d, "memory.stat"), 1 << 16) or "")
            working = max(0, usage - st.get("inactive_file" if version == 2 else "total_inactive_file", 0))
            room = max(0, limit - working)
            if best is None or room < best["headroom_bytes"]:
                best = {"cgroup": cg, "cgroup_version": version, "limit_bytes": limit, "usage_bytes": usage,
                        "working_set_bytes": working, "headroom_bytes": room}
    return best


def growth(job, data: dict, procs) -> list[dict]:
    """Tracked processes whose RSS or threads rise steadily, with the time to the nearest limit."""
    ctx = job.ctx
    if job.window_s <= 0:
        return []
    by_pid = {p.pid: p for p in procs}
    avail = None
    user_tasks = Counter()
    for p in procs:
        if p.uid is not None:
            user_tasks[p.uid] += p.threads or 1
    host_room = None
    if data.get("tasks"):
        lims = [x for x in (data.get("pid_max"), data.get("threads_max")) if x]
        host_room = (min(lims) - data["tasks"], "kernel.pid_max" if min(lims) == data.get("pid_max")
                     else "kernel.threads-max", min(lims)) if lims else None
    out = []
    for key, s in job.series.items():
        if not s.labels or "pid" not in s.labels or s.metric not in ("processes.rss_bytes", "processes.threads"):
            continue
        pid = int(s.labels["pid"])
        proc = by_pid.get(pid)
        if proc is not None and proc.is_self:
            continue
        name = proc.name if proc else s.labels.get("name")
        if s.metric == "processes.rss_bytes":
            slope = _steady(s, MIN_RSS_GROWTH)
            if slope is None:
                continue
            if avail is None:
                avail = _meminfo_available(ctx)
            limits = []
            if avail is not None:
                limits.append((avail / slope, "available memory", {"available_bytes": avail}))
            cg = memory_cgroup_headroom(ctx, pid)
            if cg is not None:
                limits.append((cg["headroom_bytes"] / slope, f"memory cgroup {cg['cgroup']} limit", cg))
            row = {"kind": "rss", "pid": pid, "name": name, "series": key, "rss_bytes": s.last(),
                   "per_s": round(slope, 1), "eta_s": None, "limit": None}
        else:
            slope = _steady(s, MIN_THREAD_GROWTH)
            if slope is None:
                continue
            limits = []
            nproc = proc.nproc_soft if proc else None
            if proc is not None and nproc is None and proc.uid not in (None, 0):
                _, nproc = _read_nproc(ctx, pid)
            if proc is not None and proc.uid not in (None, 0) and nproc:   # root is exempt from NPROC
                room = max(0, nproc - user_tasks[proc.uid])
                limits.append((room / slope, f"RLIMIT_NPROC ({nproc}) of uid {proc.uid}",
                               {"nproc_soft": nproc, "user_tasks": user_tasks[proc.uid], "uid": proc.uid}))
            if host_room is not None:
                limits.append((max(0, host_room[0]) / slope, f"{host_room[1]} ({host_room[2]})",
                               {"tasks": data["tasks"], host_room[1]: host_room[2]}))
            row = {"kind": "threads", "pid": pid, "name": name, "series": key, "threads": s.last(),
                   "per_s": round(slope, 2), "eta_s": None, "limit": None}
        span = (s.t[-1] - s.t[0]) if len(s.t) >= 2 else 0.0
        if limits:
            t_lim, what, ev = min(limits, key=lambda x: x[0])
            row.update(limit=what, limit_detail=ev, measured_s=round(span, 1),
                       eta_s=round(t_lim, 1) if t_lim <= EXTRAPOLATE_MAX * span else None)
        out.append(row)
    out.sort(key=lambda r: r["eta_s"] if r["eta_s"] is not None else float("inf"))
    return out[:TOP * 2]


def _stab_pid(extra: list[str]) -> list[str]:
    return extra + ["Do not raise pid_max/NPROC as the first move on a fork storm: it lets the runaway take the "
                    "whole machine down instead of one user or cgroup",
                    "Do not kill -9 at random: a supervisor may respawn faster than you kill; stop the spawner first"]


def _growth_findings(d: dict, th) -> list[Finding]:
    out = []
    for g in d.get("growth") or []:
        pid, name, t_eta = g["pid"], g["name"], g.get("eta_s")
        subject = {"pid": pid, "name": name}
        if g["kind"] == "rss":
            level = th.level("processes.rss_eta_s", t_eta)
            if not level:
                continue
            if (g.get("limit_detail") or {}).get("cgroup"):
                subject["cgroup"] = g["limit_detail"]["cgroup"]
            out.append(Finding(
                id="processes.rss_growth", category="processes", severity=level,
                title=f"{name} (pid {pid}) RSS +{human_bytes(g['per_s'])}/s; {g['limit']} exhausted in "
                      f"~{human_duration(t_eta)} at this rate",
                subject=subject,
                evidence={k: g.get(k) for k in ("rss_bytes", "per_s", "eta_s", "limit", "limit_detail", "series")},
                impact="when the limit is reached the OOM killer picks a victim (this process or a neighbour), "
                       "or the host swaps and stalls first",
                verify=f"grep -E 'VmRSS|VmSwap' /proc/{pid}/status; ps -o pid,rss,etime,cmd -p {pid}",
                stabilize=["Capture a heap profile or core of it now, while the leak is visible",
                           "Restart it off-peak (drain it first) to reset the memory, then look for the leak",
                           "Cap it with a cgroup memory.high (MemoryHigh=) so it reclaims before the OOM killer fires",
                           "Do not raise the limit or add swap without a bound: it only delays the OOM and makes "
                           "it slower"],
                score=1e6 / max(t_eta, 1.0)))
        else:
            level = th.level("processes.threads_eta_s", t_eta)
            if not level:
                continue
            out.append(Finding(
                id="processes.thread_growth", category="processes", severity=level,
                title=f"{name} (pid {pid}) threads +{g['per_s']:g}/s ({g['threads']:g} now); {g['limit']} reached in "
                      f"~{human_duration(t_eta)} at this rate",
                subject=subject,
                evidence={k: g.get(k) for k in ("threads", "per_s", "eta_s", "limit", "limit_detail", "series")},
                impact="at the limit fork()/pthread_create() fail: the service cannot spawn workers, "
                       "and at pid_max nothing on the host can (including your shell)",
                verify=f"grep Threads /proc/{pid}/status; grep 'Max processes' /proc/{pid}/limits",
                stabilize=["Capture a thread dump (jstack, py-spy dump, gdb -p ... thread apply all bt) to see what "
                           "spawns the threads",
                           "Cap the thread pool or the spawner's concurrency; restart it off-peak if it cannot be bounded",
                           "Do not raise the NPROC limit or pid_max first: it lets the runaway take more of the host"],
                score=1e6 / max(t_eta, 1.0)))
    return out


def findings(section, th):
    d = section.data
    out: list[Finding] = _growth_findings(d, th)

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
            verify=f"(cd {shell.quote(base + c['cgroup'].rstrip('/'))} && cat pids.current pids.max pids.events)",
            stabilize=_stab_pid(["Find the spawner in this cgroup (systemd-cgtop; ps -eo pid,ppid,cgroup,comm)",
                                 "Raise pids.max (TasksMax= for a systemd unit) if the load is legitimate"]),
            score=c.get("pids_pct") or 100.0))
    return out

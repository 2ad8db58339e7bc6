"""files: system-wide file handles vs fs.file-max, per-process open fds vs each process's own
RLIMIT_NOFILE soft limit, top fd holders. Reads /proc/sys/fs/file-nr, /proc/PID/fd, /proc/PID/limits;
root helps (other users' fd tables are unreadable otherwise)."""
from __future__ import annotations

import os

from hostdiag.core import eta, procscan, tree
from hostdiag.core.context import Unavailable
from hostdiag.core.model import Finding
from hostdiag.core.thresholds import Threshold
from hostdiag.core.units import worst_severity

NAME = "files"
DEFAULT_ENABLED = True
NEEDS = {"procs", "fds"}
READS = ["/proc/sys/fs/file-nr", "/proc/PID/fd", "/proc/PID/limits"]

UNITS = {"file_handles": ("count", False), "file_max": ("count", False), "fds": ("count", False)}
THRESHOLDS = {
    "files.system_pct": Threshold(80, 95, "percent", "allocated file handles as % of fs.file-max (/proc/sys/fs/file-nr)"),
    "files.process_pct": Threshold(80, 95, "percent", "a process's open fds as % of its own RLIMIT_NOFILE soft limit"),
    "files.system_eta_s": eta.threshold("allocated file handles reach fs.file-max"),
    "files.process_eta_s": eta.threshold("a process's open fds reach its own RLIMIT_NOFILE soft limit"),
}
HOLDER_MIN_SHARE = 0.2   # of all file handles, for the top holder to be a host-wide finding's subject
MIN_FD_GROWTH = 8     # fewer new fds than this over the window is churn, not a leak
TOP = 5
WATCH = 10            # processes whose fd count is followed tick by tick
WATCH_MIN_FDS = 64    # below this a process is not worth following
# /proc/sys handlers allocate a buffer of the size asked for: a 64 MiB read() gets ENOMEM.
SYSCTL_LIMIT = 4096


def parse_file_nr(text: str) -> dict[str, int] | None:
    """'1184\\t0\\t9223372036854775807' -> {'allocated': 1184, 'free': 0, 'max': ...}; None if malformed."""
    parts = text.split()
    if len(parts) < 3:
        return None
    try:
        allocated, free, mx = (int(x) for x in parts[:3])
    except ValueError:
        return None
    return {"allocated": allocated, "free": free, "max": mx}


def fd_count(ctx, pid: int, size_counts: bool = True) -> int | None:
    """Open fds of one process: st_size of /proc/PID/fd (procfs, kernel >= 6.2), else a listdir.
    None if unreadable. `size_counts` False: a copied tree, where st_size is a block size."""
    d = ctx.proc_path(pid, "fd")
    try:
        n = os.stat(d).st_size if size_counts else 0
        return n if n > 0 else len(os.listdir(d))
    except OSError:  # exited, or another user's process without root
        return None


def size_counts_fds(ctx) -> bool:
    """Whether st_size of PID/fd is the fd count here: true on procfs >= 6.2; a tree copied to
    disk has 4096 there. Checked once against a listdir of self/fd (which itself holds one fd)."""
    d = ctx.proc_path("self", "fd")
    try:
        n = os.stat(d).st_size
        return n > 0 and abs(n - len(os.listdir(d))) <= 1
    except OSError:
        return False


def _pids(ctx) -> list[int]:
    try:
        return [int(n) for n in os.listdir(ctx.proc) if n.isdigit()]
    except OSError:
        return []


def sample(ctx, state):
    out: dict = {}
    nr = parse_file_nr(ctx.read_optional(ctx.proc_path("sys/fs/file-nr"), SYSCTL_LIMIT) or "")
    if nr:
        out["file_handles"] = nr["allocated"] - nr["free"]  # 'free' is always 0 since 2.6; kept for old kernels
        out["file_max"] = nr["max"]
    tick = state["ticks"] = state.get("ticks", 0) + 1
    # Tick 1 is skipped so --window 0 (one tick) pays nothing for this; from tick 2 on, the
    # biggest holders are followed so a climbing count shows up as a rate.
    if tick == 2:
        counts = {}
        state["size_counts"] = size_counts_fds(ctx)
        for pid in _pids(ctx):
            n = fd_count(ctx, pid, state["size_counts"])
            if n is not None and n >= WATCH_MIN_FDS:
                counts[pid] = n
        state["watch"] = sorted(counts, key=counts.get, reverse=True)[:WATCH]
    for pid in state.get("watch", ()):
        n = fd_count(ctx, pid, state["size_counts"])
        if n is not None:
            out[f"fds[pid={pid}]"] = n
    return out


def _slope(s) -> float | None:
    """A gauge's least-squares change per second, for the report; None without two samples."""
    g = s.slope() if s is not None else None
    return None if g is None else round(g, 2)


def _short(text: str | None, n: int = 300) -> str | None:
    return text if text is None or len(text) <= n else text[:n] + "…"


def collect(job):
    ctx, scan = job.ctx, job.scan
    text, why = tree.read(ctx, ctx.proc_path("sys/fs/file-nr"), SYSCTL_LIMIT)
    nr = parse_file_nr(text or "")
    why = why or f"{ctx.proc_path('sys/fs/file-nr')} not readable"
    if nr is None and (scan is None or not scan.fds_scanned):
        raise Unavailable(f"{why} and no process scan: no file handle figures at all")
    data: dict = {}
    if nr is None:
        job.blind_spot(f"{why}: system-wide file handles unknown")
        data.update(file_handles=None, file_max=None, file_handles_pct=None)
    else:
        used = nr["allocated"] - nr["free"]
        data.update(file_handles=used, file_max=nr["max"],
                    file_handles_pct=round(used / nr["max"] * 100, 2) if nr["max"] > 0 else None)
    data["file_handles_per_s"] = _slope(job.s("file_handles"))
    data["system_eta"] = None
    if nr is not None and job.window_s > 0:
        e = eta.time_to_limit(job.s("file_handles") or [], nr["max"], current=data["file_handles"],
                              min_change=MIN_FD_GROWTH * 4)
        data["system_eta"] = e.evidence() if e.eta_s is not None else None

    if scan is None or not scan.fds_scanned:
        job.blind_spot("no process scan: per-process open files unknown")
        return data
    if scan.fd_unreadable and os.geteuid() != 0:
        job.blind_spot(f"fd tables of {scan.fd_unreadable} processes not readable: "
                       "run as root to see per-process open files")
    elif scan.fd_unreadable > max(1, len(scan.procs) // 10):
        # Root and still denied: sudo is not the fix (no CAP_SYS_PTRACE, another user namespace).
        job.blind_spot(f"fd tables of {scan.fd_unreadable} processes not readable even as root: "
                       "grant CAP_SYS_PTRACE or run in the host's namespaces")
    me = os.getpid()
    procs = [p for p in scan.procs.values() if p.fds is not None and p.pid != me and not getattr(p, "is_self", False)]
    if not scan.procs:
        job.blind_spot(f"no process directory readable under {job.ctx.proc}: per-process open files unknown")
    data["processes_seen"] = len(procs)
    data["fd_tables_unreadable"] = scan.fd_unreadable
    data["open_fds_seen"] = sum(p.fds for p in procs)

    def row(p) -> dict:
        pct = round(p.fds / p.nofile_soft * 100, 1) if p.nofile_soft else None
        s = job.s(f"fds[pid={p.pid}]")
        e = eta.time_to_limit(s or [], p.nofile_soft, current=p.fds, min_change=MIN_FD_GROWTH) \
            if p.nofile_soft and job.window_s > 0 else eta.NONE
        return {"pid": p.pid, "name": p.name, "fds": p.fds, "limit": p.nofile_soft, "pct": pct,
                "fds_per_s": _slope(s), "eta_s": e.eta_s if e.eta_s is None else round(e.eta_s, 1),
                "measured_s": e.measured_s, "cmdline": _short(scan.cmdline(p.pid))}

    by_count = sorted(procs, key=lambda p: p.fds, reverse=True)[:TOP]
    data["top"] = [row(p) for p in by_count]
    # A copied tree may lack limits files: those holders are not judged, and the report says so.
    no_limits = [p.pid for p in procs if p.fds >= procscan.LIMITS_MIN_FDS and p.nofile_soft is None
                 and not os.path.lexists(ctx.proc_path(p.pid, "limits"))
                 and os.path.lexists(ctx.proc_path(p.pid, "stat"))]
    if no_limits:
        job.blind_spot(f"/proc/PID/limits missing for {len(no_limits)} processes holding "
                       f"{procscan.LIMITS_MIN_FDS}+ fds: their open files not judged against RLIMIT_NOFILE")
    near = [p for p in procs if p.nofile_soft]
    near.sort(key=lambda p: p.fds / p.nofile_soft, reverse=True)
    data["closest_to_limit"] = [row(p) for p in near[:TOP]]
    # Watched processes whose fds climb: ranked by time to their own limit, not by today's share.
    by_pid = {p.pid: p for p in near}
    shown = {r["pid"] for r in data["closest_to_limit"]}
    growers = [row(by_pid[pid]) for pid in (job.state.get("watch") or ()) if pid in by_pid and pid not in shown]
    data["closest_to_limit"] += sorted((r for r in growers if r["eta_s"] is not None), key=lambda r: r["eta_s"])[:TOP]
    return data


def findings(section, th):
    d = section.data
    out: list[Finding] = []
    pct = d.get("file_handles_pct")
    se = d.get("system_eta") or {}
    l_eta = th.level("files.system_eta_s", se.get("eta_s"))
    level = worst_severity((th.level("files.system_pct", pct), l_eta))
    if level:
        top = (d.get("top") or [None])[0]
        # host-wide: the top holder is the subject only when it holds a real share of the handles
        tied = top if top and d.get("file_handles") and top["fds"] >= HOLDER_MIN_SHARE * d["file_handles"] else None
        rate = d.get("file_handles_per_s")
        out.append(Finding(
            id="files.system_exhaustion", category="files", severity=level,
            title=f"{d['file_handles']} of {d['file_max']} system file handles in use ({pct}%)"
                  + (f", rising {rate}/s" if rate and rate > 0 else "")
                  + (f"; fs.file-max reached in {eta.in_words(se['eta_s'])} at this rate" if l_eta else "")
                  + (f"; top holder {top['name']} (pid {top['pid']}) with {top['fds']}" if top else ""),
            subject={"pid": tied["pid"], "name": tied["name"]} if tied else {},
            evidence=eta.compact({"file_handles": d["file_handles"], "file_max": d["file_max"], "file_handles_pct": pct,
                      "file_handles_per_s": rate, "top": d.get("top"), "limit": "fs.file-max",
                      "eta_s": se.get("eta_s"), "measured_s": se.get("measured_s"),
                      "limit_fraction": round(pct / 100, 4) if pct is not None else None}),
            impact="at fs.file-max every open(), accept() and socket() on the host fails with ENFILE "
                   "('Too many open files in system'), including sshd and the fixers' shells",
            verify="cat /proc/sys/fs/file-nr; for p in /proc/[0-9]*; do echo \"$(ls $p/fd 2>/dev/null | wc -l) "
                   "$p\"; done | sort -rn | head",
            stabilize=["Find the holder(s) above and restart the leaking one off-peak",
                       "Raise fs.file-max (sysctl -w fs.file-max=N) as a short-term buffer if memory allows",
                       "Do not raise the limit without finding the leak if the count keeps climbing"],
            score=pct + (1e6 / max(se["eta_s"], 1.0) if l_eta else 0)))
    for p in d.get("closest_to_limit") or []:
        l_eta = th.level("files.process_eta_s", p.get("eta_s"))
        level = worst_severity((th.level("files.process_pct", p.get("pct")), l_eta))
        if not level:
            continue
        rate = p.get("fds_per_s")
        rising = f", rising {rate}/s" if rate and rate > 0 else ""
        if l_eta:
            rising += f"; its limit reached in {eta.in_words(p['eta_s'])} at this rate"
        out.append(Finding(
            id="files.process_fd_exhaustion", category="files", severity=level,
            title=f"{p['name']} (pid {p['pid']}) has {p['fds']} of {p['limit']} open files ({p['pct']}% of its "
                  f"RLIMIT_NOFILE){rising}",
            subject={"pid": p["pid"], "name": p["name"]},
            evidence=eta.compact({"fds": p["fds"], "limit": p["limit"], "pct": p["pct"], "fds_per_s": rate,
                      "rate_per_s": rate, "eta_s": p.get("eta_s"), "measured_s": p.get("measured_s"),
                      "limit_fraction": round(p["pct"] / 100, 4) if p.get("pct") is not None else None,
                      "cmdline": p.get("cmdline")}),
            impact="at its limit the process gets EMFILE ('Too many open files'): accept() and open() fail, "
                   "it stops taking connections or writing logs while still looking alive",
            verify=f"ls /proc/{p['pid']}/fd | wc -l; grep 'open files' /proc/{p['pid']}/limits",
            stabilize=["Check what the fds are (ls -l /proc/PID/fd | awk '{print $NF}' | sort | uniq -c | sort -rn "
                       "| head): sockets, one file over and over, pipes",
                       "Raise LimitNOFILE= for its unit (systemctl edit UNIT) and restart it off-peak; prlimit "
                       "--nofile on the live pid only buys time",
                       "Do not raise the limit without finding the leak if the count keeps climbing"
                       + (f" (it is: {rate}/s now)" if rising else "")],
            score=p["pct"] + (rate or 0) + (1e6 / max(p["eta_s"], 1.0) if l_eta else 0)))
    return out

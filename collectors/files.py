"""files: system-wide file handles vs fs.file-max, per-process open fds vs each process's own
RLIMIT_NOFILE soft limit, top fd holders. Reads /proc/sys/fs/file-nr, /proc/PID/fd, /proc/PID/limits;
root helps (other users' fd tables are unreadable otherwise)."""
from __future__ import annotations

import os

from hostdiag.core import procscan, tree
from hostdiag.core.context import Unavailable
from hostdiag.core.model import Finding
from hostdiag.core.thresholds import Threshold

NAME = "files"
DEFAULT_ENABLED = True
NEEDS = {"procs", "fds"}
READS = ["/proc/sys/fs/file-nr", "/proc/PID/fd", "/proc/PID/limits"]

UNITS = {"file_handles": ("count", False), "file_max": ("count", False), "fds": ("count", False)}
THRESHOLDS = {
    "files.system_pct": Threshold(80, 95, "percent", "allocated file handles as % of fs.file-max (/proc/sys/fs/file-nr)"),
    "files.process_pct": Threshold(80, 95, "percent", "a process's open fds as % of its own RLIMIT_NOFILE soft limit"),
}
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
    procs = [p for p in scan.procs.values() if p.fds is not None]
    data["processes_seen"] = len(procs)
    data["fd_tables_unreadable"] = scan.fd_unreadable
    data["open_fds_seen"] = sum(p.fds for p in procs)

    def row(p) -> dict:
        pct = round(p.fds / p.nofile_soft * 100, 1) if p.nofile_soft else None
        return {"pid": p.pid, "name": p.name, "fds": p.fds, "limit": p.nofile_soft, "pct": pct,
                "fds_per_s": _slope(job.s(f"fds[pid={p.pid}]")), "cmdline": _short(scan.cmdline(p.pid))}

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
    return data


def findings(section, th):
    d = section.data
    out: list[Finding] = []
    pct = d.get("file_handles_pct")
    level = th.level("files.system_pct", pct)
    if level:
        top = (d.get("top") or [None])[0]
        rate = d.get("file_handles_per_s")
        out.append(Finding(
            id="files.system_exhaustion", category="files", severity=level,
            title=f"{d['file_handles']} of {d['file_max']} system file handles in use ({pct}%)"
                  + (f", rising {rate}/s" if rate and rate > 0 else "")
                  + (f"; top holder {top['name']} (pid {top['pid']}) with {top['fds']}" if top else ""),
            subject={"pid": top["pid"], "name": top["name"]} if top else {},
            evidence={"file_handles": d["file_handles"], "file_max": d["file_max"], "file_handles_pct": pct,
                      "file_handles_per_s": rate, "top": d.get("top")},
            impact="at fs.file-max every open(), accept() and socket() on the host fails with ENFILE "
                   "('Too many open files in system'), including sshd and the fixers' shells",
            verify="cat /proc/sys/fs/file-nr; for p in /proc/[0-9]*; do echo \"$(ls $p/fd 2>/dev/null | wc -l) "
                   "$p\"; done | sort -rn | head",
            stabilize=["Find the holder(s) above and restart the leaking one off-peak",
                       "Raise fs.file-max (sysctl -w fs.file-max=N) as a short-term buffer if memory allows",
                       "Do not raise the limit without finding the leak if the count keeps climbing"],
            score=pct))
    for p in d.get("closest_to_limit") or []:
        level = th.level("files.process_pct", p.get("pct"))
        if not level:
            continue
        rate = p.get("fds_per_s")
        rising = f", rising {rate}/s" if rate and rate > 0 else ""
        out.append(Finding(
            id="files.process_fd_exhaustion", category="files", severity=level,
            title=f"{p['name']} (pid {p['pid']}) has {p['fds']} of {p['limit']} open files ({p['pct']}% of its "
                  f"RLIMIT_NOFILE){rising}",
            subject={"pid": p["pid"], "name": p["name"]},
            evidence={"fds": p["fds"], "limit": p["limit"], "pct": p["pct"], "fds_per_s": rate,
                      "cmdline": p.get("cmdline")},
            impact="at its limit the process gets EMFILE ('Too many open files'): accept() and open() fail, "
                   "it stops taking connections or writing logs while still looking alive",
            verify=f"ls /proc/{p['pid']}/fd | wc -l; grep 'open files' /proc/{p['pid']}/limits",
            stabilize=["Check what the fds are (ls -l /proc/PID/fd | awk '{print $NF}' | sort | uniq -c | sort -rn "
                       "| head): sockets, one file over and over, pipes",
                       "Raise LimitNOFILE= for its unit (systemctl edit UNIT) and restart it off-peak; prlimit "
                       "--nofile on the live pid only buys time",
                       "Do not raise the limit without finding the leak if the count keeps climbing"
                       + (f" (it is: {rate}/s now)" if rising else "")],
            score=p["pct"] + (rate or 0)))
    return out

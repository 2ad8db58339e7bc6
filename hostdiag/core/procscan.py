"""One pass over every process, shared by all collectors of a snapshot.

Per-process socket mapping and deleted-file detection need every /proc/PID/fd entry
readlink'd; that is the expensive part of a snapshot (ss -tanp pays it too), so it is
done once here and only when an enabled collector asks for it (NEEDS = {"fds"}).

The scan fills its result in place and checks a deadline per process, so a scan cut
short (by the deadline, or a /proc/PID read stuck behind a D-state process's mmap lock)
still hands over what it saw, marked truncated.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

import psutil

from hostdiag.core.context import Context, Deadline

_ATTRS = ["pid", "ppid", "name", "status", "uids", "num_threads", "memory_info",
          "cpu_times", "create_time", "io_counters"]
# Below this many fds, a process cannot be near any sane RLIMIT_NOFILE; skip reading limits.
LIMITS_MIN_FDS = 16


@dataclass
class Proc:
    pid: int
    ppid: int | None = None
    name: str = "?"
    status: str | None = None        # psutil status: running, sleeping, disk-sleep, zombie...
    uid: int | None = None
    threads: int | None = None
    rss_bytes: int | None = None
    cpu_s: float | None = None       # user + system, lifetime
    create_time: float | None = None
    read_bytes: int | None = None    # None: /proc/PID/io not readable (not root)
    write_bytes: int | None = None
    fds: int | None = None           # None: /proc/PID/fd not readable
    nofile_soft: int | None = None   # RLIMIT_NOFILE soft limit, from /proc/PID/limits
    nproc_soft: int | None = None    # RLIMIT_NPROC soft limit
    cpu_pct: float | None = None     # over the window; None with --window 0
    read_bps: float | None = None
    write_bps: float | None = None


@dataclass
class DeletedOpen:
    pid: int
    fd: int
    path: str
    size_bytes: int


@dataclass
class Scan:
    procs: dict[int, Proc] = field(default_factory=dict)
    socket_owner: dict[int, int] = field(default_factory=dict)   # socket inode -> pid
    deleted_open: list[DeletedOpen] = field(default_factory=list)
    fd_unreadable: int = 0          # processes whose fd table we could not read
    io_unreadable: int = 0
    fds_scanned: bool = False
    truncated: bool = False         # the deadline cut the scan short
    seen_pids: int = 0
    duration_s: float = 0.0
    proc: str = "/proc"             # the procfs root the scan read (--proc-root)

    def cmdline(self, pid: int, limit: int = 4096) -> str | None:
        """Command line of one process (read lazily: only for processes a report names)."""
        try:
            with open(os.path.join(self.proc, str(pid), "cmdline"), "rb") as f:
                raw = f.read(limit)
        except OSError:
            return None
        return raw.rstrip(b"\0").replace(b"\0", b" ").decode("utf-8", "backslashreplace") or None


def _iter(ctx: Context, attrs):
    """psutil.process_iter over ctx.proc; nothing for a tree without pids (a fixture host,
    where psutil 7.2's pids() raises IndexError). psutil's procfs root is a module global:
    it points at ctx.proc only while iterating, so no other caller inherits a fixture path."""
    try:
        if not any(n.isdigit() for n in os.listdir(ctx.proc)):
            return
    except OSError:
        return
    old, psutil.PROCFS_PATH = psutil.PROCFS_PATH, ctx.proc
    try:
        yield from psutil.process_iter(attrs, ad_value=None)
    finally:
        psutil.PROCFS_PATH = old


def baseline(ctx: Context, deadline: Deadline) -> dict[int, tuple[float, float, int | None, int | None]]:
    """pid -> (create_time, cpu_s, read_bytes, write_bytes) at the start of the window."""
    out = {}
    for p in _iter(ctx, ["create_time", "cpu_times", "io_counters"]):
        if deadline.expired():
            break
        i = p.info
        ct = i["cpu_times"]
        io = i["io_counters"]
        out[p.pid] = (i["create_time"], (ct.user + ct.system) if ct else None,
                      io.read_bytes if io else None, io.write_bytes if io else None)
    return out


def scan(ctx: Context, deadline: Deadline, result: Scan, *, fds: bool,
         base: dict | None = None, base_dt: float | None = None) -> Scan:
    """Fill `result` with every process (and its fd table when `fds`). Never raises per pid."""
    t0 = time.monotonic()
    result.fds_scanned = fds
    result.proc = ctx.proc
    for p in _iter(ctx, _ATTRS):
        if deadline.expired():
            result.truncated = True
            break
        i = p.info
        result.seen_pids += 1
        mi, ct, io = i["memory_info"], i["cpu_times"], i["io_counters"]
        pr = Proc(
            pid=p.pid, ppid=i["ppid"], name=i["name"] or "?", status=i["status"],
            uid=i["uids"].real if i["uids"] else None, threads=i["num_threads"],
            rss_bytes=mi.rss if mi else None, cpu_s=(ct.user + ct.system) if ct else None,
            create_time=i["create_time"],
            read_bytes=io.read_bytes if io else None, write_bytes=io.write_bytes if io else None,
        )
        if io is None and pr.status != "zombie":
            result.io_unreadable += 1
        if base and base_dt and p.pid in base:
            b_ct, b_cpu, b_r, b_w = base[p.pid]
            if b_ct == pr.create_time:  # same process, not a recycled pid
                if b_cpu is not None and pr.cpu_s is not None:
                    pr.cpu_pct = max(0.0, (pr.cpu_s - b_cpu) / base_dt * 100)
                if b_r is not None and pr.read_bytes is not None:
                    pr.read_bps = max(0.0, (pr.read_bytes - b_r) / base_dt)
                if b_w is not None and pr.write_bytes is not None:
                    pr.write_bps = max(0.0, (pr.write_bytes - b_w) / base_dt)
        result.procs[p.pid] = pr
        if fds and pr.status != "zombie":
            _scan_fds(ctx, pr, result)
        if pr.fds is not None and pr.fds >= LIMITS_MIN_FDS or pr.pid == os.getpid():
            _read_limits(ctx, pr)
    result.duration_s = time.monotonic() - t0
    return result


def _scan_fds(ctx: Context, pr: Proc, result: Scan) -> None:
    d = ctx.proc_path(pr.pid, "fd")
    try:
        names = os.listdir(d)
    except PermissionError:
        result.fd_unreadable += 1
        return
    except OSError:  # exited (ENOENT/ESRCH): skip quietly
        return
    pr.fds = len(names)
    for n in names:
        try:
            target = os.readlink(os.path.join(d, n))
        except OSError:
            continue
        if target.startswith("socket:["):
            result.socket_owner.setdefault(int(target[8:-1]), pr.pid)
        elif target.endswith(" (deleted)") and target.startswith("/"):
            try:
                st = os.stat(os.path.join(d, n))  # follows the magic link to the unlinked inode
            except OSError:
                continue
            if st.st_size and (st.st_mode & 0o170000) == 0o100000:  # regular files only
                result.deleted_open.append(DeletedOpen(pr.pid, int(n), target[:-10], st.st_size))


def _read_limits(ctx: Context, pr: Proc) -> None:
    """Soft RLIMIT_NOFILE/NPROC from /proc/PID/limits (text: no prlimit syscall needed)."""
    try:
        with open(ctx.proc_path(pr.pid, "limits")) as f:
            text = f.read()
    except OSError:
        return
    limits = parse_limits(text)
    pr.nofile_soft = limits.get("Max open files")
    pr.nproc_soft = limits.get("Max processes")


def parse_limits(text: str) -> dict[str, int | None]:
    """/proc/PID/limits -> {'Max open files': 1024, ...}; 'unlimited' -> None."""
    out: dict[str, int | None] = {}
    for line in text.splitlines()[1:]:
        # "Max open files            1024                 524288               files"
        name, soft = line[:26].strip(), line[26:47].strip()
        if not name:
            continue
        out[name] = None if soft == "unlimited" else (int(soft) if soft.isdigit() else None)
    return out

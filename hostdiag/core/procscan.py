"""One pass over every process, shared by all collectors of a snapshot.

Per-process socket mapping and deleted-file detection need every /proc/PID/fd entry
readlink'd; that is the expensive part of a snapshot (ss -tanp pays it too), so it is
done once here and only when an enabled collector asks for it (NEEDS = {"fds"}).

The scan fills its result in place and checks a deadline per process, so a scan cut
short (by the deadline, or a /proc/PID read stuck behind a D-state process's mmap lock)
still hands over what it saw, marked truncated.

Errors stay per process and per field: a pid whose stat is readable but whose status, statm
or io is missing (a partial copy of another host's /proc) keeps its other fields and has None
for those; psutil 7.2 re-raises FileNotFoundError there, and as_dict(ad_value=None) absorbs
only AccessDenied and ZombieProcess, so each attribute is fetched on its own.
"""
from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, field

import psutil

from hostdiag.core import isolate
from hostdiag.core.context import Context, Deadline

_ATTRS = ["ppid", "name", "status", "uids", "num_threads", "memory_info",
          "cpu_times", "create_time", "io_counters"]
# A per-pid file that is missing (psutil 7.2 re-raises FileNotFoundError), or truncated or
# garbled in a copied tree (psutil raises RuntimeError/ValueError/IndexError parsing it).
_BAD = (OSError, ValueError, IndexError, KeyError, RuntimeError, psutil.Error)
# The /proc/PID file behind each psutil attribute, for the blind-spot line.
_FILE = {"uids": "status", "num_threads": "status", "memory_info": "statm", "io_counters": "io",
         "name": "cmdline"}   # name() reads cmdline when comm is cut at 15 characters
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
    user_s: float | None = None      # the pidstat split of cpu_s
    system_s: float | None = None
    create_time: float | None = None
    read_bytes: int | None = None    # None: /proc/PID/io not readable (not root)
    write_bytes: int | None = None
    fds: int | None = None           # None: /proc/PID/fd not readable
    nofile_soft: int | None = None   # RLIMIT_NOFILE soft limit, from /proc/PID/limits
    nproc_soft: int | None = None    # RLIMIT_NPROC soft limit
    cpu_pct: float | None = None     # over the window; None with --window 0
    user_pct: float | None = None
    system_pct: float | None = None
    read_bps: float | None = None
    write_bps: float | None = None
    is_self: bool = False            # hostdiag itself or a child of it: never a finding's subject


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
    hung_stats: int = 0             # deleted-file stats that did not return (hung mount)
    io_unreadable: int = 0
    fds_scanned: bool = False
    truncated: bool = False         # the deadline cut the scan short
    seen_pids: int = 0
    duration_s: float = 0.0
    proc: str = "/proc"             # the procfs root the scan read (--proc-root)
    missing: dict[str, int] = field(default_factory=dict)   # file -> processes it was unreadable for
    missing_pids: int = 0           # processes with at least one such file
    self_pid: int | None = None     # hostdiag's pid as this tree numbers it (None: not in the tree)

    def blind_spot(self) -> str | None:
        """One line for the files that were missing or unreadable per process (not permissions)."""
        hung = (f"stat of {self.hung_stats} open deleted file(s) did not return (hung NFS/FUSE mount?): "
                "space they hold is not counted") if self.hung_stats else None
        if not self.missing_pids:
            return hung
        files = ", ".join(sorted(self.missing, key=lambda f: (-self.missing[f], f)))
        n = self.missing_pids
        line = f"{n} process{'es' if n != 1 else ''} had unreadable files: {files} (those fields are absent)"
        return f"{line}; {hung}" if hung else line

    def cmdline(self, pid: int, limit: int = 4096) -> str | None:
        """Command line of one process (read lazily: only for processes a report names)."""
        try:
            with open(os.path.join(self.proc, str(pid), "cmdline"), "rb") as f:
                raw = f.read(limit)
        except OSError:
            return None
        return raw.rstrip(b"\0").replace(b"\0", b" ").decode("utf-8", "backslashreplace") or None


def _pids(ctx: Context) -> list[int]:
    try:
        return sorted(int(n) for n in os.listdir(ctx.proc) if n.isdigit())
    except OSError:
        return []


# Process objects from the last pass, per procfs root: the window's baseline and end-of-window
# scan then build each one once (psutil.process_iter keeps such a cache too).
_CACHE: dict[str, dict[int, psutil.Process]] = {}


def _info(p: psutil.Process, attrs) -> tuple[dict, set]:
    """Each attribute on its own: a failure costs that field (None), recorded by file in `lost`.
    NoSuchProcess (exited, or the pid was reused) propagates."""
    info, lost = {}, set()
    with p.oneshot():
        for a in attrs:
            try:
                info[a] = getattr(p, a)()
            except (psutil.AccessDenied, psutil.ZombieProcess):
                info[a] = None
            except psutil.NoSuchProcess:
                raise
            except _BAD:
                info[a] = None
                lost.add(_FILE.get(a, "stat"))
    return info, lost


def _iter(ctx: Context, attrs, result: Scan | None = None):
    """(Process, info, lost files) for every pid of ctx.proc (see the module docstring).
    psutil's procfs root is a module global: it points at ctx.proc only while iterating, so
    no other caller inherits a fixture path."""
    pids = _pids(ctx)
    if not pids:
        return
    cache = _CACHE.get(ctx.proc, {})
    fresh: dict[int, psutil.Process] = {}
    old, psutil.PROCFS_PATH = psutil.PROCFS_PATH, ctx.proc
    try:
        for pid in pids:
            p = cache.get(pid)
            for attempt in (0, 1):
                if p is None:
                    try:
                        p = psutil.Process(pid)
                    except (psutil.NoSuchProcess, psutil.AccessDenied):
                        break  # exited, or no stat: nothing to say about it
                    except _BAD:  # stat present but unreadable or malformed
                        if result is not None:
                            _missing(result, {"stat"})
                        break
                try:
                    info, lost = _info(p, attrs)
                except psutil.NoSuchProcess:
                    p = None  # exited, or a cached object whose pid was reused: one fresh try
                    continue
                if lost and not os.path.exists(os.path.join(ctx.proc, str(pid), "stat")):
                    break     # it exited while we read it: gone, not a blind spot
                fresh[pid] = p
                if lost and result is not None:
                    _missing(result, lost)
                yield p, info, lost
                break
    finally:
        psutil.PROCFS_PATH = old
        _CACHE.clear()      # one root at a time: a fixture's objects never outlive its test
        _CACHE[ctx.proc] = fresh


def _missing(result: Scan, files) -> None:
    result.missing_pids += 1
    for f in files:
        result.missing[f] = result.missing.get(f, 0) + 1


def self_pid(proc: str) -> int | None:
    """hostdiag's pid in the tree at `proc`: its `self` link, trusted only when that pid's start
    time is ours (a copied tree's `self` names some other host's process). Works for /host/proc
    of another pid namespace too."""
    try:
        pid = int(os.readlink(os.path.join(proc, "self")))
        with open(os.path.join(proc, str(pid), "stat"), "rb") as f:
            theirs = f.read(4096).rsplit(b")", 1)[1].split()[19]
        with open("/proc/self/stat", "rb") as f:
            ours = f.read(4096).rsplit(b")", 1)[1].split()[19]
    except (OSError, ValueError, IndexError):
        return None
    return pid if theirs == ours else None


def _children_are_ours() -> bool:
    """Children of this process are hostdiag's own helpers (journalctl...) only when hostdiag is
    the program; under the Python API (tests, an embedding tool) they belong to the caller."""
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    return (getattr(spec, "name", "") or "").startswith("hostdiag") or \
        os.path.basename(sys.argv[0] if sys.argv else "") == "hostdiag"


def stat_comm_threads(proc: str, pid: int) -> tuple[str | None, int | None]:
    """(comm, num_threads field 20) from /proc/PID/stat, for when status or cmdline is missing."""
    try:
        with open(os.path.join(proc, str(pid), "stat"), "rb") as f:
            head, _, rest = f.read(4096).rpartition(b")")
    except OSError:
        return None, None
    comm = head.partition(b"(")[2].decode("utf-8", "backslashreplace") or None
    try:
        return comm, int(rest.split()[17])
    except (ValueError, IndexError):
        return comm, None


def baseline(ctx: Context, deadline: Deadline) -> dict[int, tuple]:
    """pid -> (create_time, cpu_s, read_bytes, write_bytes, user_s, system_s) at the start of the window."""
    out = {}
    for p, i, _lost in _iter(ctx, ["create_time", "cpu_times", "io_counters"]):
        if deadline.expired():
            break
        ct = i["cpu_times"]
        io = i["io_counters"]
        out[p.pid] = (i["create_time"], (ct.user + ct.system) if ct else None,
                      io.read_bytes if io else None, io.write_bytes if io else None,
                      ct.user if ct else None, ct.system if ct else None)
    return out


def _per_s(now, then, dt):
    return None if now is None or then is None else max(0.0, (now - then) / dt)


def _pct(now, then, dt):
    """CPU seconds over the window as % of one CPU."""
    r = _per_s(now, then, dt)
    return None if r is None else r * 100


def scan(ctx: Context, deadline: Deadline, result: Scan, *, fds: bool,
         base: dict | None = None, base_dt: float | None = None) -> Scan:
    """Fill `result` with every process (and its fd table when `fds`). Never raises per pid."""
    t0 = time.monotonic()
    result.fds_scanned = fds
    result.proc = ctx.proc
    me = result.self_pid = self_pid(ctx.proc)
    kids = _children_are_ours()
    for p, i, lost in _iter(ctx, _ATTRS, result):
        if deadline.expired():
            result.truncated = True
            break
        result.seen_pids += 1
        mi, ct, io = i["memory_info"], i["cpu_times"], i["io_counters"]
        threads, name = i["num_threads"], i["name"]
        if threads is None or name is None:
            comm, n = stat_comm_threads(ctx.proc, p.pid)
            threads, name = threads if threads is not None else n, name or comm
        pr = Proc(
            pid=p.pid, ppid=i["ppid"], name=name or "?", status=i["status"],
            uid=i["uids"].real if i["uids"] else None, threads=threads,
            rss_bytes=mi.rss if mi else None, cpu_s=(ct.user + ct.system) if ct else None,
            user_s=ct.user if ct else None, system_s=ct.system if ct else None,
            create_time=i["create_time"],
            read_bytes=io.read_bytes if io else None, write_bytes=io.write_bytes if io else None,
            is_self=me is not None and (p.pid == me or (kids and i["ppid"] == me)),
        )
        if io is None and pr.status != "zombie" and "io" not in lost:   # permission, not absence
            result.io_unreadable += 1
        if base and base_dt and p.pid in base:
            b = base[p.pid]
            if b[0] == pr.create_time:  # same process, not a recycled pid
                pr.cpu_pct = _pct(pr.cpu_s, b[1], base_dt)
                pr.read_bps = _per_s(pr.read_bytes, b[2], base_dt)
                pr.write_bps = _per_s(pr.write_bytes, b[3], base_dt)
                if len(b) >= 6:
                    pr.user_pct = _pct(pr.user_s, b[4], base_dt)
                    pr.system_pct = _pct(pr.system_s, b[5], base_dt)
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
        elif target.endswith(" (deleted)") and target.startswith("/") and result.hung_stats < isolate.MAX_ABANDONED // 2:
            try:
                # follows the magic link to the inode: on a dead NFS/FUSE mount that stat never
                # returns (and any file can be *named* "x (deleted)"), so only the prober waits
                mode, _, _, size, _ = isolate.stat(os.path.join(d, n), max(0.05, ctx.timeout_s / 4))
            except TimeoutError:
                result.hung_stats += 1
                continue
            except OSError:
                continue
            if size and (mode & 0o170000) == 0o100000:  # regular files only
                result.deleted_open.append(DeletedOpen(pr.pid, int(n), target[:-10], size))


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

"""One pass over every process, shared by all collectors of a snapshot.

Per-process socket mapping and deleted-file detection need every /proc/PID/fd entry
readlink'd; that is the expensive part of a snapshot (ss -tanp pays it too), so it is
done once here and only when an enabled collector asks for it (NEEDS = {"fds"}).

The scan fills its result in place and checks a deadline per process, so a scan cut
short (by the deadline, or a /proc/PID read stuck behind a D-state process's mmap lock)
still hands over what it saw, marked truncated.

Errors stay per process and per field: a pid whose stat is readable but whose status, statm
or io is missing (a partial copy of another host's /proc) keeps its other fields and has None
for those (counted by file for the blind-spot line); a permission error or a zombie's missing
file is None without a blind spot. The files are parsed here, as psutil parses them, each read
once per pid: through psutil a pid cost three reads of its stat and one of /proc/stat.
"""
from __future__ import annotations

import os
import re
import sys
import time
from dataclasses import dataclass, field

from hostdiag.core import isolate
from hostdiag.core.context import Context, Deadline

_ATTRS = ["ppid", "name", "status", "uids", "num_threads", "memory_info",
          "cpu_times", "create_time", "io_counters"]
# A per-pid file that is garbled or truncated in a copied tree.
_BAD = (OSError, ValueError, IndexError, KeyError, RuntimeError)
# The /proc/PID file behind each attribute, for the blind-spot line.
_FILE = {"uids": "status", "num_threads": "status", "memory_info": "statm", "io_counters": "io",
         "name": "cmdline"}   # the full name comes from cmdline when comm is cut at 15 characters
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGESIZE = os.sysconf("SC_PAGE_SIZE")
# /proc/PID/stat state letters, named as psutil names them (proc(5)).
_STATES = {"R": "running", "S": "sleeping", "D": "disk-sleep", "T": "stopped", "t": "tracing-stop",
           "Z": "zombie", "X": "dead", "x": "dead", "K": "wake-kill", "W": "waking", "I": "idle",
           "P": "parked"}
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
    wchar_bps: float | None = None   # write() bytes/s over the window: page cache, tmpfs, pipes too
    is_self: bool = False            # hostdiag itself or a child of it: never a finding's subject
    sid: int | None = None           # session id (stat field 6)


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
    rates_s: float | None = None    # seconds the per-process rates cover (None: no window, no rates)

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


class _Gone(Exception):
    """The process exited while it was read (its stat is gone)."""


_DENIED = object()      # a file we may not read (EACCES), or a zombie's: None, not a blind spot
_UIDS = re.compile(rb"Uid:\t(\d+)\t(\d+)\t(\d+)")
_THREADS = re.compile(rb"Threads:\t(\d+)")
_IO_KEYS = (b"syscr", b"syscw", b"read_bytes", b"write_bytes", b"rchar", b"wchar")
# btime of the last baseline per procfs root: the scan that ends its window must compute the
# same create times, or every process would look like a recycled pid.
_BOOT: dict[str, object] = {}


def _boot_time(proc: str):
    """btime from PROC/stat, or the exception that says why not (raised per process later)."""
    try:
        with open(os.path.join(proc, "stat"), "rb") as f:
            for line in f:
                if line.startswith(b"btime"):
                    return float(line.strip().split()[1])
        return RuntimeError(f"line 'btime' not found in {proc}/stat")
    except _BAD as e:
        return e


def _read(path: str) -> bytes:
    with open(path, "rb", buffering=0) as f:
        return f.read(1 << 16)


def _pidfile(d: str, name: str, zombie: bool):
    """One /proc/PID file: bytes, _DENIED, or the error (a blind spot). _Gone if the pid exited."""
    try:
        return _read(f"{d}/{name}")
    except PermissionError:
        return _DENIED
    except ProcessLookupError:
        if zombie:
            return _DENIED
        raise _Gone from None
    except FileNotFoundError:
        if zombie:
            return _DENIED
        if not os.path.exists(f"{d}/stat"):
            raise _Gone from None
        raise


def _cmdline_name(d: str, name: str, zombie: bool) -> str:
    """comm is cut at 15 characters: the full name is cmdline's first word when it starts so."""
    raw = _pidfile(d, "cmdline", zombie)
    if raw is _DENIED:
        return name
    data = raw.decode("utf-8", "surrogateescape")
    if not data:
        return name
    sep = "\x00" if data.endswith("\x00") else " "
    args = data[:-1].split(sep) if data.endswith(sep) else data.split(sep)
    if sep == "\x00" and len(args) == 1 and " " in data:
        args = data.split(" ")
    full = os.path.basename(args[0]) if args else ""
    return full if full.startswith(name) else name


def _info(d: str, attrs, bt) -> tuple[dict, set]:
    """The attributes of one pid, read straight from its files: stat, status, statm and io once
    each (psutil read stat three times per pid and /proc/stat once more). A failure costs that
    field (None), recorded by file in `lost`. _Gone if the process exited."""
    info, lost = {}, set()
    raw = _pidfile(d, "stat", False)
    if raw is _DENIED:
        return dict.fromkeys([*attrs, "sid"]), lost
    rpar = raw.rfind(b")")
    comm = raw[raw.find(b"(") + 1:rpar]
    f = raw[rpar + 2:].split()
    f[36]                       # a stat cut short or garbled: not a process we can describe
    zombie = f[0] == b"Z"
    try:
        info["sid"] = int(f[3])     # the session (changes.own_pids): not a field psutil gave
    except ValueError:
        info["sid"] = None
    status = None               # the status file, read once for uids and threads
    for a in attrs:
        try:
            if a == "ppid":
                v = int(f[1])
            elif a == "name":
                v = comm.decode("utf-8", "surrogateescape")
                if len(v) >= 15:
                    v = _cmdline_name(d, v, zombie)
            elif a == "status":
                v = _STATES.get(f[0].decode(), "?")
            elif a == "cpu_times":
                user, system, _, _ = (float(x) / CLOCK_TICKS for x in f[11:15])
                v = (user, system)
            elif a == "create_time":
                if isinstance(bt, BaseException):
                    raise bt
                v = float(f[19]) / CLOCK_TICKS + bt
            elif a in ("uids", "num_threads"):
                if status is None:
                    status = _pidfile(d, "status", zombie)
                if status is _DENIED:
                    v = None
                elif a == "uids":
                    v = int(_UIDS.findall(status)[0][0])
                else:
                    v = int(_THREADS.findall(status)[0])
            elif a == "memory_info":
                statm = _pidfile(d, "statm", zombie)
                if statm is _DENIED:
                    v = None
                else:
                    vals = [int(x) for x in statm.split(b"\n", 1)[0].split()[:7]]
                    if len(vals) < 7:       # size resident shared text lib data dt
                        raise ValueError(f"statm has {len(vals)} fields")
                    v = vals[1] * PAGESIZE
            elif a == "io_counters":
                io = _pidfile(d, "io", zombie)
                v = None if io is _DENIED else _parse_io(io)
            else:
                raise KeyError(a)
        except _Gone:
            raise
        except _BAD:
            v = None
            lost.add(_FILE.get(a, "stat"))
        info[a] = v
    return info, lost


def _parse_io(data: bytes) -> tuple[int, int, int]:
    """(read_bytes, write_bytes, wchar) from /proc/PID/io; every field psutil wants must be there."""
    fields = {}
    for line in data.splitlines():
        line = line.strip()
        if line:
            name, sep, value = line.partition(b": ")
            if sep and b": " not in value:
                fields[name] = int(value)
    if not fields:
        raise RuntimeError("io file was empty")
    for k in _IO_KEYS:
        fields[k]       # KeyError: a field is missing
    return fields[b"read_bytes"], fields[b"write_bytes"], fields[b"wchar"]


def _iter(ctx: Context, attrs, result: Scan | None = None, bt=None):
    """(pid, info, lost files) for every pid of ctx.proc (see the module docstring)."""
    pids = _pids(ctx)
    if not pids:
        return
    if bt is None and any(a == "create_time" for a in attrs):
        bt = _boot_time(ctx.proc)
    for pid in pids:
        d = f"{ctx.proc}/{pid}"
        try:
            info, lost = _info(d, attrs, bt)
        except _Gone:
            continue    # exited: nothing to say about it
        except _BAD:    # stat present but unreadable or malformed
            if result is not None:
                _missing(result, {"stat"})
            continue
        if lost and not os.path.exists(f"{d}/stat"):
            continue    # it exited while we read it: gone, not a blind spot
        if lost and result is not None:
            _missing(result, lost)
        yield pid, info, lost


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
    """pid -> (create_time, cpu_s, read_bytes, write_bytes, user_s, system_s, wchar) at the start
    of the window."""
    out = {}
    bt = _boot_time(ctx.proc)
    _BOOT.clear()           # one root at a time: a fixture's btime never outlives its test
    _BOOT[ctx.proc] = bt
    for pid, i, _lost in _iter(ctx, ["create_time", "cpu_times", "io_counters"], bt=bt):
        if deadline.expired():
            break
        ct = i["cpu_times"]
        io = i["io_counters"]
        out[pid] = (i["create_time"], (ct[0] + ct[1]) if ct else None,
                    io[0] if io else None, io[1] if io else None,
                    ct[0] if ct else None, ct[1] if ct else None, io[2] if io else None)
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
    bt = _BOOT.get(ctx.proc) if base else None
    if base and base_dt:
        result.rates_s = base_dt
    for pid, i, lost in _iter(ctx, _ATTRS, result, bt):
        if deadline.expired():
            result.truncated = True
            break
        result.seen_pids += 1
        mi, ct, io = i["memory_info"], i["cpu_times"], i["io_counters"]
        threads, name = i["num_threads"], i["name"]
        if threads is None or name is None:
            comm, n = stat_comm_threads(ctx.proc, pid)
            threads, name = threads if threads is not None else n, name or comm
        pr = Proc(
            pid=pid, ppid=i["ppid"], name=name or "?", status=i["status"],
            uid=i["uids"], threads=threads,
            rss_bytes=mi, cpu_s=(ct[0] + ct[1]) if ct else None,
            user_s=ct[0] if ct else None, system_s=ct[1] if ct else None,
            create_time=i["create_time"],
            read_bytes=io[0] if io else None, write_bytes=io[1] if io else None,
            is_self=me is not None and (pid == me or (kids and i["ppid"] == me)), sid=i["sid"],
        )
        if io is None and pr.status != "zombie" and "io" not in lost:   # permission, not absence
            result.io_unreadable += 1
        if base and base_dt and pid in base:
            b = base[pid]
            if b[0] == pr.create_time:  # same process, not a recycled pid
                pr.cpu_pct = _pct(pr.cpu_s, b[1], base_dt)
                pr.read_bps = _per_s(pr.read_bytes, b[2], base_dt)
                pr.write_bps = _per_s(pr.write_bytes, b[3], base_dt)
                if len(b) >= 6:
                    pr.user_pct = _pct(pr.user_s, b[4], base_dt)
                    pr.system_pct = _pct(pr.system_s, b[5], base_dt)
                if len(b) >= 7:
                    pr.wchar_bps = _per_s(io[2] if io else None, b[6], base_dt)
        result.procs[pid] = pr
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

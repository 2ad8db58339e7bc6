"""disk: per-mount size/used/free and inodes, growth and time-to-full over the window,
filesystems read-only that should not be, space held by deleted-but-open files. Reads
/proc/self/mountinfo (/proc/1/mountinfo under --proc-root: the host's mounts, not a container's),
/etc/fstab, statvfs() of each mount (in an abandonable child process, time-bounded: a dead NFS or
FUSE server cannot hold hostdiag), /sys/fs/ext4/*/errors_count; root needed to see deleted-open
files of other users' processes (/proc/PID/fd)."""
from __future__ import annotations

import os
import re
import time
from urllib.parse import quote, unquote

from hostdiag.core import eta, isolate, shell
from hostdiag.core.model import Finding
from hostdiag.core.thresholds import Threshold
from hostdiag.core.units import human_bytes, human_duration, worst_severity

NAME = "disk"
DEFAULT_ENABLED = True
NEEDS = {"procs", "fds"}
READS = ["/proc/self/mountinfo (/proc/1/mountinfo under --proc-root)", "/etc/fstab", "statvfs(MOUNT) for each real mount",
         "/proc/PID/io (wchar, via the process scan), /proc/PID/fd + fdinfo of the top writers",
         "/sys/dev/block/MAJ:MIN", "/sys/fs/{ext4,ext3,ext2}/DEV/errors_count",
         "/proc/PID/fd (via the process scan)"]

UNITS = {"used_bytes": ("bytes", False), "inodes_used": ("count", False)}
THRESHOLDS = {
    "disk.used_pct": Threshold(90, 95, "percent", "used / (used + available to non-root), as df's Use% "
                                                  "(read-only mounts are not judged: nothing can write to them)"),
    "disk.inodes_used_pct": Threshold(90, 97, "percent", "inodes used, as df -i's IUse%"),
    "disk.time_to_full_s": Threshold(6 * 3600, 3600, "seconds",
                                     "time until non-root writers get ENOSPC at the growth rate seen in the "
                                     "window; judged only on a steady rise and once the filesystem is "
                                     "60% (warning) / 80% (critical) used, so a burst on a roomy disk is no alarm",
                                     higher_is_worse=False),
    "disk.eta_s": eta.threshold("a filesystem is full (bytes for non-root writers, or inodes; "
                                "disk.time_to_full_s judges growth hours away)"),
    "disk.writer_bps": Threshold(50 << 20, 500 << 20, "bytes/s",
                                 "one process's write() rate into files of one filesystem over the window "
                                 "(/proc/PID/io wchar; any ETA to full from its rate is judged by disk.eta_s)"),
    "disk.deleted_open_pct": Threshold(5, 20, "percent",
                                       "share of a filesystem's size held by one process's deleted-but-open files"),
}
# Pseudo filesystems: no user data, or their size is not a disk (node_exporter's
# defFSTypesExcluded, plus read-only images that are always 100% full by design).
PSEUDO_FS = frozenset("""
    autofs binfmt_misc bpf cgroup cgroup2 configfs debugfs devpts devtmpfs efivarfs fusectl hugetlbfs
    mqueue nsfs proc procfs pstore rpc_pipefs securityfs selinuxfs sysfs tracefs ramfs nfsd
    squashfs iso9660 erofs cramfs fuse.lxcfs fuse.gvfsd-fuse fuse.portal fuse.snapfuse rootfs
""".split())
# Mounts below these belong to the kernel or the runtime. tmpfs elsewhere (/tmp, /run, /dev/shm,
# /run/user/N, a user's scratch tmpfs) is kept: when it fills, writers fail exactly as on a disk.
PSEUDO_PREFIXES = ("/proc", "/sys", "/dev")
KEEP_UNDER_PSEUDO = ("/dev/shm",)
# ext4/xfs & co: a superblock flipped to ro on a live host means errors=remount-ro fired.
DATA_FS = frozenset("ext2 ext3 ext4 xfs btrfs f2fs jfs reiserfs zfs bcachefs".split())
TTF_WARN_MIN_USED_PCT = 60   # node-mixin NodeFilesystemSpaceFillingUp: < 40% avail and 24 h
TTF_CRIT_MIN_USED_PCT = 80   # < 20% avail and 4 h
MIN_GROWTH_BYTES = 1 << 20   # less than 1 MiB of growth in the window is noise, not a trend
MIN_GROWTH_INODES = 64       # fewer new files than this in the window is noise
# Writers: /proc/PID/io wchar over the window, from the process scan (its baseline and its end
# pass); a few top ones get their open files (fd + fdinfo flags) resolved to a filesystem.
WRITERS_RESOLVED = 5
WRITER_FDS_MAX = 256
MIN_WRITER_BPS = 1 << 20
WRITER_MIN_SHARE = 0.25      # of the filesystem's growth, for a process to be named its writer
_ACCMODE = 0o3                 # O_WRONLY 1, O_RDWR 2
DELETED_INFO_BYTES = 10 << 20
DELETED_STAT_MAX = 64        # stat() only the largest deleted files to find their filesystem
TOP = 5
MAX_FS_SHOWN = 15


# ---------------------------------------------------------------- parsers (pure)

def _unescape(s: str) -> str:
    """mountinfo/fstab escape space, tab, newline and backslash as \\040 \\011 \\012 \\134."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), s)


def parse_mountinfo(text: str) -> list[dict]:
    """/proc/PID/mountinfo (proc(5)) -> [{'id', 'dev': '8:1', 'root', 'mount', 'opts', 'fstype',
    'source', 'super_opts'}]; malformed lines are skipped."""
    out = []
    for line in text.splitlines():
        left, sep, right = line.partition(" - ")
        if not sep:
            continue
        a, b = left.split(), right.split()
        if len(a) < 6 or len(b) < 2:
            continue
        out.append({
            "id": a[0], "dev": a[2], "root": _unescape(a[3]), "mount": _unescape(a[4]),
            "opts": a[5].split(","), "fstype": b[0], "source": _unescape(b[1]),
            "super_opts": b[2].split(",") if len(b) > 2 else [],
        })
    return out


def parse_fstab(text: str) -> dict[str, dict]:
    """/etc/fstab -> {mount point: {'spec', 'fstype', 'opts', 'ro'}}; comments, swap and
    malformed lines skipped; the last entry for a mount point wins, as mount -a does."""
    out: dict[str, dict] = {}
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        parts = line.split()
        if len(parts) < 3 or parts[2] == "swap" or not parts[1].startswith("/"):
            continue
        opts = parts[3].split(",") if len(parts) > 3 else ["defaults"]
        mp = _unescape(parts[1])
        mp = mp.rstrip("/") or "/"
        out[mp] = {"spec": _unescape(parts[0]), "fstype": parts[2], "opts": opts, "ro": "ro" in opts}
    return out


def is_real(m: dict) -> bool:
    """A filesystem that can hold user data: not a pseudo fs, not below /proc, /sys, /dev (but /dev/shm)."""
    if m["fstype"] in PSEUDO_FS:
        return False
    mp = m["mount"]
    if any(mp == p or mp.startswith(p + "/") for p in KEEP_UNDER_PSEUDO):
        return True
    return not any(mp == p or mp.startswith(p + "/") for p in PSEUDO_PREFIXES)


def trend(ts: list[float], vs: list[float]) -> float | None:
    """Least-squares growth in units/s if the series rises steadily, else None.

    Steady: >= 3 points, >= MIN_GROWTH_BYTES risen, rising in >= 2/3 of the intervals, no
    fall bigger than 5% of the rise, and a linear fit with R^2 >= 0.8. A temp file written and
    deleted, or one burst, is not a trend."""
    pts = [(t, v) for t, v in zip(ts, vs) if v is not None]
    if len(pts) < 3:
        return None
    rise = pts[-1][1] - pts[0][1]
    if rise < MIN_GROWTH_BYTES:
        return None
    steps = [b[1] - a[1] for a, b in zip(pts, pts[1:])]
    if sum(s > 0 for s in steps) * 3 < len(steps) * 2 or min(steps) < -0.05 * rise:
        return None
    n = len(pts)
    mt = sum(t for t, _ in pts) / n
    mv = sum(v for _, v in pts) / n
    sxx = sum((t - mt) ** 2 for t, _ in pts)
    sxy = sum((t - mt) * (v - mv) for t, v in pts)
    syy = sum((v - mv) ** 2 for _, v in pts)
    if sxx <= 0 or syy <= 0:
        return None
    slope = sxy / sxx
    r2 = sxy * sxy / (sxx * syy)
    return slope if slope > 0 and r2 >= 0.8 else None


def usage(st) -> dict:
    """statvfs result -> df's numbers (df -P / df -iP); inode fields None where the fs has none (btrfs)."""
    size = st.f_blocks * st.f_frsize
    free = st.f_bfree * st.f_frsize
    avail = st.f_bavail * st.f_frsize
    used = size - free
    # Key order is column order in the rendered table: what a responder reads first.
    out = {
        # df rounds Use% up; keep one decimal instead so 90.0 is not shown as 91
        "used_pct": round(used / (used + avail) * 100, 1) if used + avail > 0 else None,
        "avail_bytes": avail, "size_bytes": size, "inodes_used_pct": None,
        "used_bytes": used, "inodes_used": None, "inodes_total": None}
    if st.f_files > 0:
        iused = st.f_files - st.f_ffree
        out.update(inodes_total=st.f_files, inodes_used=iused,
                   inodes_used_pct=round(iused / st.f_files * 100, 1))
    return out


# ---------------------------------------------------------------- sampling

def probe(path: str, timeout_s: float) -> tuple[os.statvfs_result, str | None]:
    """statvfs of path and its device 'MAJ:MIN', in the prober child (hung: TimeoutError).
    A module attribute: fixture-tree tests substitute a table (and None for the device)."""
    return isolate.fsinfo(path, timeout_s)


def _label(mount: str) -> str:
    # Series keys are 'metric[k=v,k=v]': keep ',', '=', ']' and '%' out of label values.
    return quote(mount, safe="/ :@+-._~")


def _mountinfo(ctx, state) -> str:
    """The host's mount table. Under a live --proc-root (/host/proc), self/ is hostdiag's own (a
    container's) mount namespace, so read PID 1's like node_exporter does, falling back to self/
    and saying so. A copied tree without pid directories has only its own self/mountinfo."""
    if os.path.normpath(ctx.proc) != "/proc" and os.path.isdir(ctx.proc_path("1")):
        text = ctx.read_optional(ctx.proc_path("1", "mountinfo"))
        if text:
            return text
        state["notes"].append(f"{ctx.proc_path('1', 'mountinfo')} not readable: mounts are those of "
                              "hostdiag's own mount namespace (self/mountinfo)")
    return ctx.read_proc("self/mountinfo")


def _load_mounts(ctx, state) -> None:
    if "mounts" in state:
        return
    state.setdefault("notes", [])
    mounts = parse_mountinfo(_mountinfo(ctx, state))
    # A mount stacked on the same mount point hides the one below (only the last is reachable
    # by path, so statvfs of the path would measure it twice).
    visible = {m["mount"]: m for m in mounts}
    real = [m for m in mounts if is_real(m) and visible[m["mount"]] is m]
    # One row per filesystem: bind mounts share the superblock (same dev). Prefer the mount of
    # the filesystem's own root, then the shortest path (the original, not a container bind).
    by_dev: dict[str, dict] = {}
    for m in real:
        cur = by_dev.get(m["dev"])
        key = (m["root"] != "/", len(m["mount"]))
        if cur is None or key < (cur["root"] != "/", len(cur["mount"])):
            by_dev[m["dev"]] = m
    state["mounts"] = real
    state["fs"] = list(by_dev.values())
    state.setdefault("stat", {})
    state.setdefault("stuck", {})
    state.setdefault("errors", {})
    state.setdefault("other_dev", {})


def _bound(ctx) -> float:
    return max(0.05, ctx.timeout_s / 4)


def sample(ctx, state):
    _load_mounts(ctx, state)
    per_call = _bound(ctx)
    # The runner bounds the whole sample() at ctx.timeout_s; stop starting statvfs calls
    # well before that so several hung mounts cost this tick at most ~60% of it.
    budget_end = time.monotonic() + ctx.timeout_s * 0.6
    out = {}
    for m in state["fs"]:
        mp = m["mount"]
        if mp in state["stuck"] or mp in state["other_dev"]:
            continue  # hung once: never again this run (node_exporter stuckMounts)
        if time.monotonic() + per_call > budget_end:
            break
        try:
            st, dev = probe(ctx.root_path(mp), per_call)
        except TimeoutError:
            state["stuck"][mp] = per_call
            continue
        except OSError as e:  # ENOTCONN (dead FUSE), ESTALE (NFS), EACCES
            state["errors"][mp] = f"{type(e).__name__}: {e.strerror or e}"
            continue
        if dev is not None and dev != m["dev"]:
            # The path is not that filesystem (a tree copied off another host, a mount not
            # propagated into this container): its statvfs would describe some other disk.
            state["other_dev"][mp] = dev
            continue
        state["stat"][mp] = usage(st)
        out[f"used_bytes[mount={_label(mp)}]"] = state["stat"][mp]["used_bytes"]
        if state["stat"][mp]["inodes_used"] is not None:
            out[f"inodes_used[mount={_label(mp)}]"] = state["stat"][mp]["inodes_used"]
    return out


# ---------------------------------------------------------------- collect

def _fs_rows(job) -> list[dict]:
    state = job.state
    series = {unquote(k): s for k, s in job.labelled("used_bytes").items()}
    iseries = {unquote(k): s for k, s in job.labelled("inodes_used").items()}
    rows = []
    for m in state["fs"]:
        mp = m["mount"]
        u = state["stat"].get(mp)
        if u is None:
            continue
        row = {"mount": mp, **u, "growth_bps": None, "time_to_full_s": None,
               "fstype": m["fstype"], "source": m["source"], "ro": "ro" in m["opts"]}
        # usage() order puts used_pct..inodes_used_pct first; growth/ttf belong right after them
        row = {k: row[k] for k in ("mount", "used_pct", "avail_bytes", "size_bytes", "inodes_used_pct",
                                   "growth_bps", "time_to_full_s", "fstype", "source", "ro", "used_bytes",
                                   "inodes_used", "inodes_total")}
        row.update(limit_fraction=round(u["used_pct"] / 100, 4) if u["used_pct"] is not None else None,
                   measured_s=None, inodes_per_s=None, inodes_eta_s=None)
        s = series.get(mp)
        if s is not None and job.window_s > 0 and trend(s.t, s.v) is not None:   # steady, linear (R^2)
            e = eta.time_to_limit(s, u["used_bytes"] + u["avail_bytes"], current=u["used_bytes"],
                                  min_change=MIN_GROWTH_BYTES)
            if e.rate_per_s:
                row["growth_bps"] = round(e.rate_per_s)
                row["measured_s"] = round(e.measured_s, 1)
                row["time_to_full_s"] = None if e.eta_s is None else round(e.eta_s)
        s = iseries.get(mp)
        if s is not None and job.window_s > 0 and u["inodes_total"]:
            e = eta.time_to_limit(s, u["inodes_total"], current=u["inodes_used"], min_change=MIN_GROWTH_INODES)
            if e.rate_per_s and e.rate_per_s > 0:
                row["inodes_per_s"] = round(e.rate_per_s, 1)
                row["inodes_eta_s"] = None if e.eta_s is None else round(e.eta_s)
        rows.append(row)
    return rows


def _errors_count(ctx, m: dict) -> int | None:
    """ext2/3/4 count filesystem errors in /sys/fs/ext4/<dev>/errors_count (kernel >= 3.6)."""
    if not m["fstype"].startswith("ext"):
        return None
    try:
        dev = os.path.basename(os.readlink(ctx.sys_path("dev", "block", m["dev"])))
    except OSError:
        return None
    text = ctx.read_optional(ctx.sys_path("fs", m["fstype"], dev, "errors_count"), limit=64)
    try:
        return int(text) if text else None
    except ValueError:
        return None


def _readonly(ctx, mounts: list[dict], fstab: dict[str, dict]) -> list[dict]:
    """Mounts read-only that should not be: fstab says rw, or a data filesystem's superblock
    went ro (errors=remount-ro). A ro bind mount of a rw superblock with no fstab entry is
    deliberate sandboxing (systemd ProtectSystem, container volumes) and is not reported."""
    out = []
    for m in mounts:
        if "ro" not in m["opts"]:
            continue
        entry = fstab.get(m["mount"])
        if entry and entry["ro"]:
            continue
        super_ro = "ro" in m["super_opts"]
        fstab_rw = entry is not None and not entry["ro"]
        if not fstab_rw and not (super_ro and m["fstype"] in DATA_FS):
            continue
        errors = _errors_count(ctx, m)
        why = ("fstab says rw" if fstab_rw else "the filesystem itself is read-only")
        if "errors=remount-ro" in m["super_opts"] and super_ro:
            why += " (errors=remount-ro is set: an I/O or metadata error probably flipped it)"
        out.append({"mount": m["mount"], "fstype": m["fstype"], "source": m["source"],
                    "super_ro": super_ro, "fstab_rw": fstab_rw, "errors_count": errors, "why": why})
    return out


def _mount_of(path: str, mounts: list[dict]) -> dict | None:
    best = None
    for m in mounts:
        mp = m["mount"]
        if path == mp or path.startswith(mp.rstrip("/") + "/"):
            if best is None or len(mp) > len(best["mount"]):
                best = m
    return best


def written_mounts(ctx, pid: int, mounts: list[dict]) -> dict[str, int]:
    """{filesystem dev: files open for writing there} from /proc/PID/fd (paths, so pipes, sockets
    and devices are skipped) and fdinfo flags; a bind mount counts for its filesystem."""
    out: dict[str, int] = {}
    fd_dir = ctx.proc_path(pid, "fd")
    try:
        fds = os.listdir(fd_dir)[:WRITER_FDS_MAX]
    except OSError:
        return out
    for fd in fds:
        try:
            target = os.readlink(os.path.join(fd_dir, fd))
            if not target.startswith("/") or target.startswith(("/dev/", "/proc/", "/sys/")):
                continue     # pipes, sockets, ttys: wchar counts them too, they fill no filesystem
            with open(ctx.proc_path(pid, "fdinfo", fd), "rb") as f:
                info = f.read(4096).decode("ascii", "replace")
        except OSError:
            continue
        flags = next((ln.split()[1] for ln in info.splitlines() if ln.startswith("flags:")), None)
        if flags is None or not int(flags, 8) & _ACCMODE:
            continue
        m = _mount_of(target.removesuffix(" (deleted)"), mounts)
        if m is not None:
            out[m["dev"]] = out.get(m["dev"], 0) + 1
    return out


def _writers(job, rows: list[dict]) -> list[dict] | None:
    """Processes writing fast into a filesystem: rate, mount, and the time to full at that rate."""
    state, ctx, scan = job.state, job.ctx, job.scan
    # wchar rates come from the shared process scan (its baseline at the start of the window and
    # its pass at the end read /proc/PID/io anyway): no pass of our own over every pid.
    dt = getattr(scan, "rates_s", None)
    if job.window_s <= 0 or not dt:
        return None
    t1 = time.monotonic()
    t0 = t1 - dt
    rates = sorted(((p, p.wchar_bps) for p in scan.procs.values()
                    if p.wchar_bps is not None and not getattr(p, "is_self", False)),   # not hostdiag
                   key=lambda x: x[1], reverse=True)
    dev_of = {m["mount"]: m["dev"] for m in state["fs"]}
    by_dev = {dev_of[r["mount"]]: r for r in rows if r["mount"] in dev_of}
    out = []
    for proc, bps in rates[:WRITERS_RESOLVED]:
        if bps < MIN_WRITER_BPS or job.deadline.expired():
            break
        pid = proc.pid
        where = written_mounts(ctx, pid, state["mounts"])
        fs = [(by_dev[dev], n) for dev, n in where.items() if dev in by_dev and not by_dev[dev].get("ro")]
        if not fs:
            continue
        # Several filesystems: the one growing fastest is where the bytes land.
        row, nfiles = max(fs, key=lambda rn: (rn[0].get("growth_bps") or 0, rn[1]))
        # wchar counts every write() (pipes and sockets too): it is this filesystem's bytes only as
        # far as the filesystem grows, and the process is its writer only if it writes a real part
        # of that. Without growth (rewrites in place, or writes elsewhere) only bytes that reached
        # storage (/proc/PID/io write_bytes) count, and there is no time to full.
        grow = row.get("growth_bps")
        storage = getattr(proc, "write_bps", None)
        if grow and bps >= WRITER_MIN_SHARE * grow:
            rate = min(bps, grow)
            e = eta.time_to_limit([(t0, 0.0), (t1, rate * dt)], rate * dt + row["avail_bytes"], min_points=2)
        elif storage and storage >= MIN_WRITER_BPS:
            rate, e = storage, eta.NONE
        else:
            continue
        out.append({"pid": pid, "name": proc.name, "mount": row["mount"],
                    "write_bps": round(rate), "wchar_bps": round(bps), "files_open_for_writing": nfiles,
                    "avail_bytes": row["avail_bytes"], "size_bytes": row["size_bytes"],
                    "used_pct": row["used_pct"], **e.evidence(0),
                    "limit_fraction": row.get("limit_fraction"),
                    "cmdline": scan.cmdline(pid)})
    return out


def _deleted(job, fs_rows: list[dict]) -> list[dict] | None:
    scan = job.scan
    if scan is None or not scan.fds_scanned:
        return None
    state = job.state
    by_dev = {m["dev"]: m for m in state["fs"]}
    size_of = {r["mount"]: r["size_bytes"] for r in fs_rows}
    groups: dict[tuple[int, str], dict] = {}
    entries = sorted(scan.deleted_open, key=lambda e: e.size_bytes, reverse=True)
    for i, e in enumerate(entries):
        if job.deadline.expired():
            break
        fs = None
        if i < DELETED_STAT_MAX:
            try:
                # stat follows the fd to the file: on a hung FUSE/NFS mount only the prober may wait
                st_dev = isolate.stat(job.ctx.proc_path(e.pid, "fd", e.fd), _bound(job.ctx))[1]
                fs = by_dev.get(f"{os.major(st_dev)}:{os.minor(st_dev)}")
                if fs is None:
                    continue  # memfd, SysV shm, a pseudo fs: memory, not disk space
            except (OSError, TimeoutError):
                fs = None
        if fs is None:
            if e.path.startswith(("/memfd:", "/SYSV", "/dev/zero", "/[")):
                continue
            m = _mount_of(e.path, state["mounts"])
            fs = by_dev.get(m["dev"]) if m else None
            if fs is None:
                continue
        g = groups.setdefault((e.pid, fs["mount"]), {"pid": e.pid, "mount": fs["mount"], "held_bytes": 0,
                                                     "files": 0, "paths": [], "fds": []})
        g["held_bytes"] += e.size_bytes
        g["files"] += 1
        if len(g["paths"]) < 3:
            g["paths"].append(e.path)
            g["fds"].append(e.fd)
    rows = sorted(groups.values(), key=lambda g: g["held_bytes"], reverse=True)
    for g in rows:
        proc = scan.procs.get(g["pid"])
        g["name"] = proc.name if proc else "?"
        size = size_of.get(g["mount"])
        g["held_pct"] = round(g["held_bytes"] / size * 100, 2) if size else None
    return rows


def collect(job):
    ctx, state = job.ctx, job.state
    _load_mounts(ctx, state)
    if not (state["stat"] or state["stuck"] or state["errors"] or state["other_dev"]) and state["fs"]:
        sample(ctx, state)  # collect() called without a sampling pass (tests, replays)
    data: dict = {"window_s": job.window_s}

    rows = _fs_rows(job)
    for mp, bound in state["stuck"].items():
        job.blind_spot(f"statvfs {mp} did not return within {bound:g}s (hung NFS/FUSE server?): "
                       "its size and inodes are unknown; skipped for the rest of the run")
    for mp, err in state["errors"].items():
        job.blind_spot(f"statvfs {mp} failed: {err}: its size and inodes are unknown")
    for mp, dev in state["other_dev"].items():
        want = next((m["dev"] for m in state["fs"] if m["mount"] == mp), "?")
        job.blind_spot(f"{ctx.root_path(mp)} is on device {dev}, not the mount's {want}: size of {mp} "
                       "not reported (tree copied from another host, or mount not visible here)")
    for note in state["notes"]:
        job.blind_spot(note)
    measured = set(state["stat"]) | set(state["stuck"]) | set(state["errors"]) | set(state["other_dev"])
    unmeasured = [m["mount"] for m in state["fs"] if m["mount"] not in measured]
    if unmeasured:
        job.blind_spot(f"{len(unmeasured)} mounts not measured within the time bound (after hung ones): "
                       + ", ".join(unmeasured[:5]))
    rows.sort(key=lambda r: max(r["used_pct"] or 0, r["inodes_used_pct"] or 0), reverse=True)
    data["filesystems"] = rows[:MAX_FS_SHOWN]
    if len(rows) > MAX_FS_SHOWN:
        data["filesystems_not_shown"] = len(rows) - MAX_FS_SHOWN
    data["stuck_mounts"] = sorted(state["stuck"]) or None

    data["writers"] = _writers(job, rows)

    fstab_text = ctx.read_optional(ctx.root_path("/etc/fstab"))
    fstab = parse_fstab(fstab_text) if fstab_text else {}
    data["readonly"] = _readonly(ctx, state["mounts"], fstab)

    deleted = _deleted(job, rows)
    if deleted is None:
        data["deleted_open"] = None
        if job.scan is not None:
            job.blind_spot("process fd tables were not scanned: deleted-but-open files unknown")
    else:
        data["deleted_open_bytes"] = sum(g["held_bytes"] for g in deleted)
        data["deleted_open"] = deleted[:TOP * 2]
        unreadable = job.scan.fd_unreadable
        if unreadable and os.geteuid() != 0:
            job.blind_spot(f"/proc/PID/fd of {unreadable} processes not readable: run as root to see "
                           "space held by their deleted-but-open files")
        elif unreadable > max(1, len(job.scan.procs) // 10):
            job.blind_spot(f"/proc/PID/fd of {unreadable} processes not readable even as root: "
                           "grant CAP_SYS_PTRACE or run in the host's namespaces")
    return data


# ---------------------------------------------------------------- findings

def _ttf_level(row: dict, th) -> str | None:
    """Time to full: within the imminence threshold (disk.eta_s) whatever the used %; further out
    (disk.time_to_full_s, hours) only once the filesystem is already well used."""
    ttf, used = row.get("time_to_full_s"), row.get("used_pct") or 0
    level = th.level("disk.time_to_full_s", ttf)
    if level == "critical" and used < TTF_CRIT_MIN_USED_PCT:
        level = "warning"
    if level == "warning" and used < TTF_WARN_MIN_USED_PCT:
        level = None
    return worst_severity((level, th.level("disk.eta_s", ttf)))


def _full_options(d: dict, fs: dict, writer: dict | None, ttf) -> list[str]:
    """A filling filesystem's options, the likeliest first: the headline's Action is the first.
    The deleted-but-open check goes when the fd scan found none (it would print nothing); a
    filesystem filling now puts its writer first. A tmpfs is memory: package caches and
    container images are not on it."""
    who = f" ({writer['name']}, pid {writer['pid']})" if writer else ""
    stop = f"If one writer is growing it fast, throttle or stop that writer{who}"
    free = ("Remove what is safe to lose from this tmpfs (it is RAM; only files under it free it): "
            "stale temp files, /dev/shm segments of dead processes"
            if fs.get("fstype") == "tmpfs" else
            "Free space that is safe to lose: rotated/compressed logs, package caches "
            "(apt-get clean), old core dumps, container images (docker system prune)")
    opts = ["Check deleted-but-open files first (disk.deleted_open_space): lsof -nP +L1",
            free,
            stop,
            "Extend the volume/filesystem if the platform allows it online",
            "Do not delete files a process still holds open (the space is not freed), "
            "and do not rm database or journal files to make room"]
    if d.get("deleted_open_bytes") == 0:
        opts.pop(0)
    if ttf is not None or writer:
        opts.remove(stop)
        opts.insert(0, stop)
    return opts


def findings(section, th):
    d = section.data
    out: list[Finding] = []
    nearly_full: dict[str, str] = {}
    for r in d.get("filesystems") or []:
        mp = r["mount"]
        if r.get("ro"):
            continue  # nothing can write to it; squashfs-like images are full by design
        level = worst_severity((th.level("disk.used_pct", r.get("used_pct")), _ttf_level(r, th)))
        if level:
            nearly_full[mp] = level
            ttf = r.get("time_to_full_s")
            ttf_txt = ("" if ttf is None else f", written at {human_bytes(r['growth_bps'])}/s until full" if ttf < 1
                       else f", full in ~{human_duration(ttf)} at {human_bytes(r['growth_bps'])}/s")
            writer = next((w for w in d.get("writers") or [] if w["mount"] == mp), None)
            if writer:
                ttf_txt += f"; writer: {writer['name']} (pid {writer['pid']}) {human_bytes(writer['write_bps'])}/s"
            out.append(Finding(
                id="disk.nearly_full", category="disk", severity=level,
                title=f"{mp} is {r['used_pct']}% full ({human_bytes(r['avail_bytes'])} free of "
                      f"{human_bytes(r['size_bytes'])}){ttf_txt}",
                subject={"mount": mp},
                evidence={**{k: r.get(k) for k in ("used_pct", "size_bytes", "used_bytes", "avail_bytes",
                                                   "growth_bps", "time_to_full_s", "fstype", "source",
                                                   "limit_fraction", "measured_s")},
                          "eta_s": ttf, "rate_per_s": r.get("growth_bps"), "limit": "free space (non-root)",
                          "writer": writer},
                impact="writes fail with ENOSPC when it fills: databases stop, logs are lost, services crash",
                verify=f"{shell.cmd('df', '-h', mp)}; {shell.cmd('du', '-xh', '--max-depth=2', mp)} 2>/dev/null "
                       "| sort -h | tail -20",
                stabilize=_full_options(d, r, writer, ttf),
                score=max(r.get("used_pct") or 0, 100 - min(100, (ttf or 1e9) / 3600))))
        ieta = r.get("inodes_eta_s")
        l_ieta = th.level("disk.eta_s", ieta) if not r.get("ro") else None
        ilevel = worst_severity((th.level("disk.inodes_used_pct", r.get("inodes_used_pct")), l_ieta))
        if ilevel:
            soon = (f"; no inode left in {eta.in_words(ieta)} at this rate (+{r['inodes_per_s']:g} files/s)"
                    if l_ieta else "")
            out.append(Finding(
                id="disk.inodes_exhausted", category="disk", severity=ilevel,
                title=f"{mp} has used {r['inodes_used_pct']}% of its inodes "
                      f"({r['inodes_total'] - r['inodes_used']} left of {r['inodes_total']}){soon}",
                subject={"mount": mp},
                evidence={**{k: r.get(k) for k in ("inodes_used_pct", "inodes_used", "inodes_total", "used_pct",
                                                   "fstype", "inodes_per_s", "measured_s")},
                          "eta_s": ieta, "rate_per_s": r.get("inodes_per_s"), "limit": "inodes",
                          "limit_fraction": round((r.get("inodes_used_pct") or 0) / 100, 4)},
                impact="no new file can be created even though space is free: ENOSPC on create",
                verify=f"{shell.cmd('df', '-i', mp)}; {shell.cmd('find', mp, '-xdev', '-type', 'd', '-size', '+1M')} "
                       "2>/dev/null | head   # huge dirs",
                stabilize=["Find the directory with millions of small files (session files, mail queue, "
                           f"cache shards): for d in {shell.quote(mp.rstrip('/') + '/')}*; do echo "
                           '"$(find "$d" -xdev | wc -l) $d"; done | sort -n',
                           "Remove or archive the small files that are safe to lose",
                           "Do not delete them with rm * in one huge directory (argument list too long, "
                           "and it can hang for hours): use find -delete in batches"],
                score=(r["inodes_used_pct"] or 0) + (1e6 / max(ieta, 1.0) if l_ieta else 0)))

    for w in d.get("writers") or []:
        l_eta = th.level("disk.eta_s", w.get("eta_s"))
        level = worst_severity((th.level("disk.writer_bps", w["write_bps"]), l_eta))
        if not level:
            continue
        mp, pid = w["mount"], w["pid"]
        soon = f"; {mp} full in {eta.in_words(w['eta_s'])} at this rate" if w.get("eta_s") is not None else ""
        out.append(Finding(
            id="disk.write_burst", category="disk", severity=level,
            title=f"{w['name']} (pid {pid}) writing {human_bytes(w['write_bps'])}/s to {mp} "
                  f"({human_bytes(w['avail_bytes'])} free){soon}",
            subject={"pid": pid, "name": w["name"], "mount": mp},
            evidence={**{k: w.get(k) for k in ("write_bps", "avail_bytes", "size_bytes", "used_pct", "eta_s",
                                               "rate_per_s", "measured_s", "limit_fraction",
                                               "files_open_for_writing", "cmdline")},
                      "limit": f"free space on {mp}"},
            impact="the filesystem fills at this rate: then every writer on it gets ENOSPC",
            verify=f"grep -E 'wchar|write_bytes' /proc/{pid}/io; sleep 1; grep -E 'wchar|write_bytes' "
                   f"/proc/{pid}/io; ls -l /proc/{pid}/fd | grep -F {shell.quote(mp)}; {shell.cmd('df', '-h', mp)}",
            stabilize=[f"Throttle or pause the writer (ionice -c3 -p {pid}; or stop the job) before {mp} fills",
                       "Free or extend space on the filesystem if the writes are legitimate",
                       "Do not delete the file it is writing while it holds it open: the space is not freed"],
            score=w["write_bps"] / (1 << 20) + (1e6 / max(w["eta_s"], 1.0) if l_eta else 0)))

    for r in d.get("readonly") or []:
        severity = "critical" if (r.get("fstab_rw") or r.get("errors_count") or r["mount"] == "/") else "warning"
        errs = f", {r['errors_count']} filesystem errors recorded" if r.get("errors_count") else ""
        out.append(Finding(
            id="disk.readonly_remount", category="disk", severity=severity,
            title=f"{r['mount']} ({r['fstype']}) is mounted read-only: {r['why']}{errs}",
            subject={"mount": r["mount"]},
            evidence={k: r.get(k) for k in ("fstype", "source", "super_ro", "fstab_rw", "errors_count")},
            impact="every write to it fails with EROFS: services that log, spool or store data there fail",
            verify=f"{shell.cmd('findmnt', r['mount'])}; dmesg | grep -iE 'remount|I/O error|EXT4-fs error|XFS' | tail",
            stabilize=["Read dmesg for the error that caused it before anything else (a failing disk or a "
                       "storage path going away)",
                       "Move writers off this filesystem or fail over the service to a healthy host",
                       "Plan an fsck/xfs_repair in a maintenance window, after a backup",
                       "Do not mount -o remount,rw before understanding the error: writing to a damaged "
                       "filesystem can destroy the data that is still readable"],
            score=float(r.get("errors_count") or 0)))

    for g in d.get("deleted_open") or []:
        held, pct = g["held_bytes"], g.get("held_pct")
        level = th.level("disk.deleted_open_pct", pct)
        if level is None and nearly_full.get(g["mount"]) and pct is not None and pct >= 1:
            level = "warning"  # freeing it is the quickest fix for the full filesystem
        if level is None:
            if held < DELETED_INFO_BYTES:
                continue
            level = "info"
        pid, fd = g["pid"], (g.get("fds") or ["N"])[0]
        pct_txt = f" ({pct}% of it)" if pct is not None else ""
        out.append(Finding(
            id="disk.deleted_open_space", category="disk", severity=level,
            title=f"{g['name']} (pid {pid}) holds {human_bytes(held)} of deleted files open on "
                  f"{g['mount']}{pct_txt}",
            subject={"pid": pid, "name": g["name"], "mount": g["mount"]},
            evidence={"held_bytes": held, "held_pct": pct, "files": g["files"], "paths": g["paths"],
                      "fds": g["fds"]},
            impact="the space stays used until the process closes the file: df shows full, du does not",
            verify=f"ls -l /proc/{pid}/fd | grep '(deleted)'   # or: lsof -nP +L1 -p {pid}",
            stabilize=[f"Truncate the deleted file in place to free the space now: : > /proc/{pid}/fd/{fd}",
                       "Make the holder reopen its files (reload / logrotate postrotate signal) or restart it "
                       "at a quiet moment",
                       "Do not delete the log file the process still holds open; truncate it via "
                       "/proc/PID/fd/N or restart the holder instead"],
            score=float(pct if pct is not None else held / (1 << 30))))
    return out

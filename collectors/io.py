"""io: per-device throughput, IOPS, %util and await as `iostat -x` computes them, PSI io,
D-state processes, top I/O processes. Reads /proc/diskstats, /sys/block, /proc/pressure/io,
/proc/PID/wchan; root needed for per-process I/O (/proc/PID/io) and other users' wchan."""
from __future__ import annotations

import os
import re
from collections import Counter

from hostdiag.core import shell, tree
from hostdiag.core.context import Unavailable
from hostdiag.core.model import Finding
from hostdiag.core.procfs import read_psi
from hostdiag.core.thresholds import Threshold

NAME = "io"
DEFAULT_ENABLED = True
NEEDS = {"procs"}
READS = ["/proc/diskstats", "/sys/block/*", "/sys/block/dm-*/dm/name", "/proc/pressure/io",
         "/proc/PID/io (via the process scan)", "/proc/PID/wchan"]

# /proc/diskstats columns after "major minor name" (Documentation/admin-guide/iostats.rst).
# 11 stats since 2.6.25 (14 fields), +4 discard stats in 4.18 (18), +2 flush stats in 5.5 (20).
STATS = ("reads", "reads_merged", "read_sectors", "read_ms", "writes", "writes_merged",
         "write_sectors", "write_ms", "in_flight", "io_ms", "queue_ms",
         "discards", "discards_merged", "discard_sectors", "discard_ms", "flushes", "flush_ms")
# Kernels before 2.6.25 printed partitions with only 4 stats (7 fields).
OLD_PARTITION_STATS = ("reads", "read_sectors", "writes", "write_sectors")
SECTOR = 512  # diskstats sectors are always 512 bytes, whatever the device's block size

UNITS = {
    "reads": ("count", True), "writes": ("count", True),
    "read_bytes": ("bytes", True), "write_bytes": ("bytes", True),
    "read_time_s": ("seconds", True), "write_time_s": ("seconds", True),
    "io_time_s": ("seconds", True), "queue_time_s": ("seconds", True),
    "in_flight": ("count", False),
    "psi_some_avg10": ("percent", False), "psi_full_avg10": ("percent", False),
}
THRESHOLDS = {
    "io.util_pct": Threshold(90, 99, "percent",
                             "device busy time over the window (iostat %util); on SSD/NVMe/virtio 100% "
                             "means 'always something in flight', not necessarily saturated"),
    "io.await_ms": Threshold(100, 500, "ms",
                             "average time an I/O took (queue + service) over the window, worse of "
                             f"r_await/w_await; only judged with at least {10} completed I/Os"),
    "io.d_state": Threshold(5, 20, "count", "processes in uninterruptible sleep (D state) at the end of the window"),
    "io.psi_full_avg10": Threshold(10, 40, "percent",
                                   "PSI io full avg10: share of time all non-idle tasks were stalled on I/O"),
}
AWAIT_MIN_IOS = 10   # fewer completed I/Os than this in the window: one slow fsync is not saturation
TOP = 5
D_TOP = 10
# Devices named like partitions, for when /sys/block cannot be listed.
_PARTITION_RE = re.compile(r"^(?:(?:[shv]|xv)d[a-z]+\d+|(?:nvme\d+n\d+|mmcblk\d+|nbd\d+|loop\d+|md\d+)p\d+)$")


def parse_diskstats(text: str) -> dict[str, dict[str, int]]:
    """/proc/diskstats -> {'sda': {'reads': n, ..., 'read_ms': n, ...}}, any of the 7/14/18/20-field
    formats; stats a kernel does not have are absent (not 0). Malformed lines are skipped."""
    out: dict[str, dict[str, int]] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) < 7:
            continue
        try:
            values = [int(x) for x in parts[3:]]
        except ValueError:
            continue
        names = OLD_PARTITION_STATS if len(values) == 4 else STATS
        out[parts[2]] = dict(zip(names, values))
    return out


def _sys_block(ctx) -> set[str] | None:
    """Whole-disk names from /sys/block ('cciss!c0d0' is 'cciss/c0d0'); None if unlistable."""
    try:
        return {n.replace("!", "/") for n in os.listdir(ctx.sys_path("block"))}
    except OSError:
        return None


def is_whole_disk(name: str, sys_block: set[str] | None) -> bool:
    """Whole disks and device-mapper/md devices, not partitions (their I/O is in the disk's).
    A name /sys/block does not list is a whole disk unless it looks like a partition of one
    it does (sda1, nvme0n1p2) or like a partition at all: a tree whose /sys lacks a disk
    that /proc/diskstats has must not lose the disk (not_in_sys_block() names them)."""
    if sys_block is not None and name in sys_block:
        return True
    if sys_block is not None and any(name.startswith(d) and re.fullmatch(r"p?\d+", name[len(d):])
                                     for d in sys_block):
        return False
    return _PARTITION_RE.match(name) is None


def not_in_sys_block(names, sys_block: set[str] | None) -> list[str]:
    """Whole disks of /proc/diskstats that /sys/block does not list (a partial /sys)."""
    if sys_block is None:
        return []
    return sorted(n for n in names if n not in sys_block and is_whole_disk(n, sys_block))


def _has_io(st: dict[str, int]) -> bool:
    return any(st.get(k) for k in ("reads", "writes", "discards", "flushes", "in_flight"))


def sample(ctx, state):
    # diskstats missing still leaves PSI and D-state processes: collect() names the blind spot.
    text = ctx.read_optional(ctx.proc_path("diskstats"))
    stats = parse_diskstats(text or "")
    if "sys_block" not in state:
        state["sys_block"] = _sys_block(ctx)
    if text is not None:
        state["diskstats_seen"] = set(stats)
    out: dict[str, float] = {}
    for dev, st in stats.items():
        # Idle ram/loop/zram (and any never-used device) carry no information.
        if not is_whole_disk(dev, state["sys_block"]) or not _has_io(st):
            continue
        lab = f"[device={dev}]"
        if "reads" in st:
            out["reads" + lab] = st["reads"]
            out["read_bytes" + lab] = st["read_sectors"] * SECTOR
            out["writes" + lab] = st["writes"]
            out["write_bytes" + lab] = st["write_sectors"] * SECTOR
        for key, col in (("read_time_s", "read_ms"), ("write_time_s", "write_ms"),
                         ("io_time_s", "io_ms"), ("queue_time_s", "queue_ms")):
            if col in st:
                out[key + lab] = st[col] / 1000
        if "in_flight" in st:
            out["in_flight" + lab] = st["in_flight"]
    psi = read_psi(ctx, "io")
    if psi:
        for k in ("some_avg10", "full_avg10"):
            if k in psi:
                out[f"psi_{k}"] = psi[k]
    return out


def device_stats(rates: dict[str, float | None], in_flight: float | None) -> dict:
    """iostat -x columns from per-second rates of the raw counters (sysstat compute_ext_disk_stats):
    r_await = d(read_ms)/d(reads), aqu-sz = d(queue_ms)/dt/1000, %util = d(io_ms)/dt/10."""
    def ratio_ms(t, n):
        if t is None or n is None or n <= 0:
            return None  # no completed I/O: no await (iostat prints 0.00; absent is not zero)
        return round(t / n * 1000, 2)

    r, w = rates.get("reads"), rates.get("writes")
    util = rates.get("io_time_s")
    # Key order is column order in the rendered table: the saturation signals first.
    return {
        # io_ticks can exceed wall time by a rounding tick; iostat caps at 100 too.
        "util_pct": None if util is None else round(min(100.0, util * 100), 1),
        "r_await_ms": ratio_ms(rates.get("read_time_s"), r),
        "w_await_ms": ratio_ms(rates.get("write_time_s"), w),
        "aqu_sz": None if rates.get("queue_time_s") is None else round(rates["queue_time_s"], 2),
        "r_per_s": None if r is None else round(r, 2),
        "w_per_s": None if w is None else round(w, 2),
        "read_bps": None if rates.get("read_bytes") is None else round(rates["read_bytes"]),
        "write_bps": None if rates.get("write_bytes") is None else round(rates["write_bytes"]),
        "in_flight": None if in_flight is None else int(in_flight),
    }


def _dm_name(ctx, dev: str) -> str | None:
    if not dev.startswith("dm-"):
        return None
    text = ctx.read_optional(ctx.sys_path("block", dev, "dm", "name"))
    return text.strip() or None if text else None


def _window_rate(s) -> float | None:
    """Rate over the whole window; None if the counter went backwards at any tick (device
    re-attached, counter wrap), since first-to-last would then hide the I/O in between."""
    if any(r is None for r in s.rates()):
        return None
    return s.rate()


def _devices(job) -> list[dict]:
    per_dev: dict[str, dict[str, float | None]] = {}
    flights: dict[str, float | None] = {}
    ios: dict[str, float] = {}
    for metric in ("reads", "writes", "read_bytes", "write_bytes", "read_time_s", "write_time_s",
                   "io_time_s", "queue_time_s"):
        for dev, s in job.labelled(metric).items():
            rate = _window_rate(s) if job.window_s > 0 else None
            per_dev.setdefault(dev, {})[metric] = rate
            if metric in ("reads", "writes") and rate is not None:
                ios[dev] = ios.get(dev, 0) + (s.v[-1] - s.v[0])
    for dev, s in job.labelled("in_flight").items():
        per_dev.setdefault(dev, {})
        flights[dev] = s.last()
    out = []
    for dev, rates in per_dev.items():
        row = {"device": dev}
        row.update(device_stats(rates, flights.get(dev)))
        row["ios"] = int(ios[dev]) if dev in ios else None   # completed in the window: gates await
        dm = _dm_name(job.ctx, dev)
        if dm:
            row["dm_name"] = dm
        out.append(row)
    out.sort(key=lambda d: (d["util_pct"] or 0, (d["read_bps"] or 0) + (d["write_bps"] or 0)), reverse=True)
    return out


def _wchan(ctx, pid: int) -> str | None:
    # "0" means not sleeping, or hidden: since 4.x other users' wchan needs ptrace access.
    text = ctx.read_optional(ctx.proc_path(pid, "wchan"), limit=256)
    text = (text or "").strip()
    return None if text in ("", "0") else text


def collect(job):
    ctx = job.ctx
    data: dict = {"window_s": job.window_s}
    psi = read_psi(ctx, "io")
    seen = job.state.get("diskstats_seen")
    if seen is None:
        reason = tree.read(ctx, ctx.proc_path("diskstats"))[1] or f"{ctx.proc_path('diskstats')} not readable"
        if psi is None and job.scan is None:
            raise Unavailable(f"{reason}; no PSI and no process scan: nothing to report on I/O")
        job.blind_spot(f"{reason}: no per-device throughput, utilisation or latency")
    sys_block = job.state.get("sys_block")
    if sys_block is None and seen:
        job.blind_spot(f"{ctx.sys_path('block')} not readable: whole disks told from partitions by name only")
    orphans = not_in_sys_block(seen or (), sys_block)
    if orphans:
        data["devices_not_in_sys"] = orphans
        job.blind_spot(f"{len(orphans)} devices in /proc/diskstats have no {ctx.sys_path('block')} entry "
                       f"({', '.join(orphans[:8])}{', ...' if len(orphans) > 8 else ''}): shown from "
                       "diskstats alone, without device-mapper names")
    devices = _devices(job)
    data["devices"] = devices[:10]
    if len(devices) > 10:
        data["devices_not_shown"] = len(devices) - 10
    if not devices and seen is not None:
        data["devices_note"] = "no block device has done any I/O"

    data["psi"] = psi
    if psi is None:
        job.blind_spot(tree.psi_blind_spot(ctx, "io"))

    scan = job.scan
    if scan is None:
        data["d_state"] = data["top"] = None
        return data
    d_procs = sorted((p for p in scan.procs.values() if p.status == "disk-sleep"), key=lambda p: p.pid)
    data["d_state_count"] = len(d_procs)
    rows = []
    for p in d_procs:
        if job.deadline.expired():
            break
        rows.append({"pid": p.pid, "name": p.name, "wchan": _wchan(ctx, p.pid)})
    data["d_state_wchan"] = dict(Counter(r["wchan"] or "?" for r in rows).most_common(5)) if rows else {}
    for r in rows[:D_TOP]:
        r["cmdline"] = scan.cmdline(r["pid"])
    data["d_state"] = rows[:D_TOP]

    if job.window_s <= 0:
        data["top"] = None  # no window: no per-process rates rather than lifetime totals
    else:
        procs = [p for p in scan.procs.values() if p.read_bps is not None or p.write_bps is not None]
        procs = [p for p in procs if (p.read_bps or 0) + (p.write_bps or 0) > 0]
        procs.sort(key=lambda p: (p.read_bps or 0) + (p.write_bps or 0), reverse=True)
        data["top"] = [{"pid": p.pid, "name": p.name,
                        "read_bps": None if p.read_bps is None else round(p.read_bps),
                        "write_bps": None if p.write_bps is None else round(p.write_bps),
                        "cmdline": scan.cmdline(p.pid)} for p in procs[:TOP]]
    data["procs_io_unreadable"] = scan.io_unreadable
    # A tree copied without some io files is not a permission problem: name it for what it is.
    absent = _io_missing(job) if scan.io_unreadable else 0
    if absent:
        job.blind_spot(f"/proc/PID/io missing for {absent} processes: their I/O is unknown")
    if scan.io_unreadable - absent > 0 and os.geteuid() != 0:
        job.blind_spot(f"/proc/PID/io of {scan.io_unreadable - absent} processes not readable: "
                       "run as root to see per-process I/O")
    elif scan.io_unreadable - absent > max(1, len(scan.procs) // 10):
        # Root but still denied (no CAP_SYS_PTRACE in a container, another user namespace).
        # One or two such processes (a sandbox's init) are kept as a number, not a blind spot.
        job.blind_spot(f"/proc/PID/io of {scan.io_unreadable - absent} processes not readable even as root: "
                       "grant CAP_SYS_PTRACE or run in the host's namespaces")
    return data


def _io_missing(job) -> int:
    """Processes still there (stat exists) without an io value whose /proc/PID/io does not exist."""
    n = 0
    for p in job.scan.procs.values():
        if job.deadline.expired():
            break
        if p.read_bytes is None and p.status != "zombie" and os.path.lexists(job.ctx.proc_path(p.pid, "stat")) \
                and not os.path.lexists(job.ctx.proc_path(p.pid, "io")):
            n += 1
    return n
# A process is named on a saturated device only when its own storage I/O is at least this share
# of the device's throughput (and the device is the only busy one): otherwise it is just on top.
OWNER_MIN_SHARE = 0.5


def _io_owner(dev: dict, d: dict) -> dict | None:
    """The process whose I/O rate accounts for most of this device's, when the evidence ties one."""
    busy = [x for x in d.get("devices") or [] if (x.get("read_bps") or 0) + (x.get("write_bps") or 0) > 0]
    total = (dev.get("read_bps") or 0) + (dev.get("write_bps") or 0)
    top = (d.get("top") or [None])[0]
    if not top or total <= 0 or len(busy) > 1 or top["pid"] == os.getpid():
        return None
    mine = (top.get("read_bps") or 0) + (top.get("write_bps") or 0)
    if mine < OWNER_MIN_SHARE * total:
        return None
    return {"pid": top["pid"], "name": top["name"], "bps": mine, "share_pct": round(min(100.0, mine / total * 100))}


def _saturation(dev: dict, th) -> tuple[str | None, float | None]:
    awaits = [a for a in (dev.get("r_await_ms"), dev.get("w_await_ms")) if a is not None]
    worst_await = max(awaits) if awaits and (dev.get("ios") or 0) >= AWAIT_MIN_IOS else None
    levels = [th.level("io.util_pct", dev.get("util_pct")), th.level("io.await_ms", worst_await)]
    level = "critical" if "critical" in levels else ("warning" if "warning" in levels else None)
    return level, worst_await


def findings(section, th):
    d = section.data
    out: list[Finding] = []
    saturated: list[str] = []
    for dev in d.get("devices") or []:
        level, worst_await = _saturation(dev, th)
        if not level:
            continue
        name = dev["device"]
        saturated.append(name)
        alias = f" ({dev['dm_name']})" if dev.get("dm_name") else ""
        aw = f", await {worst_await} ms" if worst_await is not None else ""
        util = dev.get("util_pct")
        who = _io_owner(dev, d)
        subject = {"device": name}
        by = ""
        if who:
            subject.update(pid=who["pid"], name=who["name"])
            by = f"; {who['name']} (pid {who['pid']}) does {who['share_pct']:g}% of its I/O"
        out.append(Finding(
            id="io.saturation", category="io", severity=level,
            title=f"Device {name}{alias} {util}% busy{aw}, queue {dev.get('aqu_sz')} over {d.get('window_s')} s{by}",
            subject=subject,
            evidence={**{k: dev.get(k) for k in ("util_pct", "r_await_ms", "w_await_ms", "aqu_sz", "r_per_s",
                                                 "w_per_s", "read_bps", "write_bps", "in_flight")},
                      **({"top_process": who} if who else {})},
            impact="every read and fsync on this device waits in its queue: requests stall, load average rises",
            verify=f"{shell.cmd('iostat', '-x', name, '1', '5')}   # %util, r_await/w_await, aqu-sz",
            stabilize=["Find who is doing the I/O: the top I/O processes below, or iotop -oPa",
                       "Pause or throttle batch work on this device (backups, reindexing, log shipping): "
                       "ionice -c3 -p PID, or a cgroup io.max / blkio throttle",
                       "If await is high while throughput is low, suspect the device itself (failing disk, "
                       "exhausted cloud volume burst credits): check dmesg and the provider's volume metrics",
                       "Do not restart the busy service to 'clear' it: the restart rereads its data and adds I/O"],
            score=max(util or 0, worst_await or 0)))

    count = d.get("d_state_count")
    level = th.level("io.d_state", count)
    if level:
        wchans = d.get("d_state_wchan") or {}
        top_w = next((w for w in wchans if w != "?"), None)
        subject: dict = {}
        if top_w:
            subject["wchan"] = top_w
        if len(saturated) == 1:
            subject["device"] = saturated[0]
        where = f", mostly in {top_w}" if top_w else ""
        out.append(Finding(
            id="io.d_state_pileup", category="io", severity=level,
            title=f"{count} processes in uninterruptible sleep (D state){where}",
            subject=subject,
            evidence={"d_state_count": count, "wchan": wchans,
                      "pids": [r["pid"] for r in d.get("d_state") or []]},
            impact="these tasks cannot run or be killed until their I/O completes; anything that waits "
                   "on them (health checks, logins, df) hangs too",
            verify="ps -eo pid,stat,wchan:32,cmd | awk '$2 ~ /^D/'",
            stabilize=["Find the stuck device or mount: a saturated device (see io.saturation), a dead NFS/FUSE "
                       "server (mount | grep -E 'nfs|fuse'), or a failing disk (dmesg | tail)",
                       "Restore the backend (NFS server, network path, storage) so the I/O can complete",
                       "Do not kill -9 D-state processes: they cannot die until the I/O completes; "
                       "find the stuck device or mount",
                       "Do not run df, ls or du on a suspected hung mount: each one adds another D-state process"],
            score=float(count)))

    psi = d.get("psi") or {}
    full = psi.get("full_avg10")
    level = th.level("io.psi_full_avg10", full)
    if level:
        busiest = (d.get("devices") or [None])[0]
        out.append(Finding(
            id="io.pressure", category="io", severity=level,
            title=f"I/O pressure: all non-idle tasks stalled on I/O {full}% of the last 10 s "
                  f"(some: {psi.get('some_avg10')}%)",
            subject={"device": busiest["device"]} if busiest and busiest.get("util_pct") else {},
            evidence={"psi_full_avg10": full, "psi_some_avg10": psi.get("some_avg10"),
                      "psi_full_avg60": psi.get("full_avg60")},
            impact="the whole host makes no progress while it waits for storage: latency for everything",
            verify="cat /proc/pressure/io; iostat -x 1 5",
            stabilize=["Find the busiest device and the top I/O processes (below) and throttle or pause the "
                       "non-essential ones",
                       "Check for memory pressure too: swapping and page-cache thrash show up as I/O stalls",
                       "Do not add more worker processes: they queue on the same device"],
            score=full))
    return out

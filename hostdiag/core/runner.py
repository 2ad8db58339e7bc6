"""Runs collectors over the sampling window, each under a time bound.

The only place that catches exceptions from collectors (node_exporter execute(), sos
_collect_plugin): an Unavailable becomes a status and reason, a timeout becomes a blind
spot, and a bug becomes "unavailable: hostdiag bug ..." instead of a traceback.

Collector protocol (see collectors/__init__.py):
  sample(ctx, state) -> {"metric[label=value]": number}  cheap readings, once per tick (optional);
                                                      `state` is a dict private to the collector
                                                      for this run (e.g. mounts that hung)
  collect(job) -> dict                                 state and rates, once at the end
"""
from __future__ import annotations

import functools
import os
import platform
import socket
import time
import traceback
from dataclasses import dataclass, field

from hostdiag import __version__
from hostdiag.core import isolate, procscan
from hostdiag.core.context import Context, Deadline, Unavailable, bounded
from hostdiag.core.model import SCHEMA_VERSION, Host, Section, Series, Snapshot
from hostdiag.core.units import rfc3339


@dataclass
class Job:
    """What one collector's collect() sees."""

    ctx: Context
    name: str
    series: dict[str, Series]
    scan: procscan.Scan | None
    window_s: float
    deadline: Deadline
    state: dict = field(default_factory=dict)
    blind_spots: list[str] = field(default_factory=list)
    now: float = field(default_factory=time.time)

    def blind_spot(self, msg: str) -> None:
        self.blind_spots.append(msg)

    def add_series(self, metric: str, t0: float, t: list[float], v: list, unit: str, **labels: str) -> None:
        """A series found in collect() rather than sampled (e.g. journal errors per minute)."""
        s = Series(metric=f"{self.name}.{metric}", unit=unit, t=list(t), v=list(v), labels=labels, t0=t0)
        self.series[s.key] = s

    def s(self, key: str) -> Series | None:
        """This collector's series by key without the collector prefix ('load1')."""
        return self.series.get(f"{self.name}.{key}")

    def labelled(self, metric: str) -> dict[str, Series]:
        """Series of one metric keyed by their label values: {'sda': Series, ...}."""
        full = f"{self.name}.{metric}"
        return {",".join(s.labels.values()): s for s in self.series.values()
                if s.metric == full and s.labels}

    def bounded(self, fn, *args):
        """Run one possibly-hanging call (statvfs on NFS) within what is left of the bound."""
        return bounded(fn, max(0.05, min(self.ctx.timeout_s, self.deadline.remaining())), *args)


def parse_key(key: str) -> tuple[str, dict[str, str]]:
    """'read_bytes[device=sda]' -> ('read_bytes', {'device': 'sda'})."""
    if not key.endswith("]") or "[" not in key:
        return key, {}
    metric, _, rest = key.partition("[")
    labels = dict(kv.split("=", 1) for kv in rest[:-1].split(",") if "=" in kv)
    return metric, labels


def record(series: dict[str, Series], m, values: dict, now: float, t0: float | None = None) -> None:
    """Append one sample() result of collector `m` at offset `now` to the series it feeds."""
    for key, v in values.items():
        metric, labels = parse_key(key)
        unit, counter = m.UNITS.get(metric, ("count", False))
        full = f"{m.NAME}.{key}"
        s = series.get(full)
        if s is None:
            s = series[full] = Series(metric=f"{m.NAME}.{metric}", unit=unit, labels=labels,
                                      counter=counter, t0=t0)
        s.t.append(now)
        s.v.append(v)


def _failure(e: BaseException, debug: bool) -> tuple[str, str]:
    if isinstance(e, Unavailable):
        return "unavailable", str(e)
    if isinstance(e, TimeoutError):
        return "unavailable", str(e)
    if isinstance(e, PermissionError):
        return "unavailable", f"permission denied: {e.filename or e}: run as root"
    if debug:
        traceback.print_exception(type(e), e, e.__traceback__)
    return "unavailable", f"hostdiag bug: {type(e).__name__}: {e} (run with --debug for a traceback)"


def _dead_tree(ctx: Context) -> str | None:
    """Why --proc-root/--sys-root/--root cannot be read at all: on a mount whose server died,
    every collector's os.listdir/os.path.exists would wait in the kernel, and a thread stuck there
    keeps hostdiag alive until the server answers. Asked once, in the prober."""
    for flag, path, live in (("--proc-root", ctx.proc, "/proc"), ("--sys-root", ctx.sys, "/sys"),
                             ("--root", ctx.root, "/")):
        if os.path.normpath(path) != live and (why := isolate.answers(path)):
            return f"{flag} {why}: nothing under it was read"
    return None


def run(ctx: Context, modules, *, window_s: float, interval_s: float, debug: bool = False,
        clock=time.monotonic, sleep=time.sleep, progress=None) -> Snapshot:
    """`progress(elapsed_s, window_s, what)`, if given, is called before each reading (the CLI's
    spinner). Ctrl-C during the window ends sampling there: the snapshot is built from what was
    collected so far and marked `interrupted`."""
    t_start = clock()
    interrupted = False
    epoch_start = time.time()
    series: dict[str, Series] = {}
    dead = _dead_tree(ctx)
    # name -> (status, reason): skipped from then on
    failed: dict[str, tuple[str, str]] = {m.NAME: ("unavailable", dead) for m in modules} if dead else {}
    states: dict[str, dict] = {m.NAME: {"window_s": window_s} for m in modules}
    samplers = [m for m in modules if hasattr(m, "sample")]
    need_procs = not dead and any("procs" in getattr(m, "NEEDS", ()) for m in modules)
    need_fds = any("fds" in getattr(m, "NEEDS", ()) for m in modules)

    ticks = 1 if window_s <= 0 else int(round(window_s / interval_s)) + 1
    base_holder: dict = {}
    try:
        _sample_window(ctx, samplers, failed, states, series, ticks, interval_s, t_start, epoch_start,
                       clock, sleep, progress, debug, need_procs, base_holder)
    except KeyboardInterrupt:
        interrupted = True
    base, base_t = base_holder.get("base"), base_holder.get("t")
    timings = {"sampling_s": clock() - t_start}
    scan = None
    scan_note = None
    t_scan = clock()
    if need_procs:
        scan = procscan.Scan()
        deadline = Deadline(ctx.timeout_s * 2, clock)
        dt = (clock() - base_t) if base_t else None
        try:
            bounded(functools.partial(procscan.scan, fds=need_fds, base=base, base_dt=dt),
                    ctx.timeout_s * 2 + 0.5, ctx, deadline, scan)
        except TimeoutError:
            deadline.cancelled.set()
            scan.truncated = True
        except BaseException as e:  # noqa: BLE001
            scan_note = _failure(e, debug)[1]
            scan = None
        if scan is not None and scan.truncated:
            scan_note = (f"process scan stopped at the {ctx.timeout_s * 2:g}s bound after "
                         f"{scan.seen_pids} processes: per-process data is incomplete")

    timings["procscan_s"] = clock() - t_scan
    t_collect = clock()
    sections: dict[str, Section] = {}
    for m in modules:
        t0 = clock()
        mine = {k: s for k, s in series.items() if k.startswith(m.NAME + ".")}
        if m.NAME in failed:
            status, reason = failed[m.NAME]
            sections[m.NAME] = Section(m.NAME, status, reason, 0.0)
            continue
        job = Job(ctx, m.NAME, mine, scan, window_s, Deadline(ctx.timeout_s, clock), states[m.NAME])
        if scan_note and "procs" in getattr(m, "NEEDS", ()):
            job.blind_spot(scan_note)
        try:
            data = bounded(m.collect, ctx.timeout_s, job)
            series.update({k: v for k, v in job.series.items() if k not in mine})
        except BaseException as e:  # noqa: BLE001
            job.deadline.cancelled.set()
            status, reason = _failure(e, debug)
            sections[m.NAME] = Section(m.NAME, status, reason, round(clock() - t0, 4), blind_spots=job.blind_spots)
            continue
        status = "partial" if job.blind_spots else "ok"
        reason = "; ".join(dict.fromkeys(job.blind_spots)) if job.blind_spots else None
        sections[m.NAME] = Section(m.NAME, status, reason, round(clock() - t0, 4), data or {},
                                   list(dict.fromkeys(job.blind_spots)))

    timings["collect_s"] = clock() - t_collect
    snap = Snapshot(
        schema_version=SCHEMA_VERSION,
        host=host_info(ctx),
        collected_at=rfc3339(time.time()),
        window_s=(round(timings["sampling_s"], 3) if interrupted else window_s) if ticks > 1 else 0.0,
        interval_s=interval_s if ticks > 1 else 0.0,
        sections=sections,
        series=series,
        duration_s=clock() - t_start,
        timings=timings,
        interrupted=interrupted,
    )
    snap.scan = scan    # not serialised: `hostdiag capture` keeps its top-N process rows from it
    return snap


def _sample_window(ctx, samplers, failed, states, series, ticks, interval_s, t_start, epoch_start,
                   clock, sleep, progress, debug, need_procs, base_holder) -> None:
    """The sampling ticks; fills `series`, `failed` and base_holder {'base', 't'} (process baseline)."""
    window = (ticks - 1) * interval_s
    for tick in range(ticks):
        tick_t = t_start + tick * interval_s
        if tick:
            if progress:
                progress(clock() - t_start, window, "waiting for the next sample")
            sleep(max(0.0, tick_t - clock()))
        for m in samplers:
            if m.NAME in failed:
                continue
            if progress:
                progress(clock() - t_start, window, f"reading {m.NAME}: {', '.join(getattr(m, 'READS', ())[:2])}")
            try:
                values = bounded(m.sample, ctx.timeout_s, ctx, states[m.NAME])
            except KeyboardInterrupt:
                raise
            except BaseException as e:  # noqa: BLE001 - the runner is the one catcher
                failed[m.NAME] = _failure(e, debug)
                continue
            record(series, m, values, clock() - t_start, epoch_start)
        if tick == 0 and ticks > 1 and need_procs:
            if progress:
                progress(clock() - t_start, window, "process baseline: /proc/PID/stat, io")
            try:
                base_holder["t"] = clock()
                base_holder["base"] = bounded(procscan.baseline, ctx.timeout_s, ctx, Deadline(ctx.timeout_s, clock))
            except KeyboardInterrupt:
                raise
            except BaseException:  # noqa: BLE001 - no per-process rates then; said below
                base_holder["base"] = None


def host_info(ctx: Context) -> Host:
    """Who the host is, read through the Context: a fixture tree or /host/proc describes
    itself, never the machine hostdiag runs on. Live-host calls (uname, cpu_count) are only
    the fallback for the default /proc."""
    live = os.path.normpath(ctx.proc) == "/proc"     # not realpath: it would lstat a dead --proc-root
    os_name = "?"
    for line in (_read(ctx, ctx.root_path("/etc/os-release")) or "").splitlines():
        if line.startswith("PRETTY_NAME="):
            os_name = line.split("=", 1)[1].strip().strip('"')
    uptime = boot = None
    try:
        uptime = float((_read(ctx, ctx.proc_path("uptime")) or "").split()[0])
    except (ValueError, IndexError):
        pass
    stat = _read(ctx, ctx.proc_path("stat")) or ""
    btime = next((line.split()[1] for line in stat.splitlines() if line.startswith("btime ")), None)
    if btime is not None and btime.isdigit():
        boot = rfc3339(int(btime))
    elif uptime is not None:
        boot = rfc3339(time.time() - uptime)
    hostname = _first_line(_read(ctx, ctx.proc_path("sys/kernel/hostname")))
    kernel = _first_line(_read(ctx, ctx.proc_path("sys/kernel/osrelease")))
    return Host(hostname=hostname or (socket.gethostname() if live else "?"),
                kernel=kernel or (platform.release() if live else "?"), os=os_name,
                cpus=os.cpu_count() if live else cpu_count(ctx, stat),
                boot_time=boot, uptime_s=uptime, euid=os.geteuid(), hostdiag_version=__version__)


def _read(ctx: Context, path: str) -> str | None:
    try:
        return ctx.read_optional(path, 1 << 20)
    except OSError:   # EIO and friends: host info is best effort, never a failed snapshot
        return None


def _first_line(text: str | None) -> str | None:
    return text.strip().split("\n", 1)[0] or None if text else None


def cpu_count(ctx: Context, stat: str) -> int | None:
    """Logical CPUs of the host the Context reads: sysfs's online list, else /proc/stat's cpuN lines."""
    online = _first_line(_read(ctx, ctx.sys_path("devices/system/cpu/online")))
    if online:
        try:
            n = 0
            for part in online.split(","):
                lo, _, hi = part.partition("-")
                n += int(hi or lo) - int(lo) + 1
            return n
        except ValueError:
            pass
    n = sum(1 for line in stat.splitlines() if line.startswith("cpu") and line[3:4].isdigit())
    return n or None

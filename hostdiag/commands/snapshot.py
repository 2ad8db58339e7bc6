"""`hostdiag snapshot`: collect over the window, derive findings, build the Report. Prints nothing."""
from __future__ import annotations

from dataclasses import dataclass, field

from hostdiag import collectors
from hostdiag.core.context import Context
from hostdiag.core.model import Report
from hostdiag.core.thresholds import Thresholds


@dataclass
class Options:
    window_s: float = 5.0
    interval_s: float = 1.0
    only: list[str] | None = None
    skip: list[str] = field(default_factory=list)
    thresholds: list[str] = field(default_factory=list)   # "KEY=WARNING[,CRITICAL]"
    debug: bool = False
    # The capture store, read-only: False (the API default) reads none; the CLI passes True
    # unless --no-history, and `store` (None: $HOSTDIAG_STORE or the default path).
    history: bool = False
    store: str | None = None
    # `--packets SECONDS`: a passive capture beside the sampling window (hostdiag.commands.packets)
    packets: object | None = None


def selected(opts: Options) -> list:
    return collectors.select(opts.only, opts.skip)


def thresholds_for(modules, overrides=()) -> Thresholds:
    table = {}
    for m in modules:
        table.update(m.THRESHOLDS)
    th = Thresholds(table)
    for spec in overrides:
        th.override(spec)
        key = spec.partition("=")[0].strip()
        t = th[key]
        if (t.warning > t.critical) if t.higher_is_worse else (t.warning < t.critical):
            order = "above" if t.higher_is_worse else "below"
            raise ValueError(f"threshold {key}: warning {t.warning:g} is {order} critical {t.critical:g}, but "
                             f"{'higher' if t.higher_is_worse else 'lower'} is worse here: give WARNING,CRITICAL "
                             f"with critical {'>=' if t.higher_is_worse else '<='} warning")
    return th


def check(opts: Options) -> None:
    """Raise ValueError (a usage error) for unknown collectors or thresholds and inverted levels,
    before anything is sampled."""
    selected(opts)
    thresholds_for(collectors.load(), opts.thresholds)


def run(opts: Options, ctx: Context, progress=None) -> Report:
    """`progress(elapsed_s, window_s, what)` is passed to the runner (the CLI's spinner)."""
    from hostdiag import analysis, catalog
    from hostdiag.core import runner

    modules = selected(opts)
    th = thresholds_for(collectors.load(), opts.thresholds)
    catalog.for_context(ctx)   # once, before collection: the journal collector and the matcher share it
    capture = _Packets(opts.packets, ctx) if opts.packets is not None else None
    snap = runner.run(ctx, modules, window_s=opts.window_s, interval_s=opts.interval_s, debug=opts.debug,
                      progress=progress)
    extra: dict = {}
    if capture is not None:
        pr = capture.result()
        extra = {"extra_findings": pr.findings, "extra_series": pr.series,
                 "extra_sections": {"packets": pr.section(capture.duration_s)}}
    h, note = _open_history(opts.store) if opts.history else (None, None)
    try:
        return analysis.build(snap, modules, th, catalog=catalog.for_context(ctx), debug=opts.debug,
                              history=h, history_note=note, **extra)
    finally:
        if h is not None:
            h.close()


STORE_PROBE_S = 2.0


def _open_history(path: str | None):
    """(History, None), (None, None) when there is no store, (None, why) when it is unusable."""
    from hostdiag.history.paths import default_path

    from hostdiag.core import isolate

    path = path or default_path()
    try:   # the header, in the prober: a store on a dead NFS/FUSE mount must not hold the snapshot
        isolate.read(path, 100, STORE_PROBE_S)
    except FileNotFoundError:
        return None, None                 # no capture set up: nothing to say, no sqlite3 loaded
    except TimeoutError as e:
        return None, f"capture store not read: {e}"
    except OSError:
        pass                              # let the store code say what is wrong with it
    try:
        from hostdiag.history.enrich import open_for_snapshot
    except ImportError as e:             # a python built without its sqlite3 library
        return None, f"capture store {path} not read: {e}"
    return open_for_snapshot(path)


class _Packets:
    """`snapshot --packets`: the capture runs in a thread during the sampling window (it waits in
    the kernel, so it costs the sampler little), and never takes the snapshot down with it."""

    def __init__(self, popts, ctx):
        import threading
        import time

        self._t0 = time.monotonic()
        self.duration_s = 0.0
        self._out: list = []
        self._thread = threading.Thread(target=self._run, args=(popts, ctx), daemon=True, name="hostdiag-packets")
        self._thread.start()
        self._bound = popts.seconds + 10.0

    def _run(self, popts, ctx):
        from hostdiag.commands import packets

        try:
            self._out.append(packets.run(popts, ctx))
        except Exception as e:  # noqa: BLE001 - the capture is one source among many: a blind spot
            self._out.append(packets.PacketReport("unavailable", blind_spots=[
                f"packet capture failed: {type(e).__name__}: {e}"]))

    def result(self):
        import time

        from hostdiag.commands import packets

        self._thread.join(max(0.0, self._bound - (time.monotonic() - self._t0)))
        self.duration_s = round(time.monotonic() - self._t0, 3)
        if not self._out:
            return packets.PacketReport("unavailable", blind_spots=["packet capture did not finish in time"])
        return self._out[0]

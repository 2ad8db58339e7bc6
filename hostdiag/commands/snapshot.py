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
    snap = runner.run(ctx, modules, window_s=opts.window_s, interval_s=opts.interval_s, debug=opts.debug,
                      progress=progress)
    return analysis.build(snap, modules, th, catalog=catalog.for_context(ctx), debug=opts.debug)

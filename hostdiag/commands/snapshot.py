"""`hostdiag snapshot`: collect over the window, derive findings, build the Report. Prints nothing."""
from __future__ import annotations

from dataclasses import dataclass, field

from hostdiag import collectors
from hostdiag import analysis
from hostdiag.core import runner
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
    return th


def run(opts: Options, ctx: Context) -> Report:
    from hostdiag import catalog

    modules = selected(opts)
    th = thresholds_for(collectors.load(), opts.thresholds)
    catalog.for_context(ctx)   # once, before collection: the journal collector and the matcher share it
    snap = runner.run(ctx, modules, window_s=opts.window_s, interval_s=opts.interval_s, debug=opts.debug)
    return analysis.build(snap, modules, th, catalog=catalog.for_context(ctx), debug=opts.debug)

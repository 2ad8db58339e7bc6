"""The collector registry, in one place: which collectors exist, their order, which run by default.

Adding a collector: write collectors/NAME.py (the protocol below) and add "NAME" to ALL. That
is all: the CLI flags, the section order of the report, the category list and
`hostdiag collectors` all come from here and from the modules themselves.
ALL is an explicit tuple, not a directory listing, so a zipapp needs nothing else;
tests/collectors/test_contract.py checks every collectors/*.py is listed and keeps the protocol.

Each collector is one module whose NAME equals its file name, the --only/--no-collector
name, its finding category and its key in the report's sections. A module provides:

  NAME, READS (what it reads, for `hostdiag collectors`), a docstring
  DEFAULT_ENABLED  False: runs only when named in --only
  NEEDS       {"procs"} for the shared process scan, {"procs", "fds"} for fd tables too
  UNITS       {metric: (unit, is_counter)} for what sample() returns
  METRICS     optional: names of series collect() adds (job.add_series), beyond UNITS
  THRESHOLDS  {"<name>.<what>": Threshold}, used by findings()
  sample(ctx, state) -> {"metric[label=value]": number}    optional, once per tick
  collect(job) -> dict                                      once, at the end of the window
  findings(section, thresholds) -> list[Finding]
"""
from __future__ import annotations

import importlib

# Registry order is the report's section order.
ALL = ("cpu", "memory", "io", "disk", "files", "sockets", "network", "processes", "journal", "changes")


def load(names=ALL) -> list:
    """Import the named collector modules, in registry order."""
    return [importlib.import_module(f"hostdiag.collectors.{n}") for n in ALL if n in names]


def select(only=None, skip=()) -> list:
    """The modules a run uses: those named in `only` (default-disabled ones included), else every
    DEFAULT_ENABLED one; minus `skip`. Unknown names are a ValueError (a usage error)."""
    unknown = [n for n in [*(only or []), *skip] if n not in ALL]
    if unknown:
        raise ValueError(f"unknown collector(s): {', '.join(unknown)}; known: {', '.join(ALL)}")
    if only is not None:
        return load([n for n in only if n not in skip])
    return [m for m in load() if m.DEFAULT_ENABLED and m.NAME not in skip]


def categories() -> tuple[str, ...]:
    """Finding categories: one per collector (a collector's findings carry its NAME)."""
    return ALL


def sampled_metrics(modules=None) -> dict[str, list[str]]:
    """{collector: ["<collector>.<metric>", ...]}: every series name a snapshot can hold (UNITS
    keys and METRICS), for `signatures lint` (the catalog must name what is sampled)."""
    return {m.NAME: sorted(f"{m.NAME}.{k}" for k in (*getattr(m, "UNITS", {}), *getattr(m, "METRICS", ())))
            for m in (modules if modules is not None else load())}

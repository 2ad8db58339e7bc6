"""The collector registry: explicit, so a zipapp needs no directory listing.

Each collector is one module whose NAME equals its file name, the --only/--no-collector
name and its key in the report's sections. A module provides:

  NAME, DEFAULT_ENABLED, READS (what it reads, for `hostdiag collectors`), a docstring
  NEEDS       {"procs"} for the shared process scan, {"procs", "fds"} for fd tables too
  UNITS       {metric: (unit, is_counter)} for what sample() returns
  THRESHOLDS  {"<name>.<what>": Threshold}, used by findings()
  sample(ctx, state) -> {"metric[label=value]": number}    optional, once per tick
  collect(job) -> dict                                      once, at the end of the window
  findings(section, thresholds) -> list[Finding]
"""
from __future__ import annotations

import importlib

ALL = ("cpu", "memory", "io", "disk", "files", "sockets", "network", "processes", "journal", "changes")


def load(names=ALL):
    """Import the named collector modules, in registry order."""
    return [importlib.import_module(f"hostdiag.collectors.{n}") for n in ALL if n in names]

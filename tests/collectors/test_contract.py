"""One contract over every collector (sos conformance_tests): the registry lists every
collectors/*.py, and each module keeps the protocol the runner, the analysis layer and
`hostdiag collectors` rely on."""
from __future__ import annotations

import inspect
from pathlib import Path

import pytest

from hostdiag import collectors
from hostdiag.core.thresholds import Threshold

SRC = Path(collectors.__file__).resolve().parent
UNITS = {"bytes", "percent", "count", "seconds", "load", "pages"}


def test_registry_lists_every_collector_file():
    files = {p.stem for p in SRC.glob("*.py") if p.stem != "__init__"}
    assert files == set(collectors.ALL), "add the new collector's NAME to collectors.ALL"
    assert len(set(collectors.ALL)) == len(collectors.ALL)


@pytest.mark.parametrize("name", collectors.ALL)
def test_collector_protocol(name):
    (m,) = collectors.load([name])
    assert m.NAME == name == m.__name__.rsplit(".", 1)[-1]
    assert m.__doc__ and m.__doc__.strip().split("\n")[0], "the first docstring line is its `hostdiag collectors` text"
    assert isinstance(m.DEFAULT_ENABLED, bool)
    assert m.READS and all(isinstance(r, str) and r for r in m.READS)
    assert set(m.NEEDS) <= {"procs", "fds"} and ("fds" not in m.NEEDS or "procs" in m.NEEDS)
    # A collector that reads the shared process scan must ask for it, or it would get None.
    src = inspect.getsource(m)
    assert ("job.scan" in src) == ("procs" in m.NEEDS), "NEEDS must declare the process scan iff job.scan is read"
    uses_fds = any(a in src for a in ("fds_scanned", "fd_unreadable", "socket_owner", "deleted_open"))
    assert uses_fds == ("fds" in m.NEEDS), "NEEDS must ask for the fd tables iff fd-derived scan data is read"
    assert isinstance(m.THRESHOLDS, dict)
    for key, t in m.THRESHOLDS.items():
        assert key.startswith(name + ".") and isinstance(t, Threshold), key
    for metric, spec in m.UNITS.items():
        unit, counter = spec
        assert "." not in metric and "[" not in metric, metric   # runner adds NAME. and labels
        assert unit in UNITS and isinstance(counter, bool), (metric, spec)
    if hasattr(m, "sample"):
        assert list(inspect.signature(m.sample).parameters) == ["ctx", "state"]
    assert len(inspect.signature(m.collect).parameters) == 1
    assert len(inspect.signature(m.findings).parameters) == 2


def test_select_honours_default_enabled(monkeypatch):
    """A DEFAULT_ENABLED=False collector runs only when named in --only. (No shipped collector is
    off by default yet, so one is switched off here.)"""
    (io,) = collectors.load(["io"])
    monkeypatch.setattr(io, "DEFAULT_ENABLED", False)
    assert "io" not in [m.NAME for m in collectors.select()]
    assert [m.NAME for m in collectors.select(["io", "cpu"])] == ["cpu", "io"]   # registry order
    assert [m.NAME for m in collectors.select(skip=["cpu"])][:2] == ["memory", "disk"]
    with pytest.raises(ValueError, match="unknown collector"):
        collectors.select(["nope"])


def test_categories_are_the_collector_names():
    assert collectors.categories() == collectors.ALL


def test_shipped_collectors_all_run_by_default():
    # Change this when a collector ships with DEFAULT_ENABLED = False.
    assert [m.NAME for m in collectors.select()] == list(collectors.ALL)

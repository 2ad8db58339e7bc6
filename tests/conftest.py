"""Shared fixtures and collection order; helper functions live in support.py."""
from __future__ import annotations

import pytest

from hostdiag.commands.snapshot import Options, run
from hostdiag.core.context import Context


def pytest_addoption(parser):
    parser.addoption("--update-golden", action="store_true", default=False,
                     help="rewrite tests/golden/* from the current output (also UPDATE_GOLDEN=1)")


@pytest.fixture
def snapshot():
    """snapshot(only=["sockets"], window=0, **ctx_kwargs) -> Report, via the Python API."""
    def _run(only=None, window=0.0, interval=1.0, thresholds=(), **ctx_kwargs):
        opts = Options(window_s=window, interval_s=interval, only=list(only) if only else None,
                       thresholds=list(thresholds))
        return run(opts, Context(**ctx_kwargs))
    return _run


def pytest_collection_modifyitems(items):
    """Run `first`-marked tests (the idle-host check) before anything loads the machine:
    load averages and PSI decay over minutes, so a fault test would leave them raised."""
    items.sort(key=lambda it: 0 if it.get_closest_marker("first") else 1)

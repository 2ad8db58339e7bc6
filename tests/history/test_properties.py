"""Property tests: the record builder never raises on odd report JSON; size/age parsing; sparklines."""
from __future__ import annotations

import pytest
import typer
from hypothesis import given, settings
from hypothesis import strategies as st

from hostdiag.commands.capture import parse_age, parse_size
from hostdiag.commands.history import sparkline
from hostdiag.history.record import from_report

json_leaf = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True), st.text(max_size=8))
json_val = st.recursive(json_leaf, lambda c: st.one_of(st.lists(c, max_size=4),
                                                       st.dictionaries(st.text(max_size=8), c, max_size=4)),
                        max_leaves=20)
section_names = st.sampled_from(["cpu", "memory", "io", "disk", "files", "sockets", "processes", "journal"])


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(section_names, st.fixed_dictionaries({"status": st.sampled_from(["ok", "partial"]),
                                                            "data": st.dictionaries(st.text(max_size=12), json_val,
                                                                                    max_size=6)}), max_size=8),
       st.lists(json_val, max_size=4))
def test_from_report_never_raises(sections, findings):
    rec = from_report({"sections": sections, "findings": findings}, 1.0)
    assert set(rec) >= {"t", "host", "procs", "mounts", "findings", "ports"}
    assert all(v is None or isinstance(v, (int, float)) for v in rec["host"].values())


@given(st.integers(min_value=0, max_value=2 ** 40), st.sampled_from(["", "k", "K", "M", "G", "MiB", "kb"]))
def test_parse_size(n, unit):
    mult = {"": 1, "k": 1024, "K": 1024, "M": 2 ** 20, "G": 2 ** 30, "MiB": 2 ** 20, "kb": 1024}[unit]
    assert parse_size(f"{n}{unit}") == n * mult


@given(st.integers(min_value=0, max_value=10 ** 6), st.sampled_from(["", "s", "m", "h", "d"]))
def test_parse_age(n, unit):
    assert parse_age(f"{n}{unit}") == n * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[unit]


@pytest.mark.parametrize("bad", ["", "12x", "-5M", "M", "1e9"])
def test_parse_size_rejects(bad):
    with pytest.raises(typer.BadParameter):
        parse_size(bad)


@given(st.lists(st.one_of(st.none(), st.floats(min_value=-1e12, max_value=1e12)), max_size=300),
       st.integers(min_value=1, max_value=80))
def test_sparkline_shape(values, width):
    s = sparkline(values, width)
    assert len(s) == min(width, len(values))
    assert set(s) <= set("▁▂▃▄▅▆▇█ ")

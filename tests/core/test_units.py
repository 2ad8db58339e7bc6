"""units: one formatter per unit, one RFC 3339 parser, Series.slope/delta."""
from __future__ import annotations

import math

from hypothesis import given, strategies as st

from hostdiag.core import units
from hostdiag.core.model import Series


def test_human_bytes_and_duration():
    assert units.human_bytes(0) == "0 B"
    assert units.human_bytes(1536) == "1.5 KiB"
    assert units.human_bytes(None) == "n/a"
    assert units.human_duration(4.25) == "4.2 s"
    assert units.human_duration(45) == "45 s"
    assert units.human_duration(720) == "12 min"
    assert units.human_duration(3.4 * 3600) == "3.4 h"
    assert units.human_duration(2.1 * 86400) == "2.1 d"


@given(st.floats(min_value=0, max_value=1e9, allow_nan=False))
def test_rfc3339_round_trip(t):
    assert abs(units.parse_rfc3339(units.rfc3339(t)) - math.floor(t)) <= 1.0  # microsecond rounding


def test_parse_rfc3339_forms():
    assert units.parse_rfc3339("1970-01-01T00:01:00Z") == 60.0
    assert units.parse_rfc3339("1970-01-01T00:01:00") == 60.0
    assert units.parse_rfc3339("1970-01-01T01:01:00+01:00") == 60.0
    assert units.parse_rfc3339("yesterday") is None and units.parse_rfc3339(None) is None


def test_worst_severity():
    assert units.worst_severity(["info", None, "warning"]) == "warning"
    assert units.worst_severity(["warning", "critical"]) == "critical"
    assert units.worst_severity([None]) is None


def test_series_slope_delta():
    s = Series("m", "bytes", t=[0, 1, 2, 3], v=[10, None, 30, 40])
    assert s.delta() == 30
    assert abs(s.slope() - 10.0) < 1e-9
    assert Series("m", "x", t=[0], v=[1]).slope() is None
    assert Series("m", "x", t=[1, 1], v=[1, 2]).slope() is None

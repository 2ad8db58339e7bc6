"""`signatures match` reads bounded input: bytes, rows, finite values, JSON depth, field size.

Each case is the attack from issue 8 item 7 at a size that keeps the test quick; each must end
in a clear message and exit 2 (or a "sampled" note), never a traceback or numpy warning."""
from __future__ import annotations

import io
import json
import math

import pytest
from hypothesis import given, settings, strategies as st
from typer.testing import CliRunner

from hostdiag.cli import app
from hostdiag.matcher import analyse
from hostdiag.matcher.series_io import (MAX_ABS, MAX_FIELD, SeriesError, read_bounded,
                                         read_series, read_series_bounded)

runner = CliRunner()


def run(stdin: str, *args):
    return runner.invoke(app, ["signatures", "match", "-", *args], input=stdin)


@pytest.mark.parametrize("bad", ["1e200", "-1e200", "inf", "-inf", "1e154"])
def test_huge_and_infinite_values_are_refused_with_exit_2(bad):
    r = run("\n".join(["1", "2", bad] + ["3"] * 10))
    assert r.exit_code == 2
    assert "out of range" in r.output and "line 3" in r.output
    assert "Traceback" not in r.output and "RuntimeWarning" not in r.output


def test_huge_values_through_the_api_are_missing_not_overflow(recwarn):
    a = analyse(None, [1.0, 2.0, 1e200, 1e154, -1e300] + [1.0, 2.0] * 10)
    assert a.points == 22
    assert not [w for w in recwarn if issubclass(w.category, RuntimeWarning)]


def test_deep_json_is_refused_not_recursion_error():
    r = run("[" * 100_000)
    assert r.exit_code == 2 and "nested deeper" in r.output
    r = run(json.dumps({"values": [[1], [2]] * 10}))
    assert r.exit_code == 2


def test_long_field_is_refused():
    r = run("timestamp,value\n" + "1" * (MAX_FIELD + 10) + ",3\n")
    assert r.exit_code == 2 and f"at most {MAX_FIELD} characters" in r.output


def test_byte_cap():
    with pytest.raises(SeriesError, match="larger than"):
        read_bounded(io.BytesIO(b"1\n" * 1000), limit=100)
    assert read_bounded(io.BytesIO(b"1\n2\n"), limit=100) == "1\n2\n"


def test_rows_over_the_cap_are_sampled_and_said():
    text = "timestamp,value\n" + "".join(f"{i},{i % 7}\n" for i in range(5000))
    t, v, note = read_series_bounded(text, max_rows=100)
    assert len(v) == 100 and t[0] == 0 and t[-1] == 4999 and "sampled 100 of 5,000" in note
    r = run(text, "--json", "--max-rows", "100")
    assert r.exit_code == 0 and "sampled" in json.loads(r.stdout.splitlines()[-1])["sampled"]
    _, v, note = read_series_bounded(text, max_rows=10_000)
    assert len(v) == 5000 and note is None
    with pytest.raises(SeriesError):
        read_series_bounded(text, max_rows=3)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.one_of(st.floats(allow_nan=True, allow_infinity=True),
                          st.integers(-10**400, 10**400)), min_size=1, max_size=40))
def test_reader_accepts_only_finite_bounded_values(vals):
    """Any number either reads back as a finite value within MAX_ABS, or is a SeriesError."""
    for text in ("\n".join(repr(x) for x in vals), json.dumps(vals) if all(
            not isinstance(x, float) or math.isfinite(x) for x in vals) else None):
        if text is None:
            continue
        try:
            _, v = read_series(text)
        except SeriesError as e:
            assert str(e)
            continue
        assert all(x is None or (math.isfinite(x) and abs(x) <= MAX_ABS) for x in v)

"""Per-metric rules: mechanics that make shapes of their own, and minimum effect sizes."""
from __future__ import annotations

from hypothesis import given, settings, strategies as st

from hostdiag.matcher.metrics import FLAT_ZERO_OK, LOADAVG, rule_for, worth_matching


def test_load_average_is_matched_on_its_source_not_its_5s_stairs():
    r = rule_for("cpu.load1")
    assert not r.match and LOADAVG in r.mechanics and r.source == "cpu.procs_running"
    ok, why = worth_matching("cpu.load1", "load", [0.1, 0.23] * 20)
    assert not ok and "loadavg_5s_update" in why and "cpu.procs_running" in why


def test_psi_average_is_not_matched():
    ok, why = worth_matching("memory.psi_full_avg10", "percent", list(range(40)))
    assert not ok and "psi_ewma" in why


def test_idle_iowait_flat_at_zero_is_not_a_flatline():
    assert FLAT_ZERO_OK in rule_for("cpu.iowait_s").mechanics
    ok, why = worth_matching("cpu.iowait_s", "seconds", [0.0] * 30 + [0.01] + [0.0] * 30)
    assert not ok and "near 0" in why
    ok, _ = worth_matching("cpu.iowait_s", "seconds", [0.0] * 30 + [0.9] * 30)
    assert ok


def test_minimum_effect_by_unit_and_relative_to_level():
    assert not worth_matching("process.rss_bytes[pid=1]", "bytes", [1e9, 1e9 + 1000] * 10)[0]
    assert worth_matching("process.rss_bytes[pid=1]", "bytes", [1e8] * 10 + [3e8] * 10)[0]
    ok, why = worth_matching("sockets.established", "count", [1000] * 10 + [1010] * 10)
    assert not ok and "% of its level" in why
    assert not worth_matching("x.y", None, [1, 2, 3])[0]         # too short


@settings(max_examples=50, deadline=None)
@given(st.lists(st.one_of(st.none(), st.floats(-1e6, 1e6)), max_size=60),
       st.sampled_from(["percent", "bytes", "seconds", "count", "load", None]),
       st.sampled_from(["cpu.busy_pct", "cpu.load1", "cpu.iowait_s", "disk.used_bytes[mount=/]", None]))
def test_worth_matching_always_answers_with_a_reason(values, unit, metric):
    ok, why = worth_matching(metric, unit, values)
    assert isinstance(ok, bool) and (ok or why)
    if ok:
        real = [v for v in values if v is not None]
        assert max(real) - min(real) >= rule_for(metric, unit).min_effect

"""eta.time_to_limit: the one time-to-exhaustion mechanism. Properties over generated series."""
from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from hostdiag.core import eta
from hostdiag.core.model import Series

rates = st.floats(min_value=0.01, max_value=1e6, allow_nan=False)
levels = st.floats(min_value=0, max_value=1e9, allow_nan=False)
noise = st.lists(st.floats(min_value=-0.2, max_value=0.2), min_size=4, max_size=30)


def ramp(start, rate, n=10, dt=1.0, jitter=None):
    return [(i * dt, start + rate * i * dt + (jitter[i % len(jitter)] * rate * dt if jitter else 0))
            for i in range(n)]


def test_linear_ramp_gives_the_exact_eta():
    pts = ramp(100, 10, n=11)              # 100 -> 200 over 10 s
    e = eta.time_to_limit(pts, 1200)
    assert e.rate_per_s == 10 and e.eta_s == 100 and e.measured_s == 10
    assert e.limit_fraction == 200 / 1200


def test_series_and_falling_level():
    s = Series("memory.available_bytes", "bytes", t=[0, 1, 2, 3, 4], v=[1000, 900, 800, 700, 600])
    e = eta.time_to_limit(s, 0, rising=False)
    assert e.rate_per_s == 100 and e.eta_s == 6


@given(start=levels, rate=rates, room=st.floats(min_value=0, max_value=1e9), more=st.floats(min_value=0, max_value=1e9),
       jitter=noise)
@settings(max_examples=200, deadline=None)
def test_more_headroom_never_gives_a_shorter_eta(start, rate, room, more, jitter):
    pts = ramp(start, rate, n=len(jitter), jitter=jitter)
    last = pts[-1][1]
    near = eta.time_to_limit(pts, last + room)
    far = eta.time_to_limit(pts, last + room + more)
    if far.eta_s is not None:
        assert near.eta_s is not None and near.eta_s <= far.eta_s


@given(start=levels, rate=rates, n=st.integers(min_value=2, max_value=30))
@settings(max_examples=200, deadline=None)
def test_no_eta_when_not_rising(start, rate, n):
    flat = [(i, start) for i in range(n)]
    falling = [(i, start - rate * i) for i in range(n)]
    for pts in (flat, falling):
        assert eta.time_to_limit(pts, start + 1e9).eta_s is None
    # and mirrored: a rising level never gives a falling-resource ETA
    assert eta.time_to_limit([(i, start + rate * i) for i in range(n)], 0, rising=False).eta_s is None


@given(start=levels, rate=rates, n=st.integers(min_value=3, max_value=30), cap=st.floats(min_value=1, max_value=1000),
       room=st.floats(min_value=0, max_value=1e12))
@settings(max_examples=200, deadline=None)
def test_never_extrapolates_beyond_the_cap(start, rate, n, cap, room):
    pts = ramp(start, rate, n=n)
    e = eta.time_to_limit(pts, pts[-1][1] + room, max_extrapolate=cap)
    span = pts[-1][0] - pts[0][0]
    assert e.eta_s is None or e.eta_s <= cap * span * (1 + 1e-9)


def test_a_burst_that_settles_is_not_a_trend():
    pts = [(0, 0), (1, 500), (2, 500), (3, 500), (4, 500), (5, 500)]
    assert eta.time_to_limit(pts, 1000).eta_s is None
    assert eta.time_to_limit([(0, 0), (1, 100)], 1000).eta_s is None   # too few points to call a trend


def test_levels():
    assert eta.eta_level(None) is None
    assert eta.eta_level(599) == "critical" and eta.eta_level(3599) == "warning" and eta.eta_level(3601) is None


def test_the_processes_collectors_stricter_steadiness_can_be_asked_for():
    """h-network's processes._steady: rising in 75 % of intervals and never falling."""
    pts = [(0, 0), (1, 10 << 20), (2, 20 << 20), (3, 19 << 20), (4, 30 << 20), (5, 40 << 20)]
    assert eta.time_to_limit(pts, 1 << 30, min_change=4 << 20).eta_s is not None
    assert eta.time_to_limit(pts, 1 << 30, min_change=4 << 20, share=0.75, max_setback=0, min_points=5).eta_s is None

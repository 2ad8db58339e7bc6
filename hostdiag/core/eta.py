"""Time to exhaustion, one mechanism for every bounded resource (memory, swap, fds, ports, inodes,
bytes, threads): a robust rate over what was measured, the headroom left, and no promise about
a future much further out than the span the rate was measured over.

    e = time_to_limit(series, limit=file_max)           # Series or [(t, v), ...]
    e.eta_s, e.rate_per_s, e.limit_fraction
    eta_level(e.eta_s, th, "files.eta_s")                # 'critical' | 'warning' | None

Semantics (shared with processes.rss_growth/thread_growth):
- rate: least-squares slope (Series.slope) of the level; `rising=False` measures a falling level
  (available memory) against a floor instead of a ceiling;
- steady: the level must have moved at least `min_change` toward the limit, in most intervals,
  without a step back larger than a fraction of the move: a burst that settles is not a trend;
- eta_s = headroom / rate, None when not moving toward the limit or when the ETA lies more than
  `max_extrapolate` times the measured span ahead (a 5 s window says nothing about tomorrow);
- limit_fraction = how much of the limit is used now (0..1), for ranking.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from hostdiag.core.thresholds import Threshold

# An ETA is only given this many times further out than the span it was measured over.
EXTRAPOLATE_MAX = 120.0
# The imminence rule: any resource whose ETA is under an hour is a warning, under 10 min
# critical, whatever its level today. Collectors declare "<name>.eta_s" with this.
IMMINENT = Threshold(3600, 600, "seconds", "", higher_is_worse=False)
MIN_POINTS = 3
STEADY_SHARE = 0.6          # share of intervals that must move toward the limit
MAX_SETBACK = 0.25          # largest step away from the limit, as a share of the net move


def threshold(what: str) -> Threshold:
    """The imminence threshold for one resource, with its help text."""
    return Threshold(IMMINENT.warning, IMMINENT.critical, "seconds",
                     f"time until {what}, at the rate measured over the window (steady growth only; never "
                     f"extrapolated beyond {EXTRAPOLATE_MAX:g}x the measured span); imminent is imminent "
                     "whatever today's level",
                     higher_is_worse=False)


@dataclass(frozen=True)
class Eta:
    rate_per_s: float | None        # toward the limit: > 0 means approaching it
    eta_s: float | None             # seconds until the limit; None: not approaching, or too far to say
    measured_s: float               # span the rate was measured over
    headroom: float | None          # what is left before the limit
    limit_fraction: float | None    # used share of the limit now, 0..1

    def evidence(self, digits: int = 1) -> dict:
        """The keys every ETA finding carries (rate_per_s, eta_s, measured_s, limit_fraction)."""
        return {"rate_per_s": None if self.rate_per_s is None else round(self.rate_per_s, 2),
                "eta_s": None if self.eta_s is None else round(self.eta_s, digits),
                "measured_s": round(self.measured_s, 1),
                "limit_fraction": None if self.limit_fraction is None else round(self.limit_fraction, 4)}


NONE = Eta(None, None, 0.0, None, None)


def _points(src) -> list[tuple[float, float]]:
    if hasattr(src, "t") and hasattr(src, "v"):
        pairs: Iterable = zip(src.t, src.v)
    else:
        pairs = src or ()
    return [(float(t), float(v)) for t, v in pairs if v is not None and t is not None]


def slope(pts: list[tuple[float, float]]) -> float | None:
    """Least-squares change per second (Series.slope on bare points)."""
    n = len(pts)
    if n < 2:
        return None
    mt = sum(t for t, _ in pts) / n
    mv = sum(v for _, v in pts) / n
    sxx = sum((t - mt) ** 2 for t, _ in pts)
    if sxx <= 0:
        return None
    return sum((t - mt) * (v - mv) for t, v in pts) / sxx


def steady(pts: list[tuple[float, float]], *, rising: bool = True, min_change: float = 0.0,
           min_points: int = MIN_POINTS, share: float = STEADY_SHARE, max_setback: float = MAX_SETBACK) -> bool:
    """Moved toward the limit by >= min_change, in at least `share` of the intervals, with no step
    back larger than `max_setback` of the net move (0: none at all)."""
    if len(pts) < min_points:
        return False
    sign = 1.0 if rising else -1.0
    vs = [sign * v for _, v in pts]
    move = vs[-1] - vs[0]
    if move <= 0 or move < min_change:
        return False
    steps = [b - a for a, b in zip(vs, vs[1:])]
    if sum(s > 0 for s in steps) < share * len(steps):
        return False
    return min(steps) >= -max_setback * move


def time_to_limit(src, limit: float | None, *, current: float | None = None, rising: bool = True,
                  min_change: float = 0.0, min_points: int = MIN_POINTS,
                  max_extrapolate: float = EXTRAPOLATE_MAX, share: float = STEADY_SHARE,
                  max_setback: float = MAX_SETBACK) -> Eta:
    """Seconds until `src` (a Series or (t, v) points) reaches `limit` at its measured rate.

    rising=True: the level grows toward a ceiling (fds toward RLIMIT_NOFILE); rising=False: it
    falls toward a floor (available memory toward 0). `current` overrides the last sample as
    today's level (a fresher read at the end of the window)."""
    pts = _points(src)
    if limit is None:
        return NONE
    span = pts[-1][0] - pts[0][0] if len(pts) >= 2 else 0.0
    now = current if current is not None else (pts[-1][1] if pts else None)
    if now is None:
        return NONE
    headroom = max(0.0, (limit - now) if rising else (now - limit))
    if rising:
        frac = min(1.0, max(0.0, now / limit)) if limit > 0 else None
    else:
        frac = None   # a floor has no "share used"; callers with a total give their own
    ok = steady(pts, rising=rising, min_change=min_change, min_points=min_points, share=share,
                max_setback=max_setback)
    g = slope(pts) if ok else None
    rate = None if g is None else (g if rising else -g)
    if rate is None or rate <= 0:
        return Eta(rate, None, span, headroom, frac)
    eta = headroom / rate
    if eta > max_extrapolate * span:
        eta = None
    return Eta(rate, eta, span, headroom, frac)


ETA_KEYS = frozenset({"eta_s", "rate_per_s", "per_s", "measured_s", "limit", "limit_fraction", "owner_fd_limit",
                      "owner_fds", "fd_pct"})


def compact(evidence: dict) -> dict:
    """A finding's evidence without the ETA keys that are unknown (None): no 'eta_s=n/a' noise."""
    return {k: v for k, v in evidence.items() if v is not None or k not in ETA_KEYS}


def eta_level(eta_s: float | None, th=None, key: str | None = None) -> str | None:
    """'critical' under 10 min, 'warning' under 1 h (or threshold `key` of `th`), else None."""
    if eta_s is None:
        return None
    t = th[key] if th is not None and key is not None else IMMINENT
    if eta_s <= t.critical:
        return "critical"
    if eta_s <= t.warning:
        return "warning"
    return None


def in_words(eta_s: float | None) -> str:
    """'~6 min'; '' without an ETA."""
    from hostdiag.core.units import human_duration
    return "" if eta_s is None else f"~{human_duration(eta_s)}"

"""Units and times, written once: byte and duration formatting, RFC 3339, severities.

Every renderer, collector and the matcher use these; a copy elsewhere is a bug waiting to drift.
"""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Iterable

_BINARY = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")
SEVERITY_RANK = {"critical": 2, "warning": 1, "info": 0}
# The matcher says "too short to judge" below this many points; the snapshot skips numpy then.
MIN_POINTS = 8


def human_bytes(n: float | None) -> str:
    """1536 -> '1.5 KiB'; None -> 'n/a'."""
    if n is None:
        return "n/a"
    n = float(n)
    for unit in _BINARY:
        if abs(n) < 1024 or unit == _BINARY[-1]:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} PiB"  # unreachable


def human_duration(s: float | None) -> str:
    """Seconds -> '4.2 s', '45 s', '12 min', '3.4 h', '2.1 d'; None -> 'n/a'."""
    if s is None:
        return "n/a"
    s = abs(float(s))
    if s < 10:
        return f"{s:.1f} s"
    if s < 120:
        return f"{s:.0f} s"
    if s < 7200:
        return f"{s / 60:.0f} min"
    if s < 172800:
        return f"{s / 3600:.1f} h"
    return f"{s / 86400:.1f} d"


def rfc3339(t: float) -> str:
    """Epoch seconds -> '2026-11-29T06:00:00+00:00' (UTC, whole seconds)."""
    return datetime.fromtimestamp(t, timezone.utc).isoformat(timespec="seconds")


def parse_rfc3339(s: str | None) -> float | None:
    """RFC 3339 / ISO-8601 ('Z' allowed; naive means UTC) -> epoch seconds; None if unreadable."""
    if not s or not isinstance(s, str):
        return None
    t = s.strip()
    if t.endswith(("Z", "z")):
        t = t[:-1] + "+00:00"
    try:
        dt = datetime.fromisoformat(t)
    except ValueError:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.timestamp()


def worst_severity(levels: Iterable[str | None]) -> str | None:
    """The most severe of 'critical'/'warning'/'info' given; None if none is."""
    best = None
    for lv in levels:
        if lv in SEVERITY_RANK and (best is None or SEVERITY_RANK[lv] > SEVERITY_RANK[best]):
            best = lv
    return best

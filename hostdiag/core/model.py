"""The snapshot data model: plain stdlib dataclasses, serialised with dataclasses.asdict.

Schema evolution is additive (below's rule): new fields get defaults, keys are never
renamed in place, and SCHEMA_VERSION is bumped only on a breaking change.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from hostdiag.core.units import SEVERITY_RANK

SCHEMA_VERSION = 1

Status = Literal["ok", "partial", "unavailable"]
Severity = Literal["critical", "warning", "info"]


@dataclass
class Series:
    """One metric over time: raw values at offsets t (seconds) from t0 (epoch seconds)."""

    metric: str                       # "io.read_bytes"
    unit: str                         # "bytes", "percent", "count", "seconds"...
    t: list[float] = field(default_factory=list)
    v: list[float | None] = field(default_factory=list)
    labels: dict[str, str] = field(default_factory=dict)   # {"device": "sda"}
    counter: bool = False             # monotonically increasing: use rate()
    t0: float | None = None           # epoch seconds of t == 0 (window start, or a log series' first minute)

    @property
    def key(self) -> str:
        """'io.read_bytes[device=sda]': the key in Snapshot.series."""
        if not self.labels:
            return self.metric
        return self.metric + "[" + ",".join(f"{k}={v}" for k, v in sorted(self.labels.items())) + "]"

    def last(self) -> float | None:
        return next((x for x in reversed(self.v) if x is not None), None)

    def rate(self) -> float | None:
        """Per-second rate from first to last sample; None without two samples or on reset."""
        pts = [(t, v) for t, v in zip(self.t, self.v) if v is not None]
        if len(pts) < 2 or pts[-1][0] <= pts[0][0]:
            return None
        (t0, v0), (t1, v1) = pts[0], pts[-1]
        if v1 < v0:  # counter reset or wrap (psutil #1210): no rate rather than a negative one
            return None
        return (v1 - v0) / (t1 - t0)

    def _points(self) -> list[tuple[float, float]]:
        return [(t, v) for t, v in zip(self.t, self.v) if v is not None]

    def delta(self) -> float | None:
        """Last minus first present value (a gauge's change over the window); None without two."""
        pts = self._points()
        return pts[-1][1] - pts[0][1] if len(pts) >= 2 else None

    def slope(self) -> float | None:
        """Least-squares change per second of a gauge; None without two distinct times."""
        pts = self._points()
        if len(pts) < 2:
            return None
        n = len(pts)
        mt = sum(t for t, _ in pts) / n
        mv = sum(v for _, v in pts) / n
        sxx = sum((t - mt) ** 2 for t, _ in pts)
        if sxx <= 0:
            return None
        return sum((t - mt) * (v - mv) for t, v in pts) / sxx

    def rates(self) -> list[float | None]:
        """Per-interval rates (len(v) - 1 values), None across gaps and resets."""
        out: list[float | None] = []
        for (t0, v0), (t1, v1) in zip(zip(self.t, self.v), zip(self.t[1:], self.v[1:])):
            if v0 is None or v1 is None or t1 <= t0 or v1 < v0:
                out.append(None)
            else:
                out.append((v1 - v0) / (t1 - t0))
        return out

    def display_values(self) -> list[float | None]:
        """What a sparkline should draw: rates for counters, levels otherwise."""
        return self.rates() if self.counter else list(self.v)


@dataclass
class Section:
    """One collector's result. status != ok always comes with a reason."""

    name: str
    status: Status
    reason: str | None = None
    duration_s: float = 0.0
    data: dict[str, Any] = field(default_factory=dict)
    blind_spots: list[str] = field(default_factory=list)


@dataclass
class Finding:
    id: str                           # "<collector>.<condition>", stable: scripts key on it
    category: str
    severity: Severity
    title: str                        # one line, numbers included
    subject: dict[str, Any] = field(default_factory=dict)    # {"pid": 1234, "name": "java"}
    evidence: dict[str, Any] = field(default_factory=dict)
    verify: str = ""                  # the standard command a human runs to confirm it
    stabilize: list[str] = field(default_factory=list)       # options as text, never executed
    impact: str = ""                  # what this does to users/services, one line
    since: str | None = None          # RFC 3339 onset, when known
    score: float = 0.0                # the collector's own measure, in its own unit: never ranked across findings
    # Urgency inputs (hostdiag.analysis.urgency); None = derive from evidence/subject. Collectors may fill them.
    eta_s: float | None = None        # seconds until the resource is exhausted (0 = already)
    limit_fraction: float | None = None   # 0..1 of the limit in use
    host_wide: bool | None = None     # the whole host, not one process/cgroup/port/device

    @property
    def rank(self) -> tuple[int, float]:
        """Severity, then the collector's score: kept for callers; the report ranks by analysis.urgency.urgency."""
        return (SEVERITY_RANK[self.severity], self.score)


@dataclass
class Host:
    hostname: str
    kernel: str
    os: str
    cpus: int | None
    boot_time: str | None
    uptime_s: float | None
    euid: int
    hostdiag_version: str


@dataclass
class Snapshot:
    schema_version: int
    host: Host
    collected_at: str                 # RFC 3339 UTC, end of the window
    window_s: float
    interval_s: float
    sections: dict[str, Section]
    series: dict[str, Series]
    duration_s: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)   # phase -> seconds (sampling, procscan...)
    interrupted: bool = False         # Ctrl-C ended the window early: a partial snapshot
    # The runner's full process scan (procscan.Scan), in memory only: never serialised (to_dict
    # is explicit). `hostdiag capture` keeps its top-N process rows, with start times, from it.
    scan: Any = field(default=None, repr=False, compare=False)


@dataclass
class BlindSpot:
    collector: str
    status: Status
    reason: str


@dataclass
class Headline:
    """Condition / Action / Need: the five-second read."""

    severity: Severity | Literal["ok", "unknown"]   # unknown: most collectors could not see (exit 3)
    condition: str
    action: str                       # includes "Verify: <command>" when there is one
    need: str
    verify: str = ""                  # that command alone (renderers fold it so it pastes whole)


@dataclass
class ShapeMatch:
    """A sampled series that matches a known failure shape (an archetype, or a generic shape)."""

    series: str                       # the key in Snapshot.series
    metric: str
    labels: dict[str, str]
    shape: str                        # "ramp", "stair_step"...
    signature: str | None             # archetype id; None or "shape.*" for a generic shape
    score: float
    start: float                      # matched interval, seconds from the series' t0
    end: float
    why: str
    start_epoch: float
    end_epoch: float
    title: str | None = None
    first_checks: list[str] = field(default_factory=list)
    stabilize: list[str] = field(default_factory=list)
    avoid: list[str] = field(default_factory=list)
    runbook: str | None = None
    generic: bool = False             # a generic shape: listed, never a finding


@dataclass
class Report:
    """What every renderer reads: built by hostdiag.analysis from a Snapshot, which it leaves as collected.
    `snapshot` here is the cleaned (sanitised, annotated) copy."""

    snapshot: Snapshot
    headline: Headline
    findings: list[Finding]           # ranked, most severe first
    blind_spots: list[BlindSpot]
    shapes: list[ShapeMatch] = field(default_factory=list)   # matcher hits on the series, best first

    def to_dict(self) -> dict[str, Any]:
        """The --json document. Top-level keys are documented in the README."""
        snap = self.snapshot
        return {
            "schema_version": snap.schema_version,
            "host": asdict(snap.host),
            "collected_at": snap.collected_at,
            "window_s": snap.window_s,
            "interval_s": snap.interval_s,
            "duration_s": round(snap.duration_s, 3),
            "timings": {k: round(v, 4) for k, v in snap.timings.items()},
            "headline": asdict(self.headline),
            "findings": [asdict(f) for f in self.findings],
            "sections": {k: asdict(s) for k, s in snap.sections.items()},
            "blind_spots": [asdict(b) for b in self.blind_spots],
            "shapes": [asdict(m) for m in self.shapes],
            "series": {k: _series_dict(s) for k, s in snap.series.items()},
        }


def _series_dict(s: Series) -> dict[str, Any]:
    d = asdict(s)
    d["t"] = [round(x, 3) for x in s.t]
    d["v"] = [None if (x is None or (isinstance(x, float) and not math.isfinite(x))) else x for x in s.v]
    return d

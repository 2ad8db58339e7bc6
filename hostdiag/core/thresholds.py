"""Named threshold levels (glances' careful/warning/critical), declared by each collector
next to the findings that use them, listed by `hostdiag thresholds`, overridden with
`--threshold KEY=WARNING[,CRITICAL]`.
"""
from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True)
class Threshold:
    warning: float
    critical: float
    unit: str
    help: str
    higher_is_worse: bool = True


class Thresholds:
    def __init__(self, table: dict[str, Threshold]):
        self._t = dict(table)

    def __getitem__(self, key: str) -> Threshold:
        return self._t[key]

    def items(self):
        return sorted(self._t.items())

    def level(self, key: str, value: float | None) -> str | None:
        """'critical', 'warning' or None for a value against threshold `key`."""
        if value is None:
            return None
        t = self._t[key]
        worse = (lambda a, b: a >= b) if t.higher_is_worse else (lambda a, b: a <= b)
        if worse(value, t.critical):
            return "critical"
        if worse(value, t.warning):
            return "warning"
        return None

    def override(self, spec: str) -> None:
        """Apply 'KEY=WARNING[,CRITICAL]'; raises ValueError with a usable message."""
        key, sep, rhs = spec.partition("=")
        key = key.strip()
        if not sep or key not in self._t:
            known = ", ".join(sorted(self._t))
            raise ValueError(f"unknown threshold {key!r}; known: {known}")
        parts = [p.strip() for p in rhs.split(",")]
        try:
            vals = [float(p) for p in parts if p]
        except ValueError:
            raise ValueError(f"threshold {key}: expected WARNING[,CRITICAL] numbers, got {rhs!r}") from None
        if not 1 <= len(vals) <= 2:
            raise ValueError(f"threshold {key}: expected WARNING[,CRITICAL], got {rhs!r}")
        t = self._t[key]
        self._t[key] = replace(t, warning=vals[0], critical=vals[1] if len(vals) == 2 else t.critical)

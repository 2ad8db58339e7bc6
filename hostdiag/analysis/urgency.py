"""Step 4: rank findings by urgency on one scale (documented in the README, "Ranking").

Raw scores are in each collector's own unit (sockets, percent, kills), so they never compare
across findings. The key, most urgent first:

  1. severity                      critical > warning > info
  2. pinned                        within criticals: a recent OOM kill (its last kill at most
                                   RECENT_OOM_S before the snapshot; an older one is history and
                                   ranks like any critical), a read-only remount, a full
                                   filesystem (nothing left to lose)
  3. imminence band                exhausted now > under 10 min > under 1 h > unknown or under
                                   a day > later  (from eta_s or evidence time_to_*_s; a limit
                                   100 % used is exhausted now)
  4. fraction of the limit used    0..1, from limit_fraction or the evidence's *_pct of a limit
  5. breadth                       host-wide above one process, cgroup, port or device
  6. exact time to exhaustion      sooner first
Ties keep the collectors' order (a stable sort).
"""
from __future__ import annotations

import math
from dataclasses import replace

from hostdiag.core.model import Finding
from hostdiag.core.units import SEVERITY_RANK

# Evidence keys that give a time to exhaustion, in seconds.
ETA_KEYS = ("eta_s", "time_to_full_s", "time_to_limit_s", "time_to_exhaustion_s", "time_to_oom_s")
# Evidence keys that are "percent of a limit used" (not rates, not shares of time).
LIMIT_PCT_KEYS = ("used_pct", "usage_pct", "working_set_pct", "inodes_used_pct", "file_handles_pct", "pct",
                  "pids_pct", "pid_pct", "nproc_pct", "threads_pct", "time_wait_pct", "queue_pct", "swap_used_pct")
# Shares of a capacity: they rank like a fraction, but 100 % busy is not "exhausted" (nothing fails).
UTIL_PCT_KEYS = ("util_pct", "busy_pct", "held_pct")
# Percent of a resource still free: used = 100 - x.
FREE_PCT_KEYS = ("available_pct",)
# Subject keys that narrow a finding to one thing on the host.
NARROW_KEYS = ("pid", "cgroup", "port", "unit", "device", "mount", "iface", "user", "uid")
PINNED_IDS = ("disk.readonly_remount", "kernel.fs_readonly")
OOM_IDS = ("memory.oom_kills", "kernel.oom_kill", "journal.oom_kill")
EXHAUSTED = 0.999      # of the limit: nothing left, whatever the rate
# A kill 28 minutes old headed a report above a tmpfs 2 s from full: past this it is history.
RECENT_OOM_S = 600.0
BANDS = ((0.0, 4), (600.0, 3), (3600.0, 2), (86400.0, 1))


def _num(v) -> float | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    v = float(v)
    return v if math.isfinite(v) else None


def eta_s(f: Finding) -> float | None:
    """Seconds until the resource runs out, when known (the field, else the evidence); 0 when
    the limit is already reached (100 % used)."""
    if f.eta_s is not None:
        return _num(f.eta_s)
    eta = next((x for x in (_num(f.evidence.get(k)) for k in ETA_KEYS) if x is not None), None)
    if eta is None:
        fr = _hard_fraction(f)
        if fr is not None and fr >= EXHAUSTED:
            return 0.0
    return eta


def _hard_fraction(f: Finding) -> float | None:
    """The fullest hard limit in the evidence (what fails when it reaches 100 %)."""
    if f.limit_fraction is not None:
        return _num(f.limit_fraction)
    fr = [x / 100 for x in (_num(f.evidence.get(k)) for k in LIMIT_PCT_KEYS) if x is not None]
    fr += [1 - x / 100 for x in (_num(f.evidence.get(k)) for k in FREE_PCT_KEYS) if x is not None]
    return max(0.0, min(1.0, max(fr))) if fr else None


def limit_fraction(f: Finding) -> float | None:
    """Fraction (0..1) of the limit in use: the field, else the fullest limit (or capacity) in the evidence."""
    hard = _hard_fraction(f)
    if f.limit_fraction is not None:
        return hard
    util = [x / 100 for x in (_num(f.evidence.get(k)) for k in UTIL_PCT_KEYS) if x is not None]
    fr = [x for x in (hard, *util) if x is not None]
    return max(0.0, min(1.0, max(fr))) if fr else None


def host_wide(f: Finding) -> bool:
    if f.host_wide is not None:
        return bool(f.host_wide)
    return not any(k in f.subject for k in NARROW_KEYS)


def _last_kill(f: Finding) -> float | None:
    """Epoch seconds of a log-read OOM kill finding's latest kill (evidence last/first, else since)."""
    from hostdiag.core.units import parse_rfc3339

    for v in (f.evidence.get("last"), f.evidence.get("first"), f.since):
        t = parse_rfc3339(v) if isinstance(v, str) else None
        if t is not None:
            return t
    return None


def pinned(f: Finding, now: float | None = None) -> bool:
    """Top of criticals: the damage is done (recently) or the resource is gone."""
    if f.severity != "critical":
        return False
    if f.id in OOM_IDS:
        t = _last_kill(f)
        return now is None or t is None or now - t <= RECENT_OOM_S
    if f.id in PINNED_IDS:
        return True
    fr = limit_fraction(f)
    return f.id in ("disk.nearly_full", "disk.inodes_exhausted") and fr is not None and fr >= 0.995


def band(eta: float | None) -> int:
    if eta is None:
        return 1
    return next((b for limit, b in BANDS if eta <= limit), 0)


def urgency(f: Finding, now: float | None = None) -> tuple:
    """The sort key (bigger is more urgent); see the module docstring. `now`: the snapshot's
    time (None: every OOM kill counts as recent)."""
    eta = eta_s(f)
    fr = limit_fraction(f)
    return (SEVERITY_RANK[f.severity], pinned(f, now), band(eta), round(fr, 2) if fr is not None else -1.0,
            host_wide(f), -eta if eta is not None else -math.inf)


def rank(findings: list[Finding], now: float | None = None) -> list[Finding]:
    """Most urgent first (stable), each with its derived eta_s, limit_fraction (of a hard limit only)
    and host_wide filled: ranking the result again gives the same order."""
    # keys from the findings as given: the derived fields must not feed back (a busy CPU's 1.0 is no hard limit)
    keyed = sorted(((urgency(f, now), i) for i, f in enumerate(findings)), key=lambda x: x[0], reverse=True)
    return [replace(f, eta_s=eta_s(f), limit_fraction=_hard_fraction(f), host_wide=host_wide(f))
            for f in (findings[i] for _, i in keyed)]

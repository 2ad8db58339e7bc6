"""Tie findings to what changed just before they began ("what changed, and when?").

Incident practice: if impact began shortly after a change, rolling that change back is the
first stabilize option to consider. hostdiag says so as an option with the evidence, never
as an action taken.

    from hostdiag.analysis.correlate import correlate
    findings = correlate(findings, report.snapshot.sections["changes"].data["timeline"])
"""
from __future__ import annotations

from dataclasses import replace

from hostdiag.core.units import parse_rfc3339 as parse_time

# Change kinds a responder can roll back or revert; others (logins, processes, boots) are context.
ROLLBACK_KINDS = ("package", "apt", "config", "crontab", "module")
CAUSE_KINDS = ROLLBACK_KINDS + ("unit",)


def change_before(onset: float, changes: list[dict], window_s: float = 1800, kinds=CAUSE_KINDS) -> dict | None:
    """The newest change of `kinds` within window_s before (or at) onset, with minutes_before added."""
    best, best_t = None, None
    for c in changes:
        if c.get("kind") not in kinds:
            continue
        t = parse_time(c.get("time"))
        if t is None or not (onset - window_s <= t <= onset):
            continue
        if best_t is None or t > best_t:
            best, best_t = c, t
    if best is None:
        return None
    return {**best, "minutes_before": round((onset - best_t) / 60, 1)}


def rollback_option(change: dict) -> str:
    """The stabilize option text for a change before onset."""
    when, n = change.get("time"), change.get("minutes_before")
    if change.get("kind") in ROLLBACK_KINDS:
        return f"Consider rolling back {change.get('what')} (changed {when}, {n:g} min before onset)"
    return f"Consider whether {change.get('what')} ({when}, {n:g} min before onset) caused this"


def correlate(findings: list, changes_entries: list[dict] | None, window_s: float = 1800) -> list:
    """Findings with onset (`since`) get evidence["after_change"] and, first in stabilize, an option to
    consider rolling that change back. Returns new Finding objects; the input is not modified."""
    if not changes_entries:
        return list(findings)
    out = []
    for f in findings:
        onset = parse_time(getattr(f, "since", None))
        ch = change_before(onset, changes_entries, window_s) if onset is not None else None
        if ch is None:
            out.append(f)
            continue
        evidence = {**f.evidence, "after_change": {k: ch[k] for k in ("time", "kind", "what", "source", "minutes_before")
                                                   if k in ch}}
        out.append(replace(f, evidence=evidence, stabilize=[rollback_option(ch), *f.stabilize]))
    return out

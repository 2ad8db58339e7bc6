"""Tie findings to what changed before them ("what changed, and when?"): links first, time second.

A change is *linked* to a finding when something other than time ties them, as the changes
collector recorded it on the timeline entry (`linked`: the pids whose executable belongs to the
changed package, whose unit is the changed unit, or that use the changed config file) or as the
finding's subject says (same unit, same cgroup). A linked change before onset is the first
stabilize option to consider (roll it back, or ask whether it caused this). A change that only
happened shortly before onset is shown as "unrelated by anything but time", and never offered
as a rollback: on a busy host something always changed a minute earlier.

    from hostdiag.analysis.correlate import correlate
    findings = correlate(findings, report.snapshot.sections["changes"].data["timeline"])
"""
from __future__ import annotations

from dataclasses import replace

from hostdiag.core.units import parse_rfc3339 as parse_time

# Change kinds a responder can roll back or revert; others (logins, processes, boots) are context.
ROLLBACK_KINDS = ("package", "apt", "config", "crontab", "module")
CAUSE_KINDS = ROLLBACK_KINDS + ("unit",)
# A linked change counts this long before onset (the timeline's own span); time alone, window_s.
LINK_WINDOW_S = 24 * 3600
UNRELATED = "unrelated by anything but time"
_KEEP = ("time", "kind", "what", "source", "minutes_before")


def link(finding, change: dict) -> str | None:
    """Why `change` is tied to `finding` (a short phrase), or None when only time could tie them."""
    subj = getattr(finding, "subject", None) or {}
    pid = subj.get("pid")
    for ln in change.get("linked") or ():
        if pid is not None and ln.get("pid") == pid:
            return ln.get("why") or "same process"
    unit = change.get("unit")
    if unit:
        if subj.get("unit") == unit:
            return f"same unit {unit}"
        cg = str(subj.get("cgroup") or "")
        if cg and unit in cg.strip("/").split("/"):
            return f"same cgroup ({cg} is unit {unit})"
    return None


def change_before(onset: float, changes: list[dict], window_s: float = 1800, kinds=CAUSE_KINDS,
                  finding=None) -> dict | None:
    """The newest change of `kinds` before (or at) onset: a linked one (within LINK_WINDOW_S) if
    any, with `link` saying why; else one within window_s by time alone, with `link` None."""
    best: dict[bool, tuple[float, dict, str | None]] = {}
    for c in changes:
        if c.get("kind") not in kinds:
            continue
        t = parse_time(c.get("time"))
        if t is None or t > onset:
            continue
        why = link(finding, c) if finding is not None else None
        linked = why is not None
        if onset - t > (LINK_WINDOW_S if linked else window_s):
            continue
        if linked not in best or t > best[linked][0]:
            best[linked] = (t, c, why)
    pick = best.get(True) or best.get(False)
    if pick is None:
        return None
    t, c, why = pick
    return {**c, "minutes_before": round((onset - t) / 60, 1), "link": why}


def linked_change(finding, changes: list[dict], kinds=CAUSE_KINDS) -> dict | None:
    """The newest change of `kinds` linked to a finding that has no onset (the timeline's own
    window bounds it in time)."""
    best, best_t = None, None
    for c in changes:
        t = parse_time(c.get("time"))
        if c.get("kind") not in kinds or t is None:
            continue
        why = link(finding, c)
        if why is not None and (best_t is None or t > best_t):
            best, best_t = {**c, "link": why}, t
    return best


def rollback_option(change: dict) -> str:
    """The stabilize option text for a linked change before onset."""
    when, n, why = change.get("time"), change.get("minutes_before"), change.get("link")
    tie = f"; linked: {why}" if why else ""
    before = f", {n:g} min before onset" if n is not None else ""
    if change.get("kind") in ROLLBACK_KINDS:
        return f"Consider rolling back {change.get('what')} (changed {when}{before}{tie})"
    return f"Consider whether {change.get('what')} ({when}{before}{tie}) caused this"


def correlate(findings: list, changes_entries: list[dict] | None, window_s: float = 1800,
              now: float | None = None) -> list:
    """Findings get evidence["after_change"] (a linked change, first in stabilize as an option) or
    evidence["unrelated_change"] (time alone: shown, no option). Onset is the finding's `since`;
    without one, only a linked change counts (before `now` if given, else anywhere in the timeline). Returns new Finding objects; the input is not modified."""
    if not changes_entries:
        return list(findings)
    out = []
    for f in findings:
        onset = parse_time(getattr(f, "since", None))
        ch = None
        if onset is not None:
            ch = change_before(onset, changes_entries, window_s, finding=f)
        elif now is not None:
            ch = change_before(now, changes_entries, 0, finding=f)   # no onset: a link is needed
        else:
            ch = linked_change(f, changes_entries)
        if ch is None:
            out.append(f)
            continue
        shown = {k: ch[k] for k in _KEEP if k in ch}
        if ch["link"] is None:
            out.append(replace(f, evidence={**f.evidence, "unrelated_change": {**shown, "note": UNRELATED}}))
            continue
        evidence = {**f.evidence, "after_change": {**shown, "link": ch["link"]}}
        out.append(replace(f, evidence=evidence, stabilize=[rollback_option(ch), *f.stabilize]))
    return out


def shapes_after_changes(shapes: list, changes_entries: list[dict] | None, window_s: float = 1800) -> list:
    """A shape that began shortly after a change says so in its `why`: linked (the change names
    the series' process) or, by time alone, marked as such. New ShapeMatch objects."""
    from dataclasses import replace
    from types import SimpleNamespace

    if not changes_entries:
        return list(shapes)
    out = []
    for m in shapes:
        pid = m.labels.get("pid")
        subject = {"pid": int(pid)} if pid and str(pid).isdigit() else {}
        ch = change_before(m.start_epoch, changes_entries, window_s, finding=SimpleNamespace(subject=subject))
        if ch is None or ch["minutes_before"] > window_s / 60:
            out.append(m)
            continue
        tie = f"linked: {ch['link']}" if ch.get("link") else UNRELATED
        out.append(replace(m, why=f"{m.why}; began {ch['minutes_before']:g} min after {ch.get('what')} ({tie})"))
    return out

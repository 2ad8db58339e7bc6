"""Snapshot -> Report: findings from every collector, ranked; the headline; the blind spots.

This is also where host text is made safe (sanitize.deep), once, before any renderer.
"""
from __future__ import annotations

import traceback
from dataclasses import fields, replace

from hostdiag.core import sanitize
from hostdiag.core.model import BlindSpot, Finding, Headline, Report, Section, Snapshot
from hostdiag.correlate import correlate
from hostdiag.matcher.snapshot import attach, match_snapshot


def build(snap: Snapshot, modules, thresholds, *, catalog=None, debug: bool = False) -> Report:
    """`catalog` (hostdiag.catalog.Catalog) enables shape matching of the sampled series."""
    findings: list[Finding] = []
    for m in modules:
        sec = snap.sections.get(m.NAME)
        if sec is None or sec.status == "unavailable":
            continue
        try:
            findings.extend(m.findings(sec, thresholds))
        except Exception as e:  # noqa: BLE001 - a bad rule must not hide the other findings
            if debug:
                traceback.print_exc()
            sec.status = "partial"
            note = f"findings failed: hostdiag bug: {type(e).__name__}: {e}"
            sec.blind_spots.append(note)
            sec.reason = "; ".join(filter(None, [sec.reason, note]))
    shapes: list[dict] = []
    if catalog is not None:
        shapes = match_snapshot(snap, catalog)
        findings = attach(findings, shapes)
    changes = snap.sections.get("changes")
    findings = correlate(findings, changes.data.get("timeline") if changes else None)
    findings.sort(key=lambda f: f.rank, reverse=True)
    findings = [_clean_finding(f) for f in findings]
    for name, sec in snap.sections.items():
        snap.sections[name] = _clean_section(sec)
    snap.host = replace(snap.host, **{k: sanitize.clean(v) for k, v in vars(snap.host).items() if isinstance(v, str)})
    blind = [BlindSpot(s.name, s.status, s.reason or "") for s in snap.sections.values() if s.status != "ok"]
    if catalog is not None and catalog.errors:
        blind.append(BlindSpot("signatures", "partial", sanitize.clean(
            f"{len(catalog.errors)} catalog file(s) invalid and skipped (hostdiag signatures lint): "
            + "; ".join(catalog.errors[:3]))))
    return Report(snapshot=snap, headline=headline(findings, blind), findings=findings, blind_spots=blind,
                  shapes=sanitize.deep(shapes))


def _clean_finding(f: Finding) -> Finding:
    return replace(f, **{x.name: sanitize.deep(getattr(f, x.name)) for x in fields(f)
                         if x.name not in ("score",)})


def _clean_section(s: Section) -> Section:
    return replace(s, reason=sanitize.clean(s.reason) if s.reason else s.reason,
                   data=sanitize.deep(s.data), blind_spots=sanitize.deep(s.blind_spots))


def headline(findings: list[Finding], blind: list[BlindSpot]) -> Headline:
    """Condition / Action / Need, one line each."""
    need = _need(blind)
    serious = [f for f in findings if f.severity != "info"]
    if not serious:
        return Headline("ok", "No warning or critical condition found.",
                        "Nothing to stabilize on this host from what hostdiag can see.", need)
    top = serious[0]
    n_crit = sum(f.severity == "critical" for f in serious)
    more = len(serious) - 1
    condition = top.title + (f" (since {top.since})" if top.since else "")
    if more:
        condition += f"; +{more} more ({n_crit} critical)" if n_crit else f"; +{more} more"
    first = next((s for s in top.stabilize if not s.lower().startswith("do not")), "see the findings below")
    action = f"{first}. Verify: {top.verify}" if top.verify else first
    return Headline(top.severity, condition, action, need)


def _need(blind: list[BlindSpot]) -> str:
    if not blind:
        return "Nothing: every collector saw its resource."
    root = [b.collector for b in blind if "root" in b.reason]
    parts = []
    if root:
        parts.append("run as root to see " + ", ".join(dict.fromkeys(root)) + " fully")
    other = [b for b in blind if b.collector not in root]
    parts += [f"{b.collector}: {b.status}" for b in other]
    return "; ".join(parts) + " (see Blind spots)."


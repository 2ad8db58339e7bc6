"""Step 1: each collector's findings() over its own section.

A rule that raises must not hide the other findings: its section is reported partial with
the bug named. That annotation goes on a copy; the Snapshot's own sections stay as collected.
"""
from __future__ import annotations

import traceback
from dataclasses import replace

from hostdiag.core.model import Finding, Section, Snapshot


def collector_findings(snap: Snapshot, modules, thresholds, *, debug: bool = False
                       ) -> tuple[list[Finding], dict[str, Section]]:
    """(findings in module order, the sections: the snapshot's own, or annotated copies)."""
    findings: list[Finding] = []
    sections = dict(snap.sections)
    for m in modules:
        sec = sections.get(m.NAME)
        if sec is None or sec.status == "unavailable":
            continue
        try:
            findings.extend(m.findings(sec, thresholds))
        except Exception as e:  # noqa: BLE001 - a bad rule must not hide the other findings
            if debug:
                traceback.print_exc()
            note = f"findings failed: hostdiag bug: {type(e).__name__}: {e}"
            sections[m.NAME] = replace(sec, status="partial", blind_spots=[*sec.blind_spots, note],
                                       reason="; ".join(filter(None, [sec.reason, note])))
    return findings, sections

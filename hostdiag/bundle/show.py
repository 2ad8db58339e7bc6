"""`hostdiag bundle show`: the report from a bundle, on any machine, with no access to the host.

The Report is rebuilt from snapshot.json (the same dataclasses `snapshot --json` serialised),
so every format the renderers have works, with findings, shapes and timeline. If this
hostdiag cannot rebuild it (a newer or older schema), the texts rendered on the host
(report.md, report.txt, snapshot.json) are printed as they are.
"""
from __future__ import annotations

import dataclasses
import json

from hostdiag.core.model import BlindSpot, Finding, Headline, Host, Report, Section, Series, ShapeMatch, Snapshot

STORED = {"json": "snapshot.json", "markdown": "report.md", "plain": "report.txt", "terminal": "report.txt"}


def _make(cls, d: dict):
    """cls(**d) keeping only the fields cls has (additive schema: unknown keys are newer fields)."""
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in d.items() if k in names})


def report_from_dict(d: dict) -> Report:
    """The Report whose to_dict() gave `d` (the --json document)."""
    snap = Snapshot(
        schema_version=d["schema_version"], host=_make(Host, d["host"]), collected_at=d["collected_at"],
        window_s=d["window_s"], interval_s=d["interval_s"],
        sections={k: _make(Section, s) for k, s in d["sections"].items()},
        series={k: _make(Series, s) for k, s in d["series"].items()},
        duration_s=d.get("duration_s", 0.0), timings=d.get("timings") or {})
    return Report(snapshot=snap, headline=_make(Headline, d["headline"]),
                  findings=[_make(Finding, f) for f in d["findings"]],
                  blind_spots=[_make(BlindSpot, b) for b in d["blind_spots"]],
                  shapes=[_make(ShapeMatch, s) for s in d.get("shapes") or []])


def render_member(members: dict[str, bytes], fmt: str, env) -> tuple[str, str | None]:
    """(text, note): the report in `fmt`, rebuilt from snapshot.json, else the stored text."""
    from hostdiag.render import render

    raw = members.get("snapshot.json")
    if raw is not None:
        try:
            return render(report_from_dict(json.loads(raw)), fmt, env), None
        except Exception as e:  # noqa: BLE001 - schema drift: fall back to the texts made on the host
            note = f"could not rebuild the report with this hostdiag ({type(e).__name__}: {e}); showing the stored text"
    else:
        note = "no snapshot.json in the bundle"
    stored = members.get(STORED[fmt])
    if stored is None:
        raise ValueError(f"{note}; and no stored {STORED[fmt]}")
    from hostdiag.core.sanitize import clean

    # Stored text is host text from another machine: keep control characters off this terminal.
    return clean(stored.decode("utf-8", "replace"), multiline=True, limit=len(stored) + 1), note

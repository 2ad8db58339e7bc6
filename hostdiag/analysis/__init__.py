"""The analysis layer: Snapshot -> Report. Above core and matcher, below render and commands.

`build` runs small steps in order; each takes and returns plain values, so a new source of
findings (a capture store's history, a bundle, packets) is one more step here:

  1. findings   each collector's rules over its own section     (analysis.findings)
     history    the capture store: since-when, trends, ETAs, longer series (analysis.history)
  2. shapes     the sampled series (+ extra_series) through the matcher; archetype matches
                enrich or add findings                           (analysis.shapes)
  3. correlate  onsets tied to the changes just before them      (analysis.correlate)
     commands   placeholders filled from the subject, quoted; unfillable lines dropped (analysis.commands)
  4. rank       by urgency on one scale                          (analysis.urgency)
  5. clean      host text escaped once (sanitize.deep), into copies
  6. blind spots and the headline                                (analysis.headline)

The Snapshot passed in is never modified: the Report holds cleaned copies of its sections
and host, and the raw sample stays what the runner collected.
"""
from __future__ import annotations

from dataclasses import fields, replace

from hostdiag.analysis.commands import commands, shape_checks
from hostdiag.analysis.correlate import correlate as correlate_changes, shapes_after_changes
from hostdiag.analysis.findings import collector_findings
from hostdiag.analysis.headline import blind_spots, headline
from hostdiag.analysis.urgency import rank
from hostdiag.analysis.shapes import attach, match_isolated
from hostdiag.core import sanitize
from hostdiag.core.model import BlindSpot, Finding, Report, Section, Series, ShapeMatch, Snapshot


def build(snap: Snapshot, modules, thresholds, *, catalog=None, debug: bool = False,
          extra_series: dict[str, Series] | None = None, history=None, history_note: str | None = None,
          extra_findings: list[Finding] | None = None, extra_sections: dict[str, Section] | None = None) -> Report:
    """`catalog` (hostdiag.catalog.Catalog) enables shape matching of the sampled series;
    `extra_series` are matched too, taking precedence over a snapshot series of the same key.
    `history` is an open, read-only hostdiag.history.History (None: no store; `history_note`
    then says why when one was there but unusable). `extra_findings`/`extra_sections` come from
    other sources of the same run (packets)."""
    findings, sections = collector_findings(snap, modules, thresholds, debug=debug)
    findings = [*findings, *(extra_findings or [])]
    sections = {**sections, **(extra_sections or {})}
    if history is not None or history_note:
        from hostdiag.analysis import history as hist

        now = snap_time(snap)
        hist_series: dict[str, Series] = {}
        if history is not None:
            hist_series = hist.series_for_matching(history, now, findings)
            findings = hist.annotate(findings, history, now)
            findings += hist.disk_trends(history, now, findings, thresholds)
        extra_series = {**hist_series, **(extra_series or {})}
        sections = {**sections, "history": hist.section(history, history_note, len(hist_series))}
    shapes: list[ShapeMatch] = []
    shapes_failed = None
    if catalog is not None:
        try:
            shapes = match_isolated({**snap.series, **(extra_series or {})}, catalog)
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as e:  # noqa: BLE001 - numpy missing or out of memory: a blind spot, not a lost report
            if debug:
                import traceback

                traceback.print_exc()
            why = str(e) if isinstance(e, RuntimeError) else f"{type(e).__name__}: {e}"
            shapes_failed = f"shape matching failed: {why}"[:300]
        findings = attach(findings, shapes)
        # A generic shape (no archetype) is listed only beside a warning or critical finding of
        # its category: there it shows the graph of the trouble; on a quiet host it is noise
        # (a shell's own commands spike forks and CPU). Archetype matches are always kept.
        loud = {f.category for f in findings if f.severity in ("warning", "critical")}
        shapes = [m for m in shapes if not m.generic or m.metric.split(".", 1)[0] in loud]
    changes = sections.get("changes")
    findings = correlate_changes(findings, changes.data.get("timeline") if changes else None)
    shapes = shapes_after_changes(shapes, changes.data.get("timeline") if changes else None)
    journal = sections.get("journal")
    has_journal = journal is None or journal.data.get("backend") != "text"
    findings = commands(findings, has_journal)
    shapes = shape_checks(shapes, has_journal)
    findings = rank(findings, snap_time(snap))
    clean = replace(snap, sections={n: _clean_section(s) for n, s in sections.items()}, series=dict(snap.series),
                    host=replace(snap.host, **{k: sanitize.clean(v) for k, v in vars(snap.host).items()
                                               if isinstance(v, str)}))
    findings = [_clean_finding(f) for f in findings]
    blind = blind_spots(clean.sections, catalog)
    if shapes_failed:
        blind.append(BlindSpot("signatures", "unavailable", sanitize.clean(shapes_failed)))
    return Report(snapshot=clean, headline=headline(findings, blind, clean.sections, snap.interrupted), findings=findings, blind_spots=blind,
                  shapes=[_clean_shape(m) for m in shapes])


def snap_time(snap: Snapshot) -> float:
    """The end of the snapshot's window, epoch seconds."""
    from hostdiag.core.units import parse_rfc3339

    t = parse_rfc3339(snap.collected_at)
    if t is None:
        import time

        t = time.time()
    return t


def _clean_finding(f: Finding) -> Finding:
    return replace(f, **{x.name: sanitize.deep(getattr(f, x.name)) for x in fields(f)
                         if x.name not in ("score",)})


def _clean_shape(m: ShapeMatch) -> ShapeMatch:
    return replace(m, **{x.name: sanitize.deep(getattr(m, x.name)) for x in fields(m)})


def _clean_section(s: Section) -> Section:
    return replace(s, reason=sanitize.clean(s.reason) if s.reason else s.reason,
                   data=sanitize.deep(s.data), blind_spots=sanitize.deep(s.blind_spots))

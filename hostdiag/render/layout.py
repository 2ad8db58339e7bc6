"""The report layout, built once: an ordered list of typed blocks with their data.

plain, markdown and terminal only style these blocks; none of them decides what goes in a
report or in which order. A new block is a dataclass here, one line in `layout()`, and one
styling function per renderer (each renderer's STYLERS table names them all, so a missing
one fails at import of the test, not in production).
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

from hostdiag.analysis.correlate import CAUSE_KINDS, UNRELATED
from hostdiag.analysis.shapes import finding_for
from hostdiag.core.model import BlindSpot, Finding, Headline, Report, ShapeMatch
from hostdiag.render import common

SHAPE_WIDTH = 32          # columns of a shape's sparkline
CHANGES_SHOWN = 10        # newest changes listed
# The default (brief) view fits one screen: BRIEF_LINES, or the terminal's height if smaller
# (fit() drops the least urgent findings, then changes and shapes); --full shows everything.
BRIEF_LINES = 30
BRIEF_FINDINGS = 6        # warning/critical findings listed at most; the rest counted
BRIEF_CHANGES = 3
BRIEF_SHAPES = 3
AS_ABOVE = "(as above)"   # a brief finding's verify that was printed already (the first finding's, if it
                          # is the headline's, is not repeated at all: the headline is that finding)


@dataclass
class Header:
    hostname: str
    host_line: str
    headline: Headline
    impact: str = ""                         # the top finding's: what breaks if nothing is done


@dataclass
class Findings:
    findings: list[Finding]                  # ranked (brief: the first BRIEF_FINDINGS serious ones)
    serious: int                             # warning + critical
    info: int
    brief: bool = False
    hidden: int = 0                          # brief: findings not listed (see --full)
    verify: list[str] = field(default_factory=list)   # brief: each one's command, AS_ABOVE or ""
    titles: list[str] = field(default_factory=list)   # brief: each one's line (common.brief_line, +alike)


@dataclass
class Changes:
    rows: list[dict]                         # newest first: time, kind, what, source
    total: int
    brief: bool = False


@dataclass
class ShapeRow:
    match: ShapeMatch
    values: list[float | None]               # what to draw, at most SHAPE_WIDTH points
    mark: str                                # '^' under the matched interval


@dataclass
class Shapes:
    rows: list[ShapeRow]
    brief: bool = False                      # archetype matches only, no sparklines


@dataclass
class SectionEvidence:
    name: str
    status: str
    duration_s: float
    facts: list[tuple[str, str]] = field(default_factory=list)
    trends: list[tuple[str, list, str]] = field(default_factory=list)   # (label, values, last)
    tables: list[common.Table] = field(default_factory=list)


@dataclass
class Evidence:
    sections: list[SectionEvidence]


@dataclass
class BlindSpots:
    spots: list[BlindSpot]
    brief: bool = False                      # one line: names and statuses


Block = Header | Findings | Changes | Shapes | Evidence | BlindSpots
ORDER = (Header, Findings, Changes, Shapes, Evidence, BlindSpots)


def layout(report: Report, top: int = 5, full: bool = True, brief_findings: int = BRIEF_FINDINGS,
           extras: bool = True) -> list[Block]:
    """The blocks of a report, in order. Changes only when the changes collector ran or there
    are rows; Shapes only when something matched. `full=False` is the one-screen view: the
    status, the most urgent findings with their verify command, the newest changes, archetype
    matches and one line of blind spots; no per-section evidence. `brief_findings` and `extras`
    (changes, shapes) are what fit() trims to make it fit."""
    snap = report.snapshot
    serious = sum(f.severity != "info" for f in report.findings)
    top_impact = next((f.impact for f in report.findings if f.severity != "info"), "") if serious else ""
    blocks: list[Block] = [Header(snap.host.hostname, common.host_line(report), report.headline, top_impact)]
    rows, total = what_changed(report)
    if not full:
        shown, titles, folded = _brief_findings(report, brief_findings)
        blocks.append(Findings(shown, serious, len(report.findings) - serious, True,
                               len(report.findings) - len(shown) - folded, _brief_commands(report, shown), titles))
        relevant = _one_per_moment([r for r in rows if r.get("kind") in CAUSE_KINDS])   # not every process start
        if relevant and extras:
            blocks.append(Changes(relevant[:BRIEF_CHANGES], total, True))
        # a match whose finding is listed already says nothing new (that finding has its rate and advice)
        archetypes = [m for m in report.shapes if not m.generic and m.signature
                      and finding_for(shown, m.metric.split(".", 1)[0], m.labels) is None][:BRIEF_SHAPES]
        if archetypes and extras:
            blocks.append(Shapes([ShapeRow(_brief_why(m), [], "") for m in archetypes], True))
        blocks.append(BlindSpots(report.blind_spots, True))
        return blocks
    blocks.append(Findings(report.findings, serious, len(report.findings) - serious))
    if rows or "changes" in snap.sections:
        blocks.append(Changes(rows, total))
    if report.shapes:
        blocks.append(Shapes([shape_row(report, m) for m in report.shapes]))
    blocks.append(Evidence([_section(report, s, top) for s in snap.sections.values() if s.status != "unavailable"]))
    blocks.append(BlindSpots(_grouped(report.blind_spots)))
    return blocks


def _grouped(spots: list[BlindSpot]) -> list[BlindSpot]:
    """Collectors blind for the same reason on one line ("cpu, memory, io (partial): process scan
    stopped at the 4s bound..."): a cut-short process scan printed the same reason eight times."""
    seen: dict[tuple[str, str], list[str]] = {}
    for s in spots:
        seen.setdefault((s.status, s.reason), []).append(s.collector)
    return [BlindSpot(", ".join(names), status, reason) for (status, reason), names in seen.items()]


# What fit() gives up, in order, until the view fits: findings down to three, then the changes
# and shapes blocks, then findings down to one.
FIT_STEPS = tuple((n, True) for n in range(BRIEF_FINDINGS, 2, -1)) + ((3, False), (2, False), (1, False))


def fit(draw, height: int) -> str:
    """The one-screen view: draw(brief_findings, extras) -> text, the first of FIT_STEPS that
    fits min(height, BRIEF_LINES) lines (the last step if none does)."""
    budget = min(height, BRIEF_LINES)
    for n, extras in FIT_STEPS:
        text = draw(n, extras)
        if text.count("\n") <= budget:
            break
    return text


def _brief_findings(report: Report, limit: int = BRIEF_FINDINGS) -> tuple[list[Finding], list[str], int]:
    """The serious findings listed on one screen, their lines, and how many were folded into
    them ("+N like it": not counted again as "+N more"). Findings of one kind that one
    command verifies (three OOM kills: one dmesg) are one entry, "+N like it": each fault the
    responder has to act on gets a line before the screen fills with repeats."""
    shown: list[Finding] = []
    alike: list[int] = []
    for f in (f for f in report.findings if f.severity != "info"):
        same = next((i for i, g in enumerate(shown) if g.id == f.id and g.verify == f.verify), None)
        if same is not None:
            alike[same] += 1
        elif len(shown) < limit:
            shown.append(f)
            alike.append(0)
    return shown, [common.brief_line(f) + (f" (+{n} like it)" if n else "") for f, n in zip(shown, alike)], sum(alike)


def _one_per_moment(rows: list[dict]) -> list[dict]:
    """One row per timestamp: one `apt-get purge` is an apt line and two dpkg lines in the same
    second, and took all three places on one screen."""
    out: list[dict] = []
    for r in rows:
        if out and r.get("time") == out[-1]["time"]:
            out[-1]["also"] += 1
        else:
            out.append({**r, "also": 0})
    return [{**r, "what": f"{r.get('what', '')} (+{r['also']} at once)"} if r["also"] else r for r in out]


def _brief_why(m: ShapeMatch) -> ShapeMatch:
    """One screen has no room for a change tied to a shape by time alone ("began 3 min after
    <package> (unrelated by anything but time)"): cut to two lines, it read as the cause."""
    tail = f" ({UNRELATED})"
    if m.why.endswith(tail) and "; began " in m.why:
        return replace(m, why=m.why[: m.why.rindex("; began ")])
    return m


def _brief_commands(report: Report, shown: list[Finding]) -> list[str]:
    """Each listed finding's verify command, without its comment; AS_ABOVE when the same command
    was printed above it (the headline's Verify, or an earlier finding's); "" for the first one
    when it is the headline's."""
    seen = {common.brief_command(report.headline.verify)} if report.headline.verify else set()
    out = []
    for i, f in enumerate(shown):
        cmd = common.brief_command(f.verify) if f.verify else ""
        out.append(("" if i == 0 else AS_ABOVE) if cmd and cmd in seen else cmd)
        seen.add(cmd)
    return out


def _section(report: Report, sec, top: int) -> SectionEvidence:
    ev = common.evidence(sec.data, top, sec.name)
    return SectionEvidence(sec.name, sec.status, sec.duration_s, ev.facts, common.trends(report, sec.name), ev.tables)


def what_changed(report: Report, limit: int = CHANGES_SHOWN) -> tuple[list[dict], int]:
    """The newest `limit` changes (time, kind, what, source) and how many there were in all."""
    sec = report.snapshot.sections.get("changes")
    rows = (sec.data.get("timeline") or []) if sec else []
    total = (sec.data.get("timeline_total") or len(rows)) if sec else 0
    return rows[:limit], total


def shape_row(report: Report, m: ShapeMatch, width: int = SHAPE_WIDTH) -> ShapeRow:
    """The matched series' display values, evenly thinned to `width` points, and a marker with
    '^' under the matched interval."""
    s = report.snapshot.series.get(m.series)
    if s is None:
        return ShapeRow(m, [], "")
    vals = s.display_values()
    ts = s.t[1:] if s.counter else s.t
    if len(vals) > width:
        idx = [round(i * (len(vals) - 1) / (width - 1)) for i in range(width)]
        vals, ts = [vals[i] for i in idx], [ts[i] for i in idx]
    if not common.sparkline(vals, width=width):   # nothing drawable: no marker either
        return ShapeRow(m, [], "")
    mark = "".join("^" if m.start <= t <= m.end else " " for t in ts)
    return ShapeRow(m, vals, mark.rstrip())

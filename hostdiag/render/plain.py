"""--plain: no colour, no box drawing, ASCII sparklines, 80 columns. For SSH sessions, pagers,
pipes and `NO_COLOR`. Also the layout the markdown renderer mirrors."""
from __future__ import annotations

import textwrap

from hostdiag.render import common, layout

WIDTH = 80


def _wrap(label: str, text: str, indent: int = 3, label_w: int = 11) -> list[str]:
    rest = " " * (indent + label_w)
    if len(label) >= label_w:  # a long (host-provided) label: let it wrap with the text
        return textwrap.wrap(f"{label} {text}", WIDTH, initial_indent=" " * indent, subsequent_indent=rest,
                             break_long_words=True, break_on_hyphens=False)
    first = " " * indent + f"{label:<{label_w}}"
    return textwrap.wrap(text, WIDTH, initial_indent=first, subsequent_indent=rest,
                         break_long_words=True, break_on_hyphens=False) or [first.rstrip()]


def _table(t: common.Table, indent: int = 4) -> list[str]:
    cols = t.columns
    widths = [max(len(c), *(len(r[i]) for r in t.rows)) for i, c in enumerate(cols)]
    budget = WIDTH - indent - 2 * (len(cols) - 1)
    # Shrink the widest columns (usually cmdline/path) until the row fits.
    while sum(widths) > budget and max(widths) > 8:
        i = widths.index(max(widths))
        widths[i] -= 1

    def cell(s: str, w: int) -> str:
        return s if len(s) <= w else s[: max(0, w - 1)] + "~"

    lines = [" " * indent + "  ".join(cell(c, w).ljust(w) for c, w in zip(cols, widths)).rstrip()]
    lines += [" " * indent + "  ".join(cell(x, w).ljust(w) for x, w in zip(r, widths)).rstrip() for r in t.rows]
    if t.more:
        lines.append(" " * indent + f"... {t.more} more")
    return lines


def finding_lines(i: int, f) -> list[str]:
    out = textwrap.wrap(f"{i}. {f.severity.upper()} {f.id}: {f.title}", WIDTH, subsequent_indent="   ")
    if f.subject:
        out += _wrap("subject:", common.subject_text(f.subject))
    if f.impact:
        out += _wrap("impact:", f.impact)
    if f.since:
        out += _wrap("since:", f.since)
    if f.verify:
        out += _wrap("verify:", f.verify)
    for j, s in enumerate(f.stabilize):
        out += _wrap("stabilize:" if j == 0 else "", "- " + s)
    if f.evidence:
        out += _wrap("evidence:", common.fmt_value("", f.evidence))
    return out


def _header(b: layout.Header) -> list[str]:
    h = b.headline
    lines = textwrap.wrap("hostdiag snapshot: " + b.host_line, WIDTH, subsequent_indent="  ")
    lines.append("=" * WIDTH)
    lines.append(f"STATUS: {h.severity.upper()}")
    lines += _wrap("Condition:", h.condition, indent=0)
    lines += _wrap("Action:", h.action, indent=0)
    lines += _wrap("Need:", h.need, indent=0)
    return lines + [""]


def _findings(b: layout.Findings) -> list[str]:
    lines = [f"FINDINGS ({b.serious} to act on, {b.info} informational)", "-" * WIDTH]
    if not b.findings:
        lines.append("   none")
    for i, f in enumerate(b.findings, 1):
        lines += finding_lines(i, f)
        lines.append("")
    return lines


def _changes(b: layout.Changes) -> list[str]:
    lines = [f"WHAT CHANGED (newest first, {len(b.rows)} of {b.total})", "-" * WIDTH]
    if not b.rows:
        lines.append("   nothing seen in the changes window")
    for r in b.rows:
        lines += textwrap.wrap(f"{r.get('time', '?')}  {r.get('kind', '?'):<8} {r.get('what', '')}  [{r.get('source', '')}]",
                               WIDTH, initial_indent="   ", subsequent_indent="      ")
    return lines + [""]


def _shapes(b: layout.Shapes) -> list[str]:
    lines = ["SHAPES (sampled series that match a known failure shape)", "-" * WIDTH]
    for row in b.rows:
        sh = row.match
        lines += textwrap.wrap(f"{sh.series}: {sh.shape} -> {sh.signature or sh.shape} ({sh.score:.2f}): {sh.why}",
                               WIDTH, initial_indent="   ", subsequent_indent="      ")
        spark = common.sparkline(row.values, common.ASCII, width=layout.SHAPE_WIDTH)
        if spark:
            lines += ["      " + spark, "      " + row.mark]
    return lines + [""]


def _evidence(b: layout.Evidence) -> list[str]:
    lines = ["EVIDENCE", "-" * WIDTH]
    for sec in b.sections:
        lines.append(f"[{sec.name}] {sec.status}, {sec.duration_s:.2f}s")
        for k, v in sec.facts:
            lines += _wrap(k + ":", v, indent=2, label_w=max(12, min(len(k) + 2, 24)))
        for name, vals, last in sec.trends:
            lines.append(f"  {name:<22} {common.sparkline(vals, common.ASCII):<24} {last}"[:WIDTH])
        for t in sec.tables:
            lines += textwrap.wrap(f"{t.title}:", WIDTH, initial_indent="  ", subsequent_indent="  ")
            lines += _table(t)
        lines.append("")
    return lines


def _blind_spots(b: layout.BlindSpots) -> list[str]:
    lines = ["BLIND SPOTS", "-" * WIDTH]
    if not b.spots:
        lines.append("   none: every collector saw its resource")
    for s in b.spots:
        lines += textwrap.wrap(f"- {s.collector} ({s.status}): {s.reason}", WIDTH, subsequent_indent="  ")
    return lines


STYLERS = {layout.Header: _header, layout.Findings: _findings, layout.Changes: _changes,
           layout.Shapes: _shapes, layout.Evidence: _evidence, layout.BlindSpots: _blind_spots}


def render(report, env=None, *, top: int = 5) -> str:
    return "\n".join(line for b in layout.layout(report, top) for line in STYLERS[type(b)](b)) + "\n"

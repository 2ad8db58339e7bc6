"""--markdown: the report for an incident channel or a postmortem, in the same order as plain."""
from __future__ import annotations

import re

from hostdiag.render import common

_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]<>()#+!|~])")


def md(text: str) -> str:
    """Escape host text for inline markdown (no links, emphasis, HTML or table breaks)."""
    return _MD_SPECIAL.sub(r"\\\1", str(text)).replace("\n", " ")


def code(text: str) -> str:
    """An inline code span that host text cannot break out of (CommonMark: longer fence)."""
    text = str(text).replace("\n", " ")
    fence = "`" * (max((len(m) for m in re.findall(r"`+", text)), default=0) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def _table(t: common.Table) -> list[str]:
    out = ["| " + " | ".join(md(c) for c in t.columns) + " |", "|" + "---|" * len(t.columns)]
    out += ["| " + " | ".join(md(x) for x in r) + " |" for r in t.rows]
    if t.more:
        out.append(f"\n_… {t.more} more_")
    return out


def render(report, env=None, *, top: int = 5) -> str:
    h = report.headline
    out = [f"## hostdiag: {h.severity.upper()} on {md(report.snapshot.host.hostname)}", "",
           f"_{md(common.host_line(report))}_", "",
           f"- **Condition:** {md(h.condition)}",
           f"- **Action:** {md(h.action)}",
           f"- **Need:** {md(h.need)}", ""]
    out += [f"### Findings ({len(report.findings)})", ""]
    if not report.findings:
        out += ["None.", ""]
    for i, f in enumerate(report.findings, 1):
        out.append(f"{i}. **{f.severity.upper()}** {code(f.id)}: {md(f.title)}")
        if f.subject:
            out.append(f"   - Subject: {code(common.subject_text(f.subject))}")
        if f.impact:
            out.append(f"   - Impact: {md(f.impact)}")
        if f.since:
            out.append(f"   - Since: {md(f.since)}")
        if f.verify:
            out.append(f"   - Verify: {code(f.verify)}")
        for s in f.stabilize:
            out.append(f"   - Stabilize: {md(s)}")
        if f.evidence:
            out.append(f"   - Evidence: {code(common.fmt_value('', f.evidence))}")
    rows, total = common.what_changed(report)
    if rows or "changes" in report.snapshot.sections:
        out += ["", f"### What changed (newest first, {len(rows)} of {total})", ""]
        out += [f"- {md(r.get('time', '?'))} **{md(r.get('kind', '?'))}** {md(r.get('what', ''))} _({md(r.get('source', ''))})_"
                for r in rows] or ["Nothing seen in the changes window."]
    if report.shapes:
        out += ["", "### Shapes", ""]
        for sh in report.shapes:
            spark, mark = common.shape_line(report, sh)
            out.append(f"- {code(sh['series'])}: **{md(sh['shape'])}** → {code(sh['signature'] or sh['shape'])} "
                       f"({sh['score']:.2f}): {md(sh['why'])}" + (f"  \n  {code(spark)}" if spark else ""))
    out += ["", "### Evidence", ""]
    for sec in common.ordered_sections(report):
        if sec.status == "unavailable":
            continue
        out += [f"#### {sec.name} ({sec.status})", ""]
        ev = common.evidence(sec.data, top, sec.name)
        out += [f"- {md(k)}: {md(v)}" for k, v in ev.facts]
        out += [f"- {md(n)}: {code(common.sparkline(vals))} {md(last)}" for n, vals, last in common.trends(report, sec.name)]
        for t in ev.tables:
            out += ["", f"**{md(t.title)}**", ""] + _table(t)
        out.append("")
    out += ["### Blind spots", ""]
    out += [f"- **{md(b.collector)}** ({b.status}): {md(b.reason)}" for b in report.blind_spots] or ["None."]
    return "\n".join(out) + "\n"

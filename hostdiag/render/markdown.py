"""--markdown: the report for an incident channel or a postmortem, in the same order as plain."""
from __future__ import annotations

import re

from hostdiag.render import common, layout

_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]<>()#+!|~])")


# GFM linkify turns bare URLs, www. names and e-mail addresses in text into links: defang them.
_URL = re.compile(r"(?i)\b(?:(h)(tt)(ps?)(://)|(f)(t)(p)(://)|(www)(\.)|(mailto|xmpp)(:))")
_EMAIL_AT = re.compile(r"(?<=[\w.+-])@(?=[\w-]+\.)")


def defang(text: str) -> str:
    """'http://x' -> 'hxxp://x', 'www.x' -> 'www[.]x', 'a@b.c' -> 'a[at]b.c': readable, never a link."""
    def sub(m: re.Match) -> str:
        g = [x for x in m.groups() if x is not None]
        if g[0].lower() == "www":
            return g[0] + "[.]"
        if len(g) == 2:                      # mailto: / xmpp:
            return g[0] + "[:]"
        return g[0] + "xx" + "".join(g[2:]) if g[0].lower() == "h" else g[0] + "x" + "".join(g[2:])
    return _EMAIL_AT.sub("[at]", _URL.sub(sub, str(text)))


def md(text: str) -> str:
    """Escape host text for inline markdown (no links, emphasis, HTML or table breaks)."""
    return _MD_SPECIAL.sub(r"\\\1", defang(text)).replace("\n", " ")


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


def _header(b: layout.Header) -> list[str]:
    h = b.headline
    tail = f" Verify: {h.verify}"
    split = bool(h.verify) and h.action.endswith(tail)   # the command as a code span, not escaped prose
    return [f"## hostdiag: {h.severity.upper()} on {md(b.hostname)}", "",
            f"_{md(b.host_line)}_", "",
            f"- **Condition:** {md(h.condition)}",
            *([f"- **Impact:** {md(b.impact)}"] if b.impact else []),
            f"- **Action:** {md(h.action[: -len(tail)] if split else h.action)}",
            *([f"- **Verify:** {code(h.verify)}"] if split else []),
            f"- **Need:** {md(h.need)}", ""]


def _findings(b: layout.Findings) -> list[str]:
    if b.brief:
        out = [f"### Findings ({b.serious} to act on, {b.info} informational; most urgent first)", ""]
        for i, (f, verify, title) in enumerate(zip(b.findings, b.verify, b.titles), 1):
            out.append(f"{i}. **{f.severity.upper()}** {md(title)}")
            if verify:
                out.append(f"   - Verify: {md(verify) if verify == layout.AS_ABOVE else code(verify)}")
        if b.hidden:
            out.append(f"\n_+{b.hidden} more: `hostdiag snapshot --full`_")
        return out or ["None to act on."]
    out = [f"### Findings ({len(b.findings)})", ""]
    if not b.findings:
        out += ["None.", ""]
    for i, f in enumerate(b.findings, 1):
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
    return out


def _changes(b: layout.Changes) -> list[str]:
    out = ["", f"### What changed (newest first, {len(b.rows)} of {b.total})", ""]
    if b.brief:
        return out + [f"- {md(r.get('time', '?'))} **{md(r.get('kind', '?'))}** {md(common.clip(r.get('what', '')))}"
                      for r in b.rows]
    return out + ([f"- {md(r.get('time', '?'))} **{md(r.get('kind', '?'))}** {md(r.get('what', ''))} _({md(r.get('source', ''))})_"
                   for r in b.rows] or ["Nothing seen in the changes window."])


def _shapes(b: layout.Shapes) -> list[str]:
    out = ["", "### Shapes", ""]
    if b.brief:
        return out + [f"- {code(sh.match.signature)} ({sh.match.score:.2f}) on {code(sh.match.series)}: {md(sh.match.why)}"
                      for sh in b.rows]
    for row in b.rows:
        sh = row.match
        spark = common.sparkline(row.values, width=layout.SHAPE_WIDTH)
        out.append(f"- {code(sh.series)}: **{md(sh.shape)}** → {code(sh.signature or sh.shape)} "
                   f"({sh.score:.2f}): {md(sh.why)}" + (f"  \n  {code(spark)}" if spark else ""))
    return out


def _evidence(b: layout.Evidence) -> list[str]:
    out = ["", "### Evidence", ""]
    for sec in b.sections:
        out += [f"#### {sec.name} ({sec.status})", ""]
        out += [f"- {md(k)}: {md(v)}" for k, v in sec.facts]
        out += [f"- {md(n)}: {code(common.sparkline(vals))} {md(last)}" for n, vals, last in sec.trends]
        for t in sec.tables:
            out += ["", f"**{md(t.title)}**", ""] + _table(t)
        out.append("")
    return out


def _blind_spots(b: layout.BlindSpots) -> list[str]:
    if b.brief:
        seen = "; ".join(f"{md(s.collector)} {s.status}" for s in b.spots) or "none"
        return ["", f"**Blind spots:** {seen} _(hostdiag snapshot --full: evidence and reasons)_"]
    return ["### Blind spots", ""] + ([f"- **{md(s.collector)}** ({s.status}): {md(s.reason)}" for s in b.spots]
                                      or ["None."])


STYLERS = {layout.Header: _header, layout.Findings: _findings, layout.Changes: _changes,
           layout.Shapes: _shapes, layout.Evidence: _evidence, layout.BlindSpots: _blind_spots}


def render(report, env=None, *, top: int = 5, full: bool = True) -> str:
    return "\n".join(line for b in layout.layout(report, top, full) for line in STYLERS[type(b)](b)) + "\n"

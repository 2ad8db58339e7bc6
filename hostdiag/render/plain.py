"""--plain: no colour, no box drawing, ASCII sparklines, 80 columns (a narrower terminal: its
width). For SSH sessions, pagers, pipes and `NO_COLOR`. Also the layout the markdown renderer
mirrors."""
from __future__ import annotations

import contextvars
import textwrap

from hostdiag.render import Env, common, layout

WIDTH = 80          # at most; a terminal narrower than this gets its own width (see render)
_WIDTH = contextvars.ContextVar("plain_width", default=WIDTH)


def _width() -> int:
    return _WIDTH.get()


def _wrap(label: str, text: str, indent: int = 3, label_w: int = 11) -> list[str]:
    rest = " " * (indent + label_w)
    if len(label) >= label_w:  # a long (host-provided) label: let it wrap with the text
        return textwrap.wrap(f"{label} {text}", _width(), initial_indent=" " * indent, subsequent_indent=rest,
                             break_long_words=True, break_on_hyphens=False)
    first = " " * indent + f"{label:<{label_w}}"
    return textwrap.wrap(text, _width(), initial_indent=first, subsequent_indent=rest,
                         break_long_words=True, break_on_hyphens=False) or [first.rstrip()]


def _cmd(label: str, cmd: str, indent: int = 3, label_w: int = 11) -> list[str]:
    """A command under a label, folded so it runs when pasted (see common.command_lines)."""
    rest = " " * (indent + label_w)
    lines = common.command_lines(cmd, _width() - indent - label_w)
    return [" " * indent + f"{label:<{label_w}}" + lines[0]] + [rest + x for x in lines[1:]]


def _action(h) -> tuple[str, str]:
    """(the Action text without its verify command, the command) for the header."""
    tail = f" Verify: {h.verify}"
    if h.verify and h.action.endswith(tail):
        return h.action[: -len(tail)], h.verify
    return h.action, ""


def _table(t: common.Table, indent: int = 4) -> list[str]:
    cols = t.columns
    widths = [max(len(c), *(len(r[i]) for r in t.rows)) for i, c in enumerate(cols)]
    budget = _width() - indent - 2 * (len(cols) - 1)
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
    out = textwrap.wrap(f"{i}. {f.severity.upper()} {f.id}: {f.title}", _width(), subsequent_indent="   ")
    if f.subject:
        out += _wrap("subject:", common.subject_text(f.subject))
    if f.impact:
        out += _wrap("impact:", f.impact)
    if f.since:
        out += _wrap("since:", f.since)
    if f.verify:
        out += _cmd("verify:", f.verify)
    for j, s in enumerate(f.stabilize):
        out += _wrap("stabilize:" if j == 0 else "", "- " + s)
    if f.evidence:
        out += _wrap("evidence:", common.fmt_value("", f.evidence))
    return out


def _header(b: layout.Header) -> list[str]:
    h = b.headline
    lines = textwrap.wrap("hostdiag snapshot: " + b.host_line, _width(), subsequent_indent="  ")
    lines.append("=" * _width())
    lines.append(f"STATUS: {h.severity.upper()}")
    lines += _wrap("Condition:", h.condition, indent=0)
    if b.impact:
        lines += _wrap("Impact:", b.impact, indent=0)
    action, verify = _action(h)
    lines += _wrap("Action:", action, indent=0)
    if verify:
        lines += _cmd("Verify:", verify, indent=0)
    lines += _wrap("Need:", h.need, indent=0)
    return lines + [""]


def _limit(lines: list[str], n: int) -> list[str]:
    """At most n lines; the last one ends in '…' when text was cut."""
    if len(lines) <= n:
        return lines
    return lines[: n - 1] + [lines[n - 1][: _width() - 1].rstrip() + "…"]


def brief_finding_lines(i: int, f, verify: str, title: str) -> list[str]:
    """Two to four lines: severity and title with subject and ETA; the verify command (layout's
    brief choice), whole or not at all."""
    out = _limit(textwrap.wrap(f"{i}. {f.severity.upper()} {title}", _width(),
                               subsequent_indent="   ", break_on_hyphens=False), 2)
    if verify == layout.AS_ABOVE:
        out += _wrap("verify:", verify, label_w=8)
    elif verify:
        cmd = _cmd("verify:", verify, label_w=8)
        # 4: a memory cgroup's check under a container-length path; fit() keeps the screen's budget
        out += cmd if len(cmd) <= 4 else _wrap("verify:", "long command: see --full", label_w=8)
    return out


def _findings(b: layout.Findings) -> list[str]:
    if b.brief:
        lines = [f"FINDINGS ({b.serious} to act on, {b.info} informational; most urgent first)"]
        if not b.findings:
            lines.append("   none to act on")
        for i, (f, verify, title) in enumerate(zip(b.findings, b.verify, b.titles), 1):
            lines += brief_finding_lines(i, f, verify, title)
        if b.hidden:
            lines.append(f"   +{b.hidden} more (hostdiag snapshot --full)")
        return lines + [""]
    lines = [f"FINDINGS ({b.serious} to act on, {b.info} informational)", "-" * _width()]
    if not b.findings:
        lines.append("   none")
    for i, f in enumerate(b.findings, 1):
        lines += finding_lines(i, f)
        lines.append("")
    return lines


def _changes(b: layout.Changes) -> list[str]:
    if b.brief:
        lines = [f"WHAT CHANGED (newest {len(b.rows)} of {b.total})"]
        for r in b.rows:
            lines += _limit(textwrap.wrap(f"{r.get('time', '?')}  {r.get('kind', '?'):<8} {common.clip(r.get('what', ''))}",
                                          _width(), initial_indent="   ", subsequent_indent="      "), 1)
        return lines + [""]
    lines = [f"WHAT CHANGED (newest first, {len(b.rows)} of {b.total})", "-" * _width()]
    if not b.rows:
        lines.append("   nothing seen in the changes window")
    for r in b.rows:
        lines += textwrap.wrap(f"{r.get('time', '?')}  {r.get('kind', '?'):<8} {r.get('what', '')}  [{r.get('source', '')}]",
                               _width(), initial_indent="   ", subsequent_indent="      ")
    return lines + [""]


def _shapes(b: layout.Shapes) -> list[str]:
    if b.brief:
        lines = ["SHAPES (known failure shapes in the graphs)"]
        for row in b.rows:
            sh = row.match
            lines += _limit(textwrap.wrap(f"{sh.signature} ({sh.score:.2f}) on {sh.series}: {sh.why}", _width(),
                                          initial_indent="   ", subsequent_indent="      "), 2)
        return lines + [""]
    lines = ["SHAPES (sampled series that match a known failure shape)", "-" * _width()]
    for row in b.rows:
        sh = row.match
        lines += textwrap.wrap(f"{sh.series}: {sh.shape} -> {sh.signature or sh.shape} ({sh.score:.2f}): {sh.why}",
                               _width(), initial_indent="   ", subsequent_indent="      ")
        spark = common.sparkline(row.values, common.ASCII, width=layout.SHAPE_WIDTH)
        if spark:
            lines += ["      " + spark, "      " + row.mark]
    return lines + [""]


def _evidence(b: layout.Evidence) -> list[str]:
    lines = ["EVIDENCE", "-" * _width()]
    for sec in b.sections:
        lines.append(f"[{sec.name}] {sec.status}, {sec.duration_s:.2f}s")
        for k, v in sec.facts:
            lines += _wrap(k + ":", v, indent=2, label_w=max(12, min(len(k) + 2, 24)))
        for name, vals, last in sec.trends:
            lines.append(f"  {name:<22} {common.sparkline(vals, common.ASCII):<24} {last}"[:_width()])
        for t in sec.tables:
            lines += textwrap.wrap(f"{t.title}:", _width(), initial_indent="  ", subsequent_indent="  ")
            lines += _table(t)
        lines.append("")
    return lines


def _blind_spots(b: layout.BlindSpots) -> list[str]:
    if b.brief:
        seen = "; ".join(f"{s.collector} {s.status}" for s in b.spots)
        text = f"BLIND SPOTS (reasons: hostdiag snapshot --full): {seen}" if seen else \
            "BLIND SPOTS: none: every collector saw its resource"
        return _limit(textwrap.wrap(text, _width(), subsequent_indent="  "), 2)
    lines = ["BLIND SPOTS", "-" * _width()]
    if not b.spots:
        lines.append("   none: every collector saw its resource")
    for s in b.spots:
        lines += textwrap.wrap(f"- {s.collector} ({s.status}): {s.reason}", _width(), subsequent_indent="  ")
    return lines


STYLERS = {layout.Header: _header, layout.Findings: _findings, layout.Changes: _changes,
           layout.Shapes: _shapes, layout.Evidence: _evidence, layout.BlindSpots: _blind_spots}


def _for(env) -> int:
    """80 columns, or a narrower terminal's own (its wrapping would break every folded command)."""
    env = env or Env()
    return max(40, min(WIDTH, env.width)) if env.stdout_isatty else WIDTH


def render(report, env=None, *, top: int = 5, full: bool = True) -> str:
    def draw(n: int = layout.BRIEF_FINDINGS, extras: bool = True) -> str:
        blocks = layout.layout(report, top, full, n, extras)
        return "\n".join(line for b in blocks for line in STYLERS[type(b)](b)) + "\n"

    token = _WIDTH.set(_for(env))
    try:
        return draw() if full else layout.fit(draw, (env or Env()).height)
    finally:
        _WIDTH.reset(token)


def status_block(report, env=None) -> str:
    """The status block alone (repeated at the end of a long report on a TTY)."""
    token = _WIDTH.set(_for(env))
    try:
        return "\n".join(_header(layout.layout(report, full=False)[0])) + "\n"
    finally:
        _WIDTH.reset(token)

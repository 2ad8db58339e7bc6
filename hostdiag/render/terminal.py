"""The TTY renderer: colour, tables and sparklines with rich. The only module importing rich.

Host text only ever enters as rich Text (never inside a markup string), and it was already
escaped by report.build, so it can neither inject markup nor terminal escapes.
"""
from __future__ import annotations

import io

from rich import box
from rich.console import Console, Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from hostdiag.render import common

STYLE = {"critical": "bold white on red", "warning": "bold black on yellow", "info": "bold cyan",
         "ok": "bold white on green"}
STATUS_STYLE = {"ok": "green", "partial": "yellow", "unavailable": "red"}


def _kv(label: str, value: str, style: str = "bold") -> Text:
    return Text.assemble((f"{label:<10} ", style), value)


def render(report, env, *, top: int = 5) -> str:
    buf = io.StringIO()
    con = Console(file=buf, force_terminal=True, color_system="standard", width=env.width,
                  highlight=False, emoji=False, markup=False)
    h = report.headline
    con.print(Text(common.host_line(report), style="dim"))
    con.print(Panel(Group(_kv("Condition", h.condition), _kv("Action", h.action), _kv("Need", h.need)),
                    title=Text(f" {h.severity.upper()} ", style=STYLE[h.severity]), title_align="left",
                    border_style={"critical": "red", "warning": "yellow"}.get(h.severity, "green")))

    if report.findings:
        con.print(Text("Findings", style="bold underline"))
    for i, f in enumerate(report.findings, 1):
        head = Text.assemble(f"{i}. ", (f" {f.severity.upper()} ", STYLE[f.severity]), " ",
                             (f.title, "bold"), (f"  {f.id}", "dim"))
        rows = []
        if f.subject:
            rows.append(_kv("subject", common.subject_text(f.subject)))
        if f.impact:
            rows.append(_kv("impact", f.impact))
        if f.since:
            rows.append(_kv("since", f.since))
        if f.verify:
            rows.append(Text.assemble(("verify     ", "bold"), (f.verify, "cyan")))
        for j, s in enumerate(f.stabilize):
            style = "red" if s.lower().startswith("do not") else ""
            rows.append(Text.assemble(("stabilize  " if j == 0 else "           ", "bold"), ("• " + s, style)))
        if f.evidence:
            rows.append(_kv("evidence", common.fmt_value("", f.evidence), "bold dim"))
        con.print(head)
        for r in rows:
            con.print(Text("   ").append_text(r))
        con.print()

    rows, total = common.what_changed(report)
    if rows or "changes" in report.snapshot.sections:
        con.print(Text(f"What changed (newest first, {len(rows)} of {total})", style="bold underline"))
        if not rows:
            con.print(Text("  nothing seen in the changes window", style="dim"))
        for r in rows:
            con.print(Text.assemble("  ", (str(r.get("time", "?")), "dim"), "  ", (f"{r.get('kind', '?'):<8}", "bold"),
                                    " ", str(r.get("what", "")), (f"  [{r.get('source', '')}]", "dim")))
        con.print()
    if report.shapes:
        con.print(Text("Shapes", style="bold underline"))
        for sh in report.shapes:
            spark, mark = common.shape_line(report, sh)
            styled = Text()
            for ch, m in zip(spark, mark.ljust(len(spark))):
                styled.append(ch, "bold red" if m == "^" else "magenta")
            con.print(Text.assemble("  ", (sh["series"], "bold"), "  ", styled, "  ",
                                    (sh["signature"] or sh["shape"], "cyan"), f" ({sh['score']:.2f}) ", sh["why"]))
        con.print()

    con.print(Text("Evidence", style="bold underline"))
    for sec in common.ordered_sections(report):
        if sec.status == "unavailable":
            continue
        con.print(Text.assemble((sec.name, "bold"), " ", (sec.status, STATUS_STYLE[sec.status]),
                                (f"  {sec.duration_s:.2f}s", "dim")))
        ev = common.evidence(sec.data, top, sec.name)
        for k, v in ev.facts:
            con.print(Text.assemble("  ", (f"{k}: ", "dim"), v))
        for name, vals, last in common.trends(report, sec.name):
            con.print(Text.assemble("  ", (f"{name:<22} ", "dim"), (common.sparkline(vals), "magenta"), f"  {last}"))
        for t in ev.tables:
            tab = Table(title=Text(t.title, style="dim"), title_justify="left", box=box.SIMPLE_HEAD,
                        show_edge=False, pad_edge=False)
            for c in t.columns:
                wide = c in ("cmdline", "path", "paths")
                tab.add_column(Text(c), overflow="ellipsis", no_wrap=True, min_width=None if wide else len(c),
                               max_width=max(20, env.width // 2) if wide else None)
            for r in t.rows:
                tab.add_row(*(Text(x) for x in r))
            con.print(tab)
        con.print()

    con.print(Text("Blind spots", style="bold underline"))
    if not report.blind_spots:
        con.print(Text("  none: every collector saw its resource", style="green"))
    for b in report.blind_spots:
        con.print(Text.assemble("  ", (b.collector, "bold"), " ", (b.status, STATUS_STYLE[b.status]), ": ", b.reason))
    return buf.getvalue()

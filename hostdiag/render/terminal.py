"""The TTY renderer: colour, tables and sparklines with rich. The only module importing rich.

Host text only ever enters as rich Text (never inside a markup string), and it was already
escaped by hostdiag.analysis.build, so it can neither inject markup nor terminal escapes.
"""
from __future__ import annotations

import io

from rich import box
from rich.console import Console, Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from hostdiag.render import common, layout

STYLE = {"critical": "bold white on red", "warning": "bold black on yellow", "info": "bold cyan",
         "ok": "bold white on green"}
STATUS_STYLE = {"ok": "green", "partial": "yellow", "unavailable": "red"}


def _kv(label: str, value: str, style: str = "bold") -> Text:
    return Text.assemble((f"{label:<10} ", style), value)


def _header(con, b: layout.Header, env) -> None:
    h = b.headline
    con.print(Text(b.host_line, style="dim"))
    con.print(Panel(Group(_kv("Condition", h.condition), _kv("Action", h.action), _kv("Need", h.need)),
                    title=Text(f" {h.severity.upper()} ", style=STYLE[h.severity]), title_align="left",
                    border_style={"critical": "red", "warning": "yellow"}.get(h.severity, "green")))


def _findings(con, b: layout.Findings, env) -> None:
    if b.findings:
        con.print(Text("Findings", style="bold underline"))
    for i, f in enumerate(b.findings, 1):
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


def _changes(con, b: layout.Changes, env) -> None:
    con.print(Text(f"What changed (newest first, {len(b.rows)} of {b.total})", style="bold underline"))
    if not b.rows:
        con.print(Text("  nothing seen in the changes window", style="dim"))
    for r in b.rows:
        con.print(Text.assemble("  ", (str(r.get("time", "?")), "dim"), "  ", (f"{r.get('kind', '?'):<8}", "bold"),
                                " ", str(r.get("what", "")), (f"  [{r.get('source', '')}]", "dim")))
    con.print()


def _shapes(con, b: layout.Shapes, env) -> None:
    con.print(Text("Shapes", style="bold underline"))
    for row in b.rows:
        sh = row.match
        spark = common.sparkline(row.values, width=layout.SHAPE_WIDTH)
        styled = Text()
        for ch, m in zip(spark, row.mark.ljust(len(spark))):
            styled.append(ch, "bold red" if m == "^" else "magenta")
        con.print(Text.assemble("  ", (sh.series, "bold"), "  ", styled, "  ",
                                (sh.signature or sh.shape, "cyan"), f" ({sh.score:.2f}) ", sh.why))
    con.print()


def _evidence(con, b: layout.Evidence, env) -> None:
    con.print(Text("Evidence", style="bold underline"))
    for sec in b.sections:
        con.print(Text.assemble((sec.name, "bold"), " ", (sec.status, STATUS_STYLE[sec.status]),
                                (f"  {sec.duration_s:.2f}s", "dim")))
        for k, v in sec.facts:
            con.print(Text.assemble("  ", (f"{k}: ", "dim"), v))
        for name, vals, last in sec.trends:
            con.print(Text.assemble("  ", (f"{name:<22} ", "dim"), (common.sparkline(vals), "magenta"), f"  {last}"))
        for t in sec.tables:
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


def _blind_spots(con, b: layout.BlindSpots, env) -> None:
    con.print(Text("Blind spots", style="bold underline"))
    if not b.spots:
        con.print(Text("  none: every collector saw its resource", style="green"))
    for s in b.spots:
        con.print(Text.assemble("  ", (s.collector, "bold"), " ", (s.status, STATUS_STYLE[s.status]), ": ", s.reason))


STYLERS = {layout.Header: _header, layout.Findings: _findings, layout.Changes: _changes,
           layout.Shapes: _shapes, layout.Evidence: _evidence, layout.BlindSpots: _blind_spots}


def render(report, env, *, top: int = 5) -> str:
    buf = io.StringIO()
    con = Console(file=buf, force_terminal=True, color_system="standard", width=env.width,
                  highlight=False, emoji=False, markup=False)
    for b in layout.layout(report, top):
        STYLERS[type(b)](con, b, env)
    return buf.getvalue()

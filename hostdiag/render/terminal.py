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
         "ok": "bold white on green", "unknown": "bold white on magenta"}
# Columns holding identifiers: never cut (no_wrap, full width); a table too wide drops other columns.
IDENT = ("pid", "port", "device", "dev", "mount", "mountpoint", "time", "first", "last", "since", "iface",
         "address", "local", "remote", "side", "state", "uid", "user", "count", "name", "unit", "cgroup")
WIDE = ("cmdline", "path", "paths", "line", "message", "template", "top_error", "what")
STATUS_STYLE = {"ok": "green", "partial": "yellow", "unavailable": "red"}


def _grid(rows: list[tuple[Text | str, Text | str]], indent: int = 3, label_w: int = 10) -> Table:
    """Label / value rows whose wrapped values keep their hanging indent (a grid, not a Text)."""
    g = Table.grid(padding=(0, 1))
    g.add_column(width=max(0, indent - 1), no_wrap=True)
    g.add_column(width=label_w, no_wrap=True, style="bold")
    g.add_column(ratio=1, overflow="fold")
    for label, value in rows:
        g.add_row("", label, value if isinstance(value, Text) else Text(value))
    return g


def _command(cmd: str, width: int) -> Text:
    """A command folded so it runs when pasted (common.command_lines), as one Text."""
    lines = common.command_lines(cmd, max(12, width))   # wider than its column, rich would crop it
    return Text("\n".join(lines), style="cyan", no_wrap=True, overflow="ignore")


def _header(con, b: layout.Header, env) -> None:
    h = b.headline
    con.print(Text(b.host_line, style="dim"))
    tail = f" Verify: {h.verify}"
    action = h.action[: -len(tail)] if h.verify and h.action.endswith(tail) else h.action
    rows = [("Condition", h.condition), *([("Impact", b.impact)] if b.impact else []), ("Action", action)]
    if action != h.action:
        rows.append(("Verify", _command(h.verify, env.width - 16)))
    con.print(Panel(_grid([*rows, ("Need", h.need)], indent=0),
                    title=Text(f" {h.severity.upper()} ", style=STYLE[h.severity]), title_align="left",
                    border_style={"critical": "red", "warning": "yellow", "unknown": "magenta"}.get(h.severity, "green")))


def _findings(con, b: layout.Findings, env) -> None:
    if b.brief:
        con.print(Text(f"Findings ({b.serious} to act on, {b.info} informational; most urgent first)",
                       style="bold underline"))
        if not b.findings:
            con.print(Text("  none to act on", style="green"))
        for i, (f, verify, title) in enumerate(zip(b.findings, b.verify, b.titles), 1):
            head = Table.grid(padding=(0, 1))
            head.add_column(no_wrap=True)
            head.add_column(ratio=1, overflow="fold")
            head.add_row(Text.assemble(f"{i}.", " ", (f"{f.severity.upper()[:4]}", STYLE[f.severity])),
                         Text(title, style="bold"))
            con.print(head)
            if verify:
                shown = Text(verify, style="dim") if verify == layout.AS_ABOVE else _command(verify, env.width - 12)
                con.print(_grid([("verify", shown)], indent=3, label_w=6))
        if b.hidden:
            con.print(Text(f"   +{b.hidden} more (hostdiag snapshot --full)", style="dim"))
        con.print()
        return
    if b.findings:
        con.print(Text("Findings", style="bold underline"))
    for i, f in enumerate(b.findings, 1):
        head = Text.assemble(f"{i}. ", (f" {f.severity.upper()} ", STYLE[f.severity]), " ",
                             (f.title, "bold"), (f"  {f.id}", "dim"))
        rows = []
        if f.subject:
            rows.append(("subject", common.subject_text(f.subject)))
        if f.impact:
            rows.append(("impact", f.impact))
        if f.since:
            rows.append(("since", f.since))
        eta = common.eta_text(f)
        if eta:
            rows.append(("eta", eta))
        if f.verify:
            rows.append(("verify", _command(f.verify, env.width - 16)))
        for j, s in enumerate(f.stabilize):
            style = "red" if s.lower().startswith("do not") else ""
            rows.append(("stabilize" if j == 0 else "", Text("• " + s, style)))
        if f.evidence:
            rows.append(("evidence", Text(common.fmt_value("", f.evidence), "dim")))
        con.print(head)
        con.print(_grid(rows))
        con.print()


def _changes(con, b: layout.Changes, env) -> None:
    con.print(Text(f"What changed (newest first, {len(b.rows)} of {b.total})", style="bold underline"))
    if b.brief:
        for r in b.rows:
            con.print(Text.assemble("  ", (str(r.get("time", "?")), "dim"), "  ", (f"{r.get('kind', '?'):<8}", "bold"),
                                    " ", common.clip(r.get("what", ""), env.width - 36)), no_wrap=True, overflow="ellipsis")
        con.print()
        return
    if not b.rows:
        con.print(Text("  nothing seen in the changes window", style="dim"))
    for r in b.rows:
        con.print(Text.assemble("  ", (str(r.get("time", "?")), "dim"), "  ", (f"{r.get('kind', '?'):<8}", "bold"),
                                " ", str(r.get("what", "")), (f"  [{r.get('source', '')}]", "dim")))
    con.print()


def _shapes(con, b: layout.Shapes, env) -> None:
    con.print(Text("Shapes", style="bold underline"))
    if b.brief:
        for row in b.rows:
            sh = row.match
            con.print(_grid([(Text(f"{sh.score:.2f}"), Text.assemble((sh.signature or "", "cyan"), " on ",
                                                                      (sh.series, "bold"), ": ", sh.why))],
                            indent=2, label_w=4))
        con.print()
        return
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
        if sec.facts:
            w = min(24, max(len(k) for k, _ in sec.facts) + 1)
            con.print(_grid([(Text(k + ":", style="dim"), v) for k, v in sec.facts], indent=2, label_w=w))
        for name, vals, last in sec.trends:
            con.print(Text.assemble("  ", (f"{name:<22} ", "dim"), (common.sparkline(vals), "magenta"), f"  {last}"))
        for t in sec.tables:
            con.print(_table(t, env.width))
        con.print()


def _table(t, width: int):
    """A rich table that never cuts an identifier: ident columns are no_wrap at full width; when
    the row does not fit, the widest other columns are dropped and named in a note."""
    cols = list(range(len(t.columns)))
    need = {i: max(len(t.columns[i]), *(len(r[i]) for r in t.rows)) if t.rows else len(t.columns[i]) for i in cols}
    ident = {i for i in cols if t.columns[i].lower() in IDENT or t.columns[i].lower().endswith(("_pid", "_port"))}
    hidden: list[str] = []
    budget = width - 2

    def fits(keep) -> bool:
        # wide columns can shrink to 20 with an ellipsis; everything else shows whole
        # SIMPLE_HEAD without edges: 3 columns of padding + divider between neighbours
        return sum(min(need[i], 20) if t.columns[i] in WIDE else need[i] for i in keep) + 3 * (len(keep) - 1) <= budget

    keep = list(cols)
    while len(keep) > 1 and not fits(keep):
        droppable = [i for i in keep if i not in ident] or keep[1:]
        drop = max(droppable, key=lambda i: (t.columns[i] in WIDE, need[i]))
        keep.remove(drop)
        hidden.append(t.columns[drop])
    title = t.title + (f"  (columns hidden: {', '.join(hidden)}; see --json)" if hidden else "")
    tab = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    for i in keep:
        c = t.columns[i]
        if c in WIDE:
            tab.add_column(Text(c), overflow="ellipsis", no_wrap=True)
        else:
            tab.add_column(Text(c), no_wrap=True, min_width=need[i])
    for r in t.rows:
        tab.add_row(*(Text(r[i]) for i in keep))
    parts = [Text(title, style="dim"), tab]
    if t.more:
        parts.append(Text(f"… {t.more} more", style="dim"))
    return Group(*parts)


def _blind_spots(con, b: layout.BlindSpots, env) -> None:
    if b.brief:
        seen = "; ".join(f"{s.collector} {s.status}" for s in b.spots)
        con.print(_grid([("Blind spots", Text.assemble((seen or "none: every collector saw its resource",
                                                         "yellow" if seen else "green"),
                                                        ("  (reasons: hostdiag snapshot --full)" if seen else "",
                                                         "dim")))],
                        indent=0, label_w=11))
        return
    con.print(Text("Blind spots", style="bold underline"))
    if not b.spots:
        con.print(Text("  none: every collector saw its resource", style="green"))
    for s in b.spots:
        con.print(_grid([(Text(s.collector), Text.assemble((s.status, STATUS_STYLE[s.status]), ": ", s.reason))],
                        indent=2, label_w=max(10, len(s.collector))))


STYLERS = {layout.Header: _header, layout.Findings: _findings, layout.Changes: _changes,
           layout.Shapes: _shapes, layout.Evidence: _evidence, layout.BlindSpots: _blind_spots}


def _console(env) -> tuple[Console, io.StringIO]:
    buf = io.StringIO()
    return Console(file=buf, force_terminal=True, color_system="standard", width=env.width,
                   highlight=False, emoji=False, markup=False), buf


def render(report, env, *, top: int = 5, full: bool = True) -> str:
    def draw(n: int = layout.BRIEF_FINDINGS, extras: bool = True) -> str:
        con, buf = _console(env)
        for b in layout.layout(report, top, full, n, extras):
            STYLERS[type(b)](con, b, env)
        return buf.getvalue()

    return draw() if full else layout.fit(draw, env.height)


def status_block(report, env) -> str:
    con, buf = _console(env)
    _header(con, layout.layout(report, full=False)[0], env)
    return buf.getvalue()

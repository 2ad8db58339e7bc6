"""`hostdiag signatures ...`: list, show, lint, test and match the archetype catalog.

Heavy imports (numpy, the matcher) happen inside the commands, never at start-up.
"""
from __future__ import annotations

import typer

app = typer.Typer(help="The signature catalog: failure archetypes kept as reviewed data files.",
                  no_args_is_help=True)

_CATALOG_HELP = "Add a user catalog directory on top of the shipped one (repeatable; $HOSTDIAG_SIGNATURES does the same)."


def _load(extra):
    from hostdiag import catalog

    return catalog.load(list(extra or []))


def _clean(s) -> str:
    """Catalog text is reviewed data, but a user catalog is still host text: escape it."""
    from hostdiag.core.sanitize import clean

    return clean(str(s), multiline=True, limit=1 << 16)


@app.command("list")
def list_(catalog_dir: list[str] = typer.Option(None, "--catalog", help=_CATALOG_HELP),
          kind: str = typer.Option(None, "--kind", help="Only 'shape' or 'log' entries.")):
    """List every archetype and log pattern: id, kind, shapes or severity, title. Exits 1 when a
    catalog file is broken (it is named on stderr and left out)."""
    cat = _load(catalog_dir)
    rows = sorted(cat.entries.values(), key=lambda e: (e.kind != "shape", e.id))
    typer.echo(f"{'ID':40s} {'KIND':5s} {'SHAPES / SEVERITY':30s} TITLE")
    for e in rows:
        if kind and e.kind != kind:
            continue
        what = ",".join(e.data.get("shapes") or []) if e.kind == "shape" else str(e.data.get("severity", ""))
        typer.echo(_clean(f"{e.id:40s} {e.kind:5s} {what:30s} {e.data.get('title', '')}"))
    for err in cat.errors:
        typer.echo(_clean(f"error: {err}"), err=True)
    if cat.errors:
        raise typer.Exit(1)


@app.command()
def show(entry_id: str = typer.Argument(..., metavar="ID"),
         catalog_dir: list[str] = typer.Option(None, "--catalog", help=_CATALOG_HELP)):
    """Show one entry in full, with the file it came from."""
    cat = _load(catalog_dir)
    e = cat.entries.get(entry_id)
    if e is None:
        close = [i for i in cat.entries if entry_id.split(".")[-1] in i]
        typer.echo(_clean(f"no entry {entry_id!r}" + (f"; did you mean: {', '.join(close[:5])}" if close else "")), err=True)
        raise typer.Exit(1)
    typer.echo(_clean(f"# {e.path}"))
    order = ["id", "kind", "title", "owner", "shapes", "metrics", "category", "severity", "pattern",
             "thresholds", "looks_like", "likely_causes", "verify", "first_checks", "stabilize", "avoid",
             "runbook", "seen_before"]
    for k in order + [k for k in e.data if k not in order and k != "examples"]:
        if k not in e.data:
            continue
        v = e.data[k]
        if isinstance(v, list) and v and not all(isinstance(x, (int, float)) for x in v):
            typer.echo(f"{k}:")
            for item in v:
                if isinstance(item, dict):
                    item = ", ".join(f"{a}={b}" for a, b in item.items())
                typer.echo(_clean(f"  - {item}"))
        else:
            typer.echo(_clean(f"{k}: {v}"))
    for i, ex in enumerate(e.data.get("examples") or [], 1):
        if isinstance(ex, dict):
            body = ex.get("line") if e.kind == "log" else ex.get("values")
            typer.echo(_clean(f"example {i}: {body}"))


@app.command()
def lint(path: str = typer.Argument(None, help="A catalog file or directory (default: every catalog in use)."),
         catalog_dir: list[str] = typer.Option(None, "--catalog", help=_CATALOG_HELP)):
    """Validate catalog files: schema, unknown fields, duplicate ids, missing runbook/owner, bad examples,
    patterns that can backtrack, unsafe command templates, shape metrics no collector samples; say which
    user entries override shipped ones."""
    from hostdiag import catalog, collectors
    from hostdiag.matcher.lint import lint_paths

    sampled = collectors.sampled_metrics()
    if path:
        errs, n, notes = lint_paths([path], sampled=sampled)
    else:
        errs, n, notes = lint_paths(catalog.user_dirs(list(catalog_dir or [])), shipped=True, sampled=sampled)
    for e in errs:
        typer.echo(_clean(e))
    for note in notes:
        typer.echo(_clean(f"note: {note}"), err=True)
    if errs:
        typer.echo(f"{len(errs)} error{'s' if len(errs) != 1 else ''} in {n} files", err=True)
        raise typer.Exit(1)
    typer.echo(f"{n} files ok", err=True)


@app.command()
def test(path: str = typer.Argument(None, help="Test only the entries in this file or directory (matched against the whole catalog)."),
         catalog_dir: list[str] = typer.Option(None, "--catalog", help=_CATALOG_HELP)):
    """Run every entry's examples: each must match its own archetype (or log pattern) best."""
    from pathlib import Path

    from hostdiag import catalog

    from hostdiag.matcher.lint import files_of, run_examples

    extra = list(catalog_dir or [])
    only = None
    if path:
        p = Path(path)
        only = files_of([p])
        d = p if p.is_dir() else p.parent
        if d.resolve() not in {x.resolve() for x in catalog.user_dirs(extra)}:
            extra.append(str(d))
    cat = _load(extra)
    fails, n = run_examples(cat, only)
    for err in cat.errors:
        if only is None or any(err.startswith(str(f)) for f in only):
            fails.insert(0, err)
    for f in fails:
        typer.echo(_clean(f))
    if fails:
        typer.echo(f"{len(fails)} failure{'s' if len(fails) != 1 else ''} in {n} examples", err=True)
        raise typer.Exit(1)
    typer.echo(f"{n} examples ok", err=True)


@app.command()
def match(file: str = typer.Argument(None, metavar="FILE|-", help="CSV (timestamp,value or one value column) or JSON {\"timestamps\":[...],\"values\":[...]}; - for stdin."),
          metric: str = typer.Option(None, "--metric", help="What the series is, e.g. memory.available_bytes or 'disk.used_bytes[mount=/var]'."),
          counter: bool = typer.Option(False, "--counter", help="The values are a monotonically increasing counter: match its rate."),
          json_: bool = typer.Option(False, "--json", help="Print {\"matches\": [...]} best first; [] means steady."),
          explain: bool = typer.Option(False, "--explain", help="Per shape: the detector's features, its score and why it won or lost."),
          max_rows: int = typer.Option(200_000, "--max-rows", help="Sample longer series evenly down to this many rows (said in a note)."),
          catalog_dir: list[str] = typer.Option(None, "--catalog", help=_CATALOG_HELP),
          prometheus: str = typer.Option(None, "--prometheus", metavar="URL", help="Match every series of a Prometheus range query instead of FILE (one row per host/instance)."),
          query: str = typer.Option(None, "--query", metavar="PROMQL", help="With --prometheus: the PromQL expression."),
          range_: str = typer.Option("6h", "--range", help="With --prometheus: how far back (6h, 90m, 1d)."),
          step: str = typer.Option("1m", "--step", help="With --prometheus: resolution (1m, 30s)."),
          token_file: str = typer.Option(None, "--bearer-token-file", help="With --prometheus: bearer token file (else $HOSTDIAG_PROM_TOKEN)."),
          timeout: float = typer.Option(30.0, "--timeout", min=0.1, help="With --prometheus: seconds before giving up.")):
    """Name the shape of one series (or of every series a Prometheus query returns) and the archetypes it matches, best first."""
    import json
    import sys

    if prometheus or query:
        from hostdiag.matcher.prometheus import cli_run

        raise typer.Exit(cli_run(prometheus, query, range_, step, token_file, timeout, metric, counter, json_,
                             _load(catalog_dir), _clean))
    if file is None:
        typer.echo("give FILE (or - for stdin), or --prometheus URL --query PROMQL", err=True)
        raise typer.Exit(2)

    from hostdiag.matcher.series_io import SeriesError, read_bounded, read_series_bounded

    try:
        if file == "-":
            text = read_bounded(sys.stdin.buffer)
        else:
            with open(file, "rb") as f:
                text = read_bounded(f)
        t, v, sampled = read_series_bounded(text, max_rows)
    except (OSError, SeriesError) as e:
        typer.echo(_clean(f"{file}: {e}"), err=True)
        raise typer.Exit(2)
    if sampled:
        typer.echo(_clean(f"note: {sampled}"), err=True)
    from hostdiag.matcher import analyse, match_analysis

    cat = _load(catalog_dir)
    for err in cat.errors:
        typer.echo(_clean(f"warning: catalog entry skipped: {err}"), err=True)
    an = analyse(t, v, counter=counter)
    ms = match_analysis(an, metric=metric, catalog=cat)
    if json_:
        out = {"matches": [m.to_dict() for m in ms]}
        if an.status != "ok":
            out["note"] = an.note
        if sampled:
            out["sampled"] = sampled
        if explain:
            out["explain"] = an.explain
        typer.echo(json.dumps(out))
        return
    if explain:
        from hostdiag.matcher.shapes import explain_lines

        for line in explain_lines(an):
            typer.echo(_clean(line))
    if not ms:
        typer.echo(_clean(f"no match: {an.note} ({an.points} points)"))
        return
    epoch = t is not None and t and min(x for x in t if x is not None) > 1e8

    def when(x):
        if not epoch:
            return f"{x:g}"
        import datetime as dt
        return dt.datetime.fromtimestamp(x, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")

    for i, m in enumerate(ms, 1):
        typer.echo(_clean(f"{i}. {m.score:.2f} {m.shape:18s} {m.signature or '-'}"
                          + (f"  {m.title}" if m.title else "")))
        typer.echo(_clean(f"   {when(m.start)} .. {when(m.end)}: {m.why}"))
        if i == 1:
            checks = m.checks()       # no subject here: lines naming {pid}, {unit}... are left out
            for c in checks[:3]:
                typer.echo(_clean(f"   check: {c}"))
            if len(checks) < len(m.first_checks) and m.signature:
                typer.echo(_clean(f"   (more checks need a pid, unit or device: hostdiag signatures show {m.signature})"))
            for s in m.stabilize[:3]:
                typer.echo(_clean(f"   stabilize: {s}"))
            if m.runbook:
                typer.echo(_clean(f"   runbook: {m.runbook}"))


@app.command("new")
def new(entry_id: str = typer.Argument(..., metavar="ID", help="The new archetype's id, e.g. memory.batch_leak (file ID.toml)."),
        from_bundle: str = typer.Option(None, "--from-bundle", help="A `hostdiag bundle` file (or - for stdin)."),
        from_csv: str = typer.Option(None, "--from-csv", help="A series as CSV or JSON (as `signatures match` reads)."),
        series: str = typer.Option(None, "--series", help="With --from-bundle: the series key, e.g. memory.available_bytes."),
        metric: str = typer.Option(None, "--metric", help="With --from-csv: what the series is."),
        incident: str = typer.Option(None, "--incident", help="Incident id for seen_before (default: the bundle's)."),
        counter: bool = typer.Option(False, "--counter", help="With --from-csv: the values are a counter."),
        out_dir: str = typer.Option(".", "--dir", help="Write ID.toml here (a new file, never overwritten)."),
        catalog_dir: list[str] = typer.Option(None, "--catalog", help=_CATALOG_HELP)):
    """Scaffold a new archetype from an incident's own series (lints and tests as written)."""
    from hostdiag.bundle.scaffold import ScaffoldError, run
    from hostdiag.core.safeio import UnsafePath

    try:
        path, notes = run(entry_id, from_bundle=from_bundle, from_csv=from_csv, series_key=series, metric=metric,
                          incident=incident, counter=counter, out_dir=out_dir, catalog_dirs=catalog_dir or ())
    except (ScaffoldError, UnsafePath, OSError, ValueError) as e:
        typer.echo(_clean(f"hostdiag: signatures new: {e}"), err=True)
        raise typer.Exit(2) from None
    for n in notes:
        typer.echo(_clean(f"note: {n}"), err=True)
    typer.echo(_clean(f"wrote {path}: fill in the TODOs, then `hostdiag signatures lint {path}` and `test {path}`"))

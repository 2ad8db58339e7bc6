"""`hostdiag history`: what the capture store holds, sparklines per metric, findings as a timeline,
series export (--json/--csv, the format `hostdiag signatures match` reads) and --diff T1 T2.

Read-only: the store is opened immutable (History.open_ro), never created. HOSTDIAG_NOW
(epoch seconds, tests only) stands in for "now" in relative --since/--until.
"""
from __future__ import annotations

import csv
import io
import json
import sys
from typing import Optional

import typer

_BARS = "▁▂▃▄▅▆▇█"


def sparkline(values: list, width: int = 40) -> str:
    """Values (None = gap) -> bars, averaged into at most `width` buckets."""
    if not values:
        return ""
    n = len(values)
    buckets = []
    for i in range(min(width, n)):
        chunk = [v for v in values[i * n // min(width, n):(i + 1) * n // min(width, n)] if v is not None]
        buckets.append(sum(chunk) / len(chunk) if chunk else None)
    present = [b for b in buckets if b is not None]
    if not present:
        return " " * len(buckets)
    lo, hi = min(present), max(present)
    span = (hi - lo) or 1.0
    return "".join(" " if b is None else _BARS[min(7, int((b - lo) / span * 7.999))] for b in buckets)


def _fmt(v, unit: str) -> str:
    from hostdiag.core.units import human_bytes

    if v is None:
        return "n/a"
    if unit == "bytes":
        return human_bytes(v)
    if unit == "bytes/s":
        return human_bytes(v) + "/s"
    return f"{v:.4g}"


def _export(series_list, fmt: str) -> str:
    from hostdiag.core.units import rfc3339

    docs = [{"metric": s.key, "unit": s.unit, "labels": s.labels,
             "timestamps": [rfc3339(s.t0 + t) for t in s.t], "values": list(s.v)} for s in series_list]
    if fmt == "json":
        # one series: exactly what `signatures match --series FILE` reads; several: a list of those
        return json.dumps(docs[0] if len(docs) == 1 else {"series": docs}, indent=1) + "\n"
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["timestamp", "metric", "value"])
    for d in docs:
        for t, v in zip(d["timestamps"], d["values"]):
            w.writerow([t, d["metric"], "" if v is None else v])
    return buf.getvalue()


def history_cmd(
    store: Optional[str] = typer.Option(None, "--store", envvar="HOSTDIAG_STORE", help="Store file (default as for `hostdiag capture`)."),
    since: str = typer.Option("6h", "--since", help="Start: '6h', '2d' ago or an ISO-8601 time."),
    until: Optional[str] = typer.Option(None, "--until", help="End, same forms (default now)."),
    metric: Optional[str] = typer.Option(None, "--metric", "-m", help="Series key, prefix or glob (e.g. 'disk.used_bytes*'); with --process: cpu_pct, rss_bytes, fds or io_bps."),
    process: Optional[str] = typer.Option(None, "--process", "-p", help="Follow a process by name (glob) or pid across captures."),
    diff: Optional[tuple[str, str]] = typer.Option(None, "--diff", metavar="T1 T2", help="Compare the captures nearest T1 and T2."),
    json_: bool = typer.Option(False, "--json", help="JSON: series export when --metric/--process is given, else the summary."),
    csv_: bool = typer.Option(False, "--csv", help="CSV (timestamp,metric,value) of the selected series."),
    width: int = typer.Option(24, "--width", min=8, max=200, help="Sparkline width."),
):
    """Show the capture history: span, size, sparklines per metric, findings over time."""
    from hostdiag.commands.capture import now
    from hostdiag.core.timeparse import parse_when
    from hostdiag.history.store import History, StoreError, default_path

    if json_ and csv_:
        raise typer.BadParameter("choose one of --json, --csv")
    t_now = now()
    try:
        t_since = parse_when(since, t_now)
        t_until = parse_when(until, t_now) if until else None
        d1, d2 = (parse_when(diff[0], t_now), parse_when(diff[1], t_now)) if diff and diff[0] else (None, None)
    except ValueError as e:
        raise typer.BadParameter(str(e)) from None
    path = store or default_path()
    try:
        h = History.open_ro(path)
    except StoreError as e:
        typer.echo(f"hostdiag history: {e}", err=True)
        raise typer.Exit(3) from None
    with h:
        try:
            out = _render(h, metric, process, t_since, t_until, d1, d2, width, json_, csv_)
        except StoreError as e:     # corruption met while reading (a crafted or damaged store)
            typer.echo(f"hostdiag history: {e}", err=True)
            raise typer.Exit(3) from None
    sys.stdout.write(out)


def _render(h, metric, process, t_since, t_until, d1, d2, width, json_, csv_) -> str:
    if d1 is not None:
        out = render_diff(h.diff(d1, d2), json_)
    elif (metric or process) and (json_ or csv_):
        sel = select(h, metric, process, t_since, t_until)
        if not sel:
            typer.echo("hostdiag history: no series matches", err=True)
            raise typer.Exit(3)
        out = _export(sel, "json" if json_ else "csv")
    elif csv_:
        raise typer.BadParameter("--csv exports series: add --metric or --process")
    else:
        out = render_summary(h, metric, process, t_since, t_until, width, json_)
    return out


def select(h, metric, process, since, until):
    if process:
        metrics = [metric] if metric else ["cpu_pct", "rss_bytes", "fds", "io_bps"]
        try:
            return [s for m in metrics for s in h.process_series(process, m, since, until)]
        except ValueError as e:
            raise typer.BadParameter(str(e)) from None
    return [s for s in h.series(metric, since, until) if any(v is not None for v in s.v)]


def render_summary(h, metric, process, since, until, width, as_json) -> str:
    from hostdiag.core import sanitize
    from hostdiag.core.units import human_bytes, human_duration, rfc3339

    first, last, n = h.span()
    spans = h.finding_spans(since, until)
    if as_json:
        return json.dumps({"store": h.path, "schema_version": h.version, "first": first and rfc3339(first),
                           "last": last and rfc3339(last), "captures": n, "size_bytes": h.size_bytes(),
                           "notes": h.notes, "series": h.keys(),
                           "findings": [{"id": s.fid, "subject": s.subject, "severity": s.severity, "title": s.title,
                                         "start": rfc3339(s.start), "end": s.end and rfc3339(s.end),
                                         "captures": s.captures} for s in spans]}, indent=1) + "\n"
    lines = [f"store {sanitize.clean(h.path)}: {n} captures, {human_bytes(h.size_bytes())}"
             + (f", {rfc3339(first)} .. {rfc3339(last)} ({human_duration(last - first)})" if n else "")]
    lines += [f"note: {x}" for x in h.notes]
    shown = h.capture_times(since, until)
    lines.append(f"range {rfc3339(since)} .. {rfc3339(until) if until else 'now'}: {len(shown)} captures")
    lines.append("")
    sel = select(h, metric, process, since, until)
    if sel:
        lines.append("metrics" + (" (process)" if process else ""))
        for s in sel:
            name = s.key if not process else f"{s.metric} {s.labels['name']} (pid {s.labels['pid']})"
            vals = [v for v in s.v if v is not None]
            lines.append(f"  {sanitize.clean(name)[:40]:<40} {sparkline(s.v, width)}  "
                         f"min {_fmt(min(vals), s.unit)} max {_fmt(max(vals), s.unit)} last {_fmt(vals[-1], s.unit)}")
        lines.append("")
    elif metric or process:
        lines += ["no series matches " + sanitize.clean(metric or process), ""]
    lines.append("findings timeline" if spans else "findings timeline: none in range")
    for s in spans:
        end = f"cleared {rfc3339(s.end)}" if s.end else "still present"
        subj = ", ".join(f"{k}={v}" for k, v in s.subject.items())
        lines.append(f"  {rfc3339(s.start)}  {s.severity:<8} {s.fid}"
                     + (f" [{sanitize.clean(subj)}]" if subj else "")
                     + f"  {end} ({human_duration((s.end or s.last_seen) - s.start)}, {s.captures} captures)")
        lines.append(f"      {sanitize.clean(s.title)}")
    return "\n".join(lines) + "\n"


def render_diff(d: dict, as_json: bool) -> str:
    from hostdiag.core import sanitize
    from hostdiag.core.units import human_bytes, rfc3339

    if as_json:
        return json.dumps(sanitize.deep(d), indent=1, default=str) + "\n"
    out = [f"diff {rfc3339(d['t1'])} -> {rfc3339(d['t2'])} (top processes as stored per capture)"]

    def section(title, rows):
        out.append(f"{title}:" + (" none" if not rows else ""))
        out.extend("  " + sanitize.clean(r) for r in rows)

    section("processes appeared", [f"{p['name']} (pid {p['pid']})" for p in d["processes_appeared"]])
    section("processes vanished", [f"{p['name']} (pid {p['pid']})" for p in d["processes_vanished"]])
    section("socket states", [f"{k.split('.', 1)[1]}: {v['before']} -> {v['after']}" for k, v in d["socket_states"].items()])
    section("sockets by port", [f"{p['state']} port {p['port']}: {p['before']} -> {p['after']}" for p in d["ports"]])
    section("listening ports opened", [str(p) for p in d["listening_opened"]])
    section("listening ports closed", [str(p) for p in d["listening_closed"]])
    section("mounts added", d["mounts_added"])
    section("mounts removed", d["mounts_removed"])
    section("mount usage", [f"{m}: {human_bytes(v['before'])} -> {human_bytes(v['after'])}"
                            for m, v in d["mount_used_change"].items()])
    section("findings began", [f"{f['severity']} {f['id']}: {f['title']}" for f in d["findings_began"]])
    section("findings cleared", [f"{f['severity']} {f['id']}: {f['title']}" for f in d["findings_cleared"]])
    return "\n".join(out) + "\n"

"""What goes into a bundle, gathered once, redacted, bounded, then streamed by archive.Writer.

Members (in this order; the manifest is always last):
  snapshot.json            the report as `snapshot --json` prints it (re-rendered by `bundle show`)
  report.md, report.txt    the report in Markdown and plain text, as rendered on the host
  changes.json             the "what changed" timeline
  kernel_events.json       kernel events the journal collector recognised (OOM kills, I/O errors...)
  signature_matches.json   shape matches of the sampled series, and the findings they enriched
  processes.jsonl          the process table: pid, ppid, user, state, RSS, CPU, threads, start, cmdline
  sockets.jsonl            the socket table: proto, local, remote, state, pid
  history.json             the capture store's slice for the window (only when a store exists)
  journal.jsonl            the journal excerpt for the window, oldest first, original messages
Process environments are never read.

--max-size bounds the sum of the (uncompressed) members plus tar headers. Trim order, recorded
in the manifest: oldest journal lines first; then socket rows; then process rows, smallest
RSS first. The snapshot, reports, timeline and matches are never trimmed.
"""
from __future__ import annotations

import importlib
import json
import pwd
import sys
import threading
import time
from dataclasses import asdict, dataclass, field

from hostdiag import __version__
from hostdiag.bundle import redact
from hostdiag.bundle.archive import TAR_OVERHEAD, Writer, safe_component
from hostdiag.core.units import rfc3339
from hostdiag.logs import template

DEFAULT_SINCE_S = 2 * 3600
DEFAULT_MAX_BYTES = 50 * 1000 * 1000
JOURNAL_CAP = 500_000          # entries read for the window, newest first
JOURNAL_BUDGET_S = 20.0        # time spent reading the journal, at most
MANIFEST_RESERVE = 256 * 1024  # room kept for the manifest under --max-size


@dataclass
class Options:
    incident: str | None = None
    window_s: float = 5.0
    interval_s: float = 1.0
    max_bytes: int = DEFAULT_MAX_BYTES
    redact: bool = True
    redact_config: str | None = None
    zstd: bool = False
    argv: list[str] = field(default_factory=lambda: list(sys.argv))
    only: list[str] | None = None


def bundle_name(host: str, incident: str | None, t: float, zstd: bool = False) -> str:
    """hostdiag-bundle_HOST_INC-1234_20261129T061500Z: the folder inside and the default file stem."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(t))
    return f"hostdiag-bundle_{safe_component(host, 'host')}_{safe_component(incident or 'no-incident')}_{stamp}"


def _dumps(x) -> bytes:
    return (json.dumps(x, indent=2, ensure_ascii=False, default=str) + "\n").encode("utf-8")


def _jsonl(rows) -> list[bytes]:
    return [(json.dumps(r, ensure_ascii=False, default=str) + "\n").encode("utf-8") for r in rows]


# ---------------------------------------------------------------------------- sources

def open_journal_fn():
    """The journal backend's open_journal, wherever it lives (it may move to hostdiag/logs/)."""
    for mod in ("hostdiag.logs.journal", "hostdiag.logs", "hostdiag.collectors.journal"):
        try:
            fn = getattr(importlib.import_module(mod), "open_journal", None)
        except ImportError:
            continue
        if fn is not None:
            return fn
    return None


_ENC = json.JSONEncoder(ensure_ascii=False)    # one encoder: json.dumps(**kw) builds a new one per call


def journal_lines(ctx, since: float, until: float, budget: int, red: redact.Redactor,
                  blind: list[str]) -> tuple[list[bytes], int, dict]:
    """JSON lines of the window, oldest first, within `budget` bytes: (lines, dropped, info).
    Read newest first, so what does not fit is the oldest."""
    fn = open_journal_fn()
    info: dict = {"since": rfc3339(since), "until": rfc3339(until)}
    if fn is None:
        blind.append("journal: no journal reader in this build: no journal excerpt")
        return [], 0, info
    notes: list[str] = []
    end = time.monotonic() + JOURNAL_BUDGET_S
    try:
        rd = fn(ctx, since, until, cap=JOURNAL_CAP, expired=lambda: time.monotonic() >= end, notes=notes)
    except Exception as e:  # noqa: BLE001 - Unavailable or a backend failure: say it, carry on
        blind.append(f"journal: {e}")
        return [], 0, info
    out: list[bytes] = []
    used = dropped = 0
    sec, stamp = None, ""
    encode = _ENC.encode
    names: dict = {None: None}     # unit and identifier (sender-chosen text) repeat: redacted once each

    def name(v):
        if v not in names:
            names[v] = red.text(v)
        return names[v]
    for e in rd.entries:
        if int(e.t) != sec:        # one RFC 3339 string per second, not per line
            sec = int(e.t)
            stamp = rfc3339(sec)
        row = {"time": stamp, "ts": round(e.t, 6), "priority": e.prio,
               "transport": getattr(e, "transport", None), "unit": name(getattr(e, "unit", None)),
               "ident": name(getattr(e, "ident", None)), "pid": getattr(e, "pid", None),
               "message_id": getattr(e, "msgid", None), "message": red.text(e.msg)}
        b = (encode(row) + "\n").encode("utf-8")
        if dropped or used + len(b) > budget:
            dropped += 1
            continue
        used += len(b)
        out.append(b)
    out.reverse()
    info.update(backend=rd.backend, source=rd.source, entries=len(out), dropped_by_max_size=dropped)
    for n in notes:
        blind.append(f"journal: {n}")
    if rd.truncated:
        info["truncated"] = rd.truncated
        blind.append(f"journal: excerpt cut short ({rd.truncated}): older entries of the window are missing")
    return out, dropped, info


class _JournalReader(threading.Thread):
    """Reads the journal excerpt while the snapshot samples its window (mostly sleeping), with
    its own Redactor (counts merged afterwards: Counter updates are not atomic across threads)."""

    def __init__(self, ctx, since, until, budget, opts):
        super().__init__(daemon=True, name="hostdiag-bundle-journal")
        self.args = (ctx, since, until, budget)
        self.red = redact.make(opts.redact, opts.redact_config)
        self.blind: list[str] = []
        self.result: tuple[list[bytes], int, dict] | None = None

    def run(self):
        self.result = journal_lines(*self.args, self.red, self.blind)


def _keep_newest(lines: list[bytes], budget: int) -> tuple[list[bytes], int]:
    """Drop the oldest lines (the front) until the rest fits in `budget` bytes."""
    total = sum(map(len, lines))
    i = 0
    while total > budget and i < len(lines):
        total -= len(lines[i])
        i += 1
    return lines[i:], i


def process_rows(ctx, red: redact.Redactor, blind: list[str]) -> list[dict]:
    """The process table (no environments), largest RSS first."""
    from hostdiag.core.context import Deadline
    from hostdiag.core.procscan import Scan, scan

    res = scan(ctx, Deadline(max(2.0, ctx.timeout_s * 2)), Scan(), fds=False)
    if res.truncated:
        blind.append("processes table: scan cut short by its time bound")
    users: dict[int, str] = {}

    def user(uid):
        if uid is None:
            return None
        if uid not in users:
            try:
                users[uid] = pwd.getpwuid(uid).pw_name
            except KeyError:
                users[uid] = str(uid)
        return users[uid]
    rows = []
    for p in sorted(res.procs.values(), key=lambda p: -(p.rss_bytes or 0)):
        rows.append({"pid": p.pid, "ppid": p.ppid, "user": user(p.uid), "name": red.text(p.name),
                     "state": p.status, "rss_bytes": p.rss_bytes, "cpu_s": p.cpu_s, "threads": p.threads,
                     "started": rfc3339(p.create_time) if p.create_time else None,
                     "cmdline": red.text(res.cmdline(p.pid) or "")})
    return rows


def socket_rows(ctx, blind: list[str]) -> list[dict]:
    """TCP/UDP sockets with their owning pid (psutil reads /proc/net and every /proc/PID/fd)."""
    if ctx.proc != "/proc":
        blind.append("sockets table: not read with --proc-root (psutil reads the live /proc/net)")
        return []
    import psutil

    from hostdiag.core.context import bounded

    try:
        conns = bounded(psutil.net_connections, max(2.0, ctx.timeout_s * 2), "inet")
    except (TimeoutError, OSError, psutil.Error) as e:
        blind.append(f"sockets table: {e}")
        return []
    names = {"1": "tcp", "2": "udp"}
    rows = []
    for c in conns:
        rows.append({"proto": names.get(str(int(c.type)), str(c.type)) + ("6" if c.family.name == "AF_INET6" else ""),
                     "local": f"{c.laddr.ip}:{c.laddr.port}" if c.laddr else None,
                     "remote": f"{c.raddr.ip}:{c.raddr.port}" if c.raddr else None,
                     "state": c.status, "pid": c.pid})
    rows.sort(key=lambda r: (r["state"] != "LISTEN", r["local"] or ""))
    return rows


def history_slice(ctx, since: float, until: float):
    """(data, note) from the capture store when hostdiag.history exists and has a store.
    The hook: hostdiag.history.bundle_slice(ctx, since, until) -> dict | None (None: no store)."""
    try:
        hist = importlib.import_module("hostdiag.history")
    except ImportError:
        return None, "capture store not available in this build (hostdiag.history): no history slice"
    fn = getattr(hist, "bundle_slice", None)
    if fn is None:
        return None, "hostdiag.history has no bundle_slice(ctx, since, until): no history slice"
    try:
        data = fn(ctx, since, until)
    except Exception as e:  # noqa: BLE001 - the store is optional evidence; never lose the bundle
        return None, f"history slice failed: {type(e).__name__}: {e}"
    if data is None:
        return None, "no capture store on this host: no history slice"
    return data, None


def host_identity(ctx, report) -> dict:
    ident = asdict(report.snapshot.host)
    for key, path in (("machine_id", ctx.root_path("/etc/machine-id")),
                      ("boot_id", ctx.proc_path("sys/kernel/random/boot_id"))):
        try:
            with open(path) as f:
                ident[key] = f.read(64).strip() or None
        except OSError:
            ident[key] = None
    return ident


# ---------------------------------------------------------------------------- the bundle

def refold(report, red: redact.Redactor) -> None:
    """Journal templates were folded from raw lines, and folding can cut a secret where no rule
    sees it (`xoxb-<n>-<n>-<secret part>`). Where redaction changes a template's example, the
    template is folded again from the redacted example, and every copy of it (finding evidence
    quotes it) is replaced when the report is redacted."""
    jr = report.snapshot.sections.get("journal")
    for m in ((jr.data or {}).get("top_messages") or []) if jr else []:
        ex, tp = m.get("example"), m.get("template")
        if not ex or not tp:
            continue
        clean = red.text(ex)
        if clean != ex:
            m["example"] = clean
            red.exact[tp] = template(clean)


def _trim(lines: list[bytes], over: int) -> tuple[list[bytes], int]:
    """Drop lines from the end until `over` bytes are gone: (kept, dropped)."""
    dropped = 0
    while over > 0 and lines:
        over -= len(lines.pop())
        dropped += 1
    return lines, dropped


def write(opts: Options, ctx, out, *, report=None, collect=None, since: float, until: float, err=None) -> dict:
    """Collect (`collect()` -> Report, unless `report` is given), redact, and stream the bundle
    into `out`. The command passes `collect`, so this layer never imports the commands.
    Returns a summary: name, manifest_sha256, bytes, members, redactions, trimmed, interrupted."""
    from hostdiag.render import Env, render

    err = err or (lambda msg: print(msg, file=sys.stderr))
    wall0, mono0 = time.time(), time.monotonic()
    reader = _JournalReader(ctx, since, until, opts.max_bytes, opts)
    reader.start()
    if report is None:
        report = collect()
    red = redact.make(opts.redact, opts.redact_config)
    blind: list[str] = [f"redaction config: {e}" for e in red.config_errors]
    for e in red.config_errors:
        err(f"hostdiag: WARNING: redaction config: {e}")
    if not opts.redact:
        err("hostdiag: WARNING: --no-redact: this bundle holds command lines, log lines and config text "
            "AS FOUND, secrets included. Do not share it outside the incident team.")
    refold(report, red)
    red.deep(report)
    env = Env(stdout_isatty=False, no_color=True, width=80)
    members: list[tuple[str, bytes]] = [
        ("snapshot.json", render(report, "json", env).encode("utf-8")),
        ("report.md", render(report, "markdown", env).encode("utf-8")),
        ("report.txt", render(report, "plain", env).encode("utf-8")),
    ]
    secs = report.snapshot.sections
    ch = secs.get("changes")
    members.append(("changes.json", _dumps({"status": ch.status if ch else "unavailable",
                                            "reason": ch.reason if ch else "changes collector not run",
                                            **(ch.data if ch else {})})))
    jr = secs.get("journal")
    members.append(("kernel_events.json", _dumps((jr.data or {}).get("kernel_events", []) if jr else [])))
    enriched = [asdict(f) for f in report.findings if isinstance(f.evidence, dict) and "shape" in f.evidence
                or any(f.id == s.signature for s in report.shapes)]
    members.append(("signature_matches.json", _dumps({"shapes": [asdict(s) for s in report.shapes],
                                                      "findings": enriched})))
    procs = _jsonl(process_rows(ctx, red, blind))
    socks = _jsonl(socket_rows(ctx, blind))
    hist, note = history_slice(ctx, since, until)
    history = {"included": hist is not None, "note": note}
    if hist is not None:
        members.append(("history.json", _dumps(red.deep(hist))))
    fixed = sum(len(b) + TAR_OVERHEAD for _, b in members) + 2 * TAR_OVERHEAD + MANIFEST_RESERVE
    trimmed: list[dict] = []
    room = opts.max_bytes - fixed - 2 * TAR_OVERHEAD - sum(map(len, procs)) - sum(map(len, socks))
    if room < 0:  # the tables alone do not fit: sockets first, then the smallest processes
        socks, d = _trim(socks, -room)
        if d:
            trimmed.append({"member": "sockets.jsonl", "dropped_rows": d, "order": "last rows first"})
        room = opts.max_bytes - fixed - 2 * TAR_OVERHEAD - sum(map(len, procs)) - sum(map(len, socks))
        if room < 0:
            procs, d = _trim(procs, -room)
            trimmed.append({"member": "processes.jsonl", "dropped_rows": d, "order": "smallest RSS first"})
    members.append(("processes.jsonl", b"".join(procs)))
    members.append(("sockets.jsonl", b"".join(socks)))
    budget = max(0, opts.max_bytes - fixed - sum(len(b) + TAR_OVERHEAD for _, b in members[-2:]) - TAR_OVERHEAD)
    reader.join(JOURNAL_BUDGET_S + 10)
    if reader.result is None:
        blind.append("journal: the excerpt was not read within its time bound")
        jlines, jdropped, jinfo = [], 0, {"since": rfc3339(since), "until": rfc3339(until)}
    else:
        jlines, jdropped, jinfo = reader.result
        jlines, more = _keep_newest(jlines, budget)
        jdropped += more
        jinfo.update(entries=len(jlines), dropped_by_max_size=jdropped)
    red.counts.update(reader.red.counts)
    blind += reader.blind
    if jdropped:
        trimmed.append({"member": "journal.jsonl", "dropped_lines": jdropped, "order": "oldest first"})
    members.append(("journal.jsonl", b"".join(jlines)))
    del jlines
    if fixed - MANIFEST_RESERVE > opts.max_bytes:
        blind.append(f"--max-size {opts.max_bytes} bytes is smaller than the snapshot and reports alone; "
                     "they are never trimmed, so the bundle is larger")

    name = bundle_name(report.snapshot.host.hostname, opts.incident, wall0, opts.zstd)
    w = Writer(out, name, zstd=opts.zstd, mtime=wall0)
    for n, data in members:
        w.add(n, data)
    counts = dict(sorted(red.counts.items()))
    argv = [red.text(a) for a in opts.argv]     # a password passed to a wrapper must not land here
    manifest = {
        "hostdiag_version": __version__,
        "incident": opts.incident,
        "host": host_identity(ctx, report),
        "collection": {"start": rfc3339(wall0), "end": rfc3339(time.time()),
                       "start_epoch": round(wall0, 6), "end_epoch": round(time.time(), 6),
                       "start_monotonic": round(mono0, 6), "end_monotonic": round(time.monotonic(), 6)},
        "window": {"since": rfc3339(since), "until": rfc3339(until)},
        "command_line": argv,
        "compression": "zstd" if opts.zstd else "gzip",
        "max_size_bytes": opts.max_bytes,
        "trimmed": trimmed,
        "journal": jinfo,
        "history": history,
        "redaction": ({"enabled": True, "counts": dict(sorted(red.counts.items())),
                       "total": sum(red.counts.values()), "user_patterns": red.config_source,
                       "never_collected": ["process environments"]}
                      if opts.redact else
                      {"enabled": False, "counts": {}, "total": 0,
                       "WARNING": "NOT REDACTED (--no-redact): secrets in command lines, logs and config text are "
                                  "included as found. Share only within the incident team.",
                       "never_collected": ["process environments"]}),
        "blind_spots": [{"collector": b.collector, "status": b.status, "reason": b.reason}
                        for b in report.blind_spots] + [{"collector": "bundle", "status": "partial", "reason": red.text(r)}
                                                        for r in blind + ([note] if note else [])],
    }
    digest = w.finish(manifest)
    return {"name": name, "manifest_sha256": digest, "bytes": w.compressed_bytes,
            "members": len(w.members) + 2, "redactions": counts, "trimmed": trimmed,
            "uncompressed": sum(m["size"] for m in w.members), "interrupted": report.snapshot.interrupted}

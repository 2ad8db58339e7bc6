"""journal: the system log over the log window (default the last 30 minutes): errors per minute,
top repeating messages, per-unit errors, the latest raw lines, and kernel events (OOM kills, I/O
errors, hung tasks...) recognised by the kind="log" signature catalog. Reads logs through
hostdiag.logs (systemd-python, else `journalctl -o json`, else /var/log/{syslog,messages,kern.log}
and /dev/kmsg); root (or group systemd-journal/adm) is needed to see other users' and the kernel's
messages."""
from __future__ import annotations

import re
import statistics
import time
from collections import Counter

from hostdiag import catalog as catalog_mod
from hostdiag import logs
from hostdiag.core import shell
from hostdiag.core.context import Unavailable
from hostdiag.core.model import Finding
from hostdiag.core.thresholds import Threshold
from hostdiag.core.units import rfc3339
from hostdiag.logs import PRIORITIES, Entry

NAME = "journal"
DEFAULT_ENABLED = True
NEEDS: set[str] = set()
READS = ["/var/log/journal/**/*.journal", "/run/log/journal/**/*.journal", "journalctl -o json (fallback)",
         "/var/log/syslog", "/var/log/messages", "/var/log/kern.log", "/dev/kmsg"]
UNITS: dict = {}
METRICS = ("errors_per_min",)    # added in collect() from the log window
THRESHOLDS = {
    "journal.error_burst_ratio": Threshold(
        5, 20, "ratio", "peak error-priority (0-3) lines per minute divided by the window's median per minute (at least 1)"),
    "journal.error_burst_per_min": Threshold(
        20, 200, "count", "peak error-priority (0-3) lines in one minute; a burst needs this and the ratio"),
}

DEFAULT_WINDOW_S = 30 * 60
MAX_TEMPLATES = 5000          # distinct message templates tracked; more count as "other"
TOP = 10
LATEST = 20
LATEST_CHARS = 2048
MAX_EVENTS = 50
MAX_PATTERN_TIMEOUTS = 3      # a log pattern that times out this often is dropped for the run
# What a finding needs from its catalog entry, copied into each kernel_events row at collect time:
# findings() then depends on the section alone (and on the catalog the snapshot was taken with).
RULE_FIELDS = ("title", "severity", "category", "verify", "stabilize", "avoid", "impact", "looks_like", "runbook")


def match_event(p: catalog_mod.LogPattern, e: Entry) -> dict | None:
    """The pattern's named groups if it applies to this entry and matches, else None.

    Raises TimeoutError when the pattern took longer than catalog.LINE_TIMEOUT_S on this line.
    """
    if p.transport and p.transport != e.transport:
        return None
    if p.unit and p.unit not in (e.unit, e.ident):
        return None
    return p.search(e.msg)


def _num(v: str):
    return int(v) if v.isdigit() else v


# The oom-kill summary line carries the victim's cgroup; it comes just before "Killed process".
_OOM_CTX = re.compile(r"oom-kill:(?P<kv>constraint=.*)")


def parse_oom_context(msg: str) -> dict[str, str] | None:
    """'oom-kill:constraint=CONSTRAINT_MEMCG,...,task_memcg=/x,task=y,pid=1,uid=0' -> dict."""
    m = _OOM_CTX.search(msg)
    if not m:
        return None
    out = {}
    for part in re.split(r",(?=[a-z_]+=)", m["kv"]):
        k, _, v = part.partition("=")
        out[k.strip()] = v.strip()
    return out



# ---------------------------------------------------------------------------- analysis

def analyse(entries, since: float, until: float, patterns: list[catalog_mod.LogPattern], expired=lambda: False) -> dict:
    """Aggregate entries (any order) into the section's data: counts, templates, events, latest lines.

    Each pattern search is bounded (catalog.LINE_TIMEOUT_S); a pattern that times out
    MAX_PATTERN_TIMEOUTS times is dropped for the rest of the run and named in
    data["pattern_timeouts"]. `expired()` is checked per entry: when it says stop, the rest is
    not read and data["cut_short"] says so.
    """
    active = list(patterns)
    timeouts: Counter = Counter()
    cut_short = None
    t0 = int(since // 60) * 60
    nb = max(1, int((until - t0) // 60) + 1)
    per_min: dict[str, list[int]] = {}
    by_prio: Counter = Counter()
    templates: Counter = Counter()
    tmpl_info: dict[str, tuple[str, int | None, float]] = {}
    unit_err: Counter = Counter()
    latest: list[Entry] = []
    events: dict[tuple, dict] = {}
    oom_ctx: dict[str, dict] = {}
    n = 0
    for e in entries:
        if expired():
            cut_short = "time budget spent while matching log patterns"
            break
        n += 1
        name = PRIORITIES[e.prio] if e.prio is not None else "unknown"
        by_prio[name] += 1
        b = int((e.t - t0) // 60)
        if 0 <= b < nb:
            per_min.setdefault(name, [0] * nb)[b] += 1
        if len(latest) < LATEST or e.t > latest[-1].t:
            latest.append(e)
            latest.sort(key=lambda x: x.t, reverse=True)
            del latest[LATEST:]
        if e.prio is not None and e.prio <= 4:
            # Templates for warnings and worse: info chatter would hide what repeats in trouble.
            tp = logs.template(e.msg)
            if tp in templates or len(templates) < MAX_TEMPLATES:
                templates[tp] += 1
                if tp not in tmpl_info or e.t > tmpl_info[tp][2]:
                    tmpl_info[tp] = (e.msg, e.prio, e.t)
            else:
                templates["<other>"] += 1
            if e.prio <= 3:
                unit_err[e.source] += 1
        if e.transport == "kernel" and "oom-kill:" in e.msg:
            c = parse_oom_context(e.msg)
            if c and "pid" in c and len(oom_ctx) < 1000:
                oom_ctx[c["pid"]] = c
        for p in active:
            try:
                g = match_event(p, e)
            except TimeoutError:
                timeouts[p.id] += 1
                continue
            if g is None:
                continue
            subj = {k: _num(g[k]) for k in p.subject if k in g}
            key = (p.id, tuple(sorted(subj.items(), key=str)))
            ev = events.get(key)
            if ev is None:
                if len(events) >= MAX_EVENTS:
                    continue
                ev = events[key] = {"id": p.id, "time": e.t, "last": e.t, "count": 0, "subject": subj,
                                    "groups": g, "line": e.msg[:LATEST_CHARS], "source": e.source,
                                    "pattern": p}
            ev["count"] += 1
            if e.t < ev["time"]:
                ev["time"], ev["groups"], ev["line"] = e.t, g, e.msg[:LATEST_CHARS]
            ev["last"] = max(ev["last"], e.t)
        if timeouts and any(timeouts[p.id] >= MAX_PATTERN_TIMEOUTS for p in active):
            active = [p for p in active if timeouts[p.id] < MAX_PATTERN_TIMEOUTS]
    for ev in events.values():
        pid = str(ev["subject"].get("pid", ev["groups"].get("pid", "")))
        if ev["id"] == "kernel.oom_kill" and pid in oom_ctx:
            c = oom_ctx[pid]
            ev["groups"].update({k: c[k] for k in ("task_memcg", "oom_memcg", "constraint") if k in c})
            if "task_memcg" in c:
                ev["subject"]["cgroup"] = c["task_memcg"]

    minutes = [t0 + 60 * i for i in range(nb)]
    errs = [sum(per_min.get(k, [0] * nb)[i] for k in PRIORITIES[:4]) for i in range(nb)]
    peak_i = max(range(nb), key=lambda i: errs[i])
    data = {
        "entries": n,
        "by_priority": {k: by_prio[k] for k in (*PRIORITIES, "unknown") if by_prio[k]},
        "per_minute": {"t": minutes, **{k: per_min[k] for k in (*PRIORITIES, "unknown") if k in per_min}},
        "errors_per_minute": {"peak": errs[peak_i], "peak_at": rfc3339(minutes[peak_i]),
                              "median": statistics.median(errs)},
        "top_messages": [{"count": c, "template": tp, "priority": PRIORITIES[tmpl_info[tp][1]] if tp in tmpl_info else None,
                          "example": tmpl_info[tp][0][:LATEST_CHARS] if tp in tmpl_info else None}
                         for tp, c in templates.most_common(TOP)],
        "unit_errors": [{"unit": u, "errors": c} for u, c in unit_err.most_common(TOP)],
        "kernel_events": [_event_row(ev) for ev in sorted(events.values(), key=lambda v: v["time"])],
        "latest": [{"time": rfc3339(e.t), "priority": PRIORITIES[e.prio] if e.prio is not None else None,
                    "source": e.source, "pid": e.pid, "message": e.msg[:LATEST_CHARS]} for e in latest],
    }
    if timeouts:
        data["pattern_timeouts"] = dict(timeouts)
    if cut_short:
        data["cut_short"] = cut_short
    data["_errs"] = errs
    return data


def rule(p: catalog_mod.LogPattern, values: dict) -> dict:
    """The catalog fields a finding needs, with {group} placeholders filled shell-quoted from `values`.

    A verify template that cannot be filled falls back to reading the log; a first_checks line
    that cannot be filled is dropped.
    """
    d = p.data
    out = {k: d[k] for k in RULE_FIELDS if k in d}
    if isinstance(d.get("verify"), str):
        out["verify"] = shell.fill(d["verify"], values) or _default_verify(p)
    if isinstance(d.get("first_checks"), list):
        out["first_checks"] = [c for c in (shell.fill(x, values) for x in d["first_checks"] if isinstance(x, str)) if c]
    return out


def _default_verify(p) -> str:
    if p.transport == "kernel":
        return "journalctl -k --since -30min"
    return shell.cmd("journalctl", *(("-u", p.unit) if p.unit else ()), "--since", "-30min")


def _event_row(ev: dict) -> dict:
    values = {**ev["groups"], **ev["subject"]}
    return {"id": ev["id"], "time": rfc3339(ev["time"]), "last": rfc3339(ev["last"]), "count": ev["count"],
            "subject": ev["subject"], "evidence": {k: _num(v) for k, v in ev["groups"].items()},
            "source": ev["source"], "line": ev["line"], "rule": rule(ev["pattern"], values)}


def window(ctx, now: float | None = None) -> tuple[float, float]:
    """The log window (since, until) in epoch seconds: --since/--until, default the last 30 minutes."""
    until = ctx.until if ctx.until is not None else (time.time() if now is None else now)
    since = ctx.since if ctx.since is not None else until - DEFAULT_WINDOW_S
    if since > until:
        raise Unavailable(f"--since ({rfc3339(since)}) is after --until ({rfc3339(until)})")
    return since, until


def collect(job):
    ctx = job.ctx
    since, until = window(ctx, job.now)
    cat = catalog_mod.for_context(ctx)
    patterns = cat.log_patterns()
    for err in cat.errors[:5]:
        job.blind_spot(f"signature catalog: {err}")
    for note in cat.notes[:5]:
        job.blind_spot(f"signature catalog: {note}")
    if any(not catalog_mod.bounded(p.data["pattern"]) for p in patterns) and (why := catalog_mod.regex_engine()):
        job.blind_spot(why)
    notes: list[str] = []
    # Leave a quarter of the collector's time bound for the analysis and the report.
    budget_end = time.monotonic() + max(0.3, job.deadline.remaining() * 0.75)
    rd = logs.open_journal(ctx, since, until, expired=lambda: time.monotonic() >= budget_end or job.deadline.expired(),
                      notes=notes)
    data = analyse(rd.entries, since, until, patterns, expired=job.deadline.expired)
    for pid_, k in (data.get("pattern_timeouts") or {}).items():
        job.blind_spot(f"log pattern {pid_} timed out on {k} line(s) (over {catalog_mod.LINE_TIMEOUT_S * 1000:g} ms each)"
                       + (": dropped for the rest of the window" if k >= MAX_PATTERN_TIMEOUTS else ""))
    if data.get("cut_short"):
        job.blind_spot(f"log window cut short ({data['cut_short']}): later-read entries were not analysed")
    for n in notes + getattr(rd, "notes", []):
        if "journalctl" in n and rd.backend == "journalctl" and "not installed" in n:
            continue   # the fallback worked; not a blind spot, just recorded below
        if rd.backend != "text" or "text logs" not in n:
            job.blind_spot(n)
    if rd.backend == "text":
        job.blind_spot("no journal: read classic text logs (no priorities, so no error rate)"
                       if rd.source != "none" else "no journal and no readable text logs (/var/log/syslog, "
                       "messages, kern.log, /dev/kmsg): nothing to read")
    if rd.truncated:
        job.blind_spot(f"log window cut short ({rd.truncated}): older entries in the window were not read")
    errs = data.pop("_errs")
    head = {"backend": rd.backend, "source": rd.source, "since": rfc3339(since), "until": rfc3339(until),
            "entries_read": rd.read, "truncated": rd.truncated, "skipped": rd.skipped or None}
    head.update(data)
    head["error_burst"] = burst(errs, head["per_minute"]["t"])
    minutes = head["per_minute"]["t"]
    if minutes:  # errors per minute as a series: a spike or a flatline is a shape too
        job.add_series("errors_per_min", minutes[0], [t - minutes[0] for t in minutes], errs, "count")
    return head


def burst(errs: list[int], minutes: list[float]) -> dict | None:
    """The window's error spike: peak, baseline (median, at least 1), ratio and onset minute."""
    if not errs or max(errs) == 0:
        return None
    base = max(1.0, float(statistics.median(errs)))
    peak_i = max(range(len(errs)), key=lambda i: errs[i])
    peak = errs[peak_i]
    ratio = peak / base
    # Onset: the first minute of the run of elevated minutes leading to the peak.
    i = peak_i
    while i > 0 and errs[i - 1] >= max(2 * base, peak / 4):
        i -= 1
    return {"peak_per_min": peak, "baseline_per_min": base, "ratio": round(ratio, 1),
            "onset": rfc3339(minutes[i]), "peak_at": rfc3339(minutes[peak_i])}


# ---------------------------------------------------------------------------- findings

def _subject_text(subj: dict) -> str:
    if "name" in subj and "pid" in subj:
        s = f"{subj['name']} (pid {subj['pid']})"
    else:
        s = ", ".join(f"{k} {v}" for k, v in subj.items() if k != "cgroup")
    if subj.get("cgroup"):
        s += f" in cgroup {subj['cgroup']}"
    return s


def findings(section, th):
    d = section.data
    out: list[Finding] = []
    for ev in d.get("kernel_events") or []:
        c = ev.get("rule") or {}
        sev = c.get("severity", "warning")
        what = _subject_text(ev.get("subject") or {})
        times = f" ({ev['count']}× until {ev['last']})" if ev.get("count", 1) > 1 else ""
        title = c.get("title", ev["id"]) + (f": {what}" if what else "") + times
        out.append(Finding(
            id=ev["id"], category=c.get("category", "journal"), severity=sev, title=title,
            subject=ev.get("subject") or {},
            evidence={**(ev.get("evidence") or {}), "count": ev.get("count"), "first": ev["time"],
                      "last": ev.get("last"), "line": ev.get("line"), "runbook": c.get("runbook")},
            verify=c.get("verify", "journalctl -k --since -30min"),
            stabilize=list(c.get("stabilize", [])) + [f"Do not: {a}" if not a.lower().startswith("do not") else a
                                                      for a in c.get("avoid", [])],
            impact=c.get("impact", c.get("looks_like", "")),
            since=ev["time"], score=float(ev.get("count") or 1)))

    b = d.get("error_burst")
    if b:
        lr = th.level("journal.error_burst_ratio", b["ratio"])
        lp = th.level("journal.error_burst_per_min", b["peak_per_min"])
        if lr and lp:
            sev = "critical" if lr == lp == "critical" else "warning"
            units = d.get("unit_errors") or []
            top_unit = units[0] if units else None
            errs = [m for m in d.get("top_messages") or [] if m.get("priority") in PRIORITIES[:4]]
            who = f"; most from {top_unit['unit']} ({top_unit['errors']})" if top_unit else ""
            out.append(Finding(
                id="journal.error_burst", category="journal", severity=sev,
                title=(f"Error burst in the log: {b['peak_per_min']} errors/min at {b['peak_at']} vs a baseline "
                       f"of {b['baseline_per_min']:g}/min ({b['ratio']}×){who}"),
                subject={"unit": top_unit["unit"]} if top_unit else {},
                evidence={**b, "top_error": errs[0]["template"] if errs else None,
                          "top_error_count": errs[0]["count"] if errs else None, "units": units[:5]},
                impact="something started failing at the onset; the repeated message says what",
                verify=(shell.cmd("journalctl", "-p", "err", "--since", b["onset"], "-o", "short-iso") + " | head -50"
                        + (f"   # or: {_unit_cmd(top_unit['unit'], b['onset'])}" if top_unit else "")),
                stabilize=["Read the top repeated error (evidence) and the first errors at the onset: the first one "
                           "is usually the cause, the rest are its echo",
                           "Check what changed just before the onset (the What changed block)",
                           "Do not restart services to stop the errors before reading them: the first lines are the evidence"],
                since=b["onset"], score=b["ratio"]))
    return out


_UNIT_SUFFIX = re.compile(r"\.(service|scope|socket|mount|timer|slice|target|path|swap|device|automount)$")


def _unit_cmd(source: str, onset: str) -> str:
    """journalctl for one error source: the kernel, a systemd unit, or a syslog identifier."""
    sel = ("-k",) if source == "kernel" else ("-u", source) if _UNIT_SUFFIX.search(source) else ("-t", source)
    return shell.cmd("journalctl", *sel, "-p", "err", "--since", onset)

"""What the snapshot (analysis layer) calls to give findings their history. Pure reads, never raises.

    h, note = open_for_snapshot(path)              # None + blind-spot note when unusable
    for f in report["findings"]:                   # Report.to_dict() findings, or Finding via asdict
        info = finding_history(h, f, now)          # since when, trend over hours, ETA to its limit
        f_text = describe(info)                    # "fd count 180 → 238 over 6.0 h, ~10/h, limit 256 in 1.8 h"
    series = h.series("disk.used_bytes[mount=/]", since=now - 6 * 3600)   # core Series: feed the matcher
"""
from __future__ import annotations

import time

from hostdiag.history.store import History, StoreEmpty, StoreError, default_path

# finding category -> the per-process metric that follows a subject pid
_PROC_METRIC = {"files": "fds", "memory": "rss_bytes", "cpu": "cpu_pct", "io": "io_bps", "processes": "rss_bytes"}
# finding category -> the host series that tells its story when the subject names no mount or pid
_HOST_SERIES = {"memory": "memory.available_bytes", "cpu": "cpu.busy_pct", "files": "files.file_handles",
                "io": "io.psi_some_avg10", "processes": "processes.total", "sockets": None, "journal":
                "journal.errors_per_min"}


def open_for_snapshot(path: str | None = None) -> tuple[History | None, str | None]:
    """(History, None) when a store is there; (None, None) when none was set up (nothing to say);
    (None, reason) when one is there but unusable (show it as a blind spot)."""
    try:
        return History.open_ro(path or default_path()), None
    except StoreEmpty:
        return None, None
    except StoreError as e:
        if str(e).startswith("no history store"):
            return None, None
        return None, str(e)
    except OSError as e:
        return None, f"history store not readable: {e.strerror}"


def subject_series(h: History, finding: dict, since: float | None = None):
    """(Series, limit or None) that tracks a finding: its mount, its process or its category's host metric."""
    subj = finding.get("subject") or {}
    cat = finding.get("category") or str(finding.get("id", "")).split(".")[0]
    ev = finding.get("evidence") or {}
    if subj.get("mount"):
        m = subj["mount"]
        s = h.series(f"disk.used_bytes[mount={m}]", since)
        size = h.series(f"disk.size_bytes[mount={m}]", since)
        if "inode" in str(finding.get("id")):
            s, size = h.series(f"disk.inodes_used[mount={m}]", since), h.series(f"disk.inodes_total[mount={m}]", since)
        return (s[0] if s else None), (size[0].last() if size else None)
    if isinstance(subj.get("pid"), int) and cat in _PROC_METRIC:
        metric = _PROC_METRIC[cat]
        found = [s for s in h.process_series(subj["pid"], metric, since)
                 if not subj.get("name") or s.labels.get("name") == subj["name"]]
        limit = ev.get("limit") if metric == "fds" else None
        return (max(found, key=lambda s: s.t0 or 0) if found else None), limit   # the newest instance of that pid
    key = _HOST_SERIES.get(cat)
    s = h.series(key, since) if key else []
    return (s[0] if s else None), None


def trend(s, limit: float | None = None, hours: float = 6.0) -> dict | None:
    """First/last/slope over the last `hours` of a series; ETA to `limit` when moving toward it."""
    if s is None or not s.v:
        return None
    end = s.t[-1]
    pts = [(t, v) for t, v in zip(s.t, s.v) if v is not None and t >= end - hours * 3600]
    if len(pts) < 2:
        return None
    from hostdiag.core.model import Series

    win = Series(s.metric, s.unit, [t for t, _ in pts], [v for _, v in pts], s.labels, False, s.t0)
    slope = win.slope()
    out = {"metric": s.key, "unit": s.unit, "first": pts[0][1], "last": pts[-1][1], "span_s": pts[-1][0] - pts[0][0],
           "per_hour": slope * 3600 if slope is not None else None, "limit": limit, "eta_s": None, "points": len(pts)}
    if limit is not None and slope:
        gap = limit - pts[-1][1]
        if gap * slope > 0:
            out["eta_s"] = gap / slope
    return out


def finding_history(h: History | None, finding: dict, now: float | None = None, hours: float = 6.0) -> dict | None:
    """Since when a finding has held (consecutive captures up to the last one) and how its metric moved."""
    if h is None:
        return None
    now = time.time() if now is None else now
    try:
        since = h.since_when(str(finding.get("id")), finding.get("subject") or {})
        s, limit = subject_series(h, finding, now - max(hours, 24) * 3600)
        return {"since": since, "trend": trend(s, limit, hours)}
    except (StoreError, ValueError):
        return None


def describe(info: dict | None) -> str | None:
    """'fd count 180 → 238 over 6.0 h, ~10/h, limit 256 in 1.8 h' (None without a trend)."""
    from hostdiag.core.units import human_bytes, human_duration

    tr = (info or {}).get("trend")
    if not tr or tr["per_hour"] is None:
        return None

    def f(v):
        return human_bytes(v) if tr["unit"] == "bytes" else f"{v:.4g}"

    name = tr["metric"]
    if name.startswith("process.") and "[" in name:   # process.fds[name=x,pid=1,start=..] -> process.fds of x (pid 1)
        labels = dict(kv.split("=", 1) for kv in name[name.index("[") + 1:-1].split(",") if "=" in kv)
        name = f"{name[:name.index('[')]} of {labels.get('name')} (pid {labels.get('pid')})"
    text = f"{name} {f(tr['first'])} → {f(tr['last'])} over {human_duration(tr['span_s'])}, ~{f(tr['per_hour'])}/h"
    if tr["eta_s"] is not None:
        text += f", limit {f(tr['limit'])} in {human_duration(tr['eta_s'])}"
    return text


def bundle_slice(ctx, since: float, until: float, path: str | None = None) -> dict | None:
    """The history slice a bundle carries for its window: every host/mount/device series and the
    findings timeline. None when no store was set up; raises StoreError for an unusable one
    (the bundle records the reason and goes on)."""
    try:
        h = History.open_ro(path or default_path())
    except StoreEmpty:
        return None
    except StoreError as e:
        if str(e).startswith("no history store"):
            return None
        raise
    with h:
        first, last, n = h.span()
        series = {s.key: {"unit": s.unit, "t0": s.t0, "t": [round(x, 3) for x in s.t], "v": s.v}
                  for s in h.series("*", since, until, max_points=1440) if s.t}
        spans = [{"id": sp.fid, "subject": sp.subject, "severity": sp.severity, "title": sp.title,
                  "start": sp.start, "end": sp.end, "captures": sp.captures}
                 for sp in h.finding_spans(since, until)]
        return {"store": h.path, "captures_in_store": n, "store_first": first, "store_last": last,
                "window": {"since": since, "until": until}, "series": series, "findings": spans,
                "notes": list(getattr(h, "notes", []) or [])}

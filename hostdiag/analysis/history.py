"""Step 1b: what the capture store says (hostdiag capture, hostdiag/history).

A snapshot sees seconds; the store holds hours and days. With a store open (read-only, by the
snapshot command), this step gives:
  - series over the last hours for the matcher, in place of the window's few points (a
    six-hour stair-step, a flatline since 02:10), and the RSS history of the processes the
    findings name (the leak archetype's `processes.rss_bytes`);
  - each finding its history: since when it has held, and how its metric moved ("fds 180 → 238
    over 6 h, ~10/h, limit 256 in 1.8 h"), with that ETA when the window gave none;
  - a disk filling over hours (a slope a five-second window cannot see) as a finding;
  - a `history` section: what the store holds, and its notes as blind spots.
"""
from __future__ import annotations

import time
from dataclasses import asdict, replace

from hostdiag.core.model import Finding, Section, Series
from hostdiag.core.units import human_bytes, human_duration, rfc3339

HOURS = 6.0                 # host series matched over the last six hours
PROCESS_HOURS = 24.0        # a named process's RSS over a day
DISK_HOURS = 24.0           # disk growth judged over a day of captures
MAX_POINTS = 360            # per series: enough for a shape, cheap to match
MIN_CAPTURES = 8            # fewer: the window's own series are as good
TOP_PROCESSES = 5           # by RSS in the newest capture, matched over PROCESS_HOURS


def series_for_matching(h, now: float, findings: list[Finding]) -> dict[str, Series]:
    """Store series (host, mounts, devices, the findings' processes) to match instead of the window's."""
    out: dict[str, Series] = {}
    for s in h.series("*", since=now - HOURS * 3600, max_points=MAX_POINTS):
        if sum(v is not None for v in s.v) >= MIN_CAPTURES:
            out[s.key] = s
    # the processes the findings name, then the newest capture's biggest: a leak that has not
    # tripped anything yet is exactly what the history is for
    pids = [f.subject.get("pid") for f in findings if isinstance(f.subject.get("pid"), int)]
    try:
        newest = h.capture(now)["procs"].values()
        pids += [p["pid"] for p in sorted(newest, key=lambda p: -(p.get("rss_bytes") or 0))[:TOP_PROCESSES]]
    except Exception:  # noqa: BLE001 - an empty or odd store: no process series, the rest stands
        pass
    for pid in list(dict.fromkeys(pids))[:TOP_PROCESSES + 3]:
        inst = [s for s in h.process_series(pid, "rss_bytes", since=now - PROCESS_HOURS * 3600)
                if sum(v is not None for v in s.v) >= MIN_CAPTURES]
        if not inst:
            continue
        s = max(inst, key=lambda x: x.t0 or 0)        # the newest instance of a reused pid
        name = s.labels.get("name", "?")
        out[f"processes.rss_bytes[name={name},pid={pid}]"] = replace(
            s, metric="processes.rss_bytes", labels={"name": name, "pid": str(pid)})
    return out


def annotate(findings: list[Finding], h, now: float) -> list[Finding]:
    """Each finding gains evidence["history"] (since when, trend), `since` and an ETA from it."""
    from hostdiag.history.enrich import describe, finding_history

    out = []
    for f in findings:
        info = finding_history(h, asdict(f), now)
        if not info or (info.get("since") is None and not info.get("trend")):
            out.append(f)
            continue
        since = info.get("since")
        text = describe(info)
        tr = info.get("trend") or {}
        ev = {"since": rfc3339(since) if since else None, "trend": text, "eta_s": tr.get("eta_s")}
        changes = {"evidence": {**f.evidence, "history": {k: v for k, v in ev.items() if v is not None}}}
        if since and not f.since:
            changes["since"] = rfc3339(since)
        if f.eta_s is None and tr.get("eta_s") is not None:
            changes["eta_s"] = round(tr["eta_s"], 1)
        out.append(replace(f, **changes))
    return out


def disk_trends(h, now: float, findings: list[Finding], thresholds) -> list[Finding]:
    """Mounts filling over the last day of captures, toward full within the time_to_full levels,
    that no window finding names yet."""
    from hostdiag.history.enrich import trend

    named = {f.subject.get("mount") for f in findings if f.category == "disk"}
    out = []
    for used in h.series("disk.used_bytes*", since=now - DISK_HOURS * 3600, max_points=MAX_POINTS):
        mount = used.labels.get("mount")
        if mount in named or sum(v is not None for v in used.v) < MIN_CAPTURES:
            continue
        size = h.series(f"disk.size_bytes[mount={mount}]", since=now - DISK_HOURS * 3600)
        limit = size[0].last() if size else None
        tr = trend(used, limit, hours=DISK_HOURS)
        if not tr or tr.get("eta_s") is None or tr["per_hour"] is None or tr["per_hour"] <= 0:
            continue
        level = thresholds.level("disk.time_to_full_s", tr["eta_s"])
        if not level:
            continue
        out.append(Finding(
            id="disk.filling_trend", category="disk", severity=level,
            title=f"{mount} fills at {human_bytes(tr['per_hour'])}/h over {human_duration(tr['span_s'])} of "
                  f"captures: full in ~{human_duration(tr['eta_s'])} at this rate",
            subject={"mount": mount},
            evidence={"history": {"trend": f"{human_bytes(tr['first'])} → {human_bytes(tr['last'])} over "
                                           f"{human_duration(tr['span_s'])}", "per_hour": tr["per_hour"],
                                  "size_bytes": limit, "captures": tr["points"]}},
            verify=f"df -h {_quote(mount)}",
            stabilize=["Find what grows there (du -xh --max-depth=2 on the mount, sorted) and rotate, "
                       "compress or move it before it fills",
                       "Do not delete files that are still open: the space stays held until the "
                       "writer closes them (check lsof +L1)"],
            impact="writers on this filesystem get ENOSPC when it fills",
            eta_s=round(tr["eta_s"], 1), limit_fraction=(tr["last"] / limit) if limit else None))
    return out


def _quote(s: str) -> str:
    from hostdiag.core.shell import quote

    return quote(s)


def section(h, note: str | None, used_keys: int) -> Section:
    """The `history` section: what the store holds; its notes as a partial status."""
    if h is None:
        return Section("history", "unavailable", note or "no capture store")
    first, last, n = h.span()
    notes = list(getattr(h, "notes", []) or [])
    data = {"store": h.path, "captures": n, "first": rfc3339(first) if first else None,
            "last": rfc3339(last) if last else None, "size_bytes": h.size_bytes(),
            "series_matched_from_history": used_keys}
    if last is not None and time.time() - last > 15 * 60:
        notes.append(f"newest capture is {human_duration(time.time() - last)} old: is the capture timer running?")
    return Section("history", "partial" if notes else "ok", "; ".join(notes) or None, 0.0, data, notes)

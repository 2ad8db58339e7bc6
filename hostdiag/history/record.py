"""A finished snapshot -> one capture record (plain dict), the unit the store appends.

Reads only the `Report.to_dict()` JSON keys (`sections`, `findings`), never the internal
classes, so the analysis layer can change its dataclasses without breaking the store. The
optional process table (`procs`) is the runner's full process scan when it is at hand: the
JSON keeps only the top 5 per category, the store keeps the top N (default 20).
"""
from __future__ import annotations

import json
from typing import Any, Iterable

# series key -> path in sections[...]["data"]; the store keeps one typed column per key.
# Added keys need a migration (store.MIGRATIONS) that adds their column: never rename one.
HOST_V1: dict[str, tuple] = {
    "cpu.busy_pct": ("cpu", "total_pct", "busy"),
    "cpu.user_pct": ("cpu", "total_pct", "user"),
    "cpu.system_pct": ("cpu", "total_pct", "system"),
    "cpu.iowait_pct": ("cpu", "total_pct", "iowait"),
    "cpu.steal_pct": ("cpu", "total_pct", "steal"),
    "cpu.load1": ("cpu", "load", "1m"),
    "cpu.load5": ("cpu", "load", "5m"),
    "cpu.load15": ("cpu", "load", "15m"),
    "cpu.psi_some_avg10": ("cpu", "psi", "some_avg10"),
    "cpu.procs_blocked": ("cpu", "procs_blocked"),
    "memory.available_bytes": ("memory", "available_bytes"),
    "memory.used_bytes": ("memory", "used_bytes"),
    "memory.total_bytes": ("memory", "total_bytes"),
    "memory.swap_used_bytes": ("memory", "swap_used_bytes"),
    "memory.swap_in_pages_per_s": ("memory", "swap_in_pages_per_s"),
    "memory.swap_out_pages_per_s": ("memory", "swap_out_pages_per_s"),
    "memory.major_faults_per_s": ("memory", "major_faults_per_s"),
    "memory.oom_kills_total": ("memory", "oom_kills_total"),
    "memory.psi_some_avg10": ("memory", "psi", "some_avg10"),
    "memory.psi_full_avg10": ("memory", "psi", "full_avg10"),
    "io.psi_some_avg10": ("io", "psi", "some_avg10"),
    "io.psi_full_avg10": ("io", "psi", "full_avg10"),
    "io.d_state_count": ("io", "d_state_count"),
    "files.file_handles": ("files", "file_handles"),
    "files.file_max": ("files", "file_max"),
    "processes.total": ("processes", "total"),
    "processes.threads_total": ("processes", "threads_total"),
    "processes.zombies": ("processes", "zombies"),
    "processes.forks_per_s": ("processes", "forks_per_s"),
    "processes.running": ("processes", "by_state", "running"),
    "processes.disk_sleep": ("processes", "by_state", "disk-sleep"),
}
# schema v2: socket states and counters, and the journal error rate.
HOST_V2: dict[str, tuple] = {
    "sockets.established": ("sockets", "states", "ESTABLISHED"),
    "sockets.time_wait": ("sockets", "states", "TIME_WAIT"),
    "sockets.close_wait": ("sockets", "states", "CLOSE_WAIT"),
    "sockets.syn_recv": ("sockets", "states", "SYN_RECV"),
    "sockets.listen": ("sockets", "states", "LISTEN"),
    "sockets.tcp_orphan": ("sockets", "totals", "tcp_orphan"),
    "sockets.retrans_segs_per_s": ("sockets", "rates", "retrans_segs_per_s"),
    "sockets.listen_drops_per_s": ("sockets", "rates", "listen_drops_per_s"),
    "sockets.listen_overflows_per_s": ("sockets", "rates", "listen_overflows_per_s"),
    "sockets.estab_resets_per_s": ("sockets", "rates", "estab_resets_per_s"),
    "sockets.out_rsts_per_s": ("sockets", "rates", "out_rsts_per_s"),
    "journal.errors_per_min": (),          # derived below from by_priority and the log window
}
HOST_KEYS = {**HOST_V1, **HOST_V2}
SEVERITY = {"info": 0, "warning": 1, "critical": 2}
_ERR_PRIOS = ("emerg", "alert", "crit", "err")


def _get(d: Any, path: Iterable[str]):
    for p in path:
        if not isinstance(d, dict):
            return None
        d = d.get(p)
    return d if isinstance(d, (int, float)) and not isinstance(d, bool) else None


def _num(x) -> float | None:
    return float(x) if isinstance(x, (int, float)) and not isinstance(x, bool) else None


def _journal_rate(data: dict) -> float | None:
    from hostdiag.core.units import parse_rfc3339

    prios = data.get("by_priority")
    t0, t1 = parse_rfc3339(data.get("since")), parse_rfc3339(data.get("until"))
    if not isinstance(prios, dict) or t0 is None or t1 is None or t1 <= t0:
        return None
    return round(sum(int(prios.get(p) or 0) for p in _ERR_PRIOS) / ((t1 - t0) / 60), 3)


def from_report(doc: dict, t: float, procs: list[dict] | None = None, top_n: int = 20) -> dict:
    """Report.to_dict() JSON (+ optional full process table) -> capture record for Store.append."""
    sec = {k: (v.get("data") or {}) for k, v in (doc.get("sections") or {}).items()
           if isinstance(v, dict) and v.get("status") != "unavailable"}
    host = {}
    for key, path in HOST_KEYS.items():
        if path:
            v = _get(sec.get(path[0]), path[1:])
            host[key] = round(v, 3) if isinstance(v, float) else v
    if "sockets" in sec:   # a state absent from the table means zero sockets in it, not unknown
        for key, path in HOST_V2.items():
            if path[:2] == ("sockets", "states") and host.get(key) is None:
                host[key] = 0
    host["journal.errors_per_min"] = _journal_rate(sec["journal"]) if "journal" in sec else None

    devices = {}
    for d in (sec.get("io") or {}).get("devices") or []:
        if isinstance(d, dict) and d.get("device"):
            devices[str(d["device"])] = {k: _num(d.get(k)) for k in
                                         ("util_pct", "read_bps", "write_bps", "r_await_ms", "w_await_ms")}
    mounts = {}
    for f in (sec.get("disk") or {}).get("filesystems") or []:
        if isinstance(f, dict) and f.get("mount"):
            mounts[str(f["mount"])] = {k: _num(f.get(k)) for k in
                                       ("used_bytes", "size_bytes", "inodes_used", "inodes_total")}
    return {
        "t": float(t),
        "window_s": _num(doc.get("window_s")),
        "duration_s": _num(doc.get("duration_s")),
        "host": host,
        "devices": devices,
        "mounts": mounts,
        "procs": top_processes(procs if procs is not None else _procs_from_json(sec), top_n),
        "ports": _ports(sec.get("sockets") or {}),
        "findings": [{"id": str(f.get("id")), "severity": SEVERITY.get(f.get("severity"), 0),
                      "subject": json.dumps(f.get("subject") or {}, sort_keys=True, default=str),
                      "title": str(f.get("title") or "")[:200]}
                     for f in doc.get("findings") or [] if isinstance(f, dict) and f.get("id")],
    }


def procs_from_scan(scan) -> list[dict]:
    """The runner's procscan.Scan -> process dicts (start = create_time, epoch seconds)."""
    out = []
    for p in getattr(scan, "procs", {}).values():
        io = None if p.read_bps is None and p.write_bps is None else (p.read_bps or 0) + (p.write_bps or 0)
        out.append({"pid": p.pid, "start": p.create_time, "name": p.name, "cpu_pct": p.cpu_pct,
                    "rss_bytes": p.rss_bytes, "fds": p.fds, "io_bps": io})
    return out


def _procs_from_json(sec: dict) -> list[dict]:
    """Fallback without the scan: the union of the JSON top-5 tables (no start time)."""
    by_pid: dict[int, dict] = {}
    for col, where in (("cpu_pct", ("cpu", "top")), ("rss_bytes", ("memory", "top_rss")),
                       ("fds", ("files", "top")), ("io_bps", ("io", "top"))):
        for r in (sec.get(where[0]) or {}).get(where[1]) or []:
            if not isinstance(r, dict) or not isinstance(r.get("pid"), int):
                continue
            p = by_pid.setdefault(r["pid"], {"pid": r["pid"], "start": None, "name": str(r.get("name") or "?")})
            p[col] = (_num(r.get("read_bps")) or 0) + (_num(r.get("write_bps")) or 0) if col == "io_bps" \
                else _num(r.get(col))
    return list(by_pid.values())


def top_processes(procs: list[dict], n: int) -> list[dict]:
    """Union of the top n by CPU, RSS, fds and I/O; zero CPU/I/O never earns a row on its own."""
    keep: dict[tuple, dict] = {}
    for col in ("cpu_pct", "rss_bytes", "fds", "io_bps"):
        ranked = sorted((p for p in procs if (p.get(col) or 0) > 0), key=lambda p: p[col], reverse=True)
        for p in ranked[:n]:
            keep[(p["pid"], p.get("start"))] = p
    return list(keep.values())


def _ports(d: dict) -> list[tuple[str, int, int]]:
    """(state, port, count): listeners (count = accept queue), TIME_WAIT/SYN_RECV/CLOSE_WAIT by port."""
    out: dict[tuple[str, int], int] = {}
    for r in d.get("listeners") or []:
        if isinstance(r, dict) and isinstance(r.get("port"), int):
            out[("LISTEN", r["port"])] = int(r.get("queue") or 0)
    for state, key in (("TIME_WAIT", "time_wait_by_port"), ("SYN_RECV", "syn_recv_by_port"),
                       ("CLOSE_WAIT", "close_wait")):
        for r in d.get(key) or []:
            if isinstance(r, dict) and isinstance(r.get("port"), int):
                k = (state, r["port"])
                out[k] = out.get(k, 0) + int(r.get("count") or 0)
    return [(s, p, n) for (s, p), n in sorted(out.items())]

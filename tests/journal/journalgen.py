"""Real journal files for tests and benchmarks, written by systemd-journal-remote from
Journal Export Format (systemd.io/JOURNAL_EXPORT_FORMATS): no journald needed.

Pitfalls (TESTBED.md): the output name must end in .journal; entries must be in time order;
an entry without __REALTIME_TIMESTAMP inherits the previous one's.
"""
from __future__ import annotations

import os
import shutil
import struct
import subprocess

REMOTE = "/lib/systemd/systemd-journal-remote"
BOOT_ID = "0123456789abcdef0123456789abcdef"


def available() -> str | None:
    """None if journal files can be generated here, else why not."""
    if not os.access(REMOTE, os.X_OK):
        return f"{REMOTE} missing: apt-get install -y systemd-journal-remote"
    return None


def _field(key: str, value) -> bytes:
    if isinstance(value, str):
        value = value.encode("utf-8", "surrogateescape")
    elif isinstance(value, int):
        value = str(value).encode()
    # Binary framing for anything that is not a plain one-line text value.
    if b"\n" in value or any(c < 32 and c != 9 for c in value):
        return key.encode() + b"\n" + struct.pack("<Q", len(value)) + value + b"\n"
    return key.encode() + b"=" + value + b"\n"


def export_entry(t: float, fields: dict, seq: int = 0) -> bytes:
    """One entry in Journal Export Format at epoch time t (seconds)."""
    out = [b"__REALTIME_TIMESTAMP=%d\n" % int(t * 1e6), b"__MONOTONIC_TIMESTAMP=%d\n" % (seq + 1),
           b"_BOOT_ID=" + BOOT_ID.encode() + b"\n"]
    out += [_field(k, v) for k, v in fields.items() if v is not None]
    return b"".join(out) + b"\n"


def write_journal(path: str, entries, *, compress: bool = True) -> str:
    """Write (t, fields) pairs (in time order) into the journal file `path` (must end in .journal)."""
    assert path.endswith(".journal")
    cmd = [REMOTE, "--split-mode=none", f"--output={path}"]
    if not compress:
        cmd.append("--compress=no")
    cmd.append("-")
    p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert p.stdin is not None
    buf = []
    size = 0
    for i, (t, fields) in enumerate(entries):
        b = export_entry(t, fields, i)
        buf.append(b)
        size += len(b)
        if size > 1 << 20:
            p.stdin.write(b"".join(buf))
            buf, size = [], 0
    p.stdin.write(b"".join(buf))
    p.stdin.close()
    err = p.stderr.read().decode(errors="replace") if p.stderr else ""
    if p.wait() != 0:
        raise RuntimeError(f"systemd-journal-remote failed: {err}")
    return path


def kernel(msg: str, prio: int = 3) -> dict:
    return {"MESSAGE": msg, "PRIORITY": prio, "_TRANSPORT": "kernel", "SYSLOG_IDENTIFIER": "kernel"}


def service(unit: str, msg, prio: int = 6, pid: int = 100) -> dict:
    return {"MESSAGE": msg, "PRIORITY": prio, "_TRANSPORT": "stdout", "_SYSTEMD_UNIT": unit,
            "SYSLOG_IDENTIFIER": unit.split(".")[0], "_PID": pid}


def incident(end: float, *, minutes: int = 30, per_min: int = 4, burst_at: int = 20, burst: int = 120,
             oom_at: int = 21):
    """A 30-minute story ending at `end`: steady info chatter, an error burst from `app.service`
    starting at minute `burst_at`, and a kernel OOM kill of pid 4242 (`app-worker`) at minute `oom_at`."""
    start = end - minutes * 60
    for m in range(minutes):
        base = start + m * 60
        evs = []
        for i in range(per_min):
            evs.append((base + i * (50 / per_min), service("cron.service", f"session {1000 + m * per_min + i} opened for user root", 6, 300 + i)))
        evs.append((base + 51, service("app.service", f"request id={m:04x}beef took {m + 3}ms", 4, 4242)))
        if m >= burst_at:
            n = burst if m in (burst_at, burst_at + 1) else 2
            for i in range(n):
                evs.append((base + 1 + i * (45 / n), service(
                    "app.service", f"upstream 10.0.0.{i % 250}:5432 connection refused (attempt {i})", 3, 4242)))
        if m == oom_at:
            evs.append((base + 30, kernel(
                "oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0,"
                "oom_memcg=/system.slice/app.service,task_memcg=/system.slice/app.service,task=app-worker,pid=4242,uid=0")))
            evs.append((base + 30.001, kernel(
                "Memory cgroup out of memory: Killed process 4242 (app-worker) total-vm:812345kB, "
                "anon-rss:700000kB, file-rss:0kB, shmem-rss:0kB, UID:0 pgtables:1400kB oom_score_adj:0")))
        evs.sort(key=lambda x: x[0])
        yield from evs


def bulk(start: float, end: float, n: int):
    """n mixed entries spread evenly over [start, end] (bound tests, benchmark)."""
    step = (end - start) / max(1, n)
    units = ("nginx.service", "app.service", "cron.service", "sshd.service")
    for i in range(n):
        u = units[i % 4]
        prio = 3 if i % 97 == 0 else (4 if i % 13 == 0 else 6)
        yield start + i * step, service(u, f"worker {i % 64} handled request {i} in {i % 1000}ms", prio, 1000 + i % 64)


def have_journalctl() -> bool:
    return shutil.which("journalctl") is not None

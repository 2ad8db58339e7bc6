"""The three ways to read logs, newest first and bounded: systemd-python, `journalctl -o json`, and
classic text logs plus /dev/kmsg. open_journal() tries them in order."""
from __future__ import annotations

import errno
import os
import stat
import subprocess
import threading
import time
from datetime import datetime
from typing import Iterator

from hostdiag.core.context import Unavailable
from hostdiag.logs.entry import MAX_MSG_CHARS, Entry, make_entry
from hostdiag.logs.parsers import parse_kmsg_record, parse_syslog_line
from hostdiag.logs.sources import Source, find_source

MAX_ENTRIES = 100_000
MAX_TEXT_BYTES = 32 << 20     # tail of each classic text log read
MAX_JSON_LINE = 4 << 20       # journalctl line longer than this: skipped, counted
JOURNALCTL = "journalctl"
_FIELDS = ("MESSAGE", "PRIORITY", "_SYSTEMD_UNIT", "SYSLOG_IDENTIFIER", "_PID", "_TRANSPORT",
           "MESSAGE_ID", "UNIT")

# Each backend yields Entries newest first, within [since, until], at most `cap`, and stops when
# `expired()` says the time budget is spent. `matches` are journal matches ("FIELD=value"; same
# field ORed, different fields ANDed, like journalctl's arguments).

class Read:
    """What a backend read: the entries (a generator) plus counters filled while iterating."""

    def __init__(self, backend: str, source: str):
        self.backend, self.source = backend, source
        self.read = 0
        self.truncated: str | None = None   # why the window was cut short, if it was
        self.skipped = 0                    # entries dropped (oversized JSON lines)
        self.entries: Iterator[Entry] = iter(())


def read_python(src: Source, since: float, until: float, cap: int = MAX_ENTRIES, expired=lambda: False,
                matches=()) -> Read:
    """systemd-python backend (sd_journal through libsystemd). ImportError when not installed."""
    from systemd import journal  # lazy: optional extra, 0.03 s import

    if src.kind == "local":
        r = journal._Reader(flags=journal.LOCAL_ONLY)
    elif src.kind == "dir":
        r = journal._Reader(flags=0, path=src.paths[0])
    else:
        r = journal._Reader(flags=0, files=list(src.paths))
    r.data_threshold = MAX_MSG_CHARS + 16   # megabyte messages: read only what we keep
    _add_matches(r, matches)
    out = Read("systemd-python", src.describe())

    def gen():
        try:
            r.seek_realtime(int(until * 1e6) + 1)

            def get(f):
                try:
                    return r._get(f)
                except KeyError:
                    return None
            while r._previous():
                t = r._get_realtime() / 1e6
                if t > until:
                    continue
                if t < since:
                    break
                if out.read >= cap:
                    out.truncated = f"entry cap {cap} reached"
                    break
                if out.read % 1024 == 0 and expired():
                    out.truncated = "time budget spent"
                    break
                out.read += 1
                yield make_entry(t, get)
        finally:
            r.close()
    out.entries = gen()
    return out


def _add_matches(r, matches) -> None:
    by_field: dict[str, list[str]] = {}
    for m in matches:
        by_field.setdefault(m.split("=", 1)[0], []).append(m)
    for group in by_field.values():
        for m in group:
            r.add_match(m)   # same field: ORed by sd_journal itself; different fields: ANDed


def run_bounded(cmd: list[str], timeout_s: float) -> tuple[subprocess.Popen | None, str | None]:
    """Start cmd with stdout piped and a kill timer; (proc, None) or (None, reason).

    Reasons follow coreutils timeout/sh conventions: 127 not found, 126 not executable, 124 timed out.
    """
    try:
        p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             close_fds=True)
    except FileNotFoundError:
        return None, f"{cmd[0]}: command not found (127)"
    except PermissionError:
        return None, f"{cmd[0]}: permission denied (126)"
    except OSError as e:   # ENOEXEC and friends: found but cannot be run
        return None, f"{cmd[0]}: cannot execute: {e.strerror} (126)"
    timer = threading.Timer(timeout_s, _kill_timed_out, (p,))
    timer.daemon = True
    timer.start()
    p._hostdiag_timer = timer  # type: ignore[attr-defined]
    return p, None


def _kill_timed_out(p: subprocess.Popen) -> None:
    if p.poll() is None:
        p._hostdiag_timed_out = True  # type: ignore[attr-defined]
        p.kill()   # our own child, by its Popen handle


def journalctl_cmd(src: Source, since: float, until: float, cap: int, matches=()) -> list[str]:
    """The journalctl command line equivalent to read_python()'s bounds."""
    cmd = [JOURNALCTL, "--no-pager", "-q", "-o", "json", "-a", "-r", "-n", str(cap),
           f"--since=@{since:.6f}", f"--until=@{until:.6f}",
           "--output-fields=" + ",".join(_FIELDS)]
    if src.kind == "dir":
        cmd.append(f"--directory={src.paths[0]}")
    elif src.kind in ("file", "files"):
        cmd += [f"--file={p}" for p in src.paths]
    return cmd + list(matches)


def read_journalctl(src: Source, since: float, until: float, cap: int = MAX_ENTRIES, expired=lambda: False,
                    matches=(), timeout_s: float = 2.0) -> Read:
    """`journalctl -o json` backend: the same bounds as a subprocess, killed at timeout_s."""
    import json

    cmd = journalctl_cmd(src, since, until, cap, matches)
    p, err = run_bounded(cmd, timeout_s)
    if p is None:
        raise OSError(err)
    out = Read("journalctl", src.describe())

    def gen():
        try:
            assert p.stdout is not None
            while True:
                line = p.stdout.readline(MAX_JSON_LINE)
                if not line:
                    break
                if not line.endswith(b"\n") and len(line) >= MAX_JSON_LINE:
                    out.skipped += 1
                    while (more := p.stdout.readline(MAX_JSON_LINE)) and not more.endswith(b"\n"):
                        pass
                    continue
                if out.read % 1024 == 0 and expired():
                    out.truncated = "time budget spent"
                    break
                try:
                    d = json.loads(line)
                    t = int(d["__REALTIME_TIMESTAMP"]) / 1e6
                except (ValueError, KeyError, TypeError):
                    out.skipped += 1
                    continue
                if t > until or t < since:
                    continue
                out.read += 1
                yield make_entry(t, d.get)
            if out.read >= cap:
                out.truncated = f"entry cap {cap} reached"
        finally:
            if p.poll() is None:
                p.kill()
            rc = p.wait()
            p._hostdiag_timer.cancel()  # type: ignore[attr-defined]
            if getattr(p, "_hostdiag_timed_out", False):
                out.truncated = f"journalctl timed out after {timeout_s:g}s (124)"
            elif rc not in (0, -9, None) and out.read == 0:
                msg = (p.stderr.read(2000) if p.stderr else b"").decode("utf-8", "backslashreplace").strip()
                out.truncated = f"journalctl exited {rc}: {msg}"
            for f in (p.stdout, p.stderr):
                if f:
                    f.close()
    out.entries = gen()
    return out


def _tail(path: str, limit: int) -> tuple[int, list[bytes]]:
    """(bytes before the tail that were not read, the tail's complete lines); a FIFO or device is refused."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "not a regular file")
        size = f.seek(0, os.SEEK_END)
        start = max(0, size - limit)
        f.seek(start)
        data = f.read(limit)
    lines = data.split(b"\n")
    if start:
        start += len(lines[0]) + 1
        lines = lines[1:]   # a partial first line
    return start, lines


def _read_kmsg(path: str, cap: int) -> list[str]:
    """All records /dev/kmsg holds now, without blocking (a regular file in a fixture works too)."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    recs: list[str] = []
    buf = b""
    try:
        while len(recs) < cap:
            try:
                chunk = os.read(fd, 65536)
            except BlockingIOError:
                break
            except BrokenPipeError:   # EPIPE: the ring buffer overwrote what we were at; go on
                continue
            if not chunk:
                break
            buf += chunk
            *done, buf = buf.split(b"\n")
            recs += [r.decode("utf-8", "backslashreplace") for r in done if r and not r.startswith(b" ")]
        if buf and not buf.startswith(b" "):
            recs.append(buf.decode("utf-8", "backslashreplace"))
    finally:
        os.close(fd)
    return recs


def read_text(ctx, since: float, until: float, cap: int = MAX_ENTRIES, expired=lambda: False) -> Read:
    """Classic text logs (syslog or messages, else kern.log) plus /dev/kmsg for kernel lines."""
    general = [p for p in ("/var/log/syslog", "/var/log/messages") if os.path.isfile(ctx.root_path(p))][:1]
    kern = "/var/log/kern.log"
    files = general or ([kern] if os.path.isfile(ctx.root_path(kern)) else [])
    kmsg = None if files and not general else ctx.root_path("/dev/kmsg")
    used: list[str] = []
    entries: list[Entry] = []
    notes: list[str] = []
    out_truncated = None
    year = datetime.fromtimestamp(until).year
    for p in files:
        unparsed = 0
        reached_since = False
        try:
            unread, lines = _tail(ctx.root_path(p), MAX_TEXT_BYTES)
            for raw in reversed(lines):
                if not raw:
                    continue
                line = raw[:MAX_MSG_CHARS * 2].decode("utf-8", "backslashreplace")
                e = parse_syslog_line(line, year)
                if e is None:
                    unparsed += 1
                    continue
                if e.t > until + 86400:   # BSD syslog has no year: December lines read in January
                    e = e._replace(t=parse_syslog_line(line, year - 1).t)
                if e.t > until:
                    continue
                if e.t < since:
                    reached_since = True
                    break
                if len(entries) >= cap:
                    out_truncated = f"entry cap {cap} reached"
                    break
                entries.append(e)
            used.append(p)
            if unread and not reached_since:
                about = unread * max(1, len(lines)) // max(1, sum(map(len, lines)) + len(lines))
                notes.append(f"{p}: only its last {MAX_TEXT_BYTES >> 20} MB were read; the {unread} bytes before "
                             f"them (about {about} lines) may hold older lines of the window: not read")
            if unparsed:
                notes.append(f"{p}: {unparsed} line(s) not in syslog format skipped")
        except PermissionError:
            notes.append(f"permission denied reading {p}: run as root or in group adm")
        except OSError as e:
            notes.append(f"{p}: {e.strerror}")
    if kmsg and os.path.exists(kmsg):
        try:
            boot = _boot_time(ctx)
            recs = _read_kmsg(kmsg, cap)
            k = [e for e in (parse_kmsg_record(r, boot) for r in recs) if e and since <= e.t <= until]
            entries += k
            used.append("/dev/kmsg")
        except PermissionError:
            notes.append("permission denied reading /dev/kmsg: run as root (dmesg_restrict=1)")
        except OSError as e:
            notes.append(f"/dev/kmsg: {e.strerror}")
    entries.sort(key=lambda e: e.t, reverse=True)
    out = Read("text", ", ".join(used) or "none")
    out.truncated = out_truncated
    if len(entries) > cap:
        entries = entries[:cap]
        out.truncated = f"entry cap {cap} reached"
    out.read = len(entries)
    out.notes = notes  # type: ignore[attr-defined]
    out.entries = iter(entries)
    return out


def _boot_time(ctx) -> float:
    with open(ctx.proc_path("uptime")) as f:
        return time.time() - float(f.read().split()[0])


def open_journal(ctx, since: float, until: float, *, cap: int = MAX_ENTRIES, expired=lambda: False,
                 matches=(), backends=("systemd-python", "journalctl", "text"), notes: list | None = None) -> Read:
    """The first backend that works, in order; `notes` collects why the earlier ones did not."""
    notes = [] if notes is None else notes
    src = find_source(ctx)
    for b in backends:
        if b == "text":
            if matches:
                raise Unavailable("no journal files found and classic text logs carry no journal fields")
            return read_text(ctx, since, until, cap, expired)
        if src is None:
            notes.append("no journal files under /var/log/journal or /run/log/journal: reading text logs")
            continue
        try:
            if b == "systemd-python":
                return read_python(src, since, until, cap, expired, matches)
            return read_journalctl(src, since, until, cap, expired, matches, timeout_s=max(0.5, ctx.timeout_s * 0.8))
        except ImportError:
            notes.append("systemd-python not installed (pip install 'hostdiag[journal]'): used journalctl")
        except (OSError, ValueError) as e:
            notes.append(f"{b}: {e}")
    raise Unavailable("no journal backend worked: " + "; ".join(notes))

"""journal: the system log over the log window (default the last 30 minutes): errors per minute,
top repeating messages, per-unit errors, the latest raw lines, and kernel events (OOM kills, I/O
errors, hung tasks...) recognised by the kind="log" signature catalog. Reads journald files through
systemd-python, else `journalctl -o json`, else /var/log/{syslog,messages,kern.log} and /dev/kmsg;
root (or group systemd-journal/adm) is needed to see other users' and the kernel's messages."""
from __future__ import annotations

import os
import re
import statistics
import subprocess
import threading
import time
from collections import Counter
from datetime import datetime, timezone
from typing import Iterator, NamedTuple

from hostdiag.core.context import Unavailable
from hostdiag.core.model import Finding
from hostdiag.core.thresholds import Threshold

NAME = "journal"
DEFAULT_ENABLED = True
NEEDS: set[str] = set()
READS = ["/var/log/journal/**/*.journal", "/run/log/journal/**/*.journal", "journalctl -o json (fallback)",
         "/var/log/syslog", "/var/log/messages", "/var/log/kern.log", "/dev/kmsg"]
UNITS: dict = {}
THRESHOLDS = {
    "journal.error_burst_ratio": Threshold(
        5, 20, "ratio", "peak error-priority (0-3) lines per minute divided by the window's median per minute (at least 1)"),
    "journal.error_burst_per_min": Threshold(
        20, 200, "count", "peak error-priority (0-3) lines in one minute; a burst needs this and the ratio"),
}

DEFAULT_WINDOW_S = 30 * 60
# Bounds: a 10 GB journal must cost bounded time and memory. Reading runs newest-first, so
# when a bound cuts the window short it is the oldest part that is missing, not the incident.
MAX_ENTRIES = 100_000
MAX_MSG_CHARS = 8192          # per message, before matching (kernel events are at the start)
MAX_TEXT_BYTES = 32 << 20     # tail of each classic text log read
MAX_JSON_LINE = 4 << 20       # journalctl line longer than this: skipped, counted
MAX_TEMPLATES = 5000          # distinct message templates tracked; more count as "other"
TOP = 10
LATEST = 20
LATEST_CHARS = 2048
MAX_EVENTS = 50
JOURNALCTL = "journalctl"
PRIORITIES = ("emerg", "alert", "crit", "err", "warning", "notice", "info", "debug")
_FIELDS = ("MESSAGE", "PRIORITY", "_SYSTEMD_UNIT", "SYSLOG_IDENTIFIER", "_PID", "_TRANSPORT",
           "MESSAGE_ID", "UNIT")


class Entry(NamedTuple):
    """One log line, the same whichever backend read it."""

    t: float                      # epoch seconds
    prio: int | None              # 0..7; None when the source has no priority (classic text logs)
    msg: str
    unit: str | None = None       # _SYSTEMD_UNIT
    ident: str | None = None      # SYSLOG_IDENTIFIER
    pid: int | None = None
    transport: str | None = None  # "kernel", "syslog", "journal", "stdout"...
    msgid: str | None = None      # MESSAGE_ID (systemd catalog id)
    ufield: str | None = None     # UNIT= (pid 1's messages about a unit)

    @property
    def source(self) -> str:
        if self.transport == "kernel":
            return "kernel"
        return self.unit or self.ident or "?"


def rfc3339(t: float) -> str:
    """Epoch seconds -> '2026-11-23T10:14:05+00:00'."""
    return datetime.fromtimestamp(t, timezone.utc).isoformat(timespec="seconds")


def _text(v) -> str:
    # systemd-python returns bytes, journalctl JSON an int list for binary fields: decode both the same way.
    if isinstance(v, (bytes, bytearray)):
        return bytes(v).decode("utf-8", "backslashreplace")
    if isinstance(v, list):
        if v and all(isinstance(x, int) for x in v):
            return bytes(v).decode("utf-8", "backslashreplace")
        return _text(v[0]) if v else ""   # a field given several times: the first, as Reader does
    return "" if v is None else str(v)


def _int(v) -> int | None:
    try:
        return int(_text(v).strip())
    except ValueError:
        return None


def make_entry(t: float, get) -> Entry:
    """An Entry from a field getter (name -> raw value or None), shared by both journal backends."""
    msg = _text(get("MESSAGE"))[:MAX_MSG_CHARS]
    p = _int(get("PRIORITY"))
    return Entry(t, p if p is not None and 0 <= p <= 7 else None, msg,
                 _text(get("_SYSTEMD_UNIT")) or None, _text(get("SYSLOG_IDENTIFIER")) or None,
                 _int(get("_PID")), _text(get("_TRANSPORT")) or None, _text(get("MESSAGE_ID")) or None,
                 _text(get("UNIT")) or None)


# ---------------------------------------------------------------------------- sources

class Source(NamedTuple):
    """Where journal files are: kind 'dir' (--journal-dir), 'file' (--journal-file), 'files' (found
    under --root), 'local' (the live system journal)."""

    kind: str
    paths: tuple[str, ...] = ()

    def describe(self) -> str:
        return "local journal" if self.kind == "local" else ", ".join(self.paths)


def find_source(ctx) -> Source | None:
    """The journal to read, or None when there are no journal files (fall back to text logs)."""
    if ctx.journal_path:
        if os.path.isdir(ctx.journal_path):
            return Source("dir", (ctx.journal_path,))
        if os.path.exists(ctx.journal_path):
            return Source("file", (ctx.journal_path,))
        raise Unavailable(f"{ctx.journal_path}: no such journal file or directory")
    files: list[str] = []
    for d in ("/var/log/journal", "/run/log/journal"):
        base = ctx.root_path(d)
        for sub in _listdir(base) + [""]:
            p = os.path.join(base, sub)
            if sub and not os.path.isdir(p):
                continue
            files += [os.path.join(p, f) for f in _listdir(p) if f.endswith((".journal", ".journal~"))]
    if not files:
        return None
    if os.path.realpath(ctx.root) == "/":
        return Source("local")
    return Source("files", tuple(sorted(files)[-200:]))   # bounded: the newest-named 200 files


def _listdir(p: str) -> list[str]:
    try:
        return sorted(os.listdir(p))
    except OSError:
        return []


# ---------------------------------------------------------------------------- backends
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


# Classic text logs: "Nov 23 10:14:05 host ident[pid]: msg" (BSD syslog) or rsyslog's
# "2026-11-23T10:14:05.123456+00:00 host ident[pid]: msg" (Debian 12 default).
_SYSLOG = re.compile(
    r"^(?:(?P<iso>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:?\d\d)?)"
    r"|(?P<bsd>[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d))\s+(?P<host>\S+)\s+"
    r"(?P<ident>[^\s\[:]+)(?:\[(?P<pid>\d+)\])?:\s?(?P<msg>.*)$")
_KERNEL_TS = re.compile(r"^\[\s*\d+\.\d+\]\s?")


def parse_syslog_line(line: str, year: int, tz=None) -> Entry | None:
    """One classic syslog line -> Entry (priority unknown: None); None if it is not one."""
    m = _SYSLOG.match(line)
    if not m:
        return None
    try:
        if m["iso"]:
            dt = datetime.fromisoformat(m["iso"].replace("Z", "+00:00"))
            if dt.tzinfo is None:
                dt = dt.astimezone(tz)
        else:
            dt = datetime.strptime(f"{year} {m['bsd']}", "%Y %b %d %H:%M:%S").astimezone(tz)
    except ValueError:
        return None
    ident = m["ident"]
    msg = m["msg"]
    kernel = ident == "kernel"
    if kernel:
        msg = _KERNEL_TS.sub("", msg)
    return Entry(dt.timestamp(), None, msg[:MAX_MSG_CHARS], None, ident,
                 int(m["pid"]) if m["pid"] else None, "kernel" if kernel else "syslog")


def parse_kmsg_record(rec: str, boot_time: float) -> Entry | None:
    """A /dev/kmsg record 'prio,seq,usec,flags[,..];message' -> Entry (kernel transport)."""
    head, sep, msg = rec.partition(";")
    if not sep:
        return None
    parts = head.split(",")
    try:
        pri, usec = int(parts[0]), int(parts[2])
    except (ValueError, IndexError):
        return None
    # The low 3 bits are the level; the facility above them is 0 for the kernel itself.
    return Entry(boot_time + usec / 1e6, pri & 7, msg[:MAX_MSG_CHARS], None, "kernel" if pri >> 3 == 0 else None,
                 None, "kernel")


def _tail_lines_reversed(path: str, limit: int) -> Iterator[str]:
    with open(path, "rb") as f:
        f.seek(0, os.SEEK_END)
        size = f.tell()
        start = max(0, size - limit)
        f.seek(start)
        data = f.read(limit)
    lines = data.split(b"\n")
    if start:
        lines = lines[1:]   # a partial first line
    for raw in reversed(lines):
        if raw:
            yield raw[:MAX_MSG_CHARS * 2].decode("utf-8", "backslashreplace")


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
    year = datetime.fromtimestamp(until).year
    for p in files:
        try:
            for line in _tail_lines_reversed(ctx.root_path(p), MAX_TEXT_BYTES):
                e = parse_syslog_line(line, year)
                if e is None:
                    continue
                if e.t > until + 86400:   # BSD syslog has no year: December lines read in January
                    e = e._replace(t=parse_syslog_line(line, year - 1).t)
                if e.t > until:
                    continue
                if e.t < since or len(entries) >= cap:
                    break
                entries.append(e)
            used.append(p)
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


# ---------------------------------------------------------------------------- catalog

class LogPattern(NamedTuple):
    id: str
    rx: re.Pattern
    transport: str | None
    unit: str | None
    subject: tuple[str, ...]
    data: dict


_REQUIRED = ("id", "kind", "title", "owner", "category", "severity", "pattern", "verify", "stabilize",
             "runbook", "examples")
_cat_cache: dict = {}


def log_patterns(dirs=()) -> tuple[list[LogPattern], list[str]]:
    """Compiled kind="log" catalog entries and the catalog's errors (as 'file:line: message')."""
    from hostdiag import catalog

    key = (os.environ.get(catalog.ENV_VAR, ""), tuple(dirs))
    if key in _cat_cache:
        return _cat_cache[key]
    try:
        cat = catalog.load(dirs)
    except ImportError as e:   # the shipped catalog package is not installed: no patterns, said as a blind spot
        return [], [f"signature catalog not loadable: {e}"]
    pats, errors = [], list(cat.errors)
    for e in cat.of_kind("log"):
        d = e.data
        missing = [k for k in _REQUIRED if k not in d]
        if missing:
            errors.append(f"{e.path}:1: kind=log entry lacks {', '.join(missing)}")
            continue
        try:
            rx = re.compile(d["pattern"])
        except re.error as err:
            errors.append(f"{e.path}:1: bad pattern: {err}")
            continue
        if d["severity"] not in ("critical", "warning", "info"):
            errors.append(f"{e.path}:1: severity must be critical, warning or info")
            continue
        pats.append(LogPattern(e.id, rx, d.get("transport"), d.get("unit"), tuple(d.get("subject", ())), d))
    _cat_cache[key] = (pats, errors)
    return pats, errors


def match_event(p: LogPattern, e: Entry) -> dict | None:
    """The pattern's named groups if it applies to this entry and matches, else None."""
    if p.transport and p.transport != e.transport:
        return None
    if p.unit and p.unit not in (e.unit, e.ident):
        return None
    m = p.rx.search(e.msg)
    if not m:
        return None
    return {k: v for k, v in m.groupdict().items() if v is not None}


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

_FOLDS = [
    (re.compile(r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b"), "<uuid>"),
    (re.compile(r"\b\d{1,3}(?:\.\d{1,3}){3}(?::\d+)?\b"), "<ip>"),
    (re.compile(r"(?<![\w:])(?:[0-9a-fA-F]{1,4}:){1,7}:(?:[0-9a-fA-F]{1,4}(?::[0-9a-fA-F]{1,4})*)?"
                r"|\b(?:[0-9a-fA-F]{1,4}:){4,7}[0-9a-fA-F]{1,4}\b"), "<ip>"),
    (re.compile(r"\b0x[0-9a-fA-F]+\b|\b[0-9a-fA-F]*\d[0-9a-fA-F]*[a-fA-F][0-9a-fA-F]*\b(?<=\w{8})"
                r"|\b[0-9a-fA-F]*[a-fA-F][0-9a-fA-F]*\d[0-9a-fA-F]*\b(?<=\w{8})"), "<hex>"),
    (re.compile(r"(?<![A-Za-z_])\d+(?:\.\d+)?"), "<n>"),   # not the digit in sda1, v6, eth0
]


def template(msg: str) -> str:
    """A message with its variable parts folded: 'conn 10.0.0.1:55 id 42' -> 'conn <ip> id <n>'."""
    s = msg.split("\n", 1)[0][:300]
    for rx, rep in _FOLDS:
        s = rx.sub(rep, s)
    return s


def analyse(entries, since: float, until: float, patterns: list[LogPattern]) -> dict:
    """Aggregate entries (any order) into the section's data: counts, templates, events, latest lines."""
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
            tp = template(e.msg)
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
        for p in patterns:
            g = match_event(p, e)
            if g is None:
                continue
            subj = {k: _num(g[k]) for k in p.subject if k in g}
            key = (p.id, tuple(sorted(subj.items(), key=str)))
            ev = events.get(key)
            if ev is None:
                if len(events) >= MAX_EVENTS:
                    continue
                ev = events[key] = {"id": p.id, "time": e.t, "last": e.t, "count": 0, "subject": subj,
                                    "groups": g, "line": e.msg[:LATEST_CHARS], "source": e.source}
            ev["count"] += 1
            if e.t < ev["time"]:
                ev["time"], ev["groups"], ev["line"] = e.t, g, e.msg[:LATEST_CHARS]
            ev["last"] = max(ev["last"], e.t)
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
    data["_errs"] = errs
    return data


def _event_row(ev: dict) -> dict:
    return {"id": ev["id"], "time": rfc3339(ev["time"]), "last": rfc3339(ev["last"]), "count": ev["count"],
            "subject": ev["subject"], "evidence": {k: _num(v) for k, v in ev["groups"].items()},
            "source": ev["source"], "line": ev["line"]}


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
    patterns, cat_errors = log_patterns(ctx.catalog_dirs)
    for err in cat_errors[:5]:
        job.blind_spot(f"signature catalog: {err}")
    notes: list[str] = []
    # Leave a quarter of the collector's time bound for the analysis and the report.
    budget_end = time.monotonic() + max(0.3, job.deadline.remaining() * 0.75)
    rd = open_journal(ctx, since, until, expired=lambda: time.monotonic() >= budget_end or job.deadline.expired(),
                      notes=notes)
    data = analyse(rd.entries, since, until, patterns)
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

def _catalog_entry(eid: str) -> dict:
    pats, _ = log_patterns()
    return next((p.data for p in pats if p.id == eid), {})


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
        c = _catalog_entry(ev["id"])
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
                verify=(f"journalctl -p err --since '{b['onset']}' -o short-iso | head -50"
                        + (f"   # or: journalctl -u {top_unit['unit']} -p err --since '{b['onset']}'" if top_unit else "")),
                stabilize=["Read the top repeated error (evidence) and the first errors at the onset: the first one "
                           "is usually the cause, the rest are its echo",
                           "Check what changed just before the onset (the What changed block)",
                           "Do not restart services to stop the errors before reading them: the first lines are the evidence"],
                since=b["onset"], score=b["ratio"]))
    return out

"""The capture store: one SQLite file (stdlib sqlite3, WAL), typed tables keyed by capture time.

Layout: one `capture` row per capture (host metrics as typed columns), plus device, mount,
process, port and finding rows keyed (t, ...) WITHOUT ROWID, so a capture appends to the right
edge of each b-tree and writes a few pages (a series-first key wrote ~1.25 MB per capture in a
prototype: shared/TESTBED.md). t is epoch milliseconds.

Safety (see Store.open): the file and directory are created 0600/0700 through core/safeio
rules; a file that is not ours (wrong magic or application_id) or that SQLite finds corrupt is
reported and never written; writers take BEGIN IMMEDIATE with a bounded busy timeout (a busy
timeout alone still raised "database is locked"); synchronous=NORMAL in WAL survives kill -9.
Bounds (age, size) are enforced inside every append, before the insert.

Readers (History.open_ro) open with `immutable=1`: a `mode=ro` reader of a WAL database needs
to create or map `-shm` read-write, which a read-only tool must not do. The writer checkpoints
and truncates the WAL after each capture, so immutable reads miss nothing unless a capture is
in flight or was killed; that case is reported in History.notes.
"""
from __future__ import annotations

import fnmatch
import functools
import json
import os
import sqlite3
import stat
import time
from dataclasses import dataclass, field
from urllib.parse import quote

from hostdiag.core import isolate
from hostdiag.core.model import Series
from hostdiag.core.safeio import UnsafePath, check_target, private_dir
from hostdiag.history.paths import default_path  # noqa: F401 - re-exported
from hostdiag.history.record import HOST_KEYS, HOST_V1, HOST_V2

APP_ID = 0x68646731            # "hdg1" in the SQLite header: tells our store from any other file
SCHEMA_VERSION = 2
MAX_AGE_S = 14 * 86400
MAX_BYTES = 256 * 1024 * 1024
LOCK_TIMEOUT_S = 10.0
_MAGIC = b"SQLite format 3\x00"
# Pages one capture may add (new leaves/interior splits across ~10 b-trees), and the WAL's
# share of the cap while a capture is in flight; both are kept free below max_bytes.
HEADROOM_PAGES = 32
WAL_RESERVE_PAGES = 64


class StoreError(Exception):
    """The store cannot be used; str() is the one line capture prints."""


class StoreBusy(StoreError):
    pass


class StoreEmpty(StoreError):
    pass


class StoreRefused(StoreError):
    """Corrupt, foreign or unsafe: reported, never written."""


def col(key: str) -> str:
    return '"' + key + '"'


_PROC_COLS = ("cpu_pct", "rss_bytes", "fds", "io_bps")
_DEV_COLS = ("util_pct", "read_bps", "write_bps", "r_await_ms", "w_await_ms")
_MOUNT_COLS = ("used_bytes", "size_bytes", "inodes_used", "inodes_total")

# MIGRATIONS[i] takes a store from user_version i to i + 1. Never edit a shipped entry:
# add one (and a HOST_Vn dict for new host columns) and bump SCHEMA_VERSION.
MIGRATIONS: list[list[str]] = [
    [   # v1
        "CREATE TABLE capture(t INTEGER PRIMARY KEY, window_s REAL, duration_s REAL, "
        + ", ".join(f"{col(k)} REAL" for k in HOST_V1) + ")",
        "CREATE TABLE mount(id INTEGER PRIMARY KEY, path TEXT NOT NULL UNIQUE)",
        "CREATE TABLE mount_sample(t INTEGER, mount INTEGER, used_bytes INTEGER, size_bytes INTEGER, "
        "inodes_used INTEGER, inodes_total INTEGER, PRIMARY KEY(t, mount)) WITHOUT ROWID",
        # a process is (pid, start, name): pids are reused, start times are not
        "CREATE TABLE proc(id INTEGER PRIMARY KEY, pid INTEGER, start INTEGER, name TEXT, first_t INTEGER)",
        "CREATE UNIQUE INDEX proc_key ON proc(pid, start, name)",
        # cpu in tenths of a percent, RSS in KiB: small integers are 1-3 bytes on disk
        "CREATE TABLE proc_sample(t INTEGER, proc INTEGER, cpu_pmil INTEGER, rss_kib INTEGER, fds INTEGER, "
        "io_bps INTEGER, PRIMARY KEY(t, proc)) WITHOUT ROWID",
        "CREATE TABLE finding(id INTEGER PRIMARY KEY, fid TEXT NOT NULL, subject TEXT NOT NULL, "
        "UNIQUE(fid, subject))",
        "CREATE TABLE finding_sample(t INTEGER, finding INTEGER, severity INTEGER, title TEXT, "
        "PRIMARY KEY(t, finding)) WITHOUT ROWID",
    ],
    [   # v2: socket states/counters and journal error rate; per-device I/O; ports by state
        *(f"ALTER TABLE capture ADD COLUMN {col(k)} REAL" for k in HOST_V2),
        "CREATE TABLE dev(id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE)",
        "CREATE TABLE dev_sample(t INTEGER, dev INTEGER, util_pct REAL, read_bps INTEGER, write_bps INTEGER, "
        "r_await_ms REAL, w_await_ms REAL, PRIMARY KEY(t, dev)) WITHOUT ROWID",
        "CREATE TABLE port_sample(t INTEGER, state TEXT, port INTEGER, n INTEGER, "
        "PRIMARY KEY(t, state, port)) WITHOUT ROWID",
    ],
]
_SAMPLE_TABLES_V = {1: ("mount_sample", "proc_sample", "finding_sample"), 2: ("dev_sample", "port_sample")}


def sample_tables(version: int) -> list[str]:
    return ["capture"] + [t for v, ts in _SAMPLE_TABLES_V.items() if v <= version for t in ts]




def unit_of(key: str) -> str:
    m = key.split("[")[0]
    for suffix, unit in (("_pct", "percent"), ("_bytes", "bytes"), ("_bps", "bytes/s"), ("_per_s", "per second"),
                         ("_per_min", "per minute"), ("_ms", "ms"), ("avg10", "percent")):
        if m.endswith(suffix):
            return unit
    return "count" if not m.startswith("cpu.load") else "load"


def _check_header(path: str) -> int:
    """Validate the file at path without SQLite (which would write to it); return its size."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return -1
    if stat.S_ISLNK(st.st_mode) or not stat.S_ISREG(st.st_mode):
        raise StoreRefused(f"store {path}: not a regular file (or a link); not touching it")
    if st.st_size == 0:
        return 0
    try:   # in the prober: a read on a dead NFS/FUSE mount would never return
        head = isolate.read(path, 100, isolate.PATH_PROBE_S)
    except TimeoutError:
        raise StoreError(f"store {path} did not answer within {isolate.PATH_PROBE_S:g}s "
                         "(hung NFS/FUSE mount?)") from None
    except OSError as e:
        raise StoreError(f"store {path}: cannot read: {e.strerror}") from None
    if not head.startswith(_MAGIC):
        raise StoreRefused(f"store {path}: not a hostdiag store (not an SQLite file); left untouched: "
                           "move it away or use --store")
    if len(head) < 100:
        raise StoreRefused(f"store {path}: corrupt (truncated SQLite header); left untouched")
    page = int.from_bytes(head[16:18], "big")
    page = 65536 if page == 1 else page
    if page < 512 or page & (page - 1):
        raise StoreRefused(f"store {path}: corrupt (page size {page} in header); left untouched")
    app = int.from_bytes(head[68:72], "big")
    if app not in (APP_ID, 0):     # 0: a store killed before its schema committed, or a foreign
        # database without an id: _migrate refuses the latter (it has tables but no user_version)
        raise StoreRefused(f"store {path}: an SQLite database of another application (application_id "
                           f"{app:#x}); left untouched: use --store")
    return st.st_size


def _reads(fn):
    """A read that meets corruption raises StoreRefused (a blind spot to report), not sqlite3's error."""
    @functools.wraps(fn)
    def wrapper(self, *a, **kw):
        for attempt in range(4):
            try:
                return fn(self, *a, **kw)
            except sqlite3.DatabaseError as e:
                # an immutable reader can see a page a live writer's checkpoint is moving: retry
                if attempt < 3 and os.path.exists(self.path + "-wal"):
                    time.sleep(0.05 * (attempt + 1))
                    continue
                raise StoreRefused(f"store {self.path}: unreadable ({e}); left untouched") from None
            except (json.JSONDecodeError, TypeError) as e:  # a crafted row: bad JSON, text where a number goes
                raise StoreRefused(f"store {self.path}: unreadable (a row hostdiag did not write: "
                                   f"{type(e).__name__}: {str(e)[:200]}); left untouched") from None
    return wrapper


@dataclass
class Span:
    """One finding held over consecutive captures: start = first capture seen, end = first without it."""

    fid: str
    subject: dict
    severity: str
    title: str                      # the latest title in the span
    start: float
    end: float | None               # None: still present at the last capture in range
    captures: int
    last_seen: float = 0.0


@dataclass
class History:
    """Read side of the store. open_ro() never creates or writes anything."""

    conn: sqlite3.Connection
    path: str
    version: int
    notes: list[str] = field(default_factory=list)    # blind spots a reader should show

    @classmethod
    def open_ro(cls, path: str) -> "History":
        """Open read-only (immutable, no -wal/-shm created). StoreError if absent or unusable."""
        path = os.path.abspath(os.fspath(path))
        if why := isolate.answers(path):
            raise StoreError(f"store {why}")
        size = _check_header(path)
        if size < 0:
            raise StoreError(f"no history store at {path} (turn on `hostdiag capture`: see packaging/README.md)")
        notes = []
        wal = path + "-wal"
        if os.path.exists(wal) and os.path.getsize(wal) > 0:
            notes.append("a capture is in progress or was interrupted: the newest capture may be missing")
        for attempt in range(4):
            conn = None
            try:
                conn = sqlite3.connect(f"file:{quote(path)}?mode=ro&immutable=1", uri=True,
                                       isolation_level=None, check_same_thread=False)
                version = conn.execute("PRAGMA user_version").fetchone()[0]
                conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
                break
            except sqlite3.DatabaseError as e:
                if conn is not None:
                    conn.close()
                if attempt < 3 and os.path.exists(wal):    # racing a live writer's checkpoint
                    time.sleep(0.05 * (attempt + 1))
                    continue
                raise StoreRefused(f"store {path}: unreadable ({e}); left untouched") from None
        if version > SCHEMA_VERSION:
            conn.close()
            raise StoreError(f"store {path}: schema v{version} is newer than this hostdiag (v{SCHEMA_VERSION})")
        app = conn.execute("PRAGMA application_id").fetchone()[0]
        if app != APP_ID and (version or conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]):
            conn.close()
            raise StoreRefused(f"store {path}: an SQLite database of another application; left untouched")
        if version == 0:
            conn.close()
            raise StoreEmpty(f"store {path}: empty (no capture stored yet)")
        return cls(conn, path, version, notes)

    def close(self) -> None:
        self.conn.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # --- what the store holds
    @_reads
    def span(self) -> tuple[float | None, float | None, int]:
        """(first capture, last capture, number of captures), epoch seconds."""
        a, b, n = self.conn.execute("SELECT min(t), max(t), count(*) FROM capture").fetchone()
        return (a / 1000 if a is not None else None, b / 1000 if b is not None else None, n)

    def size_bytes(self) -> int:
        return sum(os.path.getsize(p) for p in (self.path, self.path + "-wal") if os.path.exists(p))

    @_reads
    def capture_times(self, since: float | None = None, until: float | None = None) -> list[float]:
        lo, hi = _range(since, until)
        return [t / 1000 for (t,) in self.conn.execute("SELECT t FROM capture WHERE t BETWEEN ? AND ? ORDER BY t",
                                                         (lo, hi))]

    def _host_keys(self) -> list[str]:
        have = {r[1] for r in self.conn.execute("PRAGMA table_info(capture)")}
        return [k for k in HOST_KEYS if k in have]

    @_reads
    def keys(self) -> list[str]:
        """Every series key the store can return (host, per-device, per-mount)."""
        out = self._host_keys()
        for c in _MOUNT_COLS:
            out += [f"disk.{c}[mount={p}]" for (p,) in self.conn.execute("SELECT path FROM mount ORDER BY path")]
        if self.version >= 2:
            for c in _DEV_COLS:
                out += [f"io.{c}[device={n}]" for (n,) in self.conn.execute("SELECT name FROM dev ORDER BY name")]
        return out

    # --- series
    @_reads
    def series(self, pattern: str, since: float | None = None, until: float | None = None,
               max_points: int | None = None) -> list[Series]:
        """Series whose key matches `pattern` (a glob, or an exact key/prefix), as core Series with
        t0 = first point (epoch s) and t = offsets, so .slope()/.delta()/.rate() work as in a window.
        max_points: average into at most that many time buckets in SQL (14 days for a matcher)."""
        keys = match_keys(self.keys(), pattern)
        lo, hi = _range(since, until)
        out = []
        host = [k for k in keys if "[" not in k]
        if host:
            rows = self._select([col(k) for k in host], "capture", "", (), lo, hi, max_points)
            for i, k in enumerate(host):
                out.append(_series(k, [(r[0], r[i + 1]) for r in rows]))
        groups: dict[tuple[str, str], list[tuple[str, str]]] = {}   # (label, value) -> [(key, column)]
        for k in keys:
            if "[" in k:
                metric, label = k[:-1].split("[", 1)
                lname, lval = label.split("=", 1)
                groups.setdefault((lname, lval), []).append((k, metric.split(".", 1)[1]))
        for (lname, lval), cols in groups.items():   # one pass per mount/device for all its columns
            table, dim, name_col = ("mount_sample", "mount", "path") if lname == "mount" else ("dev_sample", "dev", "name")
            r = self.conn.execute(f"SELECT id FROM {dim} WHERE {name_col} = ?", (lval,)).fetchone()
            rows = self._select([c for _, c in cols], table, f"AND {dim} = ?", (r[0],), lo, hi, max_points) if r else []
            out += [_series(k, [(row[0], row[i + 1]) for row in rows], {lname: lval}) for i, (k, _) in enumerate(cols)]
        order = {k: i for i, k in enumerate(keys)}
        return sorted(out, key=lambda s: order[s.key])

    def _select(self, cols: list[str], table: str, where: str, params: tuple, lo: int, hi: int,
                max_points: int | None) -> list[tuple]:
        """(t, *cols) rows of a time range, ordered; bucket-averaged when longer than max_points."""
        if max_points:
            a, b, n = self.conn.execute(f"SELECT min(t), max(t), count(*) FROM {table} WHERE t BETWEEN ? AND ? {where}",
                                        (lo, hi, *params)).fetchone()
            if n > max_points:
                bucket = -(-(b - a + 1) // max_points)
                return self.conn.execute(
                    f"SELECT min(t), {', '.join(f'avg({c})' for c in cols)} FROM {table} WHERE t BETWEEN ? AND ? "
                    f"{where} GROUP BY (t - ?) / ? ORDER BY 1", (lo, hi, *params, a, bucket)).fetchall()
        return self.conn.execute(f"SELECT t, {', '.join(cols)} FROM {table} WHERE t BETWEEN ? AND ? {where} ORDER BY t",
                                 (lo, hi, *params)).fetchall()

    @_reads
    def processes(self, who: str | int) -> list[tuple[int, int, int | None, str]]:
        """(id, pid, start, name) of stored processes matching a pid or a name (glob allowed)."""
        if isinstance(who, int) or str(who).isdigit():
            return self.conn.execute("SELECT id, pid, start, name FROM proc WHERE pid = ? ORDER BY first_t",
                                     (int(who),)).fetchall()
        return [r for r in self.conn.execute("SELECT id, pid, start, name FROM proc ORDER BY first_t")
                if fnmatch.fnmatchcase(r[3], str(who))]

    @_reads
    def process_series(self, who: str | int, metric: str = "rss_bytes", since: float | None = None,
                       until: float | None = None, max_points: int | None = None) -> list[Series]:
        """One series per process instance (pid + start time) matching a pid or name:
        metric is one of cpu_pct, rss_bytes, fds, io_bps; labels carry pid, name and start."""
        expr = {"cpu_pct": "cpu_pmil / 10.0", "rss_bytes": "rss_kib * 1024", "fds": "fds", "io_bps": "io_bps"}
        if metric not in expr:
            raise ValueError(f"process metric must be one of {', '.join(expr)}")
        lo, hi = _range(since, until)
        out = []
        for pid_id, pid, start, name in self.processes(who):
            rows = self._select([expr[metric]], "proc_sample", "AND proc = ?", (pid_id,), lo, hi, max_points)
            if rows:
                out.append(_series(f"process.{metric}", rows,
                                   {"pid": str(pid), "name": name, "start": str(start or "")}))
        return out

    # --- findings over time
    @_reads
    def finding_spans(self, since: float | None = None, until: float | None = None) -> list[Span]:
        """When each finding (id + subject) started and cleared, over the captures in range."""
        lo, hi = _range(since, until)
        times = [t for (t,) in self.conn.execute("SELECT t FROM capture WHERE t BETWEEN ? AND ? ORDER BY t", (lo, hi))]
        index = {t: i for i, t in enumerate(times)}
        rows = self.conn.execute(
            "SELECT s.t, f.fid, f.subject, s.severity, substr(s.title, 1, 1000) FROM finding_sample s JOIN finding f ON f.id = s.finding "
            "WHERE s.t BETWEEN ? AND ? ORDER BY f.id, s.t", (lo, hi)).fetchall()
        spans: list[Span] = []
        open_: dict[tuple, tuple[Span, int]] = {}
        for t, fid, subject, sev, title in rows:
            key, i = (fid, subject), index.get(t)
            if i is None:
                continue
            cur = open_.get(key)
            if cur and cur[1] == i - 1:
                sp = cur[0]
                sp.captures += 1
                sp.title, sp.last_seen = title, t / 1000
                sp.severity = _SEV_NAME.get(max(_SEV.get(sp.severity, 0), sev), sp.severity)
            else:
                if cur:
                    cur[0].end = times[cur[1] + 1] / 1000
                sp = Span(fid, json.loads(subject), _SEV_NAME.get(sev, "info"), title, t / 1000, None, 1, t / 1000)
                spans.append(sp)
            open_[key] = (sp, i)
        for sp, i in open_.values():
            if i + 1 < len(times):
                sp.end = times[i + 1] / 1000
        return sorted(spans, key=lambda s: (s.start, s.fid))

    @_reads
    def since_when(self, fid: str, subject: dict | None = None) -> float | None:
        """Start of the run of consecutive captures, up to the last one, that held this finding
        (its 'since when'); None if the last capture did not have it."""
        subj = json.dumps(subject, sort_keys=True, default=str) if subject is not None else None
        ids = [i for (i,) in self.conn.execute(
            "SELECT id FROM finding WHERE fid = ?" + (" AND subject = ?" if subj is not None else ""),
            (fid, subj) if subj is not None else (fid,))]
        if not ids:
            return None
        held = f"SELECT t FROM finding_sample WHERE finding IN ({', '.join('?' * len(ids))})"
        gap = self.conn.execute(f"SELECT max(t) FROM capture WHERE t NOT IN ({held})", ids).fetchone()[0]
        start = self.conn.execute("SELECT min(t) FROM capture WHERE t > ?",
                                  (gap if gap is not None else -(2 ** 62),)).fetchone()[0]
        return start / 1000 if start is not None else None

    # --- diff of two captures
    @_reads
    def nearest(self, t: float) -> float | None:
        """The last capture at or before t (else the first after it), epoch seconds."""
        ms = int(t * 1000)
        r = self.conn.execute("SELECT max(t) FROM capture WHERE t <= ?", (ms,)).fetchone()[0]
        if r is None:
            r = self.conn.execute("SELECT min(t) FROM capture").fetchone()[0]
        return r / 1000 if r is not None else None

    @_reads
    def capture(self, t: float) -> dict:
        """Everything stored for the capture nearest t (see nearest())."""
        tn = self.nearest(t)
        if tn is None:
            raise StoreError("the store holds no capture")
        ms = round(tn * 1000)
        hk = self._host_keys()
        row = self.conn.execute(f"SELECT {', '.join(col(k) for k in hk)} FROM capture WHERE t = ?", (ms,)).fetchone()
        procs = {(pid, start, name): {"pid": pid, "start": start, "name": name, "cpu_pct": (c or 0) / 10 if c is not None else None,
                                      "rss_bytes": r * 1024 if r is not None else None, "fds": f, "io_bps": io}
                 for pid, start, name, c, r, f, io in self.conn.execute(
                     "SELECT p.pid, p.start, p.name, s.cpu_pmil, s.rss_kib, s.fds, s.io_bps FROM proc_sample s "
                     "JOIN proc p ON p.id = s.proc WHERE s.t = ?", (ms,))}
        mounts = {p: dict(zip(_MOUNT_COLS, v)) for p, *v in self.conn.execute(
            f"SELECT m.path, {', '.join('s.' + c for c in _MOUNT_COLS)} FROM mount_sample s JOIN mount m ON m.id = s.mount "
            "WHERE s.t = ?", (ms,))}
        ports = {}
        if self.version >= 2:
            ports = {(s, p): n for s, p, n in self.conn.execute(
                "SELECT state, port, n FROM port_sample WHERE t = ?", (ms,))}
        findings = {(fid, subj): (_SEV_NAME.get(sev, "info"), title) for fid, subj, sev, title in self.conn.execute(
            "SELECT f.fid, f.subject, s.severity, substr(s.title, 1, 1000) FROM finding_sample s JOIN finding f ON f.id = s.finding "
            "WHERE s.t = ?", (ms,))}
        return {"t": tn, "host": dict(zip(hk, row)), "procs": procs, "mounts": mounts, "ports": ports,
                "findings": findings}

    @_reads
    def diff(self, t1: float, t2: float) -> dict:
        """What differs between the captures nearest t1 and t2 (JSON-ready)."""
        a, b = self.capture(t1), self.capture(t2)

        def proc_row(p):
            return {k: p[k] for k in ("pid", "name", "start", "rss_bytes", "cpu_pct")}

        sockets = {k: (a["host"].get(k), b["host"].get(k)) for k in a["host"] if k.startswith("sockets.")
                   and a["host"].get(k) != b["host"].get(k)}
        port_keys = sorted(set(a["ports"]) | set(b["ports"]), key=lambda k: (k[0], k[1]))
        return {
            "t1": a["t"], "t2": b["t"],
            "processes_appeared": [proc_row(b["procs"][k]) for k in b["procs"] if k not in a["procs"]],
            "processes_vanished": [proc_row(a["procs"][k]) for k in a["procs"] if k not in b["procs"]],
            "socket_states": {k: {"before": x, "after": y} for k, (x, y) in sockets.items()},
            "ports": [{"state": s, "port": p, "before": a["ports"].get((s, p), 0), "after": b["ports"].get((s, p), 0)}
                      for s, p in port_keys if s != "LISTEN" and a["ports"].get((s, p), 0) != b["ports"].get((s, p), 0)],
            "listening_opened": sorted(p for s, p in b["ports"] if s == "LISTEN" and ("LISTEN", p) not in a["ports"]),
            "listening_closed": sorted(p for s, p in a["ports"] if s == "LISTEN" and ("LISTEN", p) not in b["ports"]),
            "mounts_added": sorted(set(b["mounts"]) - set(a["mounts"])),
            "mounts_removed": sorted(set(a["mounts"]) - set(b["mounts"])),
            "mount_used_change": {m: {"before": a["mounts"][m]["used_bytes"], "after": b["mounts"][m]["used_bytes"]}
                                  for m in sorted(set(a["mounts"]) & set(b["mounts"]))
                                  if a["mounts"][m]["used_bytes"] != b["mounts"][m]["used_bytes"]},
            "findings_began": [{"id": f, "subject": json.loads(s), "severity": b["findings"][(f, s)][0],
                                "title": b["findings"][(f, s)][1]} for f, s in b["findings"] if (f, s) not in a["findings"]],
            "findings_cleared": [{"id": f, "subject": json.loads(s), "severity": a["findings"][(f, s)][0],
                                  "title": a["findings"][(f, s)][1]} for f, s in a["findings"] if (f, s) not in b["findings"]],
        }


_SEV = {"info": 0, "warning": 1, "critical": 2}
_SEV_NAME = {v: k for k, v in _SEV.items()}


def match_keys(keys: list[str], pattern: str | None) -> list[str]:
    if not pattern:
        return list(keys)
    if any(c in pattern for c in "*?"):
        return [k for k in keys if fnmatch.fnmatchcase(k, pattern)]
    return [k for k in keys if k == pattern or k.startswith(pattern.rstrip(".") + ".") or k.startswith(pattern + "[")]


def _range(since, until) -> tuple[int, int]:
    return (int(since * 1000) if since is not None else -(2 ** 62), int(until * 1000) if until is not None else 2 ** 62)


def _series(key: str, rows, labels: dict | None = None) -> Series:
    metric = key.split("[")[0]
    t0 = rows[0][0] / 1000 if rows else None
    return Series(metric=metric, unit=unit_of(metric), t=[r[0] / 1000 - t0 for r in rows],
                  v=[r[1] for r in rows], labels=dict(labels or {}), counter=False, t0=t0)


class Store(History):
    """Read-write store for `hostdiag capture`. Use Store.open(path), then append(record)."""

    max_age_s: float = MAX_AGE_S
    max_bytes: int = MAX_BYTES

    @classmethod
    def open(cls, path: str, *, max_age_s: float = MAX_AGE_S, max_bytes: int = MAX_BYTES,
             lock_timeout_s: float = LOCK_TIMEOUT_S) -> "Store":
        path = os.path.abspath(os.fspath(path))
        if why := isolate.answers(os.path.dirname(path)):
            raise StoreError(f"store {why}")
        try:
            private_dir(os.path.dirname(path))
            check_target(path, force=True)      # no /proc,/sys,/dev; not a link, FIFO, device or dir
        except UnsafePath as e:
            raise StoreRefused(f"store {e}") from None
        except OSError as e:
            raise StoreError(f"store {path}: cannot create its directory: {e.strerror}") from None
        size = _check_header(path)
        if size > 0:
            try:                                # ours and readable: checked before any write, even a pragma
                History.open_ro(path).close()
            except StoreEmpty:
                pass
            except StoreRefused:
                # an immutable read can race a live writer; with a -wal present the file is in WAL
                # mode already, so no pragma below writes, and _migrate checks it under the lock
                if not os.path.exists(path + "-wal"):
                    raise
        if size < 0:
            try:
                os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600))
            except FileExistsError:
                _check_header(path)             # another capture created it first: check it like any file
            except OSError as e:
                raise StoreError(f"store {path}: cannot create: {e.strerror}") from None
        for side in ("-wal", "-shm"):           # SQLite opens these itself: refuse a planted link
            try:
                if stat.S_ISLNK(os.lstat(path + side).st_mode):
                    raise StoreRefused(f"store {path}{side}: is a symbolic link; not touching the store")
            except FileNotFoundError:
                pass
        try:
            conn = sqlite3.connect(path, timeout=lock_timeout_s, isolation_level=None, check_same_thread=False)
            conn.execute(f"PRAGMA busy_timeout = {int(lock_timeout_s * 1000)}")
            if size <= 0:   # before the first table, or never: on an existing file it is a write
                conn.execute("PRAGMA auto_vacuum = INCREMENTAL")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
            st = cls(conn, path, 0)
            st.max_age_s, st.max_bytes = max_age_s, max_bytes
            st.version = st._migrate()
        except sqlite3.OperationalError as e:
            raise _classify(e, path) from None
        except sqlite3.DatabaseError as e:
            raise StoreRefused(f"store {path}: corrupt ({e}); left untouched") from None
        return st

    def _begin(self) -> None:
        try:
            self.conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as e:
            raise _classify(e, self.path) from None

    def _migrate(self, upto: int = SCHEMA_VERSION) -> int:
        self._begin()
        try:
            v = self.conn.execute("PRAGMA user_version").fetchone()[0]
            app = self.conn.execute("PRAGMA application_id").fetchone()[0]
            if v and app != APP_ID:
                raise StoreRefused(f"store {self.path}: an SQLite database of another application "
                                   f"(application_id {app:#x}); left untouched: use --store")
            if v > SCHEMA_VERSION:
                raise StoreError(f"store {self.path}: schema v{v} is newer than this hostdiag (v{SCHEMA_VERSION})")
            if v == 0:
                n = self.conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
                if n:
                    raise StoreRefused(f"store {self.path}: an SQLite database of another application (tables, no hostdiag schema); left untouched: use --store")
                self.conn.execute(f"PRAGMA application_id = {APP_ID}")
            for i in range(v, upto):
                for stmt in MIGRATIONS[i]:
                    self.conn.execute(stmt)
            if upto > v:            # no write at all when there is nothing to migrate
                self.conn.execute(f"PRAGMA user_version = {upto}")
            self.conn.execute("COMMIT")
            return max(v, upto)
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise

    def append(self, rec: dict, next_free: bool = False) -> dict:
        """Store one capture record (record.from_report), enforcing age and size bounds first.
        A capture already stored at the same millisecond is an error, or with `next_free` (a live
        clock: a timer's capture and one by hand started together) the next free millisecond.
        Returns what happened: rows written, captures expired, store bytes."""
        t = int(round(rec["t"] * 1000))
        stats = {"t": rec["t"], "procs": len(rec.get("procs") or []), "findings": len(rec.get("findings") or []),
                 "mounts": len(rec.get("mounts") or {}), "expired": 0}
        self._begin()
        try:
            if self.conn.execute("SELECT 1 FROM capture WHERE t = ?", (t,)).fetchone():
                if not next_free:
                    raise StoreError(f"store {self.path}: a capture at {t / 1000:.3f} is already stored")
                t = self.conn.execute("SELECT min(t) + 1 FROM capture c WHERE t >= ? AND NOT EXISTS "
                                      "(SELECT 1 FROM capture WHERE t = c.t + 1)", (t,)).fetchone()[0]
                stats["t"] = t / 1000
            stats["expired"] = self._expire(t)
            self._insert(t, rec)
            self.conn.execute("COMMIT")
        except sqlite3.OperationalError as e:
            self._rollback()
            raise _classify(e, self.path) from None
        except sqlite3.DatabaseError as e:
            self._rollback()
            raise StoreRefused(f"store {self.path}: corrupt ({e}); left as it is, not repaired") from None
        except BaseException:
            self._rollback()
            raise
        self._shrink()
        stats["bytes"] = self.size_bytes()
        return stats

    def _rollback(self) -> None:
        try:
            self.conn.execute("ROLLBACK")
        except sqlite3.Error:
            pass

    def _expire(self, t: int) -> int:
        """Drop captures older than max_age, then the oldest until this capture fits max_bytes."""
        tables = sample_tables(self.version)
        n = self._delete_upto(t - int(self.max_age_s * 1000) - 1, tables)
        page = self.conn.execute("PRAGMA page_size").fetchone()[0]
        budget = self.max_bytes // page - WAL_RESERVE_PAGES - HEADROOM_PAGES
        while True:
            used = (self.conn.execute("PRAGMA page_count").fetchone()[0]
                    - self.conn.execute("PRAGMA freelist_count").fetchone()[0])
            if used <= budget:
                break
            count = self.conn.execute("SELECT count(*) FROM capture").fetchone()[0]
            if count == 0:
                raise StoreError(f"store {self.path}: --max-size {self.max_bytes} bytes is too small for one capture")
            step = max(1, count // 50)
            cut = self.conn.execute("SELECT t FROM capture ORDER BY t LIMIT 1 OFFSET ?", (step - 1,)).fetchone()[0]
            n += self._delete_upto(cut, tables)
        if n:
            self._purge_dims()
        return n

    def _delete_upto(self, t: int, tables) -> int:
        n = self.conn.execute("DELETE FROM capture WHERE t <= ?", (t,)).rowcount
        if n:
            for tb in tables[1:]:
                self.conn.execute(f"DELETE FROM {tb} WHERE t <= ?", (t,))
        return n

    def _purge_dims(self) -> None:
        """Drop process/finding/mount/device names no remaining row uses (bounded by retention)."""
        self.conn.execute("DELETE FROM proc WHERE id NOT IN (SELECT DISTINCT proc FROM proc_sample)")
        self.conn.execute("DELETE FROM finding WHERE id NOT IN (SELECT DISTINCT finding FROM finding_sample)")
        self.conn.execute("DELETE FROM mount WHERE id NOT IN (SELECT DISTINCT mount FROM mount_sample)")
        if self.version >= 2:
            self.conn.execute("DELETE FROM dev WHERE id NOT IN (SELECT DISTINCT dev FROM dev_sample)")

    def _dim(self, table: str, column: str, value) -> int:
        r = self.conn.execute(f"SELECT id FROM {table} WHERE {column} = ?", (value,)).fetchone()
        if r:
            return r[0]
        return self.conn.execute(f"INSERT INTO {table}({column}) VALUES (?)", (value,)).lastrowid

    def _insert(self, t: int, rec: dict) -> None:
        c = self.conn
        hk = self._host_keys()
        host = rec.get("host") or {}
        c.execute(f"INSERT INTO capture(t, window_s, duration_s, {', '.join(col(k) for k in hk)}) "
                  f"VALUES ({', '.join('?' * (len(hk) + 3))})",
                  (t, rec.get("window_s"), _r(rec.get("duration_s"), 3), *(host.get(k) for k in hk)))
        for path, m in (rec.get("mounts") or {}).items():
            c.execute("INSERT INTO mount_sample VALUES (?, ?, ?, ?, ?, ?)",
                      (t, self._dim("mount", "path", path), *(_i(m.get(k)) for k in _MOUNT_COLS)))
        if self.version >= 2:
            for name, d in (rec.get("devices") or {}).items():
                c.execute("INSERT INTO dev_sample VALUES (?, ?, ?, ?, ?, ?, ?)",
                          (t, self._dim("dev", "name", name), _r(d.get("util_pct"), 1), _i(d.get("read_bps")),
                           _i(d.get("write_bps")), _r(d.get("r_await_ms"), 2), _r(d.get("w_await_ms"), 2)))
            c.executemany("INSERT OR REPLACE INTO port_sample VALUES (?, ?, ?, ?)",
                          [(t, s, p, n) for s, p, n in rec.get("ports") or []])
        for p in rec.get("procs") or []:
            start = _i(p.get("start"))
            key = (p["pid"], start, str(p.get("name") or "?"))
            r = c.execute("SELECT id FROM proc WHERE pid = ? AND start IS ? AND name = ?", key).fetchone()
            pid_id = r[0] if r else c.execute("INSERT INTO proc(pid, start, name, first_t) VALUES (?, ?, ?, ?)",
                                              (*key, t)).lastrowid
            cpu = p.get("cpu_pct")
            c.execute("INSERT OR REPLACE INTO proc_sample VALUES (?, ?, ?, ?, ?, ?)",
                      (t, pid_id, _i(cpu * 10) if cpu is not None else None,
                       _i(p["rss_bytes"] / 1024) if p.get("rss_bytes") is not None else None,
                       _i(p.get("fds")), _i(p.get("io_bps"))))
        for f in rec.get("findings") or []:
            r = c.execute("SELECT id FROM finding WHERE fid = ? AND subject = ?", (f["id"], f["subject"])).fetchone()
            fid = r[0] if r else c.execute("INSERT INTO finding(fid, subject) VALUES (?, ?)",
                                           (f["id"], f["subject"])).lastrowid
            c.execute("INSERT OR REPLACE INTO finding_sample VALUES (?, ?, ?, ?)", (t, fid, f["severity"], f["title"]))

    def _shrink(self) -> None:
        """After commit: fold the WAL back (so immutable readers see it) and give free pages back
        until the file fits the budget; in chunks so the WAL itself stays within its reserve."""
        try:
            self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            page = self.conn.execute("PRAGMA page_size").fetchone()[0]
            budget = self.max_bytes // page - WAL_RESERVE_PAGES
            for _ in range(10000):
                total = self.conn.execute("PRAGMA page_count").fetchone()[0]
                free = self.conn.execute("PRAGMA freelist_count").fetchone()[0]
                if total <= budget and free * 4 <= total:
                    break
                if not free:
                    break
                # a bare execute("PRAGMA incremental_vacuum(N)") frees one page only: TESTBED.md
                self.conn.executescript(f"PRAGMA incremental_vacuum({min(free, WAL_RESERVE_PAGES // 2)});")
                self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except sqlite3.Error:
            pass    # the capture is committed; a later one checkpoints and shrinks


def _i(x):
    return int(round(x)) if isinstance(x, (int, float)) and not isinstance(x, bool) else None


def _r(x, nd):
    return round(x, nd) if isinstance(x, (int, float)) and not isinstance(x, bool) else None


def _classify(e: sqlite3.OperationalError, path: str) -> StoreError:
    msg = str(e)
    if "locked" in msg or "busy" in msg:
        return StoreBusy(f"store {path}: busy (another capture holds it past the lock timeout); gave up, "
                         "history unchanged")
    if "full" in msg or ("I/O" in msg and _no_space(path)):
        return StoreError(f"store {path}: disk full; this capture was not stored, history unchanged")
    if "malformed" in msg or "not a database" in msg:
        return StoreRefused(f"store {path}: corrupt ({msg}); left as it is, not repaired")
    return StoreError(f"store {path}: {msg}; history unchanged")


def _no_space(path: str) -> bool:
    try:
        return os.statvfs(os.path.dirname(path)).f_bavail == 0
    except OSError:
        return False

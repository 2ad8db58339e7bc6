"""changes: what changed on the host in the last 24 hours, newest first: package installs/upgrades/
removals (dpkg, apt, dnf/yum logs), files modified under /etc, crontab changes, systemd unit
starts/stops/failures and kernel module loads (journal), recently started processes, boots and
logins (wtmp). Each change records what links it to running processes (`linked`: the package
owns the process's executable, the unit runs it, the config file is its package's or named on its
command line), so correlation can prefer a linked change to a merely recent one. Reads files under
--root (/var/lib/dpkg/info/PKG.list for the changed packages), /proc/PID/{exe,cgroup,stat} and
the journal; root helps (wtmp, journal, other users' executables)."""
from __future__ import annotations

import os
import re
import stat
import struct
import time
from collections import Counter
from datetime import datetime, timezone

from hostdiag.core import shell
from hostdiag.core.context import Unavailable
from hostdiag.core.model import Finding

NAME = "changes"
DEFAULT_ENABLED = True
NEEDS = {"procs"}
READS = ["/var/lib/dpkg/info/*.list (changed packages; a bounded dpkg -S for changed config files)",
         "/proc/PID/{exe,cgroup,stat}", "/var/log/dpkg.log{,.1}", "/var/log/apt/history.log{,.1}", "/var/log/dnf.rpm.log", "/var/log/yum.log",
         "/etc/** (mtimes)", "/etc/crontab", "/etc/cron.d/*", "/var/spool/cron/**", "/var/log/wtmp",
         "/proc/uptime", "journal (unit and module-load messages)"]
UNITS: dict = {}
THRESHOLDS: dict = {}

WINDOW_S = 24 * 3600
MAX_PER_KIND = 200          # entries kept per kind before merging
# Entries shown per kind, newest first (the window bounds them in time): one busy kind cannot push
# another out of view, and the same host gives the same timeline on every run.
SHOWN_PER_KIND = {"package": 60, "apt": 20, "config": 10, "crontab": 10, "unit": 40, "module": 20,
                  "boot": 5, "login": 20, "process": 11}
LONG_LIVED_S = 300          # a process alive this long is named; younger ones are summarised
MAX_LINKED = 10             # linked processes recorded per change
MAX_LINK_PROCS = 512        # processes considered for links (largest first)
MAX_LIST_BYTES = 4 << 20    # one dpkg .list file
DPKG_S_BUDGET_S = 0.5       # the dpkg -S-style scan for changed config files
DPKG_S_MAX_FILES = 5000
MAX_ETC_FILES = 20_000      # /etc entries visited before the walk stops
MAX_ETC_SHOWN = 10
MAX_LOG_BYTES = 8 << 20     # tail of each package log read
MAX_WTMP_RECORDS = 20_000
MAX_PROCS_SHOWN = 10

# systemd catalog MESSAGE_IDs (systemd/catalog/systemd.catalog.in) for unit life-cycle events.
UNIT_MESSAGE_IDS = {
    "39f53479d3a045ac8e11786248231fbf": "started",
    "9d1aaa27d60140bd96365438aad20286": "stopped",
    "be02cf6855d2428ba40df7e9d022f03d": "failed",
    "7ad2d189f7e94e70a38c781354912448": "failed",     # "Failed with result ..."
    "7b05ebc668384222baa8881179cfda54": "reloaded",
    "5eb03494b6584870a536b337290809b3": "restart scheduled",
}


def rfc3339(t: float) -> str:
    return datetime.fromtimestamp(t, timezone.utc).isoformat(timespec="seconds")


def _local(text: str, fmt: str) -> float | None:
    try:
        return datetime.strptime(text, fmt).astimezone().timestamp()   # naive: host local time
    except ValueError:
        return None


# ---------------------------------------------------------------------------- parsers (pure)

_DPKG = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) (install|upgrade|remove|purge) (\S+) (\S+) (\S+)\s*$")


def parse_dpkg_log(text: str) -> list[tuple[float, str, str]]:
    """dpkg.log -> [(t, action, 'pkg old → new')]; status/trigproc lines are skipped."""
    out = []
    stamps: dict[str, float | None] = {}     # one dpkg run writes dozens of lines a second: strptime once
    for line in text.splitlines():
        m = _DPKG.match(line)
        if not m:
            continue
        t = stamps[m[1]] if m[1] in stamps else stamps.setdefault(m[1], _local(m[1], "%Y-%m-%d %H:%M:%S"))
        if t is None:
            continue
        action, pkg, old, new = m[2], m[3].split(":")[0], m[4], m[5]
        if action == "install":
            what = f"{pkg} {new}" if old == "<none>" else f"{pkg} {old} → {new}"
        elif action == "upgrade":
            what = f"{pkg} {old} → {new}"
        else:
            what = f"{pkg} {old}"
        out.append((t, action, what))
    return out


def parse_apt_history(text: str) -> list[tuple[float, str, str]]:
    """apt history.log -> [(start time, 'apt', command line or a summary)] per transaction."""
    out = []
    for block in re.split(r"\n\s*\n", text):
        fields = {}
        for line in block.strip().splitlines():
            k, sep, v = line.partition(": ")
            if sep:
                fields[k.strip()] = v.strip()
        start = fields.get("Start-Date")
        if not start:
            continue
        t = _local(re.sub(r"\s+", " ", start), "%Y-%m-%d %H:%M:%S")
        if t is None:
            continue
        what = fields.get("Commandline") or ", ".join(k for k in ("Install", "Upgrade", "Remove", "Purge") if k in fields)
        who = fields.get("Requested-By")
        out.append((t, "apt", what + (f" (by {who})" if who else "")))
    return out


_DNF = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:[+-]\d{4}|Z)?) \w+ (Installed|Upgrade|Upgraded|Erase|Installed|Downgrade|Reinstall|Install|Obsolete\w*): (\S+)")
_YUM = re.compile(r"^([A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d) (Installed|Updated|Erased): (\S+)")


def parse_rpm_logs(text: str, year: int) -> list[tuple[float, str, str]]:
    """dnf.rpm.log ('2024-01-02T10:00:00+0000 SUBDEBUG Upgrade: pkg-1.2') and yum.log lines."""
    out = []
    for line in text.splitlines():
        m = _DNF.match(line)
        if m:
            ts = m[1]
            try:
                dt = datetime.strptime(ts, "%Y-%m-%dT%H:%M:%S%z") if re.search(r"[+-]\d{4}$", ts) else \
                    datetime.fromisoformat(ts.replace("Z", "+00:00"))
                t = dt.timestamp() if dt.tzinfo else dt.astimezone().timestamp()
            except ValueError:
                continue
            out.append((t, m[2].lower(), m[3]))
            continue
        m = _YUM.match(line)
        if m:
            t = _local(f"{year} {m[1]}", "%Y %b %d %H:%M:%S")
            if t is not None:
                out.append((t, m[2].lower(), m[3]))
    return out


# struct utmp on Linux x86-64/aarch64 (glibc bits/utmp.h): 384 bytes.
_UTMP = struct.Struct("hi32s4s32s256shhiii4i20s")
BOOT_TIME, USER_PROCESS = 2, 7


def parse_wtmp(data: bytes) -> list[tuple[float, str, str]]:
    """wtmp records -> [(t, 'boot'|'login', what)]."""
    out = []
    n = len(data) // _UTMP.size
    for i in range(n):
        rec = _UTMP.unpack_from(data, i * _UTMP.size)
        typ, pid, line, _id, user, host = rec[:6]
        sec, usec = rec[9], rec[10]
        s = lambda b: b.split(b"\0", 1)[0].decode("utf-8", "backslashreplace")  # noqa: E731
        if typ == BOOT_TIME:
            out.append((sec + usec / 1e6, "boot", f"system boot ({s(host) or 'kernel'})"))
        elif typ == USER_PROCESS:
            h = s(host)
            out.append((sec + usec / 1e6, "login", f"{s(user)} on {s(line)}" + (f" from {h}" if h else "")))
    return out


# ---------------------------------------------------------------------------- readers

def _tail(path: str, limit: int) -> str:
    with open(path, "rb") as f:
        f.seek(0, os.SEEK_END)
        size = f.tell()
        f.seek(max(0, size - limit))
        data = f.read(limit)
    if size > limit:
        data = data.split(b"\n", 1)[-1]
    return data.decode("utf-8", "backslashreplace")


def _read_logs(job, paths, parse, kind_of, source) -> list[dict]:
    out: list[dict] = []
    for p in paths:
        full = job.ctx.root_path(p)
        if not os.path.exists(full):
            continue
        try:
            for t, action, what in parse(_tail(full, MAX_LOG_BYTES)):
                out.append(_entry(t, kind_of(action), f"{action} {what}" if action not in ("apt",) else what,
                                  source or p))
                if action != "apt" and what:
                    out[-1]["package"] = what.split()[0].split(":")[0]
        except PermissionError:
            job.blind_spot(f"permission denied reading {p}: run as root")
        except OSError as e:
            job.blind_spot(f"{p}: {e.strerror}")
    return out


def _entry(t: float, kind: str, what: str, source: str, **keys) -> dict:
    return {"_t": t, "time": rfc3339(t), "kind": kind, "what": what, "source": source, **keys}


def packages(job, since: float) -> list[dict]:
    """Package changes from dpkg (+ rotated .1), apt history and dnf/yum logs."""
    year = datetime.fromtimestamp(job.now).year
    out = _read_logs(job, ["/var/log/dpkg.log.1", "/var/log/dpkg.log"], parse_dpkg_log, lambda a: "package", None)
    out += _read_logs(job, ["/var/log/apt/history.log.1", "/var/log/apt/history.log"], parse_apt_history,
                      lambda a: "apt", None)
    out += _read_logs(job, ["/var/log/dnf.rpm.log", "/var/log/yum.log"], lambda s: parse_rpm_logs(s, year),
                      lambda a: "package", None)
    return [e for e in out if e["_t"] >= since]


def etc_changes(job, since: float) -> tuple[list[dict], int, bool]:
    """Files under /etc modified since `since`: (newest entries, count, walk complete?)."""
    root = job.ctx.root_path("/etc")
    found: list[tuple[float, str]] = []
    visited = 0
    stack = [root]
    complete = True
    denied = 0
    cron_d, crontab = os.path.join(root, "cron.d"), os.path.join(root, "crontab")
    while stack:
        if visited >= MAX_ETC_FILES or job.deadline.expired():
            complete = False
            break
        d = stack.pop()
        try:
            it = os.scandir(d)
        except PermissionError:
            denied += 1
            continue
        except OSError:
            continue
        with it:
            for de in it:
                visited += 1
                try:
                    st = de.stat(follow_symlinks=False)
                except OSError:
                    continue
                if stat.S_ISDIR(st.st_mode):
                    if de.path != cron_d:
                        stack.append(de.path)
                elif de.path == crontab:
                    continue   # crontabs() reports these as kind "crontab"
                elif st.st_mtime >= since:
                    found.append((st.st_mtime, de.path))
    if denied:
        job.blind_spot(f"{denied} directories under /etc not readable: run as root")
    if not complete:
        job.blind_spot(f"/etc walk stopped after {visited} entries: the list of changed files is incomplete")
    found.sort(reverse=True)
    rel = lambda p: "/" + os.path.relpath(p, job.ctx.root_path("/")).lstrip("./")  # noqa: E731
    return [_entry(min(t, job.now), "config", f"{rel(p)} modified", "/etc mtime", path=rel(p))
            for t, p in found[:MAX_ETC_SHOWN]], \
        len(found), complete


def crontabs(job, since: float) -> list[dict]:
    """crontab files changed since `since` (mtime)."""
    out = []
    paths = ["/etc/crontab"]
    for d in ("/etc/cron.d", "/var/spool/cron", "/var/spool/cron/crontabs"):
        full = job.ctx.root_path(d)
        try:
            names = sorted(os.listdir(full))[:500]
        except PermissionError:
            job.blind_spot(f"permission denied listing {d}: run as root")
            continue
        except OSError:
            continue
        paths += [f"{d}/{n}" for n in names]
    for p in paths:
        try:
            st = os.stat(job.ctx.root_path(p), follow_symlinks=False)
        except OSError:
            continue
        if stat.S_ISREG(st.st_mode) and st.st_mtime >= since:
            out.append(_entry(st.st_mtime, "crontab", f"{p} changed", "mtime"))
    return out


def boots_logins(job, since: float) -> list[dict]:
    """Boots and logins from wtmp; the current boot from /proc/uptime when wtmp says nothing."""
    out = []
    path = job.ctx.root_path("/var/log/wtmp")
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell() - f.tell() % _UTMP.size
            start = max(0, size - MAX_WTMP_RECORDS * _UTMP.size)
            f.seek(start)
            data = f.read(size - start)
        out += [_entry(t, k, w, "/var/log/wtmp") for t, k, w in parse_wtmp(data) if t >= since]
    except PermissionError:
        job.blind_spot("permission denied reading /var/log/wtmp: run as root (no logins or reboots from it)")
    except OSError:
        pass
    if not any(e["kind"] == "boot" for e in out):
        try:
            up = float(job.ctx.read(job.ctx.proc_path("uptime")).split()[0])
            boot = job.now - up
            if boot >= since:
                out.append(_entry(boot, "boot", f"system boot (up {up / 3600:.1f} h)", "/proc/uptime"))
        except (OSError, ValueError, IndexError):
            pass
    return out


def processes(job, since: float) -> tuple[list[dict], int]:
    """Processes that started since `since` (the shared scan's create times)."""
    scan = job.scan
    if scan is None:
        return [], 0
    until = job.ctx.until if job.ctx.until is not None else job.now
    # Not changes: kernel threads (children of kthreadd) come and go, and hostdiag's own
    # process and the shell that started it are the responder, not the incident.
    own = own_pids(job.ctx, scan)
    new = [p for p in scan.procs.values() if p.create_time and since <= p.create_time <= until + 60
           and p.pid not in own and p.ppid != 2 and p.pid != 2]
    new.sort(key=lambda p: p.create_time, reverse=True)
    long_lived = [p for p in new if until - p.create_time >= LONG_LIVED_S]
    short = [p for p in new if until - p.create_time < LONG_LIVED_S]
    out = [_entry(p.create_time, "process", f"{p.name} (pid {p.pid}) started", "process scan", pid=p.pid)
           for p in long_lived[:MAX_PROCS_SHOWN]]
    if short:
        names = Counter(p.name for p in short)
        top = ", ".join(f"{n} ×{c}" if c > 1 else n for n, c in names.most_common(5))
        out.append(_entry(short[0].create_time, "process",
                          f"{len(short)} short-lived processes started in the last {LONG_LIVED_S // 60} min "
                          f"({top})", "process scan", count=len(short)))
    return out, len(new)


def own_pids(ctx, scan) -> set[int]:
    """hostdiag's own pipeline and session: its ancestors (the shell, sshd), every process of its
    session (the responder's pipeline: `hostdiag ... | less`) and its descendants. They are the
    responder, not the incident."""
    own, pid = set(), os.getpid()
    while pid in scan.procs and pid not in own:
        own.add(pid)
        pid = scan.procs[pid].ppid or 0
    try:
        sid = os.getsid(0)
    except OSError:
        sid = None
    children: dict[int, list[int]] = {}
    for p in scan.procs.values():
        children.setdefault(p.ppid or 0, []).append(p.pid)
    stack = [os.getpid()]
    while stack:
        for c in children.get(stack.pop(), ()):
            if c not in own:
                own.add(c)
                stack.append(c)
    if sid is not None and sid > 1 and os.path.normpath(ctx.proc) == "/proc":
        for p in scan.procs.values():
            if p.pid not in own and getattr(p, "sid", None) == sid:   # from the scan's one stat read
                own.add(p.pid)
    return own


def _journal_read(job, since, until, matches, budget):
    from hostdiag import logs

    end = time.monotonic() + budget
    rd = logs.open_journal(job.ctx, since, until, cap=MAX_PER_KIND * 5, matches=matches,
                              expired=lambda: time.monotonic() >= end or job.deadline.expired(),
                              backends=("systemd-python", "journalctl"))
    return rd.backend, list(rd.entries)


def unit_event(e) -> tuple[str, str] | None:
    """(kind, what) for a pid-1 unit life-cycle journal entry, else None."""
    state = UNIT_MESSAGE_IDS.get((e.msgid or "").lower())
    if state is None:
        return None
    unit = e.ufield or e.unit or "?"
    return "unit", f"{unit} {state}"


_MODLOAD = re.compile(r"Inserted module '([^']+)'")


def journal_changes(job, since: float, until: float) -> list[dict]:
    """Unit starts/stops/failures and module loads, from the journal (when there is one)."""
    out: list[dict] = []
    if job.ctx.journal_path is None:
        from hostdiag import logs
        if logs.find_source(job.ctx) is None:
            job.blind_spot("no journal: unit starts/stops and module loads not seen")
            return out
    budget = max(0.2, job.deadline.remaining() * 0.3)
    try:
        backend, entries = _journal_read(job, since, until, [f"MESSAGE_ID={m}" for m in UNIT_MESSAGE_IDS], budget)
        for e in entries:
            ue = unit_event(e)
            if ue:
                out.append(_entry(e.t, ue[0], ue[1], f"journal ({backend})"))
                if e.ufield or e.unit:
                    out[-1]["unit"] = e.ufield or e.unit
        backend, entries = _journal_read(job, since, until, ["SYSLOG_IDENTIFIER=systemd-modules-load"], budget / 2)
        for e in entries:
            m = _MODLOAD.search(e.msg)
            if m:
                out.append(_entry(e.t, "module", f"kernel module {m[1]} loaded", f"journal ({backend})"))
    except Unavailable as e:
        job.blind_spot(f"journal: {e}")
    return out


def collect(job):
    ctx = job.ctx
    until = ctx.until if ctx.until is not None else job.now
    since = until - WINDOW_S
    timeline: list[dict] = []
    timeline += packages(job, since)
    etc, etc_count, _ = etc_changes(job, since)
    timeline += etc
    timeline += crontabs(job, since)
    timeline += boots_logins(job, since)
    procs, procs_count = processes(job, since)
    timeline += procs
    timeline += journal_changes(job, since, until)
    timeline = [e for e in timeline if e["_t"] <= until + 60]
    counts = Counter(e["kind"] for e in timeline)
    counts["config"] = etc_count
    counts["process"] = procs_count
    timeline.sort(key=lambda e: e["_t"], reverse=True)
    total = len(timeline)
    shown: Counter = Counter()
    kept = []
    for e in timeline:
        shown[e["kind"]] += 1
        if shown[e["kind"]] <= SHOWN_PER_KIND.get(e["kind"], 20):
            kept.append(e)
    for e in kept:
        del e["_t"]
    add_links(job, kept)
    return {
        "since": rfc3339(since), "until": rfc3339(until), "window_h": WINDOW_S / 3600,
        "counts": {k: v for k, v in sorted(counts.items()) if v},
        "timeline": kept,
        "timeline_total": total,
    }


# ---------------------------------------------------------------------------- links

def _list_index(ctx) -> dict[str, str]:
    """{package: path of its .list} in /var/lib/dpkg/info ('pkg.list' or multi-arch 'pkg:arch.list')."""
    info = ctx.root_path("/var/lib/dpkg/info")
    try:
        names = os.listdir(info)
    except OSError:
        return {}
    out: dict[str, str] = {}
    for n in sorted(names):
        if n.endswith(".list"):
            out.setdefault(n[:-5].split(":")[0], os.path.join(info, n))
    return out


def _read_list(ctx, index: dict[str, str], pkg: str) -> set[str] | None:
    """The files of an installed package; None if it has no list (removed, or not dpkg)."""
    text = ctx.read_optional(index[pkg], MAX_LIST_BYTES) if pkg in index else None
    return set(text.splitlines()) if text is not None else None


def dpkg_owner(ctx, paths: set[str], deadline: float) -> dict[str, str]:
    """{path: package} like `dpkg -S`, from /var/lib/dpkg/info under --root: *.conffiles for files
    under /etc (a package's config files; a few KB in all, where *.list are tens of MB), *.list
    otherwise; bounded by DPKG_S_MAX_FILES and `deadline` (monotonic)."""
    out: dict[str, str] = {}
    info = ctx.root_path("/var/lib/dpkg/info")
    ext = ".conffiles" if all(p.startswith("/etc/") for p in paths) else ".list"
    try:
        names = sorted(n for n in os.listdir(info) if n.endswith(ext))[:DPKG_S_MAX_FILES]
    except OSError:
        return out
    want = {p: ("\n" + p + "\n") for p in paths}
    for n in names:
        if len(out) == len(want) or time.monotonic() > deadline:
            break
        text = ctx.read_optional(os.path.join(info, n), MAX_LIST_BYTES)
        if not text:
            continue
        # conffiles lines may carry a trailing ' obsolete' / ' remove-on-upgrade' flag
        text = "\n" + "\n".join(ln.split(" ", 1)[0] for ln in text.splitlines()) + "\n"
        for p, needle in want.items():
            if p not in out and needle in text:
                out[p] = n[:-len(ext)].split(":")[0]
    return out


def _exe(ctx, pid: int) -> str | None:
    try:
        return os.readlink(ctx.proc_path(pid, "exe")).removesuffix(" (deleted)")
    except OSError:   # kernel thread, exited, or not ours to read
        return None


def _unit_of(ctx, pid: int) -> str | None:
    """The systemd unit a process runs in: the last *.service/*.scope/... of its cgroup path."""
    text = ctx.read_optional(ctx.proc_path(pid, "cgroup"), 1 << 14) or ""
    for line in text.splitlines():
        path = line.split(":", 2)[-1]
        for part in reversed(path.strip("/").split("/")):
            if part.endswith((".service", ".scope", ".socket", ".timer", ".mount")):
                return part
    return None


def add_links(job, timeline: list[dict]) -> None:
    """Record on each package/unit/config change the running processes it is tied to (`linked`:
    [{'pid', 'name', 'why'}]), from the process scan: the package owns the executable, the unit
    runs the process, the config file belongs to the executable's package or is on its command line."""
    scan, ctx = job.scan, job.ctx
    if scan is None or not timeline:
        return
    end = time.monotonic() + DPKG_S_BUDGET_S
    # hostdiag's own session is not excluded here: a finding never names it, so it is never linked.
    # The processes a finding can name are the big ones (RSS, CPU, fds) and the new ones: link those
    # first, and at most MAX_LINK_PROCS of them (a readlink and a cgroup read each: 5,000 idle
    # workers would cost 0.2 s for processes no finding names).
    procs = sorted((p for p in scan.procs.values() if p.ppid != 2 and p.pid != 2),
                   key=lambda p: (-(p.rss_bytes or 0), -(p.cpu_pct or 0), -(p.fds or 0)))[:MAX_LINK_PROCS]
    units = {e["unit"] for e in timeline if e.get("unit")}
    pkgs = {e["package"] for e in timeline if e.get("package")}
    configs = {e["path"] for e in timeline if e.get("path")}
    if not (units or pkgs or configs):
        return
    exe = {p.pid: _exe(ctx, p.pid) for p in procs} if pkgs or configs else {}
    unit = {p.pid: _unit_of(ctx, p.pid) for p in procs} if units else {}
    files = {}
    index = _list_index(ctx) if pkgs or configs else {}
    for pkg in sorted(pkgs)[:MAX_PER_KIND]:
        if time.monotonic() > end:
            job.blind_spot("dpkg file lists: time bound hit; some package changes are not linked to processes")
            break
        files[pkg] = _read_list(ctx, index, pkg)
    # dpkg -S for the changed config files, then the owning package's executables.
    cfg_pkg = dpkg_owner(ctx, configs, end) if configs else {}
    for pkg in set(cfg_pkg.values()) - set(files):
        files[pkg] = _read_list(ctx, index, pkg)
    name = {p.pid: p.name for p in procs}
    cmdlines: dict[int, str] = {}

    def tie(entry, pid, why):
        ln = entry.setdefault("linked", [])
        if len(ln) < MAX_LINKED and all(x["pid"] != pid for x in ln):
            ln.append({"pid": pid, "name": name.get(pid), "why": why})

    for e in timeline:
        if e.get("unit"):
            for pid, u in unit.items():
                if u == e["unit"]:
                    tie(e, pid, f"runs in unit {u}")
        if e.get("package") and files.get(e["package"]):
            fl = files[e["package"]]
            for pid, x in exe.items():
                if x and x in fl:
                    tie(e, pid, f"its executable {x} belongs to package {e['package']}")
        if e.get("path"):
            path, owner = e["path"], cfg_pkg.get(e["path"])
            fl = files.get(owner) or set()
            for pid, x in exe.items():
                if x and x in fl:
                    tie(e, pid, f"{path} belongs to package {owner}, which owns its executable {x}")
            for p in procs:
                if len(e.get("linked") or ()) >= MAX_LINKED or time.monotonic() > end:
                    break
                if p.pid not in cmdlines:
                    cmdlines[p.pid] = scan.cmdline(p.pid, 1024) or ""
                if path in cmdlines[p.pid]:
                    tie(e, p.pid, f"{path} is on its command line")


def findings(section, th):
    """A systemd unit that failed in the window: a change that is also a condition.

    The rest of the timeline is context, not a condition: correlation ties it to other findings.
    """
    failed: dict[str, list[dict]] = {}
    for e in section.data.get("timeline") or []:
        if e.get("kind") == "unit" and e.get("unit"):
            failed.setdefault(e["unit"], []).append(e)
    out = []
    for unit, evs in failed.items():
        last = evs[0]   # the timeline is newest first
        n = len({e["time"] for e in evs})   # systemd logs one failure as "failed" and "Failed with result"
        times = f" ({n}× in the window)" if n > 1 else ""
        out.append(Finding(
            id="changes.unit_failed", category="changes", severity="warning",
            title=f"systemd unit {unit} failed at {last['time']}{times}",
            subject={"unit": unit}, evidence={"failures": n, "last": last["time"], "source": last["source"]},
            verify=shell.cmd("systemctl", "status", "--no-pager", unit) + "   # and: "
            + shell.cmd("journalctl", "-u", unit, "-n", "50", "--no-pager"),
            stabilize=["Read why it failed (verify) before restarting it: the last lines are the evidence",
                       "If it keeps failing, check what changed just before (the What changed block)"],
            impact="whatever the unit serves is down or restarting",
            since=evs[-1]["time"], score=float(n)))
    return out

"""Pure parsers for classic logs: one syslog line, one /dev/kmsg record -> Entry."""
from __future__ import annotations

import re
from datetime import datetime

from hostdiag.logs.entry import MAX_MSG_CHARS, Entry

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

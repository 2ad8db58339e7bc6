"""One log line, the same whichever backend read it, and the field decoding both journal backends share."""
from __future__ import annotations

from typing import NamedTuple

MAX_MSG_CHARS = 8192          # per message, before matching (kernel events are at the start)
PRIORITIES = ("emerg", "alert", "crit", "err", "warning", "notice", "info", "debug")


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

"""Times given on the command line: relative ('30m', '2h', '1d', '90s' ago) or ISO-8601."""
from __future__ import annotations

import re
import time
from datetime import datetime, timezone

_REL = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|sec|m|min|h|hour|d|day)s?\s*(?:ago)?\s*$", re.I)
_MULT = {"s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "hour": 3600, "d": 86400, "day": 86400}


def parse_when(text: str, now: float | None = None) -> float:
    """Epoch seconds for '30m' (ago), 'now', an epoch number or an ISO-8601 time (local if naive)."""
    now = time.time() if now is None else now
    t = text.strip()
    if t.lower() == "now":
        return now
    m = _REL.match(t)
    if m:
        return now - float(m.group(1)) * _MULT[m.group(2).lower()]
    try:
        return float(t) if re.fullmatch(r"\d+(\.\d+)?", t) else _iso(t)
    except ValueError:
        raise ValueError(f"cannot read time {text!r}: use e.g. 30m, 2h, 1d or 2026-11-23T10:00:00") from None


def _iso(t: str) -> float:
    dt = datetime.fromisoformat(t.replace("Z", "+00:00"))
    if dt.tzinfo is None:
        dt = dt.astimezone()  # naive: the host's local time, as journalctl reads it
    return dt.astimezone(timezone.utc).timestamp()

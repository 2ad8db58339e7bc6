"""Read one series from CSV or JSON text (for `signatures match`). Stdlib only."""
from __future__ import annotations

import csv
import io
import json

from hostdiag.matcher.lint import parse_timestamp


class SeriesError(ValueError):
    """The input is not a series we can read; the message says why and where."""


def _value(x, where: str):
    if x is None:
        return None
    if isinstance(x, (int, float)) and not isinstance(x, bool):
        return float(x)
    s = str(x).strip()
    if s == "" or s.lower() in ("nan", "null", "none", "na"):
        return None
    try:
        return float(s)
    except ValueError:
        raise SeriesError(f"{where}: not a number: {s[:40]!r}") from None


def read_series(text: str) -> tuple[list | None, list]:
    """(timestamps or None, values) from JSON {"timestamps","values"} or CSV text."""
    s = text.lstrip("\ufeff").strip()
    if not s:
        raise SeriesError("empty input")
    if s[0] in "{[":
        try:
            doc = json.loads(s)
        except json.JSONDecodeError as e:
            raise SeriesError(f"line {e.lineno}: invalid JSON: {e.msg}") from None
        if isinstance(doc, list):
            return None, [_value(x, f"values[{i}]") for i, x in enumerate(doc)]
        if not isinstance(doc, dict) or not isinstance(doc.get("values"), list):
            raise SeriesError('JSON must be {"timestamps": [...], "values": [...]} or a list of values')
        v = [_value(x, f"values[{i}]") for i, x in enumerate(doc["values"])]
        ts = doc.get("timestamps")
        if ts is None:
            return None, v
        if not isinstance(ts, list) or len(ts) != len(v):
            raise SeriesError(f"'timestamps' must be a list as long as 'values' ({len(v)})")
        return [_ts(x, f"timestamps[{i}]") for i, x in enumerate(ts)], v
    rows = [r for r in csv.reader(io.StringIO(s)) if r and any(c.strip() for c in r)]
    first = [c.strip().lower() for c in rows[0]]
    header = not _is_number(first[-1])
    if header:
        rows = rows[1:]
    if not rows:
        raise SeriesError("no data rows")
    width = len(rows[0])
    if width == 1:
        return None, [_value(r[0], f"line {i + 1 + header}") for i, r in enumerate(rows)]
    tcol, vcol = 0, 1
    if header and "value" in first:
        vcol = first.index("value")
        tcol = next((i for i, c in enumerate(first) if c in ("timestamp", "time", "ts", "t")), 1 - vcol if vcol < 2 else 0)
    t, v = [], []
    for i, r in enumerate(rows):
        where = f"line {i + 1 + header}"
        if len(r) <= max(tcol, vcol):
            raise SeriesError(f"{where}: expected {max(tcol, vcol) + 1} columns, got {len(r)}")
        t.append(_ts(r[tcol], where))
        v.append(_value(r[vcol], where))
    return t, v


def _is_number(s: str) -> bool:
    try:
        float(s)
        return True
    except ValueError:
        return s in ("", "nan", "null")


def _ts(x, where: str):
    if x is None or (isinstance(x, str) and not x.strip()):
        return None
    try:
        return parse_timestamp(x.strip() if isinstance(x, str) else x)
    except (ValueError, TypeError, OverflowError):
        raise SeriesError(f"{where}: not a timestamp (ISO-8601 or epoch seconds): {str(x)[:40]!r}") from None

"""Read one series from CSV or JSON text (for `signatures match`). Stdlib only.

Input is bounded: MAX_BYTES of text (read_bounded), MAX_FIELD characters per field, JSON at
most 2 levels deep, finite values no larger than MAX_ABS in magnitude, and at most max_rows
rows (more are sampled evenly, and the caller is told so). Each violation is a SeriesError
whose message says which bound and where.
"""
from __future__ import annotations

import csv
import io
import json
import math
import re

from hostdiag.matcher.lint import parse_timestamp


MAX_BYTES = 64 << 20         # 64 MiB of text: ~5 M CSV rows; the reader refuses more
MAX_ROWS = 200_000           # default --max-rows; longer series are sampled evenly
MAX_FIELD = 4096             # characters in one CSV field or JSON string
MAX_ABS = 1e100              # |value| above this is refused: squares must stay finite
MAX_DEPTH = 2                # {"values": [...]} is as deep as a series gets


class SeriesError(ValueError):
    """The input is not a series we can read; the message says why and where."""


def read_bounded(f, limit: int = MAX_BYTES) -> str:
    """Up to `limit` bytes of a binary file object as text; SeriesError beyond it."""
    data = f.read(limit + 1)
    if len(data) > limit:
        raise SeriesError(f"input larger than {limit >> 20} MiB: refused (cut the window or sample it first)")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise SeriesError(f"not UTF-8 text at byte {e.start}") from None


def _value(x, where: str):
    if x is None:
        return None
    if isinstance(x, bool) or isinstance(x, (list, dict)):
        raise SeriesError(f"{where}: not a number: {str(x)[:40]!r}")
    if isinstance(x, (int, float)):
        try:
            f = float(x)
        except OverflowError:
            raise SeriesError(f"{where}: value out of range: {str(x)[:40]}") from None
    else:
        s = str(x).strip()
        if s == "" or s.lower() in ("nan", "null", "none", "na"):
            return None
        try:
            f = float(s)
        except ValueError:
            raise SeriesError(f"{where}: not a number: {s[:40]!r}") from None
    if math.isnan(f):
        return None
    if not math.isfinite(f) or abs(f) > MAX_ABS:
        raise SeriesError(f"{where}: value out of range ({str(x)[:40]}): only finite values up to "
                          f"{MAX_ABS:g} in magnitude are matched")
    return f


_TOKENS = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]')


def _depth_ok(s: str) -> bool:
    """No bracket nesting deeper than MAX_DEPTH (checked before json.loads can recurse).
    The regex skips strings and numbers in C, so only brackets reach the Python loop."""
    depth = 0
    for m in _TOKENS.finditer(s):
        ch = m.group()
        if ch in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                return False
        elif ch in "]}":
            depth -= 1
    return True


def _sample(n: int, max_rows: int) -> list[int] | None:
    """Evenly spaced row indices when there are more rows than max_rows (first and last kept)."""
    if n <= max_rows:
        return None
    return [round(i * (n - 1) / (max_rows - 1)) for i in range(max_rows)]


def read_series_bounded(text: str, max_rows: int = MAX_ROWS) -> tuple[list | None, list, str | None]:
    """read_series with a row cap: (timestamps or None, values, note or None).

    The note says when the series was sampled ("sampled 200,000 of 10,000,000 rows")."""
    if max_rows < 8:
        raise SeriesError("--max-rows must be at least 8")
    s = text.lstrip("\ufeff").strip()
    if s[:1] in ("{", "["):
        t, v = read_series(s)
        keep = _sample(len(v), max_rows)
        if keep is None:
            return t, v, None
        return ([t[i] for i in keep] if t is not None else None), [v[i] for i in keep], \
            f"sampled {max_rows:,} of {len(v):,} rows evenly (--max-rows)"
    lines = s.splitlines()
    head = lines[:1] if lines and not _is_number(lines[0].split(",")[-1].strip().lower()) else []
    body = lines[len(head):]
    keep = _sample(len(body), max_rows)
    if keep is None:
        return (*read_series(s), None)
    t, v = read_series("\n".join(head + [body[i] for i in keep]))
    return t, v, f"sampled {max_rows:,} of {len(body):,} rows evenly (--max-rows)"


def read_series(text: str) -> tuple[list | None, list]:
    """(timestamps or None, values) from JSON {"timestamps","values"} or CSV text."""
    s = text.lstrip("\ufeff").strip()
    if not s:
        raise SeriesError("empty input")
    if s[0] in "{[":
        if not _depth_ok(s):
            raise SeriesError(f"JSON nested deeper than {MAX_DEPTH} levels: expected "
                              '{"timestamps": [...], "values": [...]} or a list of values')
        try:
            doc = json.loads(s)
        except json.JSONDecodeError as e:
            raise SeriesError(f"line {e.lineno}: invalid JSON: {e.msg}") from None
        except (RecursionError, ValueError) as e:     # int() digit limits and the like
            raise SeriesError(f"invalid JSON: {str(e)[:80]}") from None
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
    old = csv.field_size_limit(MAX_FIELD)
    try:
        rows = [r for r in csv.reader(io.StringIO(s)) if r and any(c.strip() for c in r)]
    except csv.Error as e:
        raise SeriesError(f"CSV: {e} (a field may hold at most {MAX_FIELD} characters)") from None
    finally:
        csv.field_size_limit(old)
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
    if isinstance(x, (list, dict, bool)) or (isinstance(x, str) and len(x) > MAX_FIELD):
        raise SeriesError(f"{where}: not a timestamp: {str(x)[:40]!r}")
    try:
        t = parse_timestamp(x.strip() if isinstance(x, str) else x)
        if not math.isfinite(t) or abs(t) > 1e12:
            raise ValueError
        return t
    except (ValueError, TypeError, OverflowError):
        raise SeriesError(f"{where}: not a timestamp (ISO-8601 or epoch seconds): {str(x)[:40]!r}") from None

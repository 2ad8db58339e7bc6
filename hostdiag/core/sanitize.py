"""Host text is hostile: process names, command lines, paths and log lines can carry
terminal escape sequences, rich markup, invalid UTF-8 or megabytes of junk.

`clean` is applied to every string of a Report once, when it is built (hostdiag.analysis.build),
so no renderer ever sees raw host text. Renderers still never put host text into a
markup string: the terminal renderer wraps it in rich Text.
"""
from __future__ import annotations

import re

MAX_TEXT = 4096  # one cmdline or log line in a report; the rest is elided with a count

# C0 controls except \t and \n, DEL, and C1 controls (U+0080..U+009F: 8-bit CSI is U+009B),
# plus the Unicode line/paragraph separators and bidi overrides that can reorder a line.
_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_UNSAFE_LINE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def _escape(m: re.Match) -> str:
    c = ord(m.group())
    return f"\\x{c:02x}" if c < 0x100 else f"\\u{c:04x}"


def clean(value: str | bytes, *, multiline: bool = False, limit: int = MAX_TEXT) -> str:
    """Make host text safe to print: decode, escape control characters, cap length.

    Invalid UTF-8 becomes \\xNN (backslashreplace); lone surrogates from
    os.fsdecode become the same. `multiline` keeps \\n (log excerpts); otherwise it is
    escaped so one field cannot fake a second report line.
    """
    if isinstance(value, bytes):
        value = value.decode("utf-8", "backslashreplace")
    elif not value.isascii():
        value = _drop_surrogates(value)
    extra = len(value) - limit
    if extra > 0:
        value = value[:limit]
    value = (_UNSAFE if multiline else _UNSAFE_LINE).sub(_escape, value)
    if extra > 0:
        value += f"…[+{extra} chars]"
    return value


def _drop_surrogates(s: str) -> str:
    """Lone surrogates (os.fsdecode of invalid UTF-8) cannot be encoded by any renderer."""
    try:
        s.encode("utf-8")
        return s
    except UnicodeEncodeError:
        pass
    try:  # surrogateescape'd bytes -> the original bytes -> \xNN
        return s.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:
        return s.encode("utf-8", "backslashreplace").decode("utf-8")


def deep(obj):
    """clean() every string inside dicts/lists/tuples (keys too); other values unchanged."""
    if isinstance(obj, str):
        return clean(obj)
    if isinstance(obj, bytes):
        return clean(obj)
    if isinstance(obj, dict):
        return {(clean(k) if isinstance(k, str) else k): deep(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [deep(v) for v in obj]
    return obj

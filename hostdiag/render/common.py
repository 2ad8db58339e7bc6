"""What every text renderer shares: value formatting by key suffix, the evidence layout of a
section (facts, inline dicts, tables), and sparklines. Renderers only decide the looks.

Collector data is laid out generically from its shape, so a collector needs no render code:
scalars become facts, dicts of scalars become one inline fact, lists of dicts become tables.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from hostdiag.core.units import human_bytes, human_duration

BLOCKS = "▁▂▃▄▅▆▇█"
ASCII = " .:-=+*#%@"


CLIP = 120               # host strings (command lines, paths) longer than this are clipped


def clip(text: str, limit: int = CLIP) -> str:
    """Long host text, clipped the same way everywhere, with its full length shown."""
    text = str(text)
    if len(text) <= limit:
        return text
    return text[: limit - 16] + f"… [{len(text)} chars]"


def eta_text(f) -> str:
    """'exhausted now' / 'exhausted in 7m 0s' from a ranked finding's eta_s, or ''."""
    eta = getattr(f, "eta_s", None)
    if eta is None or not isinstance(eta, (int, float)) or not math.isfinite(eta):
        return ""
    return "exhausted now" if eta <= 0 else f"exhausted in {human_duration(eta)}"


def _units(cmd: str) -> list[tuple[str, str]]:
    """The command cut into pieces a fold must not split (a character, a backslash escape, `$'`),
    each with the quoting in force after it: '' outside, "'", '"' or "$'" (bash's ANSI-C quote,
    where `\'` does not close the quote and `\x0a` is one character)."""
    out, quote, i, n = [], "", 0, len(cmd)
    while i < n:
        ch, j = cmd[i], i + 1
        if quote == "'":
            quote = "" if ch == "'" else quote
        elif ch == "\\" and i + 1 < n:
            j = i + 2
            if quote == "$'":   # \xHH, \uHHHH, \UHHHHHHHH, \nnn, \cX stay whole
                m = re.match(r"x[0-9a-fA-F]{1,2}|u[0-9a-fA-F]{1,4}|U[0-9a-fA-F]{1,8}|[0-7]{1,3}|c.", cmd[i + 1:])
                j = i + 1 + (m.end() if m else 1)
        elif quote == "":
            if cmd.startswith("$'", i):
                j, quote = i + 2, "$'"
            elif ch in "'\"":
                quote = ch
        elif ch == quote[-1]:   # the closing ' of $'...' or " of "..."
            quote = ""
        out.append((cmd[i:j], quote))
        i = j
    return out


def split_comment(cmd: str) -> tuple[str, str]:
    """(command, trailing '# comment' or '') of a printed command."""
    pos, quote = 0, ""
    for unit, after in _units(cmd):
        if unit == "#" and quote == "" and pos and cmd[pos - 1].isspace():
            return cmd[:pos].strip(), cmd[pos:].strip()
        pos, quote = pos + len(unit), after
    return cmd.strip(), ""


def brief_command(cmd: str) -> str:
    """A command without its trailing '   # comment' (it runs the same)."""
    return split_comment(cmd)[0]


# How a line break continues inside each quoting: (end of the line, start of the next). Inside
# '...' and $'...' a backslash-newline is kept literally, so the quote is closed and reopened.
_BREAK = {"": ("\\\n", ""), '"': ("\\\n", ""), "'": ("'\\\n", "'"), "$'": ("'\\\n", "$'")}


def _split_word(word: str, width: int) -> list[str]:
    """A word longer than `width`, cut into pieces that the shell joins back (see _BREAK)."""
    if len(word) <= width:
        return [word]
    out, cur, quote = [], "", ""
    for unit, after in _units(word):
        if len(cur) + len(unit) + 2 > width and cur not in ("", "'", "$'"):   # 2: the widest line end
            end, start = _BREAK[quote]
            out.append(cur + end)
            cur = start
        cur += unit
        quote = after
    return out + [cur]


def command_lines(cmd: str, width: int) -> list[str]:
    """A command folded to `width` so that it still runs when pasted: breaks only at spaces
    outside quotes, each continued line ending in ' \\'; a trailing comment goes on lines of
    its own (a continuation inside a comment would turn the next line into a command)."""
    body, comment = split_comment(cmd)
    words, cur, quote = [], "", ""
    for unit, after in _units(body):
        if unit == " " and quote == "":
            if cur:
                words.append(cur)
            cur = ""
        else:
            cur += unit
        quote = after
    if cur:
        words.append(cur)
    lines, line = [], ""
    for w in words:
        for piece in _split_word(w, width - 2):
            if line.endswith("\\\n"):            # a word split mid-way continues with no space
                line += piece
            elif line and len(line.rsplit("\n", 1)[-1]) + 1 + len(piece) + 2 > width:
                lines.append(line + " \\")
                line = piece
            else:
                line = f"{line} {piece}" if line else piece
    lines = [x for chunk in lines + [line] for x in chunk.split("\n")]
    if comment:
        import textwrap

        lines += textwrap.wrap(comment.lstrip("# "), width, initial_indent="# ", subsequent_indent="# ")
    return lines


def brief_line(f) -> str:
    """One finding's title with its subject and ETA, for the one-screen view."""
    # subject parts the title already names ("python (pid 1588)") are not repeated
    subj = {k: v for k, v in (f.subject or {}).items() if str(v) not in f.title}
    eta = getattr(f, "eta_s", None)
    # nor an ETA the title gives already ("limit reached in ~63 s at this rate"): the repeat cut the rate off
    said = isinstance(eta, (int, float)) and math.isfinite(eta) and f"~{human_duration(eta)}" in f.title
    extra = "; ".join(x for x in (clip(subject_text(subj), 60) if subj else "", "" if said else eta_text(f)) if x)
    return f"{f.title} ({extra})" if extra else f.title


def fmt_value(key: str, v) -> str:
    """Format one value for humans, by the unit suffix of its key."""
    if v is None:
        return "n/a"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        if isinstance(v, float) and not math.isfinite(v):
            return "n/a"
        k = key.lower()
        if k.endswith("_bytes") or k in ("rss", "size", "bytes"):
            return human_bytes(v)
        if k.endswith("_bps"):
            return human_bytes(v) + "/s"
        if k.endswith("_pct") or k.endswith("pct"):
            return f"{v:.1f}%"
        if k.endswith("_per_s") or k == "per_s":   # before "_s": a rate is not a duration
            return f"{v:.1f}/s"
        if k.endswith("_ms"):
            return f"{v:.1f} ms"
        if k.endswith("_s") or k.endswith("_seconds"):
            return human_duration(v)
        if isinstance(v, float):
            return f"{v:.2f}".rstrip("0").rstrip(".") if abs(v) < 1e6 else f"{v:.3g}"
        return str(v)
    if isinstance(v, dict):  # inner keys without a unit ("sda", "0") take the outer key's unit
        return " ".join(f"{k}={fmt_value(k if _has_unit(str(k)) else key, x)}"
                        for k, x in v.items() if not isinstance(x, (dict, list)))
    if isinstance(v, list):
        return ", ".join(fmt_value(key, x) for x in v)
    return clip(str(v))


_UNITS = ("_bytes", "_bps", "_pct", "per_s", "_ms", "_s", "_seconds")


def _has_unit(key: str) -> bool:
    return key.lower().endswith(_UNITS)


@dataclass
class Table:
    title: str
    columns: list[str]
    rows: list[list[str]]
    more: int = 0            # rows not shown


@dataclass
class Evidence:
    facts: list[tuple[str, str]] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)


# Data drawn in its own report block, not repeated in the section's evidence.
SHOWN_ELSEWHERE = {"changes": ("timeline",), "journal": ("per_minute",)}


def evidence(data: dict, top: int = 5, section: str = "") -> Evidence:
    """Lay a section's data out as facts and tables."""
    ev = Evidence()
    skip = SHOWN_ELSEWHERE.get(section, ())
    for key, v in data.items():
        if key in skip:
            continue
        if isinstance(v, list) and v and all(isinstance(r, dict) for r in v):
            cols = list(dict.fromkeys(k for r in v for k in r if not isinstance(r[k], (dict, list))))
            rows = [[fmt_value(c, r.get(c)) for c in cols] for r in v[:top]]
            ev.tables.append(Table(key, cols, rows, max(0, len(v) - top)))
        elif isinstance(v, list):
            if v:
                ev.facts.append((key, fmt_value(key, v[:top]) + (f" (+{len(v) - top})" if len(v) > top else "")))
        elif isinstance(v, dict):
            flat = {k: x for k, x in v.items() if not isinstance(x, (dict, list))}
            if flat:
                ev.facts.append((key, fmt_value(key, flat)))
            for k, x in v.items():  # one level of nesting, e.g. {"per_device": {"sda": {...}}}
                if isinstance(x, dict) and x:
                    ev.facts.append((f"{key}.{k}", fmt_value(k, x)))
        elif v is not None:
            ev.facts.append((key, fmt_value(key, v)))
    return ev


def sparkline(values, chars: str = BLOCKS, width: int = 24) -> str:
    """Values (None for gaps) -> a sparkline, scaled min..max; gaps show as spaces."""
    vals = list(values)[-width:]
    nums = [x for x in vals if x is not None and math.isfinite(x)]
    if not nums:
        return ""
    lo, hi = min(nums), max(nums)
    span = hi - lo
    out = []
    for x in vals:
        if x is None or not math.isfinite(x):
            out.append(" ")
        elif span == 0:
            out.append(chars[len(chars) // 2] if hi else chars[0])
        else:
            out.append(chars[min(len(chars) - 1, int((x - lo) / span * (len(chars) - 1) + 0.5))])
    return "".join(out)


def trends(report, section: str, limit: int = 6) -> list[tuple[str, str, str]]:
    """(label, display values as list, last value text) for a section's unlabelled series that
    moved during the window; counters are shown as rates."""
    out = []
    for key, s in report.snapshot.series.items():
        if not key.startswith(section + ".") or s.labels:
            continue
        vals = s.display_values()
        nums = [x for x in vals if x is not None]
        if len(nums) < 2 or max(nums) == min(nums):
            continue
        name = key[len(section) + 1:]
        unit = s.unit + "/s" if s.counter else s.unit
        out.append((name, vals, f"{fmt_value(name, nums[-1]) if not s.counter else f'{nums[-1]:.3g}'} {unit}".strip()))
        if len(out) >= limit:
            break
    return out


def subject_text(subject: dict) -> str:
    return " ".join(f"{k}={clip(v)}" for k, v in subject.items())


def host_line(report) -> str:
    h = report.snapshot.host
    w = report.snapshot.window_s
    window = f"window {w:g}s" if w else "point in time"
    who = "" if h.euid == 0 else f", as uid {h.euid} (not root)"
    cpus = h.cpus if h.cpus is not None else "?"
    partial = " (interrupted: partial)" if report.snapshot.interrupted else ""
    return f"{h.hostname} · {h.os} · kernel {h.kernel} · {cpus} CPUs · {report.snapshot.collected_at} · {window}{partial}{who}"

"""Commands we print get pasted into a root shell: build them here, never with f-strings.

    cmd("journalctl", "-u", unit, "-p", "err")      -> "journalctl -u 'x;id' -p err"
    fill("cat /proc/{pid}/status", {"pid": 42})    -> "cat /proc/42/status"
    fill("systemctl status {unit}", {})            -> None   (drop the line: nothing to fill)

Every host-derived value becomes exactly one shell word (shlex.quote; simple safe words stay
unquoted), so `shlex.split` of the result gives the intended argv whatever the value holds.
A value with a newline or other control character is written as bash's $'...' instead, so the
command stays on one line: a newline in a value must not end a `# comment` and start a command.
Catalog templates may only put `{name}` placeholders outside quotes: inside '...' or "..."
a quoted value would close the template's own quote. `problem()` says so for lint, and
`fill()` refuses such a template (None) rather than print something unsafe.
"""
from __future__ import annotations

import re
import shlex

__all__ = ["cmd", "fill", "placeholders", "problem", "quote"]

_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def quote(value) -> str:
    """One shell word for this value: shlex.quote, or $'...' when it holds control characters."""
    s = str(value)
    if not _CONTROL.search(s):
        return shlex.quote(s)
    body = s.replace("\\", "\\\\").replace("'", "\\'")
    return "$'" + _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", body) + "'"


def cmd(*argv) -> str:
    """One command line from an argv list; each argument is one shell word."""
    return " ".join(quote(a) for a in argv)


def _scan(template: str):
    """(placeholder name, inside quotes?) for each {name} in the template, in order."""
    quote = None
    i = 0
    while i < len(template):
        ch = template[i]
        if quote is None and ch == "\\":
            i += 2
            continue
        if quote == '"' and ch == "\\":
            i += 2
            continue
        if ch in "'\"" and (quote is None or quote == ch):
            quote = None if quote else ch
        elif ch == "{":
            m = _PLACEHOLDER.match(template, i)
            if m:
                yield m.group(1), quote is not None
                i = m.end()
                continue
        i += 1


def placeholders(template: str) -> list[str]:
    """The {name} placeholders of a template, in order."""
    return [name for name, _ in _scan(template)]


# `cat /sys/fs/cgroup/<unit>/memory.current` pasted into bash is `cat ... < unit > /memory.current`:
# a redirection that creates a file in / as root when ./unit exists. Placeholders are {name}.
_ANGLE = re.compile(r"(?<![<\w])<[A-Za-z_][\w-]*>")


def problem(template: str) -> str | None:
    """Why this template cannot be filled safely, or None (lint uses this)."""
    quoted = [name for name, inside in _scan(template) if inside]
    if quoted:
        return f"placeholder {{{quoted[0]}}} is inside quotes: put it outside so its value is quoted as one word"
    angle = _ANGLE.search(template)
    if angle:
        return (f"{angle.group()} is a shell redirection when pasted, not a placeholder: "
                f"write {{{angle.group()[1:-1]}}}")
    return None


def fill(template: str, subject: dict) -> str | None:
    """The template with each {name} replaced by quote(subject[name]).

    None when a placeholder has no (non-empty) value or sits inside quotes: the caller drops
    that line rather than print a half-filled or unsafe command. Text that is not a
    {identifier} (awk's '{print $3}', brace lists like {current,max}) is left alone.
    """
    if problem(template):
        return None
    out: list[str] = []
    last = 0
    for m in _PLACEHOLDER.finditer(template):
        v = subject.get(m.group(1))
        if v is None or v == "":
            return None
        out += [template[last:m.start()], quote(v)]
        last = m.end()
    return "".join(out) + template[last:]

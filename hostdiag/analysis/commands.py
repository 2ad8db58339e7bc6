"""Step 3b: every command hostdiag prints runs as printed.

Placeholders in verify / stabilize / first_checks (`{pid}`, `<port>`, `/proc/PID/fd`,
`systemctl edit UNIT`, `<unit of the victim>`...) are filled from the finding's subject with
shell-quoted values. A command whose placeholder cannot be filled is not printed: a verify or a
catalog check is dropped; a stabilize option loses the parenthesised command that held it, or is
dropped. On a host without a journal, `journalctl -k` becomes `dmesg -T`.

Values are single shell words from core/shell.quote ($'...' for control characters, so a
newline cannot end a `# comment` and start a command). This step also knows the catalog's and
collectors' older spellings (`<port>`, `PID`, `UNIT`), which core/shell.fill (braces only) does not.
"""
from __future__ import annotations

import re
from dataclasses import replace

from hostdiag.core import shell
from hostdiag.core.model import Finding, ShapeMatch

# Placeholder spelling -> subject field. `<unit of the victim>` and `<task_memcg>` included.
FIELDS = {"pid": "pid", "port": "port", "unit": "unit", "unit of the victim": "unit", "mount": "mount",
          "mountpoint": "mount", "mp": "mount", "iface": "iface", "interface": "iface", "device": "device",
          "dev": "device", "cgroup": "cgroup", "task_memcg": "cgroup", "uid": "uid", "user": "user"}
NUMERIC = ("pid", "port", "uid")
_BRACED = "|".join(sorted((re.escape(k) for k in FIELDS), key=len, reverse=True))
# {pid} <pid> ; /proc/PID/ ; -p PID ; systemctl edit UNIT ; set-property UNIT X=
PLACEHOLDER = re.compile(
    r"\{(?P<b>" + _BRACED + r")\}|<(?P<a>" + _BRACED + r")>"
    r"|(?<=/)(?P<u1>PID)(?=/)|(?<=-p )(?P<u2>PID)\b|\b(?P<u3>UNIT|PORT|IFACE)\b(?=\s+[A-Z]\w*=|\)|\s*$)"
    r"|(?<=systemctl edit )(?P<u4>UNIT)\b")


def _value(name: str, subject: dict) -> str | None:
    key = FIELDS.get(name.lower())
    if key is None:
        return None
    v = subject.get(key)
    if v is None and key == "iface":
        v = subject.get("interface") or subject.get("device")
    if v is None or v == "" or isinstance(v, (dict, list)):
        return None
    if key in NUMERIC:   # may sit inside quotes ('sport = :<port>'): digits only
        return str(v) if str(v).isdigit() else None
    return shell.quote(v)


def fill(template: str, subject: dict) -> str | None:
    """The template with its placeholders filled (quoted), or None if one cannot be."""
    missing = False

    def sub(m: re.Match) -> str:
        nonlocal missing
        name = next(g for g in m.groups() if g is not None)
        v = _value(name, subject)
        if v is None:
            missing = True
            return m.group(0)
        return v

    out = PLACEHOLDER.sub(sub, template)
    return None if missing else out


def has_placeholder(text: str) -> bool:
    return bool(PLACEHOLDER.search(text))


_PAREN = re.compile(r"\s*\([^()]*\)")


def _fill_option(text: str, subject: dict) -> str | None:
    """A stabilize option: filled; else without the parenthesised command that cannot be; else None."""
    out = fill(text, subject)
    if out is not None:
        return out
    trimmed = _PAREN.sub(lambda m: "" if has_placeholder(m.group(0)) and fill(m.group(0), subject) is None
                         else m.group(0), text)
    return fill(trimmed, subject)


_JOURNALCTL_K = re.compile(r"journalctl -k(?: --since \S+)?(?: -g ('[^']*'|\S+))?")


def for_host(cmd: str, has_journal: bool) -> str:
    """`journalctl -k [-g PAT]` -> `dmesg -T [| grep -E PAT]` where there is no journal."""
    if has_journal:
        return cmd
    return _JOURNALCTL_K.sub(lambda m: "dmesg -T" + (f" | grep -E {m.group(1)}" if m.group(1) else ""), cmd)


def commands(findings: list[Finding], has_journal: bool = True) -> list[Finding]:
    out = []
    for f in findings:
        subj = f.subject or {}
        verify = fill(for_host(f.verify, has_journal), subj) if f.verify else f.verify
        stab = [x for x in (_fill_option(for_host(s, has_journal), subj) for s in f.stabilize) if x is not None]
        out.append(replace(f, verify=verify or "", stabilize=stab))
    return out


def shape_checks(shapes: list[ShapeMatch], has_journal: bool = True) -> list[ShapeMatch]:
    """A shape's catalog checks and options, filled from its series' labels."""
    out = []
    for m in shapes:
        subj = dict(m.labels)
        checks = [x for x in (fill(for_host(c, has_journal), subj) for c in m.first_checks) if x is not None]
        stab = [x for x in (_fill_option(s, subj) for s in m.stabilize) if x is not None]
        out.append(replace(m, first_checks=checks, stabilize=stab))
    return out

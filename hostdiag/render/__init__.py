"""Renderers: every format reads one Report. Formats are imported lazily (rich only for
the terminal)."""
from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass

FORMATS = ("terminal", "plain", "json", "markdown", "can")


@dataclass(frozen=True)
class Env:
    """What the output looks like where it goes (httpie's Env): injected in tests."""

    stdout_isatty: bool = False
    no_color: bool = False
    width: int = 80
    height: int = 50

    @property
    def pretty(self) -> bool:
        return self.stdout_isatty and not self.no_color

    @classmethod
    def detect(cls, stream) -> "Env":
        tty = bool(stream is not None and hasattr(stream, "isatty") and stream.isatty())
        size = shutil.get_terminal_size((80, 50))
        return cls(stdout_isatty=tty, no_color="NO_COLOR" in os.environ or os.environ.get("TERM") == "dumb",
                   width=max(60, size.columns if tty else 80), height=max(10, size.lines if tty else 50))


def render(report, fmt: str, env: Env = Env(), *, top: int = 5, full: bool = True) -> str:
    """`full=False` is the one-screen view (the CLI's default); json is always complete."""
    if fmt == "json":
        from hostdiag.render import json_ as mod
    elif fmt == "markdown":
        from hostdiag.render import markdown as mod
    elif fmt == "terminal":
        from hostdiag.render import terminal as mod
    elif fmt == "plain":
        from hostdiag.render import plain as mod
    else:
        if fmt == "can":
            return can(report)
        raise ValueError(f"unknown format {fmt!r}; one of {', '.join(FORMATS)}")
    if fmt == "json":
        return mod.render(report, env, top=top)
    return mod.render(report, env, top=top, full=full)


def render_status(report, fmt: str, env: Env = Env()) -> str:
    """The status block alone, styled like `fmt` (repeated after a long report on a TTY)."""
    if fmt == "terminal":
        from hostdiag.render import terminal as mod
    else:
        from hostdiag.render import plain as mod
    return mod.status_block(report, env)


def can(report) -> str:
    """Condition / Action / Need as three lines with the UTC time, for the incident channel."""
    from hostdiag.core.units import parse_rfc3339

    h = report.headline
    t = parse_rfc3339(report.snapshot.collected_at)
    stamp = time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime(t)) if t is not None else report.snapshot.collected_at
    host = report.snapshot.host.hostname
    sev = h.severity.upper() + (" PARTIAL" if report.snapshot.interrupted else "")
    return (f"[{stamp}] CONDITION ({host}, {sev}): {_one_line(h.condition)}\n"
            f"[{stamp}] ACTION: {_one_line(h.action)}\n"
            f"[{stamp}] NEED: {_one_line(h.need)}\n")


def _one_line(text: str) -> str:
    return " ".join(str(text).split())

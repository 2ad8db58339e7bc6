"""Renderers: every format reads one Report. Formats are imported lazily (rich only for
the terminal)."""
from __future__ import annotations

import os
import shutil
from dataclasses import dataclass

FORMATS = ("terminal", "plain", "json", "markdown")


@dataclass(frozen=True)
class Env:
    """What the output looks like where it goes (httpie's Env): injected in tests."""

    stdout_isatty: bool = False
    no_color: bool = False
    width: int = 80

    @property
    def pretty(self) -> bool:
        return self.stdout_isatty and not self.no_color

    @classmethod
    def detect(cls, stream) -> "Env":
        tty = bool(stream is not None and hasattr(stream, "isatty") and stream.isatty())
        width = shutil.get_terminal_size((80, 24)).columns if tty else 80
        return cls(stdout_isatty=tty, no_color="NO_COLOR" in os.environ or os.environ.get("TERM") == "dumb",
                   width=max(60, width))


def render(report, fmt: str, env: Env = Env(), *, top: int = 5) -> str:
    if fmt == "json":
        from hostdiag.render import json_ as mod
    elif fmt == "markdown":
        from hostdiag.render import markdown as mod
    elif fmt == "terminal":
        from hostdiag.render import terminal as mod
    elif fmt == "plain":
        from hostdiag.render import plain as mod
    else:
        raise ValueError(f"unknown format {fmt!r}; one of {', '.join(FORMATS)}")
    return mod.render(report, env, top=top)

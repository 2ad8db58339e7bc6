"""Where journal files are: --journal-dir/--journal-file, files found under --root, or the live journal."""
from __future__ import annotations

import os
import stat
from typing import NamedTuple

from hostdiag.core import isolate
from hostdiag.core.context import Unavailable


class Source(NamedTuple):
    """Where journal files are: kind 'dir' (--journal-dir), 'file' (--journal-file), 'files' (found
    under --root), 'local' (the live system journal)."""

    kind: str
    paths: tuple[str, ...] = ()

    def describe(self) -> str:
        return "local journal" if self.kind == "local" else ", ".join(self.paths)


def find_source(ctx) -> Source | None:
    """The journal to read, or None when there are no journal files (fall back to text logs)."""
    if ctx.journal_path:
        jp = ctx.journal_path
        if why := isolate.answers(jp):
            raise Unavailable(why)
        if os.path.isdir(jp):
            found = _journal_files(jp)
            if not found:
                raise Unavailable(f"{jp}: no journal files (*.journal) in it or its subdirectories")
            if not any(is_journal_file(f) for f in found[-20:]):
                raise Unavailable(f"{jp}: no readable journal file in it (none starts with the journal header)")
            return Source("dir", (jp,))
        if os.path.exists(jp):
            if not is_journal_file(jp):
                raise Unavailable(f"{jp}: not a journal file (no journal header, or not readable)")
            return Source("file", (jp,))
        raise Unavailable(f"{jp}: no such journal file or directory")
    files: list[str] = []
    for d in ("/var/log/journal", "/run/log/journal"):
        files += _journal_files(ctx.root_path(d))
    if not files:
        return None
    if os.path.realpath(ctx.root) == "/":
        return Source("local")
    return Source("files", tuple(sorted(files)[-200:]))   # bounded: the newest-named 200 files


JOURNAL_MAGIC = b"LPKSHHRH"   # systemd journal-def.h: the first 8 bytes of every journal file


def _journal_files(base: str) -> list[str]:
    """*.journal files in base and its immediate subdirectories (the machine-id dirs), sorted."""
    files: list[str] = []
    for sub in _listdir(base) + [""]:
        p = os.path.join(base, sub)
        if sub and not os.path.isdir(p):
            continue
        files += [os.path.join(p, f) for f in _listdir(p) if f.endswith((".journal", ".journal~"))]
    return sorted(files)


def is_journal_file(path: str) -> bool:
    """A regular, readable file starting with the journal magic (never opens a FIFO or device)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        return stat.S_ISREG(os.fstat(fd).st_mode) and os.read(fd, 8) == JOURNAL_MAGIC
    except OSError:
        return False
    finally:
        os.close(fd)


def _listdir(p: str) -> list[str]:
    try:
        return sorted(os.listdir(p))
    except OSError:
        return []

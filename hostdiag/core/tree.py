"""Reading a /proc that may be partial or another host's (issue 9).

A collector whose file is gone still reports what its other files give; the blind spot names
the file and the real cause. "run as root" is said only when permission was the cause and we
are not root: a file missing from a copied tree, or denied to root in a container (no
CAP_SYS_PTRACE), is not fixed by sudo, and the headline turns "run as root" into advice.
"""
from __future__ import annotations

import errno
import os

from hostdiag.core.context import MAX_READ_BYTES, Context


def why(path: str, e: OSError) -> str:
    """An OSError from reading `path`, as the words of a blind spot."""
    if isinstance(e, (FileNotFoundError, NotADirectoryError)):
        return f"{path} missing"
    if isinstance(e, PermissionError):
        if os.geteuid() != 0:
            return f"permission denied reading {path}: run as root"
        return f"permission denied reading {path} even as root (container without CAP_SYS_PTRACE?)"
    if e.errno in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENODEV):
        return f"{path} not supported by this kernel"
    return f"{path} not readable: {e.strerror or e}"


def read(ctx: Context, path: str, limit: int = MAX_READ_BYTES) -> tuple[str | None, str | None]:
    """(text, None), or (None, why) when the file cannot be read for any OS reason."""
    try:
        return ctx.read(path, limit), None
    except OSError as e:
        return None, why(path, e)


def read_proc(ctx: Context, rel: str, missing: list[str] | None = None, limit: int = MAX_READ_BYTES) -> str | None:
    """A /proc file's text, or None with the reason appended to `missing`."""
    text, reason = read(ctx, ctx.proc_path(rel), limit)
    if reason is not None and missing is not None:
        missing.append(reason)
    return text


def page_size(ctx: Context) -> int | None:
    """The page size of the host the Context reads: the live sysconf for the live /proc, else
    from the tree itself (a pid's statm resident pages against its status VmRSS in kB), since
    an arm64 host with 64 KiB pages reads the same from here as an x86 one. None if no pid
    gives both."""
    if os.path.realpath(ctx.proc) == "/proc":
        return os.sysconf("SC_PAGE_SIZE")
    try:
        pids = [n for n in os.listdir(ctx.proc) if n.isdigit()]
    except OSError:
        return None
    for pid in (["self"] if os.path.isdir(ctx.proc_path("self")) else []) + pids[:50]:
        try:
            rss_pages = int(ctx.read(ctx.proc_path(pid, "statm"), 4096).split()[1])
            status = ctx.read(ctx.proc_path(pid, "status"), 1 << 16)
        except (OSError, ValueError, IndexError):
            continue
        rss_kb = next((line.split()[1] for line in status.splitlines() if line.startswith("VmRSS:")), None)
        if rss_pages < 16 or rss_kb is None or not rss_kb.isdigit():
            continue   # kernel threads and tiny processes: the ratio is too coarse
        size = int(rss_kb) * 1024 / rss_pages
        for p in (4096, 16384, 65536):   # the page sizes Linux uses
            if abs(size - p) <= p * 0.01:
                return p
    return None


def psi_blind_spot(ctx: Context, resource: str) -> str:
    """Why /proc/pressure/RESOURCE gave nothing: absent from the kernel (or the copied tree),
    or present and denied."""
    from hostdiag.core.procfs import PSI_ABSENT

    path = ctx.proc_path("pressure", resource)
    _text, reason = read(ctx, path, 4096)
    if reason is None or reason.endswith(" not supported by this kernel"):
        return PSI_ABSENT                       # psi=0: the file is there but EOPNOTSUPP
    if reason.endswith(" missing"):
        return f"{PSI_ABSENT} ({reason})"
    return reason

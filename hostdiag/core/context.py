"""Where collectors read from, and the only helpers they use to read.

Every read goes through a Context so that `--proc-root/--sys-root/--root` can point
hostdiag at a fixture tree or at /host/proc in a container (node_exporter --path.procfs,
psutil PROCFS_PATH). Nothing here writes.
"""
from __future__ import annotations

import errno
import os
import threading
from dataclasses import dataclass, field

# /proc/net/tcp at 50,000 sockets is ~7.5 MB; anything bigger than this is not a /proc file
# we want to hold in memory during an incident.
MAX_READ_BYTES = 64 * 1024 * 1024


class Unavailable(Exception):
    """A collector cannot see its resource at all; the message says why and what would help."""


@dataclass(frozen=True)
class Context:
    proc: str = "/proc"
    sys: str = "/sys"
    root: str = "/"
    timeout_s: float = 2.0
    # Logs: read journal files from here instead of the live journal (evidence from
    # another host, or a test fixture); the window of log time to read (epoch seconds).
    journal_path: str | None = None
    since: float | None = None
    until: float | None = None
    # User signature catalogs laid over the shipped one (--catalog; $HOSTDIAG_SIGNATURES too).
    catalog_dirs: tuple[str, ...] = ()
    # The signature catalog (hostdiag.catalog.Catalog) the command loaded once; None: loaded
    # lazily, once per Context, by hostdiag.catalog.for_context(ctx).
    catalog: object | None = field(default=None, compare=False, hash=False, repr=False)

    def proc_path(self, *parts: str | int) -> str:
        return os.path.join(self.proc, *map(str, parts))

    def sys_path(self, *parts: str) -> str:
        return os.path.join(self.sys, *parts)

    def root_path(self, path: str) -> str:
        """Map an absolute host path (a mount point, /etc/...) under --root."""
        return os.path.join(self.root, path.lstrip("/"))

    @property
    def foreign(self) -> bool:
        """Pointed at a tree other than the live /proc, /sys and / (a container's /host/proc,
        a copied tree): its files may sit on a filesystem whose reads hang."""
        return (os.path.normpath(self.proc), os.path.normpath(self.sys), os.path.normpath(self.root)) \
            != ("/proc", "/sys", "/")

    def read(self, path: str, limit: int = MAX_READ_BYTES) -> str:
        """Read a regular text file, at most `limit` bytes. Raises OSError as-is.

        Never a FIFO, socket or device: the open is O_NONBLOCK and anything but a regular
        file is refused (EINVAL) before a byte is read. Under a foreign tree the read runs in
        the prober child (core/isolate.py), so a hung FUSE/NFS read costs ctx.timeout_s, not
        the process. In chunks: procfs sysctl handlers allocate a buffer of the requested size,
        so one read(64 MiB) of /proc/sys/fs/file-nr fails with ENOMEM.
        """
        if self.foreign:
            from hostdiag.core import isolate

            return isolate.read(path, limit, self.timeout_s).decode("utf-8", "backslashreplace")
        from hostdiag.core.isolate import read_regular

        return read_regular(path, limit).decode("utf-8", "backslashreplace")

    def read_proc(self, rel: str, limit: int = MAX_READ_BYTES) -> str:
        """Read a /proc file every supported kernel has; missing or unreadable -> Unavailable."""
        path = self.proc_path(rel)
        try:
            return self.read(path, limit)
        except (FileNotFoundError, NotADirectoryError):
            raise Unavailable(f"{path} missing: is /proc mounted?") from None
        except PermissionError:
            raise Unavailable(f"permission denied reading {path}: run as root") from None
        except OSError as e:    # a FIFO or device where a file belongs (EINVAL), a hung read (timeout)
            raise Unavailable(f"{path} not readable: {e.strerror or e}") from None

    def read_optional(self, path: str, limit: int = MAX_READ_BYTES) -> str | None:
        """Read a file that may legitimately be absent (PSI, cgroup files): None if so."""
        try:
            return self.read(path, limit)
        except (FileNotFoundError, NotADirectoryError, PermissionError):
            return None
        except OSError as e:
            # EOPNOTSUPP: /proc/pressure/* exists but PSI is disabled (psi=0).
            if e.errno in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENODEV):
                return None
            raise


class Deadline:
    """A per-unit time budget that loops check, like sos's _timeout_hit."""

    def __init__(self, seconds: float, clock=None):
        import time

        self._clock = clock or time.monotonic
        self.end = self._clock() + seconds
        self.cancelled = threading.Event()

    def expired(self) -> bool:
        return self.cancelled.is_set() or self._clock() >= self.end

    def remaining(self) -> float:
        return max(0.0, self.end - self._clock())


def bounded(fn, timeout_s: float, *args):
    """Run fn(*args) in a daemon thread and return its result within timeout_s.

    Raises TimeoutError if it has not finished, else whatever fn raised. A daemon thread,
    not ThreadPoolExecutor: a hung statvfs on a dead NFS mount must not keep the
    interpreter waiting at exit (concurrent.futures joins its workers atexit).
    """
    box: list = []

    def target():
        try:
            box.append((True, fn(*args)))
        except BaseException as e:  # handed to the caller, who decides
            box.append((False, e))

    t = threading.Thread(target=target, daemon=True, name=f"hostdiag-{getattr(fn, '__name__', 'call')}")
    t.start()
    t.join(timeout_s)
    if not box:
        raise TimeoutError(f"timed out after {timeout_s:g}s")
    ok, value = box[0]
    if ok:
        return value
    raise value

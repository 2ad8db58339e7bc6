"""The only way hostdiag writes a file: a path the user named (--output, the capture store, a
bundle), opened so that it cannot be turned against the host.

hostdiag runs as root on a sick host, often from a shared /tmp. So a target is refused when it
is (or resolves into) /proc, /sys or /dev, when it exists and is not a regular file (symlink,
FIFO, device, directory), or when it exists and `force` was not given. New files are created
0600 (reports carry command lines) with O_EXCL|O_NOFOLLOW into a temporary name in the target's
own directory, then linked (no force: never clobbers, even in a race) or renamed over it.
`check_target` runs before any collection, so a bad path costs nothing.
"""
from __future__ import annotations

import os
import stat

from hostdiag.core import isolate

FORBIDDEN = ("/proc", "/sys", "/dev")
_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


class UnsafePath(ValueError):
    """A write target hostdiag refuses; the message says why, for a one-line usage error."""


def _forbidden(path: str) -> str | None:
    for top in FORBIDDEN:
        if path == top or path.startswith(top + "/"):
            return top
    return None


def _foreign_link(absolute: str) -> str | None:
    """The first directory symlink on the way to `absolute` owned by a uid other than root or us.

    O_NOFOLLOW guards only the last component: `/tmp/x -> /etc` planted by another user turns
    `-o /tmp/x/passwd --force` into a write in /etc (fs.protected_symlinks is often 0)."""
    me = os.geteuid()
    cur = "/"
    for part in absolute.strip("/").split("/")[:-1]:
        cur = os.path.join(cur, part)
        try:
            st = os.lstat(cur)
        except OSError:
            return None
        if stat.S_ISLNK(st.st_mode) and st.st_uid not in (0, me):
            return cur
    return None


def _refuse_place(shown: str, absolute: str, real: str) -> None:
    """/proc, /sys and /dev (as named or as resolved), and other users' directory links, are
    never written through."""
    top = _forbidden(absolute) or _forbidden(real)
    if top:
        raise UnsafePath(f"{shown}: refusing to write under {top}")
    link = _foreign_link(absolute)
    if link:
        raise UnsafePath(f"{shown}: {link} is a symbolic link owned by another user; refusing to follow it")


def check_target(path: str | os.PathLike, *, force: bool = False) -> str:
    """Validate a file target and return its absolute path; raise UnsafePath otherwise."""
    raw = os.fspath(path)
    if not raw or raw.endswith("/"):
        raise UnsafePath(f"{raw!r}: not a file name")
    absolute = os.path.abspath(raw)
    parent = os.path.dirname(absolute)
    if why := isolate.answers(parent):
        raise UnsafePath(f"{raw}: directory {why}")
    real_parent = os.path.realpath(parent)
    _refuse_place(raw, absolute, real_parent)
    try:
        pst = os.stat(real_parent)
    except FileNotFoundError:
        raise UnsafePath(f"{raw}: directory {parent} does not exist") from None
    except OSError as e:
        raise UnsafePath(f"{raw}: cannot use directory {parent}: {e.strerror}") from None
    if not stat.S_ISDIR(pst.st_mode):
        raise UnsafePath(f"{raw}: {parent} is not a directory")
    if not os.access(real_parent, os.W_OK | os.X_OK):
        raise UnsafePath(f"{raw}: directory {parent} is not writable")
    try:
        st = os.lstat(absolute)
    except FileNotFoundError:
        return absolute
    except OSError as e:
        raise UnsafePath(f"{raw}: {e.strerror}") from None
    if stat.S_ISLNK(st.st_mode):
        raise UnsafePath(f"{raw}: is a symbolic link; refusing to follow it")
    if not stat.S_ISREG(st.st_mode):
        kind = "a directory" if stat.S_ISDIR(st.st_mode) else "not a regular file"
        raise UnsafePath(f"{raw}: is {kind}")
    if not force:
        raise UnsafePath(f"{raw}: exists; pass --force to replace it")
    return absolute


def _tmp_name(absolute: str) -> str:
    d, base = os.path.split(absolute)
    return os.path.join(d, f".{base}.{os.getpid()}.{os.urandom(4).hex()}.tmp")


def write_file(path: str | os.PathLike, data: bytes, *, force: bool = False) -> str:
    """Write `data` to `path` whole or not at all (0600, never through a link); return the path."""
    absolute = check_target(path, force=force)
    tmp = _tmp_name(absolute)
    fd = os.open(tmp, _CREATE, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        _publish(tmp, absolute, force)
    except BaseException:
        _unlink_quietly(tmp)
        raise
    return absolute


def _publish(tmp: str, absolute: str, force: bool) -> None:
    if not force:
        try:
            os.link(tmp, absolute)          # fails with EEXIST if someone raced a file (or link) in
        except FileExistsError:
            raise UnsafePath(f"{absolute}: appeared while writing; not replaced") from None
        _unlink_quietly(tmp)
        return
    check_target(absolute, force=True)      # still a regular file (or absent) right before the swap
    os.rename(tmp, absolute)


def _unlink_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


class ExclusiveFile:
    """A new file for streaming writes (a bundle): created 0600 with O_EXCL|O_NOFOLLOW under a
    temporary name and published on close(); abort() removes it. Never replaces a file."""

    def __init__(self, path: str | os.PathLike):
        self.path = check_target(path, force=False)
        self._tmp = _tmp_name(self.path)
        self._f = os.fdopen(os.open(self._tmp, _CREATE, 0o600), "wb")

    def write(self, b: bytes) -> int:
        return self._f.write(b)

    def flush(self) -> None:
        self._f.flush()

    def close(self) -> None:
        if self._f.closed:
            return
        try:
            self._f.flush()
            os.fsync(self._f.fileno())
            self._f.close()
        except BaseException:   # ENOSPC at the last flush: leave no temporary behind
            self.abort()
            raise
        try:
            _publish(self._tmp, self.path, force=False)
        except BaseException:
            _unlink_quietly(self._tmp)
            raise

    def abort(self) -> None:
        try:
            if not self._f.closed:
                self._f.close()     # may raise again (the buffered bytes still do not fit)
        except OSError:
            pass
        finally:
            _unlink_quietly(self._tmp)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.close()
        else:
            self.abort()


def private_dir(path: str | os.PathLike) -> str:
    """Create a directory (and missing parents) 0700 if absent; refuse links and /proc,/sys,/dev.
    An existing directory is used as it is (its mode is the admin's choice)."""
    absolute = os.path.abspath(os.fspath(path))
    _refuse_place(absolute, absolute, os.path.realpath(absolute))
    try:
        st = os.lstat(absolute)
    except FileNotFoundError:
        os.makedirs(absolute, mode=0o700, exist_ok=True)
        return absolute
    if stat.S_ISLNK(st.st_mode) or not stat.S_ISDIR(st.st_mode):
        raise UnsafePath(f"{absolute}: is not a directory (or is a link)")
    return absolute

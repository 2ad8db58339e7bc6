"""Calls that can hang in the kernel, run where a hang cannot keep hostdiag alive.

statfs() on a FUSE or NFS mount whose server does not answer waits uninterruptibly: a thread
stuck there keeps the whole process from exiting (a daemon thread does not help; even exit_group
leaves a zombie until the server answers). So such calls run in a small forked child, the
"prober". When a call overruns its bound, hostdiag abandons that child (it is never signalled:
it exits by itself on EOF, or when the kernel call finally returns) and starts a fresh one for
the next call. The path is then reported as a blind spot by the caller.

The child runs only builtins (os, marshal) so that forking a threaded interpreter is safe, and
closes every inherited fd but its two pipes: a stuck child must not hold the report's stdout
(an `ssh host hostdiag ...` would never end).
"""
from __future__ import annotations

import errno
import marshal
import os
import select
import stat as statmod
import struct
import threading

# A read reply carries up to the caller's limit (context.MAX_READ_BYTES, 64 MiB): /proc/net/tcp
# of a host with 10k sockets is already ~1.5 MiB. The child never sends more than this.
MAX_REPLY = 64 << 20
READ_CHUNK = 256 * 1024
_HDR = struct.Struct("!I")
# A few abandoned children are fine; an endless supply of hung mounts must not fork-bomb the host.
MAX_ABANDONED = 8


def read_regular(path: str, limit: int) -> bytes:
    """Up to `limit` bytes of a regular file; OSError(EINVAL) for a FIFO, socket or device.
    O_NONBLOCK, so opening a FIFO cannot wait for a writer before the check refuses it."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    try:
        if not statmod.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "not a regular file", path)
        chunks, left = [], limit
        while left > 0:
            b = os.read(fd, min(left, READ_CHUNK))
            if not b:
                break
            chunks.append(b)
            left -= len(b)
        return b"".join(chunks)
    finally:
        os.close(fd)


def _child_call(op: str, arg):
    if op == "statvfs":
        st = os.statvfs(arg)
        return tuple(st)
    if op == "fsinfo":
        st = os.stat(arg)
        return (tuple(os.statvfs(arg)), os.major(st.st_dev), os.minor(st.st_dev))
    if op == "stat":
        st = os.stat(arg)
        return (st.st_mode, st.st_dev, st.st_ino, st.st_size, st.st_mtime)
    if op == "read":
        path, limit = arg
        return read_regular(path, min(limit, MAX_REPLY))
    raise ValueError(f"unknown op {op!r}")


def _read_exact(fd: int, n: int) -> bytes:
    buf = bytearray()       # not bytes +=: a 64 MiB reply in 64 KiB pipe reads was quadratic (seconds)
    while len(buf) < n:
        b = os.read(fd, min(n - len(buf), 1 << 20))
        if not b:
            raise EOFError
        buf += b
    return bytes(buf)


def _child_loop(req: int, rep: int) -> None:  # pragma: no cover - runs in the forked child
    while True:
        try:
            (n,) = _HDR.unpack(_read_exact(req, _HDR.size))
            op, arg = marshal.loads(_read_exact(req, n))
        except (EOFError, OSError, ValueError):
            return
        try:
            out = (True, _child_call(op, arg))
        except OSError as e:
            out = (False, (e.errno or 0, e.strerror or str(e), getattr(e, "filename", None)))
        except Exception as e:  # noqa: BLE001 - reported to the parent as text
            out = (False, (0, f"{type(e).__name__}: {e}", None))
        data = marshal.dumps(out)
        try:
            os.write(rep, _HDR.pack(len(data)) + data)
        except OSError:
            return


class Prober:
    """One forked helper child at a time; call() returns the result or raises OSError/TimeoutError."""

    def __init__(self):
        self._lock = threading.Lock()
        self._pid: int | None = None
        self._req = self._rep = -1
        self.abandoned = 0

    def _start(self) -> None:
        req_r, req_w = os.pipe()
        rep_r, rep_w = os.pipe()
        lo, hi = sorted((req_r, rep_w))
        maxfd = os.sysconf("SC_OPEN_MAX") if hasattr(os, "sysconf") else 1024
        pid = os.fork()
        if pid == 0:  # pragma: no cover - child
            try:
                # never an empty range: os.closerange(0, 0) closes fd 0 (3.11 falls back to a
                # close loop when close_range fails), and fd 0 is our pipe when stdin was closed
                for a, b in ((0, lo), (lo + 1, hi), (hi + 1, maxfd)):
                    if a < b:
                        os.closerange(a, b)
                _child_loop(req_r, rep_w)
            finally:
                os._exit(0)
        os.close(req_r)
        os.close(rep_w)
        os.set_inheritable(req_w, False)
        os.set_inheritable(rep_r, False)
        self._pid, self._req, self._rep = pid, req_w, rep_r

    def _abandon(self) -> None:
        for fd in (self._req, self._rep):
            try:
                os.close(fd)
            except OSError:
                pass
        self._pid, self._req, self._rep = None, -1, -1
        self.abandoned += 1

    def _reap(self) -> None:
        try:  # abandoned children that have since finished; never waits
            while os.waitpid(-1, os.WNOHANG)[0] > 0:
                pass
        except ChildProcessError:
            pass

    def call(self, op: str, arg, timeout_s: float):
        with self._lock:
            if self.abandoned >= MAX_ABANDONED:
                raise TimeoutError(f"{self.abandoned} probe calls already hung: not starting more")
            if self._pid is None:
                self._start()
            data = marshal.dumps((op, arg))
            try:
                os.write(self._req, _HDR.pack(len(data)) + data)
                # poll, not select: pipes past fd 1023 (a parent that leaked fds) made select raise
                poller = select.poll()
                poller.register(self._rep, select.POLLIN)
                if not poller.poll(max(0, int(timeout_s * 1000))):
                    self._abandon()
                    path = arg[0] if isinstance(arg, tuple) else arg
                    raise TimeoutError(f"{op} {path} did not answer within {timeout_s:g}s "
                                       "(hung NFS/FUSE server?)")
                (n,) = _HDR.unpack(_read_exact(self._rep, _HDR.size))
                if n > MAX_REPLY + 64:
                    # its body is still in the pipe: the next call would read it as a header
                    # (every later collector failed with "bad marshal data"), so drop this child
                    self._abandon()
                    raise OSError(f"probe reply too large ({n} bytes)")
                try:
                    ok, value = marshal.loads(_read_exact(self._rep, n))
                except ValueError:
                    self._abandon()
                    raise OSError("probe reply corrupt") from None
            except (EOFError, BrokenPipeError):
                self._abandon()
                raise OSError("probe child died") from None
            finally:
                self._reap()
        if ok:
            return value
        errno_, msg, filename = value
        raise OSError(errno_, msg, filename) if errno_ else OSError(msg)

    def close(self) -> None:
        with self._lock:
            if self._pid is not None:
                self._abandon()
                self.abandoned -= 1
            self._reap()


_PROBER: Prober | None = None
_PROBER_LOCK = threading.Lock()


def prober() -> Prober:
    global _PROBER
    with _PROBER_LOCK:
        if _PROBER is None:
            _PROBER = Prober()
        return _PROBER


def statvfs(path: str, timeout_s: float) -> os.statvfs_result:
    """os.statvfs in the prober child, within timeout_s (TimeoutError otherwise)."""
    return os.statvfs_result(prober().call("statvfs", path, timeout_s))


def fsinfo(path: str, timeout_s: float) -> tuple[os.statvfs_result, str]:
    """(statvfs, 'MAJ:MIN' of the path's device) in one prober round trip."""
    vfs, major, minor = prober().call("fsinfo", path, timeout_s)
    return os.statvfs_result(vfs), f"{major}:{minor}"


def stat(path: str, timeout_s: float) -> tuple[int, int, int, int, float]:
    """(st_mode, st_dev, st_ino, st_size, st_mtime) of path, following links, in the prober."""
    return tuple(prober().call("stat", path, timeout_s))


def read(path: str, limit: int, timeout_s: float) -> bytes:
    """Up to `limit` bytes of a regular file, read in the prober (O_NONBLOCK, S_ISREG checked:
    a FIFO or device is refused with EINVAL, a hung FUSE read costs the child)."""
    return prober().call("read", (path, limit), timeout_s)


# A path the user named (--catalog, --journal-dir, --store, -o, --pcap-in) is touched here first.
PATH_PROBE_S = 1.0     # under the default 2 s collector bound, so the reason names the path


def answers(path: str, timeout_s: float = PATH_PROBE_S) -> str | None:
    """None when stat(path) returns or fails within timeout_s, else why not: a named path on a
    dead NFS/FUSE mount then costs seconds and a sentence, not the run (a thread stuck in its
    lookup would keep hostdiag alive until the server answers)."""
    try:
        stat(path, timeout_s)
    except TimeoutError:
        return f"{path} did not answer within {timeout_s:g}s (hung NFS/FUSE mount?)"
    except OSError:
        pass
    return None


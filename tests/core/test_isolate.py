"""isolate: blocking kernel calls run in an abandonable child, so a hung mount cannot keep
hostdiag alive. The FUSE tests mount a real filesystem whose statfs/read never answer, in a
private mount namespace (nothing is visible to the rest of the host)."""
from __future__ import annotations

import os
import sys

import pytest

from hostdiag.core import isolate
from support import fuse_unavailable, run_with_hung_mount



def test_statvfs_stat_read_and_errors(tmp_path):
    assert isolate.statvfs("/", 2.0).f_bsize == os.statvfs("/").f_bsize
    (tmp_path / "f").write_bytes(b"hello")
    mode, dev, ino, size, _ = isolate.stat(str(tmp_path / "f"), 2.0)
    assert (dev, ino, size) == (os.stat(tmp_path / "f").st_dev, os.stat(tmp_path / "f").st_ino, 5)
    assert isolate.read(str(tmp_path / "f"), 3, 2.0) == b"hel"
    with pytest.raises(OSError) as e:
        isolate.statvfs(str(tmp_path / "missing"), 2.0)
    assert e.value.errno == 2


def test_fifo_read_does_not_block(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(OSError) as e:                           # refused, never waited on
        isolate.read(str(fifo), 100, 2.0)
    assert e.value.errno == 22


def test_child_holds_no_inherited_fds():
    """A stuck child must not keep the report's stdout open (ssh would never return)."""
    isolate.statvfs("/", 2.0)
    pid = isolate.prober()._pid
    fds = {int(x) for x in os.listdir(f"/proc/{pid}/fd")}
    assert len(fds) == 2 and not fds & {0, 1, 2}


@pytest.mark.skipif(fuse_unavailable() is not None, reason=str(fuse_unavailable()))
def test_hung_statfs_and_read_do_not_hold_the_process(tmp_path):
    code = ("import time; from hostdiag.core import isolate; t=time.monotonic()\n"
            "for op in (lambda: isolate.statvfs('$MNT', 0.5), lambda: isolate.read('$MNT/f', 10, 0.5)):\n"
            "    try: op(); print('answered')\n"
            "    except TimeoutError: print('timeout')\n"
            "print('root ok', isolate.statvfs('/', 2).f_bsize > 0)\n")
    # run_with_hung_mount's timeout fails the test if the process waits for the server forever
    p = run_with_hung_mount(tmp_path, f'{sys.executable} -c "{code}"; echo rc=$?')
    assert p.stdout.split() == ["timeout", "timeout", "root", "ok", "True", "rc=0"], p.stdout + p.stderr


def test_big_read_and_an_oversized_reply_do_not_break_later_calls(tmp_path, monkeypatch):
    """Under --proc-root every read goes through the prober. A /proc/net/tcp over 1 MiB (a host
    with ~7k sockets) was refused as "probe reply too large" and its body left in the pipe, so
    every later call (cpu, network, processes) failed with "bad marshal data": one big file
    under /host/proc took most of the report down with it."""
    big = tmp_path / "tcp"
    big.write_bytes(b"x" * (3 << 20))
    assert isolate.read(str(big), 64 << 20, 2.0) == big.read_bytes()
    (tmp_path / "small").write_bytes(b"ok")
    monkeypatch.setattr(isolate, "MAX_REPLY", 1 << 20)      # the parent's bound, lowered for the test
    with pytest.raises(OSError, match="too large"):
        isolate.read(str(big), 64 << 20, 2.0)
    for _ in range(3):
        assert isolate.read(str(tmp_path / "small"), 100, 2.0) == b"ok"

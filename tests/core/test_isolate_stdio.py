"""The prober child keeps exactly its two pipes, whatever fds hostdiag was started with."""
from __future__ import annotations

import json
import os
import resource
import subprocess
import sys

import pytest


def test_prober_works_when_started_with_stdin_closed():
    """cron, a supervisor or `hostdiag ... <&-` can start hostdiag with fd 0 closed: the prober's
    first pipe is then fd 0, and os.closerange(0, 0) closed it (Python 3.11 falls back to a close
    loop when close_range(0, -1) fails), so every statvfs failed with "probe child died"."""
    code = "from hostdiag.core import isolate; print(isolate.statvfs('/', 5.0).f_bsize)"
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                       preexec_fn=lambda: os.close(0), env=dict(os.environ, PYTHONDONTWRITEBYTECODE="1"))
    assert p.returncode == 0 and int(p.stdout) == os.statvfs("/").f_bsize, p.stderr


def test_snapshot_with_stdin_closed_measures_disks():
    p = subprocess.run([sys.executable, "-m", "hostdiag", "snapshot", "--json", "--only", "disk", "--window", "0"],
                       capture_output=True, text=True, timeout=60, preexec_fn=lambda: os.close(0),
                       env=dict(os.environ, PYTHONDONTWRITEBYTECODE="1"))
    disk = json.loads(p.stdout)["sections"]["disk"]
    assert "probe child died" not in (disk["reason"] or ""), disk["reason"]
    assert any(r["mount"] == "/" and r["size_bytes"] for r in disk["data"]["filesystems"])



def test_prober_works_when_started_with_1100_inherited_fds():
    """A parent that leaks fds (a supervisor, a shell with many open files) makes the prober's
    pipes fd >= 1024, where select.select raised "filedescriptor out of range": every statvfs
    (and every --proc-root read) then failed as a hostdiag bug."""
    if resource.getrlimit(resource.RLIMIT_NOFILE)[1] < 1200:
        pytest.skip("the hard fd limit is below 1200 here")
    code = ("import os, resource, sys\n"
            "hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]\n"
            "resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 4096), hard))\n"
            "for _ in range(1100): os.set_inheritable(os.open('/dev/null', os.O_RDONLY), True)\n"
            "os.execv(sys.executable, [sys.executable, '-m', 'hostdiag', 'snapshot', '--json', '--only', 'disk',"
            " '--window', '0'])\n")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                       env=dict(os.environ, PYTHONDONTWRITEBYTECODE="1"))
    disk = json.loads(p.stdout)["sections"]["disk"]
    assert "out of range" not in json.dumps(disk), disk["reason"]
    assert any(r["mount"] == "/" and r["size_bytes"] for r in disk["data"]["filesystems"]), disk["reason"]

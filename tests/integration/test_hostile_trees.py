"""Trees that try to hang hostdiag: --proc-root full of FIFOs, --root on a filesystem whose
reads never answer (a real FUSE server, in a private mount namespace). The snapshot must end
with a report and name what it could not read (issue: hardening)."""
from __future__ import annotations

import json
import os
import shutil
import sys

import pytest

from support import FIXTURES, cli, fuse_unavailable, run_with_hung_mount


def test_proc_root_of_fifos_is_refused_not_waited_on(tmp_path):
    tree = tmp_path / "host"
    shutil.copytree(FIXTURES / "sockets_closewait", tree, symlinks=True)
    for rel in ("proc/meminfo", "proc/stat", "proc/loadavg", "proc/net/tcp", "proc/sys/fs/file-nr"):
        p = tree / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        if p.exists() or p.is_symlink():
            p.unlink()
        os.mkfifo(p)                     # nobody will ever write: an open for reading would block
    p = cli("snapshot", "--json", "--window", "0", "--proc-root", str(tree / "proc"),
            "--sys-root", str(tree / "sys"), "--root", str(tree), timeout=60)
    assert p.returncode in (0, 1, 2, 3) and "Traceback" not in p.stderr, p.stderr
    doc = json.loads(p.stdout)
    reasons = " ".join(b["reason"] for b in doc["blind_spots"])
    assert "not a regular file" in reasons or "meminfo" in reasons, reasons


def test_root_on_a_hung_filesystem_still_reports(tmp_path):
    why = fuse_unavailable()
    if why:
        pytest.skip(why)
    # `timeout -s KILL` only guards the test; hostdiag's own bounds must end the run.
    p = run_with_hung_mount(tmp_path, f"timeout -s KILL 40 {sys.executable} -m hostdiag snapshot --json "
                                      "--window 0 --timeout 1 --root $MNT; echo rc=$?", timeout=90)
    body, _, rc = p.stdout.rpartition("rc=")
    assert rc.strip() in ("0", "1", "2", "3"), p.stdout[-2000:] + p.stderr
    doc = json.loads(body)
    assert doc["host"]["os"] in ("?", "", None) or "timed out" in json.dumps(doc["blind_spots"])
    assert "Traceback" not in p.stderr

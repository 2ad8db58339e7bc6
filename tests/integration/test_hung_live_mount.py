"""A dead FUSE server under the LIVE /proc (not --root): processes on the host use the mount
(cwd, open files) and then every call into it hangs, like a dead NFS server. hostdiag reads
/proc/PID/fd of those processes; anything that follows a link into the mount (stat, open,
realpath) waits in the kernel, and a thread stuck there keeps hostdiag from ever exiting.
`timeout -s KILL` only guards the test: rc=137 means hostdiag's own bounds did not end the run."""
from __future__ import annotations

import json
import sys

import pytest

from support import fuse_unavailable, run_with_hung_mount

GUARD = 40


def _snapshot_beside(tmp_path, victims: str, args: str) -> tuple[dict, str]:
    why = fuse_unavailable()
    if why:
        pytest.skip(why)
    body = f"""
        exec >/dev/null 2>&1 </dev/null    # the victims must not hold the test's pipes
        {victims}
        sleep 0.3; touch "$DEAD"; sleep 1.5      # the server dies; cached attributes expire (1 s)
        timeout -s KILL {GUARD} {sys.executable} -m hostdiag snapshot --json {args} >"$MNT/../out" 2>"$MNT/../err"
        echo rc=$? >"$MNT/../rc"
        kill $(jobs -p) 2>/dev/null
    """
    # stdout goes to a file: a process stuck on the mount would hold a pipe open until the server dies
    p = run_with_hung_mount(tmp_path, body, timeout=GUARD + 40)
    rc = (tmp_path / "rc").read_text().partition("rc=")[2].strip()
    err = (tmp_path / "err").read_text()
    assert rc in ("0", "1", "2"), f"rc={rc} (137: hung until the guard killed it) {p.stderr[-2000:]} {err[-2000:]}"
    assert "Traceback" not in err, err
    return json.loads((tmp_path / "out").read_text()), err


def test_open_file_named_deleted_on_a_hung_mount_does_not_hold_hostdiag(tmp_path):
    """readlink of /proc/PID/fd/N ends in " (deleted)" for an unlinked file and for any file a user
    named so; the process scan then stat()s through the link for its size. On a dead mount that
    stat never returned: the scan stopped at its bound, missing every later process, and hostdiag
    never exited."""
    doc, _ = _snapshot_beside(tmp_path, 'sleep 120 < "$MNT/x (deleted)" &', "--only disk,processes --window 1")
    reasons = " ".join(b["reason"] for b in doc["blind_spots"])
    assert "process scan stopped" not in reasons, reasons
    assert "open deleted file(s) did not return" in reasons, reasons        # said, not silently skipped
    assert any(r["mount"] == "/" and r["size_bytes"] for r in doc["sections"]["disk"]["data"]["filesystems"])


def test_cwd_and_open_file_on_a_hung_mount_do_not_hold_hostdiag(tmp_path):
    """The plain cases held already: readlink of cwd and fd links does not enter the filesystem."""
    doc, _ = _snapshot_beside(tmp_path, '(cd "$MNT" && exec sleep 120) & sleep 120 < "$MNT/f" &',
                              "--window 1")
    mnt = str(tmp_path / "mnt")
    assert doc["sections"]["disk"]["data"]["stuck_mounts"] == [mnt]
    reasons = " ".join(b["reason"] for b in doc["blind_spots"])
    assert "process scan stopped" not in reasons, reasons

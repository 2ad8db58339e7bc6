"""Run as an unprivileged user: the snapshot completes and says what it could not see."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from support import IS_ROOT

pytestmark = pytest.mark.skipif(not IS_ROOT or shutil.which("setpriv") is None,
                                reason="needs root to drop to nobody (setpriv from util-linux)")


def as_nobody(*args):
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONDONTWRITEBYTECODE": "1", "HOME": "/nonexistent"}
    return subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                           sys.executable, "-m", "hostdiag", *args],
                          capture_output=True, text=True, env=env, timeout=60, cwd="/")


def test_snapshot_as_nobody_reports_blind_spots_not_tracebacks():
    p = as_nobody("snapshot", "--json", "--window", "1", "--interval", "0.5")
    if "Permission denied" in p.stderr and "python" in p.stderr.lower():
        pytest.skip("the interpreter or venv is not readable by nobody here")
    assert p.returncode in (0, 1, 2), p.stderr
    assert "Traceback" not in p.stderr
    doc = json.loads(p.stdout)
    assert doc["host"]["euid"] == 65534
    reasons = " ".join(b["reason"] for b in doc["blind_spots"])
    assert "root" in reasons, doc["blind_spots"]   # e.g. "run as root to see per-process open files"
    assert all(not b["reason"].startswith("hostdiag bug") for b in doc["blind_spots"]), doc["blind_spots"]
    assert doc["sections"]["cpu"]["status"] in ("ok", "partial")


def test_plain_report_as_nobody_has_a_need_line():
    p = as_nobody("snapshot", "--window", "0", "--plain")
    if "Permission denied" in p.stderr and "python" in p.stderr.lower():
        pytest.skip("the interpreter or venv is not readable by nobody here")
    assert p.returncode in (0, 1, 2), p.stderr
    assert "Need:" in p.stdout and "root" in p.stdout

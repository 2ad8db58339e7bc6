"""One hostdiag.pyz per test session, built by packaging/build-pyz with Debian's python3."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def pyz(tmp_path_factory):
    if not os.access("/usr/bin/python3", os.X_OK):
        pytest.skip("no /usr/bin/python3 (the host python the pyz targets)")
    out = tmp_path_factory.mktemp("pyz") / "hostdiag.pyz"
    p = subprocess.run(["/usr/bin/python3", str(ROOT / "packaging" / "build-pyz"), "--out", str(out)],
                       capture_output=True, text=True, timeout=300)
    if p.returncode != 0 and ("Could not" in p.stderr or "No matching distribution" in p.stderr):
        pytest.skip(f"wheels not downloadable here: {p.stderr.strip().splitlines()[-1]}")
    assert p.returncode == 0, p.stderr
    return out

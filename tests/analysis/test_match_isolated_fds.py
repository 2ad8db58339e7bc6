"""The matcher child's pipes can be past fd 1023 when hostdiag inherits many fds (a leaky
supervisor): select.select raised "filedescriptor out of range" there, and every shape went
to a blind spot."""
from __future__ import annotations

import os
import resource
import subprocess
import sys

import pytest

CODE = """
import os, resource
hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 4096), hard))
held = [os.open("/dev/null", os.O_RDONLY) for _ in range(1100)]
from hostdiag.analysis.shapes import match_isolated
from hostdiag.catalog import load
from hostdiag.core.model import Series
n = 60
s = Series("processes.fds", "count", [float(i) for i in range(n)], [100.0 + 20 * i for i in range(n)],
           {"pid": "42", "name": "app"}, t0=1.7e9)
print([m.signature for m in match_isolated({s.key: s}, load())])
"""


def test_shape_matching_works_with_1100_inherited_fds():
    if resource.getrlimit(resource.RLIMIT_NOFILE)[1] < 1200:
        pytest.skip("the hard fd limit is below 1200 here")
    p = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, timeout=120,
                       env=dict(os.environ, PYTHONDONTWRITEBYTECODE="1"))
    assert p.returncode == 0, p.stderr[-2000:]
    assert "files.fd_leak" in p.stdout, p.stdout

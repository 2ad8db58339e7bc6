"""Shape matching is isolated: under a real address-space limit, numpy failing to import or
OpenBLAS failing to allocate becomes a "signatures: unavailable" blind spot, and the report
still prints with an exit status from its findings (0-2), never 3 and never nothing."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

ENV = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
ENV.pop("OPENBLAS_NUM_THREADS", None)
ENV.pop("OMP_NUM_THREADS", None)


def _snapshot_under(limit_kib: int, window: float = 10, interval: float = 1) -> subprocess.CompletedProcess:
    cmd = (f"ulimit -v {limit_kib}; exec {sys.executable} -m hostdiag snapshot --window {window:g} --interval {interval:g} "
           f"--plain --full --only cpu,memory,sockets,processes")
    return subprocess.run(["bash", "-c", cmd], capture_output=True, text=True, env=ENV, timeout=90)


def test_300mb_address_space_prints_a_report():
    p = _snapshot_under(300000)
    assert p.returncode in (0, 1, 2), p.stdout[-2000:] + p.stderr
    assert "STATUS: " in p.stdout and "BLIND SPOTS" in p.stdout
    if "shape matching failed" in p.stdout:           # numpy could not run here: named, not fatal
        assert "signatures (unavailable)" in p.stdout


def test_numpy_failing_under_a_lower_limit_is_a_named_blind_spot():
    """Where the interpreter still starts but numpy cannot import or allocate (about 110-150 MB
    on the test machine), the report names the blind spot and keeps its exit status."""
    seen = []
    for limit in (150000, 130000, 120000, 110000):
        p = _snapshot_under(limit, window=3, interval=0.25)
        if "STATUS: " not in p.stdout:          # the interpreter itself did not fit: not our case
            continue
        assert p.returncode in (0, 1, 2), p.stdout[-2000:] + p.stderr
        if "signatures (unavailable): shape matching failed" in p.stdout:
            seen.append(limit)
            break
    if not seen:
        pytest.skip("numpy fit under every limit tried on this machine")

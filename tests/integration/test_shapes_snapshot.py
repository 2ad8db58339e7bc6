"""Snapshot series go through the matcher: a real ramp on the host is named, and a user's own
archetype file (--catalog) is matched without touching code."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import pytest

from support import cli_json
from hostdiag.core.model import Series
from hostdiag.analysis.shapes import material

SPAWNER = textwrap.dedent("""
    import signal, subprocess, sys, time
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))  # so `finally` kills and reaps the kids
    kids = []
    try:
        for _ in range(45):  # one more sleeping child every 0.15 s: processes.tasks ramps up
            kids.append(subprocess.Popen(["sleep", "60"]))
            time.sleep(0.15)
        time.sleep(60)
    finally:
        for k in kids:
            k.kill()
        for k in kids:
            k.wait()
""")

USER_ARCHETYPE = textwrap.dedent("""
    id = "user.process_count_ramp"
    kind = "shape"
    title = "Process count climbs steadily (our batch spawner runaway)"
    owner = "team-batch"
    shapes = ["ramp", "stair_step"]
    metrics = ["processes.tasks"]
    thresholds = { direction = "up" }
    looks_like = "tasks climb by one every few hundred ms"
    likely_causes = ["spawner retry loop"]
    first_checks = ["ps -eo ppid= | sort | uniq -c | sort -rn | head"]
    stabilize = ["pause the spawner's queue consumer"]
    avoid = ["raising pid_max"]
    runbook = "https://runbooks.example/batch-spawner"
    [[examples]]
    values = [80, 82, 84, 86, 88, 90, 92, 94, 96, 98, 100, 102]
""")


@pytest.fixture
def spawner():
    p = subprocess.Popen([sys.executable, "-c", SPAWNER], start_new_session=True)
    yield p
    p.terminate()  # the spawner kills and reaps its children: no zombies left to PID 1
    try:
        p.wait(timeout=20)
    finally:
        try:
            os.killpg(p.pid, signal.SIGKILL)  # anything left in its process group
        except ProcessLookupError:
            pass


def test_user_archetype_is_matched_in_snapshot(tmp_path, spawner):
    (tmp_path / "user.process_count_ramp.toml").write_text(USER_ARCHETYPE)
    doc, _ = cli_json("--window", "6", "--interval", "0.4", "--only", "processes", "--catalog", str(tmp_path))
    shapes = {s["series"]: s for s in doc["shapes"]}
    assert "processes.tasks" in shapes, doc["shapes"]
    assert shapes["processes.tasks"]["signature"] == "user.process_count_ramp"
    assert shapes["processes.tasks"]["shape"] in ("ramp", "stair_step")
    f = [f for f in doc["findings"] if f["id"] == "user.process_count_ramp"]
    assert f and "pause the spawner's queue consumer" in f[0]["stabilize"]


def test_trivial_wiggles_are_not_shapes():
    """An idle host's PSI going 0.01 -> 0 or 79 -> 80 tasks must not be named a cliff or plateau."""
    t = [float(i) for i in range(12)]
    assert not material(Series("cpu.psi_some_avg10", "percent", t, [0.01] * 6 + [0.0] * 6))
    assert not material(Series("processes.tasks", "count", t, [79] * 6 + [80] * 6))
    assert material(Series("processes.tasks", "count", t, [80 + 2 * i for i in range(12)]))
    assert not material(Series("processes.tasks", "count", t[:5], [80, 90, 100, 110, 120]))  # too short

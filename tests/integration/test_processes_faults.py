"""Real process conditions -> processes findings: an unreaping parent (zombies), a non-root user
forking into its own lowered RLIMIT_NPROC, non-root operation, and an idle host."""
from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import time

import psutil
import pytest

from support import HOSTDIAG, findings_by_id, needs_root

N_ZOMBIES = 25
# A uid no other test or service uses, so the per-user task count is ours alone.
TEST_UID = 59999
NPROC = 20
SYSTEM_PYTHON = "/usr/bin/python3"

# Forks N children that exit at once and are never waited for; on SIGTERM it reaps them and
# exits, so cleanup leaves no zombies for PID 1.
ZOMBIE_PARENT = f"""
import os, signal, sys, time
def bye(*_):
    while True:
        try:
            os.waitpid(-1, 0)
        except ChildProcessError:
            os._exit(0)
signal.signal(signal.SIGTERM, bye)
for _ in range({N_ZOMBIES}):
    if os.fork() == 0:
        os._exit(0)
print("ready", flush=True)
while True:
    time.sleep(1)
"""

# Runs as TEST_UID with RLIMIT_NPROC lowered: forks sleeping children until fork() fails with
# EAGAIN (the real condition), reports how many it made, and kills/reaps them on SIGTERM.
NPROC_FORKER = """
import os, signal, sys, time
kids = []
def bye(*_):
    for k in kids:
        try:
            os.kill(k, signal.SIGKILL)
        except OSError:
            pass
    for k in kids:
        try:
            os.waitpid(k, 0)
        except OSError:
            pass
    os._exit(0)
signal.signal(signal.SIGTERM, bye)
err = "none"
for _ in range(200):
    try:
        pid = os.fork()
    except OSError as e:
        err = e.strerror
        break
    if pid == 0:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        while True:
            time.sleep(60)
    kids.append(pid)
print(len(kids), err, flush=True)
while True:
    time.sleep(1)
"""


def _stop(p: subprocess.Popen) -> None:
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(10)


@pytest.fixture
def zombie_parent():
    p = subprocess.Popen([sys.executable, "-c", ZOMBIE_PARENT], stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline().strip() == "ready"
        # The children exit asynchronously: wait until the kernel shows them all as zombies.
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            kids = psutil.Process(p.pid).children()
            if len(kids) == N_ZOMBIES and all(k.status() == psutil.STATUS_ZOMBIE for k in kids):
                break
            time.sleep(0.05)
        yield p
    finally:
        _stop(p)


def test_zombie_pileup_names_the_parent(zombie_parent, snapshot):
    rep = snapshot(only=["processes"], window=0)
    fs = findings_by_id(rep, "processes.zombie_pileup")
    mine = [f for f in fs if f.subject.get("pid") == zombie_parent.pid]
    assert mine, [f.title for f in rep.findings]
    f = mine[0]
    assert f.severity == "warning" and f.evidence["zombies"] == N_ZOMBIES
    assert f.subject["name"].startswith("python")
    assert "Do not kill the zombies: they are already dead; only the parent reaping them helps" in f.stabilize
    top = [x for x in rep.findings if x.category == "processes"][0]
    assert top.id == "processes.zombie_pileup"
    zp = rep.snapshot.sections["processes"].data["zombie_parents"]
    assert {"pid": zombie_parent.pid, "zombies": N_ZOMBIES}.items() <= next(
        z for z in zp if z["pid"] == zombie_parent.pid).items()


def _as_test_user():
    os.setgroups([])
    os.setgid(TEST_UID)
    resource.setrlimit(resource.RLIMIT_NPROC, (NPROC, NPROC))
    os.setuid(TEST_UID)


@pytest.fixture
def nproc_forker():
    if any(p.info["uids"] and p.info["uids"].real == TEST_UID for p in psutil.process_iter(["uids"])):
        pytest.skip(f"uid {TEST_UID} already has processes: the count would not be ours")
    # The system python: the venv's interpreter may sit under a directory TEST_UID cannot search.
    if not os.access(SYSTEM_PYTHON, os.X_OK):
        pytest.skip(f"{SYSTEM_PYTHON} missing")
    p = subprocess.Popen([SYSTEM_PYTHON, "-I", "-S", "-c", NPROC_FORKER], stdout=subprocess.PIPE, text=True,
                         preexec_fn=_as_test_user, cwd="/")
    try:
        yield p, p.stdout.readline().split(maxsplit=1)
    finally:
        _stop(p)


@needs_root  # only root can switch to another uid; the forking itself runs unprivileged
def test_nproc_pressure_real_fork_limit(nproc_forker, snapshot):
    p, (made, err) = nproc_forker
    # The kernel refused a fork at the limit: parent + children == NPROC tasks of TEST_UID.
    assert int(made) == NPROC - 1 and "temporarily unavailable" in err.lower(), (made, err)
    rep = snapshot(only=["processes"], window=0)
    users = {u["uid"]: u for u in rep.snapshot.sections["processes"].data["users"]}
    u = users[TEST_UID]
    assert u["threads"] == NPROC and u["nproc_soft"] == NPROC and u["nproc_pct"] == 100.0
    fs = [f for f in findings_by_id(rep, "processes.pid_pressure") if f.subject.get("uid") == TEST_UID]
    assert fs, [f.title for f in rep.findings]
    f = fs[0]
    assert f.severity == "critical"
    assert f.subject["pid"] == p.pid        # the forking parent (ties go to the parent)
    top = [x for x in rep.findings if x.category == "processes"][0]
    assert top.subject.get("uid") == TEST_UID


def _nobody_cmd(*args: str) -> list[str]:
    return ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *HOSTDIAG, *args]


def _nobody_ok() -> bool:
    try:
        r = subprocess.run(_nobody_cmd("--version"), capture_output=True, timeout=30, cwd="/",
                           env=dict(os.environ, PYTHONDONTWRITEBYTECODE="1"))
    except (OSError, subprocess.TimeoutExpired):
        return False
    return r.returncode == 0


@needs_root
def test_non_root_snapshot_is_not_a_crash(zombie_parent):
    if not _nobody_ok():
        pytest.skip("the venv/repo is not usable by nobody")
    r = subprocess.run(_nobody_cmd("snapshot", "--json", "--only", "processes,memory", "--window", "0"),
                       capture_output=True, text=True, timeout=60, cwd="/",
                       env=dict(os.environ, PYTHONDONTWRITEBYTECODE="1"))
    assert r.returncode in (0, 1, 2), r.stderr
    doc = json.loads(r.stdout)
    assert doc["host"]["euid"] == 65534
    sec = doc["sections"]["processes"]
    assert sec["status"] in ("ok", "partial"), sec["reason"]
    assert "hostdiag bug" not in (sec["reason"] or "")
    # Other users' state and limits are world-readable: zombies of a root parent are still seen.
    assert any(f["id"] == "processes.zombie_pileup" and f["subject"]["pid"] == zombie_parent.pid
               for f in doc["findings"])
    assert sec["data"]["total"] > 1 and sec["data"]["pid_max"]


def test_idle_host_has_no_process_alarm(snapshot):
    rep = snapshot(only=["processes"], window=1, interval=0.5)
    assert rep.snapshot.sections["processes"].status in ("ok", "partial")
    bad = [f.title for f in rep.findings if f.category == "processes" and f.severity != "info"]
    assert bad == []

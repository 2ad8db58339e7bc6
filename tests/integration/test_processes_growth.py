"""Time to exhaustion from real growth: a child growing its RSS at ~50 MB/s inside a v1 memory
cgroup with a limit (so the ETA is the cgroup's, whatever else the host does), and a non-root
child adding threads toward its lowered RLIMIT_NPROC. Each must be named with its pid, the
limit and an ETA that agrees with the measured rate."""
from __future__ import annotations

import os
import resource
import subprocess
import sys
import time

import psutil
import pytest

from support import findings_by_id, my_memory_cgroup_v1, needs_root

LIMIT_MIB = 1200
STOP_MIB = 900          # the leak stops well before the limit: no OOM kill in the host's log
TEST_UID = 59997        # not the uid test_processes_faults uses: suites may run side by side
NPROC = 300
SYSTEM_PYTHON = "/usr/bin/python3"

LEAK = f"""
import time
held = []
print("ready", flush=True)
while len(held) * 5 < {STOP_MIB}:
    held.append(b"\\x01" * (5 << 20))     # filled, so every page is resident
    time.sleep(0.1)
time.sleep(120)
"""

THREADS = """
import threading, time
threading.stack_size(64 << 10)
print("ready", flush=True)
for i in range(250):
    try:
        threading.Thread(target=time.sleep, args=(120,), daemon=True).start()
    except RuntimeError:
        break
    time.sleep(0.05)
time.sleep(120)
"""


def _stop(p):
    p.kill()
    p.wait(10)


@pytest.fixture
def leak_in_cgroup():
    parent = my_memory_cgroup_v1()
    if parent is None:
        pytest.skip("no cgroup v1 memory controller here (pure v2 needs a delegated subtree)")
    d = parent / f"hostdiag-leak-{os.getpid()}"
    try:
        d.mkdir()
    except OSError as e:
        pytest.skip(f"cannot create a memory cgroup: {e}")
    p = None
    try:
        (d / "memory.limit_in_bytes").write_text(str(LIMIT_MIB << 20))
        procs = d / "cgroup.procs"
        p = subprocess.Popen([sys.executable, "-c", LEAK], stdout=subprocess.PIPE, text=True,
                             preexec_fn=lambda: procs.write_text(str(os.getpid())))
        assert p.stdout.readline().strip() == "ready"
        time.sleep(0.5)
        yield p, "/" + str(d.relative_to("/sys/fs/cgroup/memory"))
    finally:
        if p is not None:
            _stop(p)
        for _ in range(50):
            try:
                d.rmdir()
                break
            except OSError:  # tasks still leaving
                time.sleep(0.1)


@needs_root
def test_rss_leak_in_a_memory_cgroup_gets_an_eta(leak_in_cgroup, snapshot):
    p, rel = leak_in_cgroup
    rep = snapshot(only=["processes"], window=3, interval=0.5)
    series = [s for s in rep.snapshot.series.values()
              if s.metric == "processes.rss_bytes" and s.labels.get("pid") == str(p.pid)]
    assert len(series) == 1, "the leaking child has no per-process RSS series"
    assert series[0].slope() > 10 << 20
    fs = [f for f in findings_by_id(rep, "processes.rss_growth") if f.subject.get("pid") == p.pid]
    assert len(fs) == 1, [f.title for f in rep.findings]
    f = fs[0]
    ev = f.evidence
    assert f.subject["cgroup"] == rel and ev["limit_detail"]["limit_bytes"] == LIMIT_MIB << 20
    assert 20 << 20 <= ev["per_s"] <= 60 << 20, ev          # ~50 MB/s, slowed a little on a busy box
    # The ETA is the headroom at the end of the window over the rate, and it is imminent.
    assert ev["eta_s"] == pytest.approx(ev["limit_detail"]["headroom_bytes"] / ev["per_s"], abs=0.2)
    assert 5 < ev["eta_s"] < 60 and f.severity == "critical"
    assert f"(pid {p.pid}) RSS +" in f.title and f"memory cgroup {rel} limit exhausted in ~" in f.title
    assert any(s.startswith("Do not raise the limit") for s in f.stabilize)
    assert f.verify.startswith(f"grep -E 'VmRSS|VmSwap' /proc/{p.pid}/status")


def _as_test_user():
    os.setgroups([])
    os.setgid(TEST_UID)
    resource.setrlimit(resource.RLIMIT_NPROC, (NPROC, NPROC))
    os.setuid(TEST_UID)


@pytest.fixture
def thread_climber():
    if any(x.info["uids"] and x.info["uids"].real == TEST_UID for x in psutil.process_iter(["uids"])):
        pytest.skip(f"uid {TEST_UID} already has processes: the count would not be ours")
    if not os.access(SYSTEM_PYTHON, os.X_OK):
        pytest.skip(f"{SYSTEM_PYTHON} missing")
    p = subprocess.Popen([SYSTEM_PYTHON, "-I", "-S", "-c", THREADS], stdout=subprocess.PIPE, text=True,
                         preexec_fn=_as_test_user, cwd="/")
    try:
        assert p.stdout.readline().strip() == "ready"
        time.sleep(0.3)
        yield p
    finally:
        _stop(p)


@needs_root  # only root can switch to another uid; the threads themselves run unprivileged
def test_threads_climbing_toward_rlimit_nproc(thread_climber, snapshot):
    p = thread_climber
    rep = snapshot(only=["processes"], window=3, interval=0.5)
    fs = [f for f in findings_by_id(rep, "processes.thread_growth") if f.subject.get("pid") == p.pid]
    assert len(fs) == 1, [f.title for f in rep.findings]
    f = fs[0]
    ev = f.evidence
    assert ev["limit"] == f"RLIMIT_NPROC ({NPROC}) of uid {TEST_UID}"
    assert ev["limit_detail"]["nproc_soft"] == NPROC and ev["limit_detail"]["uid"] == TEST_UID
    assert 5 <= ev["per_s"] <= 25, ev                         # ~20 threads/s
    room = NPROC - ev["limit_detail"]["user_tasks"]
    assert ev["eta_s"] == pytest.approx(room / ev["per_s"], abs=0.5)
    assert f.severity == "critical" and ev["eta_s"] < 600
    assert "reached in ~" in f.title and f"(pid {p.pid}) threads +" in f.title

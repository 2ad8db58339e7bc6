"""Real memory conditions -> memory section and findings: a child holding ~200 MiB of touched
memory, the same child inside a v1 memory cgroup close to its limit, unreadable procfs files as a
non-root user, and an idle host."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from support import HOSTDIAG, findings_by_id, my_memory_cgroup_v1, needs_root

ALLOC_MIB = 200
FIX = Path(__file__).resolve().parent.parent / "fixtures" / "hosts"

# bytes * n writes every page (a bytearray(n) would be calloc'ed zero pages, not resident).
HOG = f"""
import sys, time
block = b"\\x01" * ({ALLOC_MIB} << 20)
print("ready", flush=True)
sys.stdin.read()
"""


def _start_hog(preexec_fn=None) -> subprocess.Popen:
    p = subprocess.Popen([sys.executable, "-c", HOG], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                         preexec_fn=preexec_fn)
    assert p.stdout.readline().strip() == "ready"
    return p


def _stop(p: subprocess.Popen) -> None:
    if p.poll() is None:
        p.stdin.close()            # EOF: the hog exits by itself
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(10)


@pytest.fixture
def hog():
    p = _start_hog()
    try:
        yield p
    finally:
        _stop(p)


def test_big_child_is_first_in_top_rss(hog, snapshot):
    rep = snapshot(only=["memory"], window=0)
    sec = rep.snapshot.sections["memory"]
    assert sec.status in ("ok", "partial"), sec.reason
    top = _hog_row(sec.data["top_rss"], hog.pid)
    assert top["rss_bytes"] >= ALLOC_MIB << 20
    assert top["cmdline"] and "block" in top["cmdline"]


def _hog_row(rows: list[dict], pid: int) -> dict:
    """The hog's row, ranked by RSS: only a bigger process (another job on this shared machine)
    may come before it. Tests judge the processes they made, not an idle host."""
    i = next((i for i, r in enumerate(rows) if r["pid"] == pid), None)
    assert i is not None, rows
    assert all(r["rss_bytes"] >= rows[i]["rss_bytes"] for r in rows[:i]), rows
    return rows[i]


@pytest.fixture
def limited_cgroup():
    """A child v1 memory cgroup under ours with a limit a bit above the hog's size (TESTBED.md)."""
    parent = my_memory_cgroup_v1()
    if parent is None:
        pytest.skip("no cgroup v1 memory controller here (pure v2 needs a delegated subtree)")
    d = parent / f"hostdiag-test-{os.getpid()}"
    try:
        d.mkdir()
    except OSError as e:
        pytest.skip(f"cannot create a memory cgroup: {e}")
    try:
        # ~91% of the limit once the interpreter's own few MiB are charged: near, but no OOM.
        (d / "memory.limit_in_bytes").write_text(str((ALLOC_MIB + 25) << 20))
        yield d
    finally:
        for _ in range(50):
            try:
                d.rmdir()
                break
            except OSError:  # tasks still leaving
                time.sleep(0.1)


@needs_root
def test_cgroup_near_limit_names_the_cgroup(limited_cgroup, snapshot):
    procs = limited_cgroup / "cgroup.procs"
    p = _start_hog(preexec_fn=lambda: procs.write_text(str(os.getpid())))
    try:
        rep = snapshot(only=["memory"], window=1, interval=0.5)
        sec = rep.snapshot.sections["memory"]
        rel = "/" + str(limited_cgroup.relative_to("/sys/fs/cgroup/memory"))
        row = next((c for c in sec.data["cgroups"] if c["cgroup"] == rel), None)
        assert row is not None, sec.data["cgroups"]
        assert row["cgroup_version"] == 1 and row["limit_bytes"] == (ALLOC_MIB + 25) << 20
        assert 85 <= row["working_set_pct"] <= 100
        fs = [f for f in findings_by_id(rep, "memory.cgroup_near_limit") if f.subject == {"cgroup": rel}]
        assert fs and fs[0].severity in ("warning", "critical"), [f.title for f in rep.findings]
        top = [f for f in rep.findings if f.category == "memory"][0]
        assert top.subject == {"cgroup": rel}
        _hog_row(sec.data["top_rss"], p.pid)
    finally:
        _stop(p)


def _nobody(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *HOSTDIAG, *args],
                          capture_output=True, text=True, timeout=60, cwd="/",
                          env=dict(os.environ, PYTHONDONTWRITEBYTECODE="1"), **kw)


@pytest.fixture
def nobody_tree():
    """A copy of the v2 fixture in a directory nobody can enter (tmp_path is root-only)."""
    if _nobody("--version").returncode != 0:
        pytest.skip("the venv/repo is not usable by nobody")
    top = Path(tempfile.mkdtemp(prefix="hostdiag-mem-"))
    try:
        top.chmod(0o755)
        root = top / "host"
        shutil.copytree(FIX / "memory_v2_pressure", root)
        for p in [root, *root.rglob("*")]:
            p.chmod(0o755 if p.is_dir() else 0o644)
        yield root
    finally:
        shutil.rmtree(top, ignore_errors=True)


@needs_root  # to run a child as nobody
def test_non_root_unreadable_files_are_blind_spots(nobody_tree):
    # Root reads through any mode bits; as nobody, mode 000 is a real EACCES.
    (nobody_tree / "proc/vmstat").chmod(0)
    (nobody_tree / "proc/pressure/memory").chmod(0)
    (nobody_tree / "sys/fs/cgroup/system.slice/app.service/memory.events").chmod(0)
    r = _nobody("snapshot", "--json", "--only", "memory", "--window", "0",
                "--proc-root", str(nobody_tree / "proc"), "--sys-root", str(nobody_tree / "sys"),
                "--root", str(nobody_tree))
    assert r.returncode in (0, 1, 2), r.stderr
    doc = json.loads(r.stdout)
    sec = doc["sections"]["memory"]
    assert sec["status"] == "partial", sec
    # A real EACCES as non-root is the one case that says "run as root" (issue 9)
    assert "proc/vmstat: run as root: no swap/fault rates" in sec["reason"]
    assert "permission denied reading" in sec["reason"] and "pressure/memory: run as root" in sec["reason"]
    # The fixture has no /proc/PID dirs: the shared scan fails in psutil (IndexError on an empty
    # pid list; a core issue, reported), which the runner notes. Nothing else may be a bug.
    assert [b for b in sec["blind_spots"] if "hostdiag bug" in b and "IndexError" not in b] == []
    assert sec["data"]["available_pct"] == 3.7 and sec["data"]["oom_kills_total"] is None
    assert sec["data"]["psi"] is None
    # memory.exhaustion is still found from what could be read
    assert any(f["id"] == "memory.exhaustion" for f in doc["findings"])


@needs_root
def test_non_root_live_memory_section():
    r = _nobody("snapshot", "--json", "--only", "memory", "--window", "0")
    if r.returncode not in (0, 1, 2) and "No module named" in r.stderr:
        pytest.skip("the venv/repo is not usable by nobody")
    assert r.returncode in (0, 1, 2), r.stderr
    sec = json.loads(r.stdout)["sections"]["memory"]
    assert sec["status"] in ("ok", "partial") and "hostdiag bug" not in (sec["reason"] or "")
    assert sec["data"]["total_bytes"] > 0 and sec["data"]["top_rss"]


def test_idle_host_has_no_memory_alarm(snapshot):
    rep = snapshot(only=["memory"], window=1, interval=0.5)
    assert rep.snapshot.sections["memory"].status in ("ok", "partial")
    bad = [f.title for f in rep.findings if f.category == "memory" and f.severity != "info"]
    assert bad == []



# A child touching 20 MiB more every 0.5 s (~40 MiB/s): a leak against its cgroup's limit.
GROWER = """
import sys, time
keep = []
print("ready", flush=True)
while len(keep) < 60:
    keep.append(b"\\x01" * (20 << 20))
    time.sleep(0.5)
sys.stdin.read()
"""


@needs_root
def test_cgroup_eta_for_a_growing_child(limited_cgroup, snapshot):
    """The limit (225 MiB) is ~5x what the child holds at the start: today's level is fine,
    the time to the limit is what matters (issue 11: ETA inside 10 min is critical)."""
    (limited_cgroup / "memory.limit_in_bytes").write_text(str(1 << 30))
    procs = limited_cgroup / "cgroup.procs"
    p = subprocess.Popen([sys.executable, "-c", GROWER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                         preexec_fn=lambda: procs.write_text(str(os.getpid())))
    try:
        assert p.stdout.readline().strip() == "ready"
        rep = snapshot(only=["memory"], window=3, interval=0.5)
        rel = "/" + str(limited_cgroup.relative_to("/sys/fs/cgroup/memory"))
        fs = [f for f in findings_by_id(rep, "memory.cgroup_near_limit") if f.subject == {"cgroup": rel}]
        assert fs, [f.title for f in rep.findings]
        f = fs[0]
        ev = f.evidence
        assert f.severity == "critical" and "limit reached in ~" in f.title, f.title
        assert 20 << 20 <= ev["per_s"] <= 60 << 20, ev          # ~40 MiB/s
        # headroom / rate: the ETA the evidence gives agrees with its own numbers
        room = ev["limit_bytes"] - ev["working_set_bytes"]
        assert ev["eta_s"] == pytest.approx(room / ev["per_s"], rel=0.05)
        assert 5 <= ev["eta_s"] <= 60 and 0 < ev["limit_fraction"] < 0.6
    finally:
        _stop(p)

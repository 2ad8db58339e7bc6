"""files: real fd leaks toward a process's own lowered RLIMIT_NOFILE, seen by a real snapshot."""
from __future__ import annotations

import resource
import subprocess
import sys
import textwrap

import pytest

from support import IS_ROOT, findings_by_id, needs_root, snapshot_as_nobody

LEAKER = textwrap.dedent("""
    import sys, time
    start, stop, step, pause = (int(a) for a in sys.argv[1:5])
    held = [open('/dev/null') for _ in range(start)]
    print('ready', flush=True)
    while len(held) < stop:
        time.sleep(pause / 1000)
        held += [open('/dev/null') for _ in range(step)]
    time.sleep(120)
""")


def _spawn_leaker(limit: int, start: int, stop: int = 0, step: int = 0, pause_ms: int = 0):
    """A child that lowers its own RLIMIT_NOFILE, opens `start` files, then climbs to `stop`."""
    def lower():
        resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))
    child = subprocess.Popen([sys.executable, "-c", LEAKER, str(start), str(stop or start), str(step), str(pause_ms)],
                             stdout=subprocess.PIPE, text=True, preexec_fn=lower)
    assert child.stdout.readline().strip() == "ready"
    return child


@pytest.fixture
def leakers():
    children = []

    def make(*a, **kw):
        c = _spawn_leaker(*a, **kw)
        children.append(c)
        return c
    yield make
    for c in children:
        c.kill()
        c.wait()


def _top_of_category(report, category):
    return next(f for f in report.findings if f.category == category)


def test_fd_leak_near_own_limit_is_top_files_finding(snapshot, leakers):
    child = leakers(256, 240)  # 240 + stdin/out/err = 243 of 256
    rep = snapshot(only=["files"], window=0)
    found = [f for f in findings_by_id(rep, "files.process_fd_exhaustion") if f.subject.get("pid") == child.pid]
    assert found, [f.title for f in rep.findings]
    f = found[0]
    assert f.severity in ("warning", "critical") and f.evidence["limit"] == 256 and f.evidence["fds"] >= 240
    assert f.subject["name"].startswith("python")
    top = _top_of_category(rep, "files")
    assert top.id == "files.process_fd_exhaustion" and top.subject["pid"] == child.pid


def test_climbing_fd_count_is_reported_as_rising(snapshot, leakers):
    # 420 of 512 already (82%), then +2 every 100 ms: still climbing through the whole window.
    child = leakers(512, 420, 500, 2, 100)
    rep = snapshot(only=["files"], window=1.5, interval=0.5)
    sec = rep.snapshot.sections["files"]
    row = next(r for r in sec.data["closest_to_limit"] if r["pid"] == child.pid)
    assert row["fds_per_s"] is not None and row["fds_per_s"] > 0
    f = next(f for f in findings_by_id(rep, "files.process_fd_exhaustion") if f.subject["pid"] == child.pid)
    assert "rising" in f.title
    assert rep.snapshot.series.get(f"files.fds[pid={child.pid}]") is not None


def test_idle_host_no_files_alarm(snapshot):
    rep = snapshot(only=["files"], window=1, interval=0.5)
    bad = [f for f in rep.findings if f.category == "files" and f.severity != "info"]
    assert not bad, [f.title for f in bad]
    assert rep.snapshot.sections["files"].data["file_handles"] > 0




@needs_root
def test_non_root_snapshot_shows_blind_spot_not_crash(leakers):
    leakers(256, 100)  # a root-owned process whose fd table nobody cannot read
    d = snapshot_as_nobody("files")
    sec = d["sections"]["files"]
    assert sec["status"] == "partial"
    assert "processes not readable: run as root to see per-process open files" in sec["reason"]
    assert sec["data"]["file_handles"] is not None  # file-nr is world-readable
    assert any(b["collector"] == "files" for b in d["blind_spots"])
    assert "root" in d["headline"]["need"]


@pytest.mark.skipif(IS_ROOT, reason="root sees every fd table")
def test_as_non_root_directly(snapshot):
    rep = snapshot(only=["files"], window=0)
    assert rep.snapshot.sections["files"].status == "partial"


def test_fd_climb_far_below_the_limit_gets_an_eta(snapshot, leakers):
    """100 of 2048 fds (5 %, no alarm by level) but +20 every 100 ms: the own RLIMIT_NOFILE is
    ~10 s away, so the ETA makes it critical (issue 11) and the title says it in words."""
    child = leakers(2048, 100, 2000, 20, 100)
    rep = snapshot(only=["files"], window=3, interval=0.5)
    f = next((f for f in findings_by_id(rep, "files.process_fd_exhaustion") if f.subject.get("pid") == child.pid),
             None)
    assert f is not None, [x.title for x in rep.findings]
    ev = f.evidence
    assert f.severity == "critical" and "its limit reached in ~" in f.title, f.title
    assert ev["limit"] == 2048 and 100 <= ev["rate_per_s"] <= 300          # ~200/s
    assert ev["eta_s"] == pytest.approx((2048 - ev["fds"]) / ev["rate_per_s"], rel=0.2)
    assert ev["limit_fraction"] < 0.6

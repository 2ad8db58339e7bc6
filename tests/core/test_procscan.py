"""procscan on real processes and on /proc trees copied from them with files removed: one
missing file of one pid costs that pid that field (None), never the scan, and is counted in one
blind-spot line; threads fall back to stat's num_threads; hostdiag marks itself; the pidstat
user/system split over a window."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hostdiag.core import procscan
from hostdiag.core.context import Context, Deadline

PER_PID = ("stat", "status", "statm", "io", "cmdline", "limits")


@pytest.fixture
def child():
    # Two threads, so a fallback to 1 thread would show.
    p = subprocess.Popen([sys.executable, "-c", "import threading, time\n"
                          "threading.Thread(target=time.sleep, args=(60,), daemon=True).start()\n"
                          "print('ready', flush=True); time.sleep(60)"], stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "ready"
    yield p
    p.kill()
    p.wait()


def copy_proc(dst: Path, pids) -> Path:
    """A partial copy of this machine's /proc: the global files psutil needs and a few pids."""
    proc = dst / "proc"
    proc.mkdir(parents=True)
    for f in ("stat", "uptime", "meminfo"):
        shutil.copyfile(f"/proc/{f}", proc / f)
    for pid in pids:
        (proc / str(pid)).mkdir()
        for f in PER_PID:
            try:
                (proc / str(pid) / f).write_bytes(Path(f"/proc/{pid}/{f}").read_bytes())
            except PermissionError:
                pass
    return proc


def run_scan(proc: Path) -> procscan.Scan:
    s = procscan.Scan()
    procscan.scan(Context(proc=str(proc)), Deadline(10), s, fds=False)
    return s


def test_missing_files_of_one_pid_cost_that_pid_those_fields(tmp_path, child):
    me = os.getpid()
    proc = copy_proc(tmp_path, [me, child.pid])
    for f in ("status", "statm", "io"):
        (proc / str(child.pid) / f).unlink()
    s = run_scan(proc)
    assert set(s.procs) == {me, child.pid}
    c = s.procs[child.pid]
    assert c.name.startswith("python") and c.cpu_s is not None and c.ppid == me and c.create_time
    assert (c.rss_bytes, c.uid, c.read_bytes) == (None, None, None)
    assert c.threads == 2                       # from stat's num_threads, not a guess of 1
    full = s.procs[me]
    assert full.rss_bytes and full.uid == os.getuid() and full.threads >= 1
    assert s.missing == {"status": 1, "statm": 1, "io": 1} and s.missing_pids == 1
    assert s.blind_spot() == "1 process had unreadable files: io, statm, status (those fields are absent)"
    assert s.io_unreadable == 0                 # absent, not a permission problem: no "run as root"
    assert not s.truncated


def test_unreadable_stat_skips_only_that_pid(tmp_path, child):
    proc = copy_proc(tmp_path, [os.getpid(), child.pid])
    (proc / str(child.pid) / "stat").write_text("garbage")
    (proc / "77777").mkdir()                    # a pid directory with nothing in it: exited
    s = run_scan(proc)
    assert set(s.procs) == {os.getpid()}
    assert s.missing == {"stat": 1}
    assert s.blind_spot().startswith("1 process had unreadable files: stat")


def test_copied_tree_does_not_claim_to_be_hostdiag(tmp_path):
    proc = copy_proc(tmp_path, [os.getpid()])
    os.symlink(str(os.getpid()), proc / "self")
    (proc / str(os.getpid()) / "stat").write_text(
        Path("/proc/1/stat").read_text())       # same pid number, another process's start time
    s = run_scan(proc)
    assert s.self_pid is None and not any(p.is_self for p in s.procs.values())


def test_live_scan_marks_hostdiag_and_its_children(child, monkeypatch):
    s = run_scan(Path("/proc"))
    assert s.self_pid == os.getpid() and s.procs[os.getpid()].is_self and not s.procs[1].is_self
    # Under the Python API (this test) a child belongs to the caller: it is a fixture, not us.
    assert not s.procs[child.pid].is_self
    # As the hostdiag program, its children (journalctl...) are hostdiag too.
    monkeypatch.setattr(sys, "argv", ["/usr/local/bin/hostdiag", "snapshot"])
    s = run_scan(Path("/proc"))
    assert s.procs[child.pid].is_self and s.procs[os.getpid()].is_self and not s.procs[1].is_self


def test_user_system_split_over_a_window():
    burner = subprocess.Popen([sys.executable, "-c", "import time\nend = time.time() + 30\n"
                               "while time.time() < end: pass"])
    try:
        ctx = Context()
        time.sleep(0.2)
        t0 = time.monotonic()
        base = procscan.baseline(ctx, Deadline(5))
        time.sleep(1.0)
        s = procscan.Scan()
        procscan.scan(ctx, Deadline(5), s, fds=False, base=base, base_dt=time.monotonic() - t0)
        p = s.procs[burner.pid]
        assert p.user_pct > 20 and p.user_pct > 5 * (p.system_pct or 0.0)   # a pure user-space loop
        assert p.cpu_pct == pytest.approx(p.user_pct + p.system_pct, abs=0.01)
        assert p.user_s + p.system_s == pytest.approx(p.cpu_s)
    finally:
        burner.kill()
        burner.wait()


@settings(deadline=None, max_examples=25, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.sets(st.sampled_from(PER_PID), max_size=len(PER_PID)), st.booleans())
def test_any_files_removed_scan_completes(tmp_path_factory, child, removed, garble):
    proc = copy_proc(tmp_path_factory.mktemp("t"), [os.getpid(), child.pid])
    for f in removed:
        p = proc / str(child.pid) / f
        if garble and f != "stat":
            p.write_text("\x1b[31m not a proc file \n")
        else:
            p.unlink(missing_ok=True)
    s = run_scan(proc)
    assert os.getpid() in s.procs
    if "stat" in removed and not garble:
        assert child.pid not in s.procs       # no stat: treated as exited
    elif child.pid in s.procs:
        c = s.procs[child.pid]
        assert c.threads in (2, None)
    assert (s.blind_spot() is None) == (s.missing_pids == 0)


def test_stat_comm_threads_parser(tmp_path):
    d = tmp_path / "123"
    d.mkdir()
    # A comm with spaces and a ')' in it: parse from the last ')'.
    (d / "stat").write_text("123 (a) b (c)) S 1 123 123 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 7 0 100 0 0\n")
    assert procscan.stat_comm_threads(str(tmp_path), 123) == ("a) b (c)", 7)
    (d / "stat").write_text("123 (x) S 1\n")
    assert procscan.stat_comm_threads(str(tmp_path), 123) == ("x", None)
    assert procscan.stat_comm_threads(str(tmp_path), 999) == (None, None)


def test_long_name_without_cmdline_keeps_its_comm(tmp_path):
    # comm is cut at 15 characters, so psutil reads cmdline for the full name; without it the
    # truncated comm is still the best name, and the missing cmdline is counted.
    exe = tmp_path / "a-very-long-process-name"     # comm comes from the exec'd file name
    exe.symlink_to(sys.executable)
    p = subprocess.Popen([str(exe), "-c", "print('ready', flush=True); import time; time.sleep(60)"],
                         stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline().strip() == "ready"
        proc = copy_proc(tmp_path / "t", [os.getpid(), p.pid])
        (proc / str(p.pid) / "cmdline").unlink()
        s = run_scan(proc)
        assert s.procs[p.pid].name == "a-very-long-pro"
        assert s.missing == {"cmdline": 1}
    finally:
        p.kill()
        p.wait()


IO_TEXT = b"rchar: 323934931\nwchar: 323929600\nsyscr: 632687\nsyscw: 632675\nread_bytes: 0\nwrite_bytes: 323932160\ncancelled_write_bytes: 0\n"


def test_parse_io():
    assert procscan._parse_io(IO_TEXT) == (0, 323932160, 323929600)
    for bad in (b"", b"rchar: 1\n", IO_TEXT.replace(b"wchar: 323929600", b"wchar: x")):
        with pytest.raises(procscan._BAD):
            procscan._parse_io(bad)


@given(st.binary(max_size=300))
def test_parse_io_fails_only_as_a_blind_spot(raw):
    # anything a garbled io file holds: a tuple of ints, or an error the scan counts as a blind spot
    try:
        v = procscan._parse_io(raw)
    except procscan._BAD:
        return
    assert len(v) == 3 and all(isinstance(x, int) for x in v)


def test_direct_parse_agrees_with_psutil(child):
    """The scan parses /proc/PID files itself (one read of each); psutil, which it replaced, must
    see the same process: name, ppid, uid, threads, create time, state, lifetime CPU."""
    import psutil

    s = run_scan(Path("/proc"))
    for pid in (os.getpid(), child.pid, 1):
        mine, p = s.procs[pid], psutil.Process(pid)
        with p.oneshot():
            assert (mine.name, mine.ppid, mine.uid, mine.create_time) == \
                (p.name(), p.ppid(), p.uids().real, p.create_time())
            if pid == child.pid:       # asleep: nothing of it moves between the two reads
                ct = p.cpu_times()
                assert (mine.threads, mine.status, mine.user_s, mine.system_s, mine.rss_bytes) == \
                    (p.num_threads(), p.status(), ct.user, ct.system, p.memory_info().rss)
                io = p.io_counters()
                assert (mine.read_bytes, mine.write_bytes) == (io.read_bytes, io.write_bytes)

"""processes collector: parsers on literal strings, collect() on a fixture tree with a hand-built
process scan, findings on hand-made data including threshold edges."""
from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest
from support import drive, fixture_ctx as ctx_for, fixture_tree, section
from hypothesis import given, settings
from hypothesis import strategies as st

from hostdiag.collectors import processes
from hostdiag.core import procscan
from hostdiag.core.context import Unavailable
from hostdiag.core.model import Section
from hostdiag.core.thresholds import Thresholds

FIX = Path(__file__).resolve().parent.parent / "fixtures" / "hosts"
TH = Thresholds(processes.THRESHOLDS)
NOW = time.time()


def tree(tmp_path: Path, name: str = "processes_v2_pids") -> Path:
    return fixture_tree(tmp_path, name)



def P(pid, ppid=1, name=None, status="sleeping", uid=0, threads=1, rss=1 << 20, cpu_s=1.0, cpu_pct=None,
      age_s=3600.0):
    return procscan.Proc(pid=pid, ppid=ppid, name=name or f"p{pid}", status=status, uid=uid, threads=threads,
                         rss_bytes=rss, cpu_s=cpu_s, cpu_pct=cpu_pct, create_time=NOW - age_s)


def make_scan(*procs) -> procscan.Scan:
    s = procscan.Scan()
    for p in procs:
        s.procs[p.pid] = p
    return s


def run_ticks(ctx, mutate=(), scan=None, dt=1.0):
    job = drive(processes, ctx, mutate, scan, dt)
    job.now = NOW
    return job

def collect(job):
    return section(processes, job)

# ---------------------------------------------------------------- parsers

def test_parse_loadavg_tasks():
    assert processes.parse_loadavg_tasks("0.00 0.01 0.05 1/123 4567\n") == 123
    assert processes.parse_loadavg_tasks("0.00 0.01 0.05\n") is None
    assert processes.parse_loadavg_tasks("0.00 0.01 0.05 1/x 4567") is None


def test_parse_forks():
    assert processes.parse_forks("cpu  1 2 3\nctxt 5\nprocesses 18046\nprocs_running 1\n") == 18046
    assert processes.parse_forks("cpu  1 2 3\n") is None
    assert processes.parse_forks("processes\n") is None


def test_parse_passwd():
    text = "root:x:0:0:root:/root:/bin/bash\n# c:x:5:5\nbad\nnobody:x:65534:65534::/:/sbin/nologin\n" \
           "dup:x:0:0::/:/bin/sh\n"
    assert processes.parse_passwd(text) == {0: "root", 65534: "nobody"}


@settings(deadline=None)  # a loaded 2-core CI box must not turn slowness into failure
@given(st.text(max_size=500))
def test_parsers_never_raise(text):
    processes.parse_passwd(text)
    processes.parse_forks(text)
    processes.parse_loadavg_tasks(text)


def test_parse_limits_on_fixture_layout():
    # RLIMIT_NPROC comes from procscan.parse_limits; check it on the fixture's real column layout.
    text = (FIX / "processes_v2_pids/proc/4000/limits").read_text()
    assert procscan.parse_limits(text)["Max processes"] == 200
    text = (FIX / "processes_v2_pids/proc/4100/limits").read_text()
    assert procscan.parse_limits(text)["Max processes"] is None


# ---------------------------------------------------------------- collect()

def fixture_scan():
    return make_scan(
        P(1, ppid=0, name="init"),
        P(2, ppid=0, name="kthreadd", status="idle", rss=None),
        P(3, ppid=2, name="kworker/0:1", status="idle", rss=None, age_s=5),
        P(100, name="reaper-bug", threads=4, rss=50 << 20, cpu_pct=80.0, cpu_s=500.0),
        *[P(200 + i, ppid=100, name="child", status="zombie", rss=None, cpu_pct=0.0) for i in range(12)],
        P(300, name="dbwriter", status="disk-sleep", rss=900 << 20, cpu_pct=10.0),
        P(4000, name="nginx", uid=33, threads=150, age_s=30, cpu_pct=5.0),
        P(4001, name="nginx", uid=33, threads=30, age_s=60),
        P(4100, name="app", uid=1001, threads=2, age_s=900),
        P(4200, name="ghost", uid=1001, threads=1, age_s=10),       # exits before its limits are read
        P(5000, name="stopped", status="stopped", uid=5000),         # uid without a passwd entry
    )


def test_collect_fixture(tmp_path):
    root = tree(tmp_path)
    stat = root / "proc/stat"
    job = run_ticks(ctx_for(root), [lambda: stat.write_text(stat.read_text().replace("500000", "500250"))],
                    scan=fixture_scan())
    sec = collect(job)
    d = sec.data
    assert d["tasks"] == 30500 and d["pid_max"] == 32768 and d["pid_pct"] == 93.1
    assert d["threads_max"] == 63704 and d["threads_pct"] == 47.9
    assert d["forks_per_s"] == 250.0
    assert d["total"] == 22 and d["zombies"] == 12
    assert d["by_state"]["zombie"] == 12 and d["by_state"]["disk-sleep"] == 1 and d["by_state"]["stopped"] == 1
    assert d["by_state"]["idle"] == 2 and d["by_state"]["running"] == 0
    assert d["threads_total"] == 22 + 3 + 149 + 29 + 1   # 1 per single-threaded process
    assert d["top_cpu"][0]["pid"] == 100 and d["top_cpu"][0]["cpu_pct"] == 80.0
    assert d["top_rss"][0]["pid"] == 300
    # recent: newest first, 10 minutes, no kernel threads
    assert [r["pid"] for r in d["recent"]] == [4200, 4000, 4001]
    assert d["recent"][1]["user"] == "www-data"
    zp = d["zombie_parents"][0]
    assert zp == {"pid": 100, "name": "reaper-bug", "zombies": 12, "children": 12, "cmdline": None}
    users = {u["uid"]: u for u in d["users"]}
    www = users[33]
    assert www["user"] == "www-data" and www["threads"] == 180 and www["processes"] == 2
    assert www["nproc_soft"] == 200 and www["nproc_pct"] == 90.0 and www["pid"] == 4000
    assert users[1001]["nproc_soft"] is None           # 4100 unlimited; 4200 has no limits file
    assert users[0]["nproc_exempt"] is True and users[0]["nproc_pct"] is None
    assert users[5000]["user"] == "5000"
    cg = {c["cgroup"]: c for c in d["cgroups_pids"]}
    assert set(cg) == {"/system.slice/web.service"}
    web = cg["/system.slice/web.service"]
    assert web["pids_pct"] == 98.0 and web["fork_failures"] == 7 and web["fork_failures_window"] == 0
    # missing /proc/PID/limits means "exited": not a permission blind spot
    assert sec.status == "ok", sec.reason


def test_collect_fork_failures_rising(tmp_path):
    root = tree(tmp_path)
    ev = root / "sys/fs/cgroup/system.slice/web.service/pids.events"
    job = run_ticks(ctx_for(root), [lambda: ev.write_text("max 10\n")], scan=make_scan(P(1, ppid=0)))
    (web,) = collect(job).data["cgroups_pids"]
    assert web["fork_failures_window"] == 3
    f = [x for x in processes.findings(collect(job), TH) if x.subject == {"cgroup": "/system.slice/web.service"}]
    assert f[0].severity == "critical" and "refused" in f[0].title


def test_window0_no_rates(tmp_path):
    root = tree(tmp_path)
    d = collect(run_ticks(ctx_for(root), scan=fixture_scan())).data
    assert d["forks_per_s"] is None
    assert d["cgroups_pids"][0]["fork_failures_window"] is None
    # --window 0: top CPU falls back to lifetime CPU seconds
    assert d["top_cpu"][0]["pid"] == 100 and d["top_cpu"][0]["cpu_s"] == 500.0


def test_no_scan_is_partial(tmp_path):
    root = tree(tmp_path)
    sec = collect(run_ticks(ctx_for(root), scan=None))
    assert sec.status == "partial" and "process scan unavailable" in sec.reason
    assert sec.data["pid_pct"] == 93.1 and "zombie_parents" not in sec.data


def test_missing_kernel_limits_is_partial(tmp_path):
    root = tree(tmp_path)
    shutil.rmtree(root / "proc/sys")
    (root / "etc/passwd").unlink()
    shutil.rmtree(root / "sys")
    sec = collect(run_ticks(ctx_for(root), scan=fixture_scan()))
    assert sec.status == "partial" and "pid_max" in sec.reason
    assert sec.data["pid_pct"] is None and sec.data["threads_pct"] is None
    assert sec.data["cgroups_pids"] == []
    assert {u["user"] for u in sec.data["users"]} >= {"0", "33"}     # no passwd: uids as text


def test_missing_loadavg_is_unavailable(tmp_path):
    root = tree(tmp_path)
    (root / "proc/loadavg").unlink()
    with pytest.raises(Unavailable, match="loadavg missing"):
        processes.sample(ctx_for(root), {})


def test_unreadable_limits_is_a_blind_spot(tmp_path, monkeypatch):
    # Root reads any file regardless of its mode, so simulate the EACCES a hidepid/non-root
    # reader gets for /proc/PID/limits (the only mock here).
    root = tree(tmp_path)
    real_open = open

    def fake_open(path, *a, **kw):
        if str(path).endswith("/limits"):
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, *a, **kw)
    monkeypatch.setattr("builtins.open", fake_open)
    sec = collect(run_ticks(ctx_for(root), scan=fixture_scan()))
    assert sec.status == "partial" and "limits not readable" in sec.reason and "root" in sec.reason


# ---------------------------------------------------------------- findings

def base(**kw) -> Section:
    d = {"tasks": 120, "pid_max": 32768, "pid_pct": 0.4, "threads_max": 63704, "threads_pct": 0.2,
         "forks_per_s": 2.0, "cgroups_pids": [], "total": 100, "zombies": 0, "zombie_parents": [],
         "top_parents": [{"pid": 1, "name": "init", "children": 40}], "users": []}
    d.update(kw)
    return Section("processes", "ok", data=d)


def by_id(sec, th=TH):
    out: dict = {}
    for f in processes.findings(sec, th):
        out.setdefault(f.id, []).append(f)
    return out


def test_healthy_gives_nothing():
    assert processes.findings(base(), TH) == []


@pytest.mark.parametrize("n,level", [(9, None), (10, "warning"), (99, "warning"), (100, "critical")])
def test_zombie_edges(n, level):
    z = {"pid": 4242, "name": "leaky", "zombies": n, "children": n + 1, "cmdline": "leaky --serve"}
    f = by_id(base(zombie_parents=[z], zombies=n)).get("processes.zombie_pileup")
    assert (f[0].severity if f else None) == level
    if f:
        assert f[0].subject == {"pid": 4242, "name": "leaky"}
        assert "Do not kill the zombies: they are already dead; only the parent reaping them helps" in f[0].stabilize
        assert "--ppid 4242" in f[0].verify


def test_zombies_of_pid1_say_init():
    z = {"pid": 1, "name": "bash", "zombies": 50, "children": 50, "cmdline": None}
    (f,) = by_id(base(zombie_parents=[z]))["processes.zombie_pileup"]
    assert "PID 1" in f.stabilize[0]


@pytest.mark.parametrize("pct,level", [(69.9, None), (70.0, "warning"), (90.0, "critical")])
def test_pid_max_edges(pct, level):
    f = by_id(base(pid_pct=pct)).get("processes.pid_pressure")
    assert (f[0].severity if f else None) == level
    if f:
        assert "kernel.pid_max" in f[0].title and f[0].subject == {"pid": 1, "name": "init"}


def test_threads_max():
    (f,) = by_id(base(threads_pct=91.0))["processes.pid_pressure"]
    assert f.severity == "critical" and "threads-max" in f.title


def user(**kw):
    u = {"uid": 33, "user": "www-data", "processes": 10, "threads": 160, "nproc_soft": 200, "nproc_pct": 80.0,
         "pid": 4000, "name": "nginx", "nproc_exempt": False}
    u.update(kw)
    return u


@pytest.mark.parametrize("u,level", [(user(nproc_pct=79.9), None), (user(), "warning"),
                                     (user(nproc_pct=95.0), "critical"),
                                     (user(uid=0, user="root", nproc_pct=None, nproc_exempt=True), None)])
def test_nproc_edges(u, level):
    f = by_id(base(users=[u])).get("processes.pid_pressure")
    assert (f[0].severity if f else None) == level
    if f:
        assert f[0].subject["pid"] == 4000 and f[0].subject["user"] == "www-data"
        assert "/proc/4000/limits" in f[0].verify


@pytest.mark.parametrize("pct,rose,level", [(79.0, 0, None), (80.0, 0, "warning"), (95.0, None, "critical"),
                                            (10.0, 2, "critical")])
def test_cgroup_pids_edges(pct, rose, level):
    c = {"cgroup": "/system.slice/web.service", "cgroup_version": 2, "pids_current": int(pct * 5),
         "pids_max": 500, "pids_pct": pct, "fork_failures": 9, "fork_failures_window": rose}
    f = by_id(base(cgroups_pids=[c])).get("processes.pid_pressure")
    assert (f[0].severity if f else None) == level
    if f:
        assert f[0].subject == {"cgroup": "/system.slice/web.service"}
        assert f[0].verify.startswith("(cd /sys/fs/cgroup/system.slice/web.service && cat pids.current")


def test_stabilize_always_has_a_do_not():
    sec = base(pid_pct=95.0, users=[user(nproc_pct=99.0)],
               zombie_parents=[{"pid": 7, "name": "x", "zombies": 500, "children": 500, "cmdline": None}],
               cgroups_pids=[{"cgroup": "/c", "cgroup_version": 1, "pids_current": 99, "pids_max": 100,
                              "pids_pct": 99.0, "fork_failures": None, "fork_failures_window": None}])
    fs = processes.findings(sec, TH)
    assert len(fs) == 4
    for f in fs:
        assert any(s.startswith("Do not") for s in f.stabilize), f.id
        assert f.verify and f.impact and f.category == "processes"
    assert any("/sys/fs/cgroup/pids/c " in f.verify for f in fs)



# ---------------------------------------------------------------- per-process series and ETAs

def test_parse_pid_stat():
    raw = b"4242 (my (odd) name) S 1 4242 4242 0 -1 4194560 1 0 0 0 250 50 0 0 20 0 3 0 12345 999 2560 0 0\n"
    st = processes.parse_pid_stat(raw)
    assert st == {"name": "my (odd) name", "ppid": 1, "threads": 3, "rss_pages": 2560, "cpu_ticks": 300,
                  "start": 12345}
    assert processes.parse_pid_stat(b"1 (x) S 1 2") is None


@settings(deadline=None)
@given(st.binary(max_size=300))
def test_parse_pid_stat_never_raises(raw):
    processes.parse_pid_stat(raw)


@settings(deadline=None)
@given(st.text(max_size=64))
def test_label_is_safe_in_a_series_key(name):
    from hostdiag.core.runner import parse_key
    lab = processes.label(name)
    assert 1 <= len(lab) <= 32
    assert parse_key(f"rss_bytes[name={lab},pid=7]") == ("rss_bytes", {"name": lab, "pid": "7"})


class PidTree:
    """proc/PID/{stat,cgroup} with RSS and threads the test grows per tick, plus meminfo."""

    def __init__(self, root: Path):
        self.root = root
        (root / "proc").mkdir(parents=True)
        (root / "proc" / "stat").write_text("processes 100\n")
        (root / "proc" / "loadavg").write_text("0.0 0.0 0.0 1/200 99\n")
        (root / "proc" / "meminfo").write_text("MemTotal: 16000000 kB\nMemAvailable: 1048576 kB\n")
        (root / "proc" / "sys" / "kernel").mkdir(parents=True)
        (root / "proc" / "sys" / "kernel" / "pid_max").write_text("32768\n")
        (root / "proc" / "sys" / "kernel" / "threads-max").write_text("10000\n")

    def proc(self, pid, name, rss_pages, threads, cgroup="0::/\n"):
        d = self.root / "proc" / str(pid)
        d.mkdir(exist_ok=True)
        f = ["S", "1", str(pid), str(pid), "0", "-1", "0", "0", "0", "0", "0", "100", "20", "0", "0", "20", "0",
             str(threads), "0", "777", "0", str(rss_pages)] + ["0"] * 20
        (d / "stat").write_text(f"{pid} ({name}) " + " ".join(f) + "\n")
        (d / "cgroup").write_text(cgroup)
        (d / "fd").mkdir(exist_ok=True)


def test_series_and_rss_eta_against_available_memory(tmp_path):
    h = PidTree(tmp_path)
    page = processes._PAGE
    h.proc(10, "leaky", 1000, 1)
    h.proc(11, "steady", 50000, 4)
    grow = [lambda i=i: h.proc(10, "leaky", 1000 + i * (8 << 20) // page, 1) for i in range(1, 6)]
    job = run_ticks(ctx_for(tmp_path), grow, scan=make_scan(P(10, name="leaky", uid=0), P(11, name="steady")))
    assert "processes.rss_bytes[name=leaky,pid=10]" in job.series
    assert job.series["processes.rss_bytes[name=steady,pid=11]"].v == [50000 * page] * 6
    assert "processes.threads[name=leaky,pid=10]" in job.series and "processes.fds[name=leaky,pid=10]" in job.series
    sec = collect(job)
    (g,) = [g for g in sec.data["growth"] if g["kind"] == "rss"]
    assert g["pid"] == 10 and g["per_s"] == float(8 << 20) and g["limit"] == "available memory"
    assert g["eta_s"] == 128.0                         # 1 GiB available / 8 MiB/s
    (f,) = [f for f in processes.findings(sec, TH) if f.id == "processes.rss_growth"]
    assert f.severity == "critical" and f.subject == {"pid": 10, "name": "leaky"}     # under 10 min
    assert f.title == "leaky (pid 10) RSS +8.0 MiB/s; available memory exhausted in ~2 min at this rate"


def test_rss_eta_against_the_tightest_cgroup_ancestor(tmp_path):
    h = PidTree(tmp_path)
    page = processes._PAGE
    cg = tmp_path / "sys/fs/cgroup"
    (cg / "app.slice" / "web.service").mkdir(parents=True)
    (cg / "cgroup.controllers").write_text("memory pids\n")
    (cg / "app.slice" / "memory.max").write_text(f"{600 << 20}\n")
    (cg / "app.slice" / "memory.current").write_text(f"{500 << 20}\n")
    (cg / "app.slice" / "web.service" / "memory.max").write_text("max\n")
    (cg / "app.slice" / "web.service" / "memory.current").write_text(f"{400 << 20}\n")
    # 50 MiB of the parent's usage is inactive page cache: reclaimable, so it is headroom.
    (cg / "app.slice" / "memory.current").write_text(f"{550 << 20}\n")
    (cg / "app.slice" / "memory.stat").write_text(f"anon {450 << 20}\ninactive_file {50 << 20}\n")
    where = "0::/app.slice/web.service\n"
    h.proc(10, "web", 1000, 1, where)
    grow = [lambda i=i: h.proc(10, "web", 1000 + i * (10 << 20) // page, 1, where) for i in range(1, 6)]
    sec = collect(run_ticks(ctx_for(tmp_path), grow, scan=make_scan(P(10, name="web"))))
    (g,) = sec.data["growth"]
    assert g["limit"] == "memory cgroup /app.slice limit" and g["eta_s"] == 10.0
    (f,) = [f for f in processes.findings(sec, TH) if f.id == "processes.rss_growth"]
    assert f.severity == "critical" and f.subject == {"pid": 10, "name": "web", "cgroup": "/app.slice"}


def test_step_then_plateau_or_short_window_is_not_a_leak(tmp_path):
    h = PidTree(tmp_path)
    page = processes._PAGE
    h.proc(10, "startup", 1000, 1)
    steps = [lambda: h.proc(10, "startup", 1000 + (200 << 20) // page, 1)] + [lambda: None] * 4
    sec = collect(run_ticks(ctx_for(tmp_path), steps, scan=make_scan(P(10, name="startup"))))
    assert sec.data["growth"] == []
    # Steady, but 2 points: no trend to extrapolate.
    h.proc(11, "brief", 1000, 1)
    sec = collect(run_ticks(ctx_for(tmp_path), [lambda: h.proc(11, "brief", 90000, 1)],
                            scan=make_scan(P(11, name="brief"))))
    assert sec.data["growth"] == []


def test_eta_is_not_extrapolated_far_past_the_window(tmp_path):
    h = PidTree(tmp_path)
    page = processes._PAGE
    h.proc(10, "slow", 1000, 1)
    grow = [lambda i=i: h.proc(10, "slow", 1000 + i * (5 << 20) // page, 1) for i in range(1, 5)]
    (tmp_path / "proc" / "meminfo").write_text("MemTotal: 16000000 kB\nMemAvailable: 8388608 kB\n")  # 8 GiB
    sec = collect(run_ticks(ctx_for(tmp_path), grow, scan=make_scan(P(10, name="slow"))))
    (g,) = sec.data["growth"]
    assert g["eta_s"] is None and g["measured_s"] == 4.0      # 1638 s away, > 120 x 4 s measured
    assert not [f for f in processes.findings(sec, TH) if f.id == "processes.rss_growth"]


def test_thread_growth_eta_against_rlimit_nproc(tmp_path):
    h = PidTree(tmp_path)
    (tmp_path / "proc" / "loadavg").write_text("0.0 0.0 0.0 1/1000 99\n")
    h.proc(10, "spawner", 1000, 10)
    (tmp_path / "proc" / "10" / "limits").write_text(
        (FIX / "processes_v2_pids/proc/4000/limits").read_text())          # Max processes 200
    grow = [lambda i=i: h.proc(10, "spawner", 1000, 10 + 10 * i) for i in range(1, 6)]
    scan = make_scan(P(10, name="spawner", uid=1001, threads=60), P(11, uid=1001, threads=40), P(12, uid=0, threads=500))
    sec = collect(run_ticks(ctx_for(tmp_path), grow, scan=scan))
    (g,) = [g for g in sec.data["growth"] if g["kind"] == "threads"]
    assert g["limit"] == "RLIMIT_NPROC (200) of uid 1001" and g["per_s"] == 10.0
    assert g["eta_s"] == 10.0                          # (200 - 100 tasks of uid 1001) / 10 per s
    (f,) = [f for f in processes.findings(sec, TH) if f.id == "processes.thread_growth"]
    assert f.severity == "critical" and f.subject == {"pid": 10, "name": "spawner"}


def test_thread_growth_of_root_is_judged_against_pid_max(tmp_path):
    h = PidTree(tmp_path)
    (tmp_path / "proc" / "loadavg").write_text("0.0 0.0 0.0 1/9000 99\n")   # threads-max 10000
    h.proc(10, "rootd", 1000, 10)
    grow = [lambda i=i: h.proc(10, "rootd", 1000, 10 + 20 * i) for i in range(1, 6)]
    sec = collect(run_ticks(ctx_for(tmp_path), grow, scan=make_scan(P(10, name="rootd", uid=0))))
    (g,) = sec.data["growth"]
    assert g["limit"] == "kernel.threads-max (10000)" and g["eta_s"] == 50.0


def test_hostdiag_is_not_a_growth_subject_and_is_marked(tmp_path):
    h = PidTree(tmp_path)
    page = processes._PAGE
    h.proc(10, "hostdiag", 1000, 1)
    grow = [lambda i=i: h.proc(10, "hostdiag", 1000 + i * (50 << 20) // page, 1) for i in range(1, 6)]
    scan = make_scan(P(10, name="hostdiag"))
    scan.procs[10].is_self = True
    sec = collect(run_ticks(ctx_for(tmp_path), grow, scan=scan))
    assert sec.data["growth"] == [] and sec.data["top_rss"][0]["self"] is True


def test_scan_blind_spot_is_reported(tmp_path):
    root = tree(tmp_path)
    scan = fixture_scan()
    scan.missing, scan.missing_pids = {"status": 3, "io": 1}, 3
    sec = collect(run_ticks(ctx_for(root), scan=scan))
    assert sec.status == "partial" and "3 processes had unreadable files: status, io" in sec.reason


def test_first_pass_bounded_is_a_blind_spot(tmp_path, monkeypatch):
    h = PidTree(tmp_path)
    for pid in range(10, 20):
        h.proc(pid, f"p{pid}", 1000 + pid, 1)
    monkeypatch.setattr(processes, "MAX_PIDS", 4)
    sec = collect(run_ticks(ctx_for(tmp_path), [lambda: None], scan=make_scan(P(10))))
    assert sec.status == "partial" and "stopped after 4 of 10 processes" in sec.reason

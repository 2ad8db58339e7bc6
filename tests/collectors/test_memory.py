"""memory collector: parsers on literal strings, collect() on fixture trees, findings on hand-made data."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from support import drive, fixture_ctx as ctx_for, fixture_tree as tree, section
from hypothesis import given, settings
from hypothesis import strategies as st

from hostdiag.collectors import memory
from hostdiag.core import procscan
from hostdiag.core.context import Unavailable
from hostdiag.core.model import Section
from hostdiag.core.thresholds import Thresholds

TH = Thresholds(memory.THRESHOLDS)





def run_ticks(ctx, mutate=(), scan=None, dt=1.0):
    return drive(memory, ctx, mutate, scan, dt)

def collect(job):
    return section(memory, job)

def bump(path: Path, **deltas):
    """Add to 'key value' counters in a vmstat-like file."""
    def step():
        lines = []
        for line in path.read_text().splitlines():
            k, v = line.split()
            lines.append(f"{k} {int(v) + deltas.get(k, 0)}")
        path.write_text("\n".join(lines) + "\n")
    return step


# ---------------------------------------------------------------- parsers

MEMINFO_61 = """MemTotal:       16325648 kB
MemFree:          812344 kB
MemAvailable:    9876543 kB
Buffers:          123456 kB
HugePages_Total:       0
Hugepagesize:       2048 kB
ShadowCallStack:10373888 kB
"""


def test_parse_meminfo_units_and_odd_lines():
    mi = memory.parse_meminfo(MEMINFO_61 + "garbage line\nEmpty:\nBad: x kB\n")
    assert mi["MemTotal"] == 16325648 * 1024
    assert mi["MemAvailable"] == 9876543 * 1024
    assert mi["HugePages_Total"] == 0                      # no unit: a count, not multiplied
    assert mi["ShadowCallStack"] == 10373888 * 1024        # no space after the colon (psutil #2809)
    assert "Empty" not in mi and "Bad" not in mi and "garbage line" not in mi


def test_parse_meminfo_old_kernel_has_no_available():
    mi = memory.parse_meminfo("MemTotal:  4046844 kB\nMemFree:  153600 kB\n")
    assert "MemAvailable" not in mi


def test_parse_oom_control():
    assert memory.parse_oom_control("oom_kill_disable 0\nunder_oom 1\noom_kill 7\n") == \
        {"oom_kill_disable": 0, "under_oom": 1, "oom_kill": 7}
    assert "oom_kill" not in memory.parse_oom_control("oom_kill_disable 0\nunder_oom 0\n")  # < 4.13


@settings(deadline=None)  # a loaded 2-core CI box must not turn slowness into failure
@given(st.text(max_size=2000))
def test_parse_meminfo_never_raises(text):
    out = memory.parse_meminfo(text)
    assert all(isinstance(v, int) for v in out.values())


@settings(deadline=None)  # a loaded 2-core CI box must not turn slowness into failure
@given(st.dictionaries(st.from_regex(r"[A-Za-z_()]{1,20}", fullmatch=True), st.integers(0, 2**40), max_size=20))
def test_parse_meminfo_roundtrip(d):
    text = "".join(f"{k}:{' ' * (k.__len__() % 5)}{v} kB\n" for k, v in d.items())
    assert memory.parse_meminfo(text) == {k: v * 1024 for k, v in d.items()}


# ---------------------------------------------------------------- collect() on fixture trees

def test_collect_v2_pressure(tmp_path):
    root = tree(tmp_path, "memory_v2_pressure")
    vm = root / "proc" / "vmstat"
    job = run_ticks(ctx_for(root), [bump(vm, pswpin=3000, pswpout=2000, pgmajfault=400, oom_kill=1)])
    sec = collect(job)
    d = sec.data
    assert sec.status == "partial"                     # no process scan was given
    assert d["total_bytes"] == 8388608 * 1024
    assert d["available_bytes"] == 307200 * 1024
    assert d["available_pct"] == 3.7
    assert d["used_bytes"] == (8388608 - 307200) * 1024
    assert d["swap_used_bytes"] == (2097152 - 512000) * 1024
    assert d["swap_in_pages_per_s"] == 3000.0 and d["swap_out_pages_per_s"] == 2000.0
    assert d["major_faults_per_s"] == 400.0
    assert d["oom_kills_total"] == 3 and d["oom_kills_window"] == 1
    assert d["psi"]["full_avg10"] == 30.0
    cgs = {c["cgroup"]: c for c in d["cgroups"]}
    # cache.service is 93% "used" but almost all of it is inactive file cache: not listed.
    assert set(cgs) == {"/system.slice/app.service"}
    app = cgs["/system.slice/app.service"]
    assert app["limit_bytes"] == 1073741824 and app["oom_kills"] == 3
    assert app["working_set_bytes"] == 1048576000 - 10485760
    assert app["working_set_pct"] == 96.7
    assert d["cgroups_limited"] == 2


def test_collect_v2_cgroup_events_rise_during_window(tmp_path):
    root = tree(tmp_path, "memory_v2_pressure")
    ev = root / "sys/fs/cgroup/system.slice/app.service/memory.events"
    job = run_ticks(ctx_for(root), [bump(ev, max=10, oom=1, oom_kill=1)])
    app = collect(job).data["cgroups"][0]
    assert app["limit_hits_window"] == 10 and app["oom_kills_window"] == 1


def test_collect_window0_gives_no_rates(tmp_path):
    root = tree(tmp_path, "memory_v2_pressure")
    d = collect(run_ticks(ctx_for(root))).data
    assert d["window_s"] == 0
    for k in ("swap_in_pages_per_s", "swap_out_pages_per_s", "major_faults_per_s", "oom_kills_window"):
        assert d[k] is None, k
    assert d["cgroups"][0]["oom_kills_window"] is None
    assert d["oom_kills_total"] == 2


def test_collect_old_kernel_v1(tmp_path):
    root = tree(tmp_path, "memory_v1_old_kernel")
    sec = collect(run_ticks(ctx_for(root), [bump(root / "proc/vmstat", pgmajfault=10)], scan=procscan.Scan()))
    d = sec.data
    assert sec.status == "partial"
    assert d["available_bytes"] is None and d["available_pct"] is None and d["used_bytes"] is None
    assert d["oom_kills_total"] is None and d["oom_kills_window"] is None
    assert d["psi"] is None
    assert d["swap_used_pct"] is None                  # no swap: not a fake 0%
    assert any("MemAvailable" in b for b in sec.blind_spots)
    assert any("oom_kill" in b and "4.13" in b for b in sec.blind_spots)
    assert any("PSI" in b for b in sec.blind_spots)
    # root and docker/ carry the v1 "unlimited" sentinel: only abc123 is limited.
    assert d["cgroups_limited"] == 1
    (c,) = d["cgroups"]
    assert c["cgroup"] == "/docker/abc123" and c["cgroup_version"] == 1
    assert c["limit_bytes"] == 536870912 and c["limit_hits"] == 42 and c["oom_kills"] is None
    assert c["working_set_bytes"] == 524288000 - 4194304
    assert d["top_rss"] == []
    assert memory.findings(sec, TH)[0].id == "memory.cgroup_near_limit"


def test_collect_v1_failcnt_rise(tmp_path):
    root = tree(tmp_path, "memory_v1_old_kernel")
    fc = root / "sys/fs/cgroup/memory/docker/abc123/memory.failcnt"
    job = run_ticks(ctx_for(root), [lambda: fc.write_text("50\n")])
    c = collect(job).data["cgroups"][0]
    assert c["limit_hits_window"] == 8


def test_missing_meminfo_is_partial_with_vmstat_and_psi_kept(tmp_path):
    root = tree(tmp_path, "memory_v2_pressure")
    (root / "proc/meminfo").unlink()
    sec = collect(run_ticks(ctx_for(root), [lambda: None], scan=procscan.Scan()))
    assert sec.status == "partial" and f"{root}/proc/meminfo missing: RAM and swap size" in sec.reason
    assert "run as root" not in sec.reason
    assert sec.data["total_bytes"] is None and sec.data["available_pct"] is None
    assert sec.data["oom_kills_total"] is not None and sec.data["psi"]["full_avg10"] is not None
    assert memory.findings(sec, TH) is not None      # findings cope with no sizes


def test_memory_with_nothing_readable_is_unavailable_naming_the_files(tmp_path):
    root = tree(tmp_path, "memory_v2_pressure")
    for rel in ("proc/meminfo", "proc/vmstat"):
        (root / rel).unlink()
    shutil.rmtree(root / "proc/pressure")
    job = run_ticks(ctx_for(root))
    with pytest.raises(Unavailable, match=r"meminfo missing; .*vmstat missing: no memory figures"):
        memory.collect(job)


def test_missing_vmstat_is_partial_and_not_run_as_root(tmp_path):
    root = tree(tmp_path, "memory_v2_pressure")
    (root / "proc/vmstat").unlink()
    sec = collect(run_ticks(ctx_for(root), [lambda: None], scan=procscan.Scan()))
    # issue 9: a missing file is not a permission problem: no "run as root" in the headline
    assert sec.status == "partial" and sec.reason == f"{root}/proc/vmstat missing: no swap/fault rates or OOM kill count"
    assert sec.data["oom_kills_total"] is None and sec.data["swap_in_pages_per_s"] is None
    assert sec.data["available_pct"] == 3.7


def test_missing_meminfo_does_not_fail_sample(tmp_path):
    root = tree(tmp_path, "memory_v2_pressure")
    (root / "proc/meminfo").unlink()
    out = memory.sample(ctx_for(root), {})
    assert "available_bytes" not in out and "swap_in_pages" in out


def test_missing_psi_and_cgroups_is_partial_not_error(tmp_path):
    root = tree(tmp_path, "memory_v2_pressure")
    shutil.rmtree(root / "proc/pressure")
    shutil.rmtree(root / "sys")
    sec = collect(run_ticks(ctx_for(root), scan=procscan.Scan()))
    assert sec.status == "partial" and "PSI not present" in sec.reason
    assert f"no memory cgroup hierarchy under {root}/sys/fs/cgroup" in sec.reason
    assert sec.data["cgroups"] == [] and sec.data["cgroups_limited"] == 0


def test_through_runner_on_fixture(tmp_path, snapshot):
    root = tree(tmp_path, "memory_v2_pressure")
    rep = snapshot(only=["memory"], window=0, proc=str(root / "proc"), sys=str(root / "sys"), root=str(root))
    sec = rep.snapshot.sections["memory"]
    # The fixture has no /proc/PID dirs and psutil.pids() raises IndexError on an empty list, so
    # the shared process scan is missing here: the section is partial, never unavailable.
    assert sec.status in ("ok", "partial"), sec.reason
    assert sec.data["available_pct"] == 3.7 and sec.data["cgroups"][0]["cgroup"] == "/system.slice/app.service"
    ids = [f.id for f in rep.findings]
    assert "memory.exhaustion" in ids and "memory.swap_storm" in ids   # swap storm from PSI full alone


def test_top_rss_from_scan(tmp_path):
    root = tree(tmp_path, "memory_v2_pressure")
    scan = procscan.Scan()
    for pid, rss in ((10, 5 << 20), (11, None), (12, 900 << 20), (13, 0)):
        scan.procs[pid] = procscan.Proc(pid=pid, name=f"p{pid}", rss_bytes=rss)
    d = collect(run_ticks(ctx_for(root), scan=scan)).data
    assert [r["pid"] for r in d["top_rss"]] == [12, 10]
    assert d["top_rss"][0]["rss_pct"] == round((900 << 20) / (8388608 * 1024) * 100, 1)


# ---------------------------------------------------------------- findings on hand-made data

def base(**kw) -> Section:
    d = {"total_bytes": 8 << 30, "available_bytes": 6 << 30, "available_pct": 75.0, "swap_used_bytes": 0,
         "swap_in_pages_per_s": 0.0, "swap_out_pages_per_s": 0.0, "major_faults_per_s": 0.0,
         "oom_kills_total": 0, "oom_kills_window": 0, "window_s": 5.0,
         "psi": {"some_avg10": 0.0, "full_avg10": 0.0}, "cgroups": [], "cgroups_limited": 0,
         "top_rss": [{"pid": 42, "name": "java", "rss_bytes": 3 << 30, "rss_pct": 37.5, "cmdline": "java"}]}
    d.update(kw)
    return Section("memory", "ok", data=d)


def ids(sec, th=TH):
    return {f.id: f for f in memory.findings(sec, th)}


def test_healthy_gives_nothing():
    assert memory.findings(base(), TH) == []


@pytest.mark.parametrize("pct,level", [(10.1, None), (10.0, "warning"), (5.1, "warning"), (5.0, "critical"),
                                       (None, None)])
def test_exhaustion_edges(pct, level):
    f = ids(base(available_pct=pct, available_bytes=None if pct is None else 1)).get("memory.exhaustion")
    assert (f.severity if f else None) == level
    if f:
        assert f.subject == {"pid": 42, "name": "java"}
        assert any(s.startswith("Do not") for s in f.stabilize)


@pytest.mark.parametrize("si,so,level", [(100.0, 155.0, None), (100.0, 156.0, "warning"),
                                         (2000.0, 560.0, "critical"), (None, 5000.0, None)])
def test_swap_storm_edges(si, so, level):
    f = ids(base(swap_in_pages_per_s=si, swap_out_pages_per_s=so)).get("memory.swap_storm")
    assert (f.severity if f else None) == level


@pytest.mark.parametrize("full,level", [(4.99, None), (5.0, "warning"), (20.0, "critical")])
def test_swap_storm_from_psi_full(full, level):
    f = ids(base(psi={"some_avg10": 50.0, "full_avg10": full})).get("memory.swap_storm")
    assert (f.severity if f else None) == level
    if f:
        assert "thrashing" in f.title


def test_oom_window_is_critical_lifetime_is_info():
    f = ids(base(oom_kills_total=5, oom_kills_window=1))["memory.oom_kills"]
    # the OOM counter names no victim: the biggest process is not the subject (issue 11)
    assert f.severity == "critical" and f.subject == {}
    f = ids(base(oom_kills_total=5, oom_kills_window=0))["memory.oom_kills"]
    assert f.severity == "info" and "5" in f.title
    f = ids(base(oom_kills_total=5, oom_kills_window=None))["memory.oom_kills"]   # --window 0
    assert f.severity == "info"
    assert "memory.oom_kills" not in ids(base(oom_kills_total=None, oom_kills_window=None))


def cg(**kw):
    c = {"cgroup": "/system.slice/app.service", "cgroup_version": 2, "limit_bytes": 1 << 30,
         "usage_bytes": 1 << 29, "usage_pct": 50.0, "working_set_bytes": 1 << 29, "working_set_pct": 50.0,
         "limit_hits": 0, "oom_kills": 0, "limit_hits_window": 0, "oom_kills_window": 0}
    c.update(kw)
    return c


@pytest.mark.parametrize("c,level", [
    (cg(working_set_pct=89.9), None),
    (cg(working_set_pct=90.0), "warning"),
    (cg(working_set_pct=97.0), "critical"),
    (cg(working_set_pct=85.0, limit_hits_window=3), "warning"),      # hitting the limit and mostly working set
    (cg(working_set_pct=30.0, limit_hits_window=3000), None),        # page cache hitting the limit: normal
    (cg(working_set_pct=30.0, oom_kills_window=1), "critical"),
])
def test_cgroup_near_limit(c, level):
    f = ids(base(cgroups=[c])).get("memory.cgroup_near_limit")
    assert (f.severity if f else None) == level
    if f:
        assert f.subject == {"cgroup": "/system.slice/app.service"}
        assert "/sys/fs/cgroup/system.slice/app.service" in f.verify


def test_oom_subject_is_the_cgroup_that_killed():
    f = ids(base(oom_kills_total=3, oom_kills_window=1,
                 cgroups=[cg(cgroup="/a", oom_kills=2), cg(cgroup="/b", oom_kills=1, oom_kills_window=1)]))
    assert f["memory.oom_kills"].subject == {"cgroup": "/b"}
    assert "/b" in f["memory.oom_kills"].title


def test_v1_verify_path():
    f = ids(base(cgroups=[cg(cgroup="/docker/abc", cgroup_version=1, working_set_pct=99.0)]))
    assert "/sys/fs/cgroup/memory/docker/abc" in f["memory.cgroup_near_limit"].verify


def test_threshold_override():
    th = Thresholds(memory.THRESHOLDS)
    th.override("memory.available_pct=80,50")
    assert ids(base(), th)["memory.exhaustion"].severity == "warning"


def test_available_memory_eta_is_a_finding_whatever_the_level():
    f = ids(base(available_eta={"eta_s": 360.0, "rate_per_s": 5e7, "measured_s": 5.0, "limit_fraction": 0.25}))
    f = f["memory.exhaustion"]
    assert f.severity == "critical" and f.title.startswith("Available memory exhausted in ~6 min at this rate")
    assert f.evidence["eta_s"] == 360.0 and f.evidence["limit_fraction"] == 0.25
    assert ids(base(available_eta={"eta_s": 7200.0, "rate_per_s": 1.0, "measured_s": 60.0})) == {}


def test_a_small_top_process_is_not_the_subject():
    small = [{"pid": 7, "name": "sed", "rss_bytes": 1 << 20, "rss_pct": 0.1, "cmdline": "sed"}]
    f = ids(base(available_pct=4.0, available_bytes=1, top_rss=small))["memory.exhaustion"]
    assert f.subject == {}


def test_cgroup_rows_get_an_eta_from_their_points(tmp_path):
    d = tmp_path / "cg"
    d.mkdir()
    cg = {"version": 2, "cgroup": "/app", "usage_bytes": 300 << 20, "limit_bytes": 1 << 30, "high_bytes": None,
          "events": {}, "dir": str(d)}
    pts = [(i * 0.5, (100 << 20) + i * (20 << 20)) for i in range(11)]   # +40 MiB/s
    from support import fixture_ctx
    rows, _ = memory.cgroups_near_limit(fixture_ctx(tmp_path), None, {"v2:/app": cg}, 5.0, {"v2:/app": pts})
    assert rows and rows[0]["eta_s"] == pytest.approx(((1 << 30) - (300 << 20)) / (40 << 20), rel=0.01)

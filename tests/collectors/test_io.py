"""io collector: diskstats parsing (14/18/20-field and old 7-field lines), iostat -x maths,
collect() on fixture trees, D-state and top-I/O from hand-made scans, findings at threshold edges.

D state cannot be created safely on this machine (a FUSE daemon that never answers leaves
unkillable tasks behind), so io.d_state_pileup is tested here on scan data only."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from support import drive, fixture_ctx as ctx_for, fixture_tree as tree, section
from hypothesis import given
from hypothesis import strategies as st

from hostdiag.collectors import io
from hostdiag.core.context import Context, Unavailable
from hostdiag.core.model import Section
from hostdiag.core.procfs import PSI_ABSENT
from hostdiag.core.procscan import Proc, Scan
from hostdiag.core.thresholds import Thresholds

TH = Thresholds(io.THRESHOLDS)





def run_ticks(ctx, mutate=(), scan=None, dt=1.0):
    return drive(io, ctx, mutate, scan, dt)

def collect(job):
    return section(io, job)

def swap_in(root: Path, tick: str):
    return lambda: shutil.copy(root / "ticks" / tick, root / "proc" / "diskstats")


# ---------------------------------------------------------------- parsers

DISKSTATS_20 = "  254       0 vda 32231 7926 2166146 7926 4731 11572 697040 2078 0 3828 10294 4217 38 120520 259 541 30\n"
DISKSTATS_18 = "   8       0 sda 4579 1203 312088 2212 8764 5421 987654 11233 0 9876 13445 120 0 98304 12\n"
DISKSTATS_14 = "   8       0 sda 9021 3022 502342 40120 12011 20114 1002344 98123 0 60012 138243\n"
DISKSTATS_7 = "   8       1 sda1 1200 9600 340 2720\n"


def test_parse_20_field_kernel_6():
    d = io.parse_diskstats(DISKSTATS_20)["vda"]  # this VM, kernel 6.18
    assert d["reads"] == 32231 and d["read_sectors"] == 2166146 and d["read_ms"] == 7926
    assert d["io_ms"] == 3828 and d["queue_ms"] == 10294
    assert d["discards"] == 4217 and d["flushes"] == 541 and d["flush_ms"] == 30


def test_parse_18_field_kernel_419():
    d = io.parse_diskstats(DISKSTATS_18)["sda"]
    assert d["discard_sectors"] == 98304 and d["discard_ms"] == 12
    assert "flushes" not in d  # absent, not 0


def test_parse_14_field_kernel_414():
    d = io.parse_diskstats(DISKSTATS_14)["sda"]
    assert d["writes"] == 12011 and d["queue_ms"] == 138243
    assert "discards" not in d and "flushes" not in d


def test_parse_old_7_field_partition_line():
    d = io.parse_diskstats(DISKSTATS_7)["sda1"]
    assert d == {"reads": 1200, "read_sectors": 9600, "writes": 340, "write_sectors": 2720}


def test_parse_skips_odd_lines():
    text = "\n   8 0\ngarbage line here and more\n   8 0 sdz x y z a b c d e f g h\n" + DISKSTATS_14
    assert list(io.parse_diskstats(text)) == ["sda"]


@given(st.lists(st.integers(min_value=0, max_value=2**64 - 1), min_size=11, max_size=17))
def test_parse_roundtrips_any_field_count(values):
    line = "   8 0 sdq " + " ".join(map(str, values))
    d = io.parse_diskstats(line)["sdq"]
    assert list(d.values()) == values
    assert list(d) == list(io.STATS[:len(values)])


@given(st.text())
def test_parse_never_raises(text):
    io.parse_diskstats(text)


@pytest.mark.parametrize("name,whole", [
    ("sda", True), ("sda1", False), ("vdb12", False), ("xvda1", False), ("nvme0n1", True),
    ("nvme0n1p3", False), ("mmcblk0", True), ("mmcblk0p1", False), ("dm-0", True), ("md0", True),
    ("md127p1", False), ("loop3", True), ("loop3p1", False), ("sr0", True), ("zram0", True),
])
def test_partition_heuristic_without_sysfs(name, whole):
    assert io.is_whole_disk(name, None) is whole


def test_sysfs_wins_over_names():
    assert io.is_whole_disk("sda", {"sda"}) and not io.is_whole_disk("sda1", {"sda"})
    assert io.is_whole_disk("cciss/c0d0", {"cciss/c0d0"})


def test_device_stats_matches_iostat_formulas():
    # Over 1 s: 100 reads in 500 ms total, 400 writes in 40 s total, io_ticks 800 ms, queue 42 s.
    rates = {"reads": 100, "writes": 400, "read_bytes": 1 << 20, "write_bytes": 4 << 20,
             "read_time_s": 0.5, "write_time_s": 40.0, "io_time_s": 0.8, "queue_time_s": 42.0}
    d = io.device_stats(rates, 3)
    assert d == {"r_per_s": 100, "w_per_s": 400, "read_bps": 1048576, "write_bps": 4194304,
                 "r_await_ms": 5.0, "w_await_ms": 100.0, "aqu_sz": 42.0, "util_pct": 80.0, "in_flight": 3}


def test_device_stats_no_io_means_no_await_and_caps_util():
    d = io.device_stats({"reads": 0, "writes": 0, "read_time_s": 0, "io_time_s": 1.004}, None)
    assert d["r_await_ms"] is None and d["w_await_ms"] is None
    assert d["util_pct"] == 100.0 and d["in_flight"] is None


# ---------------------------------------------------------------- collect on fixtures

def test_collect_busy_host_over_a_window(tmp_path):
    root = tree(tmp_path, "io_kernel6_busy")
    sec = collect(run_ticks(ctx_for(root), [swap_in(root, "diskstats.1")]))
    devs = {d["device"]: d for d in sec.data["devices"]}
    assert set(devs) == {"sda", "dm-0", "nvme0n1", "loop1"}   # partitions and idle loop/zram/sr0 skipped
    sda = devs["sda"]
    assert sda["r_per_s"] == 100 and sda["w_per_s"] == 400
    assert sda["read_bps"] == 1 << 20 and sda["write_bps"] == 4 << 20
    assert sda["r_await_ms"] == 5.0 and sda["w_await_ms"] == 100.0
    assert sda["aqu_sz"] == 42.0 and sda["util_pct"] == 100.0 and sda["in_flight"] == 38
    assert devs["dm-0"]["dm_name"] == "vg0-root"
    assert devs["loop1"]["util_pct"] == 0.0 and devs["loop1"]["r_await_ms"] is None
    assert sec.data["psi"]["full_avg10"] == 48.3
    assert sec.status == "ok"
    assert sec.data["top"] is None and sec.data["d_state"] is None  # no process scan given


def test_collect_busy_host_findings(tmp_path):
    root = tree(tmp_path, "io_kernel6_busy")
    sec = collect(run_ticks(ctx_for(root), [swap_in(root, "diskstats.1")]))
    fs = io.findings(sec, TH)
    sat = [f for f in fs if f.id == "io.saturation"]
    assert {f.subject["device"] for f in sat} == {"sda", "dm-0"}
    assert all(f.severity == "critical" for f in sat)
    assert sat[0].verify.startswith("iostat -x ")
    pressure = [f for f in fs if f.id == "io.pressure"]
    assert pressure and pressure[0].severity == "critical"
    assert not any(f.subject.get("device") in ("nvme0n1", "loop1") for f in fs)


def test_collect_old_kernel_point_in_time(tmp_path):
    root = tree(tmp_path, "io_kernel414_nopsi")
    sec = collect(run_ticks(ctx_for(root)))
    devs = {d["device"]: d for d in sec.data["devices"]}
    assert set(devs) == {"sda", "sdb", "md0", "sr0", "dm-0"}  # no /sys: partitions by name
    assert all(d["util_pct"] is None and d["r_per_s"] is None for d in devs.values())  # --window 0
    assert devs["sda"]["in_flight"] == 0
    assert sec.status == "partial" and PSI_ABSENT in sec.reason
    assert io.findings(sec, TH) == []


def test_missing_diskstats_and_everything_else_is_unavailable(tmp_path):
    (tmp_path / "proc").mkdir()
    job = run_ticks(ctx_for(tmp_path))
    with pytest.raises(Unavailable, match="diskstats missing"):
        io.collect(job)


def test_missing_diskstats_keeps_psi_and_d_state(tmp_path):
    root = tree(tmp_path, "io_kernel6_busy")
    (root / "proc/diskstats").unlink()
    sec = collect(run_ticks(ctx_for(root), scan=scan_with([Proc(7, name="stuck", status="disk-sleep")])))
    assert sec.status == "partial"
    assert f"{root}/proc/diskstats missing: no per-device throughput" in sec.reason and "run as root" not in sec.reason
    assert sec.data["devices"] == [] and "devices_note" not in sec.data
    assert sec.data["psi"] is not None and sec.data["d_state_count"] == 1


def test_disk_missing_from_sys_block_is_reported_and_named(tmp_path):
    # issue 9: a tree whose /sys lacks a disk that /proc/diskstats has (sdq) must not drop it;
    # a partition of a listed disk (sda9) and one named like a partition (xvdb1) stay partitions.
    root = tree(tmp_path, "io_kernel6_busy")
    extra = ("   8     256 sdq 5000 10 80000 900 7000 20 160000 4000 3 5200 4900 0 0 0 0 40 30\n"
             "   8       9 sda9 5000 10 80000 900 7000 20 160000 4000 0 5200 4900 0 0 0 0 0 0\n"
             " 202      17 xvdb1 5000 10 80000 900 7000 20 160000 4000 0 5200 4900 0 0 0 0 0 0\n")
    for f in (root / "proc/diskstats", root / "ticks/diskstats.1"):
        f.write_text(f.read_text() + extra)
    sec = collect(run_ticks(ctx_for(root), [swap_in(root, "diskstats.1")]))
    assert sec.data["devices_not_in_sys"] == ["sdq"]
    assert "1 devices in /proc/diskstats have no" in sec.reason and "(sdq)" in sec.reason
    assert "run as root" not in sec.reason
    devs = {d["device"]: d for d in sec.data["devices"]}
    assert devs["sdq"]["in_flight"] == 3 and "sda9" not in devs and "xvdb1" not in devs


def test_unlistable_sys_block_is_a_blind_spot(tmp_path):
    root = tree(tmp_path, "io_kernel6_busy")
    shutil.rmtree(root / "sys/block")
    sec = collect(run_ticks(ctx_for(root)))
    assert "sys/block not readable: whole disks told from partitions by name only" in sec.reason
    assert {d["device"] for d in sec.data["devices"]} >= {"sda", "nvme0n1", "dm-0"}
    assert not {"sda1", "nvme0n1p1"} & {d["device"] for d in sec.data["devices"]}


def test_missing_proc_io_files_in_a_tree_are_not_a_permission_problem(tmp_path, monkeypatch):
    root = tree(tmp_path, "io_kernel6_busy")
    for pid in range(1, 4):          # three pids of a copied tree: stat there, io not copied
        (root / "proc" / str(pid)).mkdir()
        (root / "proc" / str(pid) / "stat").write_text(f"{pid} (p) S 0\n")
    monkeypatch.setattr(io.os, "geteuid", lambda: 1000)
    procs = [Proc(i, name="p") for i in range(1, 4)]
    sec = collect(run_ticks(ctx_for(root), scan=scan_with(procs, io_unreadable=3, proc=str(root / "proc"))))
    assert "/proc/PID/io missing for 3 processes" in sec.reason and "run as root" not in sec.reason


def test_counter_reset_gives_no_rate(tmp_path):
    root = tree(tmp_path, "io_kernel6_busy")
    backwards = root / "ticks" / "diskstats.0"
    shutil.copy(root / "proc" / "diskstats", backwards)

    def step():
        shutil.copy(root / "ticks" / "diskstats.1", root / "proc" / "diskstats")
    job = run_ticks(ctx_for(root), [step, lambda: shutil.copy(backwards, root / "proc" / "diskstats")])
    sda = next(d for d in collect(job).data["devices"] if d["device"] == "sda")
    assert sda["r_per_s"] is None and sda["util_pct"] is None


# ---------------------------------------------------------------- D state and top I/O

def scan_with(procs, io_unreadable=0, proc="/proc"):
    s = Scan(proc=proc)  # scan.cmdline() reads <proc>/PID/cmdline; absent -> None
    for p in procs:
        s.procs[p.pid] = p
    s.io_unreadable = io_unreadable
    return s


def d_state_tree(tmp_path: Path, wchans: dict[int, str]) -> Path:
    root = tree(tmp_path, "io_kernel414_nopsi")
    for pid, w in wchans.items():
        (root / "proc" / str(pid)).mkdir()
        (root / "proc" / str(pid) / "wchan").write_text(w)
    return root


def test_d_state_pileup_from_scan(tmp_path):
    wchans = {100 + i: "nfs_wait_bit_killable" for i in range(6)} | {200: "io_schedule", 201: "0"}
    root = d_state_tree(tmp_path, wchans)
    procs = [Proc(pid, name=f"w{pid}", status="disk-sleep") for pid in wchans]
    procs += [Proc(300, name="idle", status="sleeping")]
    sec = collect(run_ticks(ctx_for(root), scan=scan_with(procs, proc=str(root / "proc"))))
    assert sec.data["d_state_count"] == 8
    assert sec.data["d_state_wchan"] == {"nfs_wait_bit_killable": 6, "io_schedule": 1, "?": 1}
    rows = {r["pid"]: r for r in sec.data["d_state"]}
    assert rows[201]["wchan"] is None and rows[100]["cmdline"] is None
    f = next(f for f in io.findings(sec, TH) if f.id == "io.d_state_pileup")
    assert f.severity == "warning"
    assert f.subject == {"wchan": "nfs_wait_bit_killable"}
    assert any(s.startswith("Do not kill -9 D-state processes: they cannot die until the I/O completes; "
                            "find the stuck device or mount") for s in f.stabilize)
    assert 100 in f.evidence["pids"]


@pytest.mark.parametrize("count,level", [(0, None), (4, None), (5, "warning"), (19, "warning"), (20, "critical")])
def test_d_state_threshold_edges(count, level):
    sec = Section("io", "ok", data={"d_state_count": count, "d_state_wchan": {}, "d_state": []})
    fs = [f for f in io.findings(sec, TH) if f.id == "io.d_state_pileup"]
    assert (fs[0].severity if fs else None) == level


def test_d_state_subject_names_the_one_saturated_device():
    sec = Section("io", "ok", data={
        "d_state_count": 30, "d_state_wchan": {"?": 30}, "d_state": [],
        "devices": [{"device": "sdb", "util_pct": 100.0, "ios": 500, "r_await_ms": 900.0},
                    {"device": "sda", "util_pct": 3.0, "ios": 50}]})
    f = next(f for f in io.findings(sec, TH) if f.id == "io.d_state_pileup")
    assert f.subject == {"device": "sdb"} and f.severity == "critical"


def test_top_io_processes_over_window(tmp_path):
    root = tree(tmp_path, "io_kernel6_busy")
    procs = [Proc(10, name="backup", read_bps=50e6, write_bps=1e6),
             Proc(11, name="db", read_bps=1e6, write_bps=20e6),
             Proc(12, name="idle", read_bps=0.0, write_bps=0.0),
             Proc(13, name="hidden")]           # /proc/13/io unreadable: no rates
    sec = collect(run_ticks(ctx_for(root), [swap_in(root, "diskstats.1")], scan=scan_with(procs, proc=str(root / "proc"))))
    assert [r["pid"] for r in sec.data["top"]] == [10, 11]
    assert sec.data["top"][0] == {"pid": 10, "name": "backup", "read_bps": 50000000, "write_bps": 1000000,
                                  "cmdline": None}


def test_top_is_none_with_window_zero(tmp_path):
    root = tree(tmp_path, "io_kernel6_busy")
    sec = collect(run_ticks(ctx_for(root), scan=scan_with([Proc(10, name="x", read_bps=None)])))
    assert sec.data["top"] is None


def test_unreadable_proc_io_as_non_root_is_a_blind_spot(tmp_path, monkeypatch):
    root = tree(tmp_path, "io_kernel6_busy")
    monkeypatch.setattr(io.os, "geteuid", lambda: 1000)   # the real non-root run is in the integration test
    sec = collect(run_ticks(ctx_for(root), [swap_in(root, "diskstats.1")],
                            scan=scan_with([Proc(1, name="init")], io_unreadable=40)))
    assert sec.status == "partial" and "run as root to see per-process I/O" in sec.reason


def test_one_unreadable_process_as_root_is_not_a_blind_spot(tmp_path, monkeypatch):
    root = tree(tmp_path, "io_kernel6_busy")
    monkeypatch.setattr(io.os, "geteuid", lambda: 0)
    procs = [Proc(i, name="p") for i in range(1, 50)]
    sec = collect(run_ticks(ctx_for(root), [swap_in(root, "diskstats.1")], scan=scan_with(procs, io_unreadable=1)))
    assert sec.status == "ok" and sec.data["procs_io_unreadable"] == 1


# ---------------------------------------------------------------- findings at the edges

def dev(**kw):
    base = {"device": "sdb", "util_pct": 10.0, "r_await_ms": 1.0, "w_await_ms": 1.0, "aqu_sz": 0.1, "ios": 100}
    return base | kw


@pytest.mark.parametrize("kw,level", [
    ({"util_pct": 89.9}, None), ({"util_pct": 90.0}, "warning"), ({"util_pct": 98.9}, "warning"),
    ({"util_pct": 99.0}, "critical"), ({"util_pct": None}, None),
    ({"w_await_ms": 99.9}, None), ({"w_await_ms": 100.0}, "warning"), ({"r_await_ms": 500.0}, "critical"),
    ({"w_await_ms": 800.0, "ios": 9}, None),      # too few I/Os to judge await
    ({"w_await_ms": 800.0, "ios": 10}, "critical"),
    ({"w_await_ms": 800.0, "ios": None}, None),   # --window 0
])
def test_saturation_edges(kw, level):
    sec = Section("io", "ok", data={"devices": [dev(**kw)], "window_s": 5.0})
    fs = [f for f in io.findings(sec, TH) if f.id == "io.saturation"]
    assert (fs[0].severity if fs else None) == level
    if fs:
        assert fs[0].subject == {"device": "sdb"} and fs[0].category == "io"


@pytest.mark.parametrize("full,level", [(None, None), (9.99, None), (10.0, "warning"), (39.9, "warning"),
                                        (40.0, "critical")])
def test_pressure_edges(full, level):
    sec = Section("io", "ok", data={"psi": None if full is None else {"full_avg10": full, "some_avg10": full}})
    fs = [f for f in io.findings(sec, TH) if f.id == "io.pressure"]
    assert (fs[0].severity if fs else None) == level


def test_idle_data_has_no_findings():
    sec = Section("io", "ok", data={"devices": [dev(util_pct=0.4, r_await_ms=0.3, w_await_ms=0.9)],
                                    "psi": {"some_avg10": 0.0, "full_avg10": 0.0}, "d_state_count": 1,
                                    "d_state_wchan": {}, "d_state": []})
    assert io.findings(sec, TH) == []


def test_live_host_sample_and_collect_do_not_crash():
    ctx = Context()
    state: dict = {}
    assert isinstance(io.sample(ctx, state), dict)
    assert "sys_block" in state


@pytest.mark.parametrize("top_bps,other_dev,named", [(400e6, False, True), (100e6, False, False),
                                                     (400e6, True, False)])
def test_saturated_device_names_a_process_only_when_its_io_accounts_for_it(top_bps, other_dev, named):
    devs = [dev(util_pct=99.5, write_bps=420e6, read_bps=0)] + ([dev(device="sdc", write_bps=1e6)] if other_dev else [])
    top = [{"pid": 4242, "name": "dd", "read_bps": 0, "write_bps": top_bps, "cmdline": "dd"}]
    sec = Section("io", "ok", data={"devices": devs, "window_s": 5.0, "top": top})
    (f,) = [f for f in io.findings(sec, TH) if f.id == "io.saturation"]
    assert (f.subject.get("pid") == 4242) == named and ("dd (pid 4242)" in f.title) == named

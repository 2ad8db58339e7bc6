"""disk collector: mountinfo/fstab parsers on literal strings, the growth-trend rule, collect()
on fixture trees (statvfs replaced by a table: a fixture tree has no filesystems to stat),
the bounded statvfs path with a call that really blocks, and findings at threshold edges."""
from __future__ import annotations

import errno
import os
import threading
import time
from pathlib import Path

import pytest
from support import drive, fixture_ctx as ctx_for, fixture_tree as tree, section
from hypothesis import given
from hypothesis import strategies as st

from hostdiag.collectors import disk
from hostdiag.core import runner
from hostdiag.core.context import Context, Deadline, Unavailable
from hostdiag.core.model import Section
from hostdiag.core.procscan import DeletedOpen, Proc, Scan
from hostdiag.core.runner import Job, parse_key
from hostdiag.core.thresholds import Thresholds

TH = Thresholds(disk.THRESHOLDS)
GiB = 1 << 30
MiB = 1 << 20





def vfs(size: int, used: int, avail: int | None = None, files: int = 1000, ifree: int = 900, frsize: int = 4096):
    """An os.statvfs_result with df-style numbers (avail defaults to free: no reserved blocks)."""
    free = size - used
    avail = free if avail is None else avail
    return os.statvfs_result((frsize, frsize, size // frsize, free // frsize, avail // frsize,
                              files, ifree, ifree, 0, 255))


class FakeStatvfs:
    """statvfs by mount point under the fixture root; a mount mapped to an exception raises it.

    Installed as disk.probe: a fixture tree has no filesystems, so there is no device to check
    (None), and a blocking entry is bounded by a thread here the way the real prober bounds a
    child (which tests/core/test_isolate.py and the FUSE test in test_disk_faults.py prove)."""

    def __init__(self, root: Path, table: dict):
        self.root, self.table, self.calls = str(root), dict(table), []

    def __call__(self, path: str):
        mp = "/" + os.path.relpath(path, self.root).lstrip(".")
        mp = "/" if mp in ("/", "//") else mp.rstrip("/")
        self.calls.append(mp)
        v = self.table.get(mp, vfs(10 * GiB, 1 * GiB))
        if isinstance(v, BaseException):
            raise v
        return v() if callable(v) else v

    def probe(self, path: str, timeout_s: float):
        from hostdiag.core.context import bounded

        return bounded(self, timeout_s, path), None


def run_ticks(ctx, mutate=(), scan=None, dt=1.0):
    return drive(disk, ctx, mutate, scan, dt)

def collect(job):
    return section(disk, job)

# ---------------------------------------------------------------- parsers

MOUNTINFO = r"""36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue
27 1 254:0 / / rw,relatime - ext4 /dev/vda rw,discard
59 30 0:49 / /mnt/my\040disk rw,relatime shared:35 shared:36 - ext4 /dev/sdc1 rw
60 30 0:50 / /weird rw - fuse.sshfs user@host:/a\134b rw,user_id=0
not a mountinfo line
61 30 0:51 / /nosuper rw - tmpfs tmpfs
"""


def test_parse_mountinfo_proc5_example_and_escapes():
    m = disk.parse_mountinfo(MOUNTINFO)
    assert [x["mount"] for x in m] == ["/mnt2", "/", "/mnt/my disk", "/weird", "/nosuper"]
    assert m[0] == {"id": "36", "dev": "98:0", "root": "/mnt1", "mount": "/mnt2", "opts": ["rw", "noatime"],
                    "fstype": "ext3", "source": "/dev/root", "super_opts": ["rw", "errors=continue"]}
    assert m[3]["source"] == "user@host:/a\\b" and m[3]["fstype"] == "fuse.sshfs"
    assert m[4]["super_opts"] == []


@given(st.text())
def test_parse_mountinfo_never_raises(text):
    disk.parse_mountinfo(text)


FSTAB = r"""# comment
UUID=abc /               ext4    errors=remount-ro 0       1
/dev/sdb1 /data/ xfs ro,noatime 0 2   # trailing comment
/swap.img none swap sw 0 0
LABEL=x /mnt/a\040b ext4 defaults
tmpfs /tmp tmpfs
broken
/dev/sdc1 /data ext4 rw 0 2
"""


def test_parse_fstab():
    f = disk.parse_fstab(FSTAB)
    assert set(f) == {"/", "/data", "/mnt/a b", "/tmp"}
    assert f["/"]["ro"] is False and f["/"]["spec"] == "UUID=abc"
    assert f["/data"]["fstype"] == "ext4" and f["/data"]["ro"] is False   # the last entry wins
    assert f["/tmp"]["opts"] == ["defaults"]


@given(st.text())
def test_parse_fstab_never_raises(text):
    disk.parse_fstab(text)


@pytest.mark.parametrize("fstype,mount,real", [
    ("ext4", "/", True), ("proc", "/proc", False), ("sysfs", "/sys", False), ("cgroup2", "/sys/fs/cgroup", False),
    ("tmpfs", "/sys/fs/cgroup", False), ("tmpfs", "/run", True), ("tmpfs", "/run/user/1000", True),
    ("tmpfs", "/dev/shm", True), ("devtmpfs", "/dev", False), ("tmpfs", "/dev/foo", False),
    ("squashfs", "/snap/core/1", False), ("overlay", "/var/lib/docker/overlay2/x/merged", True),
    ("nfs4", "/mnt/backup", True), ("tmpfs", "/devices", True), ("fuse.lxcfs", "/var/lib/lxcfs", False),
])
def test_is_real(fstype, mount, real):
    assert disk.is_real({"fstype": fstype, "mount": mount}) is real


def test_usage_matches_df():
    # 1000 blocks, 100 free of which 50 available to non-root: df Use% = 900/(900+50) = 94.7
    u = disk.usage(os.statvfs_result((4096, 4096, 1000, 100, 50, 200, 10, 10, 0, 255)))
    assert u["size_bytes"] == 4096000 and u["used_bytes"] == 900 * 4096 and u["avail_bytes"] == 50 * 4096
    assert u["used_pct"] == 94.7 and u["inodes_used_pct"] == 95.0 and u["inodes_used"] == 190


def test_usage_without_inodes_is_none_not_zero():
    u = disk.usage(os.statvfs_result((4096, 4096, 1000, 100, 100, 0, 0, 0, 0, 255)))   # btrfs
    assert u["inodes_total"] is None and u["inodes_used_pct"] is None


# ---------------------------------------------------------------- trend

T = [0, 1, 2, 3, 4, 5]


def test_trend_steady_growth():
    assert disk.trend(T, [0, 10 * MiB, 20 * MiB, 30 * MiB, 40 * MiB, 50 * MiB]) == pytest.approx(10 * MiB)


@pytest.mark.parametrize("vs", [
    [0, 0, 0, 100 * MiB, 100 * MiB, 100 * MiB],        # one burst, not a trend
    [0, 50 * MiB, 0, 50 * MiB, 0, 50 * MiB],            # a temp file written and deleted
    [50 * MiB, 40 * MiB, 30 * MiB, 20 * MiB, 10 * MiB, 0],  # shrinking
    [0, 100 * 1024, 200 * 1024, 300 * 1024, 400 * 1024, 500 * 1024],   # < 1 MiB: noise
    [0, 10 * MiB, None, None, None, None],              # too few points
    [5 * MiB] * 6,
])
def test_trend_rejects_noise(vs):
    assert disk.trend(T, vs) is None


@given(st.lists(st.integers(min_value=0, max_value=2**50), min_size=0, max_size=12))
def test_trend_never_negative(vs):
    g = disk.trend(list(range(len(vs))), vs)
    assert g is None or g > 0


# ---------------------------------------------------------------- collect on fixtures

def mixed(tmp_path, monkeypatch, table=None):
    root = tree(tmp_path, "disk_ubuntu_mixed")
    fake = FakeStatvfs(root, table or {})
    monkeypatch.setattr(disk, "probe", fake.probe)
    return root, fake


def test_collect_mixed_host(tmp_path, monkeypatch):
    root, fake = mixed(tmp_path, monkeypatch, {"/var/log": vfs(10 * GiB, int(9.6 * GiB)),
                                               "/run": vfs(1 * GiB, 10 * MiB, files=400000, ifree=399000)})
    sec = collect(run_ticks(ctx_for(root)))
    mounts = [r["mount"] for r in sec.data["filesystems"]]
    assert sorted(mounts) == sorted(["/run", "/", "/dev/shm", "/boot/efi", "/srv/data", "/mnt/backup",
                                     "/mnt/archive", "/run/user/1000", "/var/lib/docker/overlay2/3f1c/merged",
                                     "/mnt/my disk", "/home/dev/scratch", "/var/log"])
    assert mounts[0] == "/var/log"  # fullest first
    assert "/var/www/static" not in mounts and "/var/www/static" not in fake.calls   # same superblock as /srv/data
    assert sec.data["readonly"] == []   # archive and bind are ro in fstab
    assert sec.status == "ok"
    vl = sec.data["filesystems"][0]
    assert vl["used_pct"] == 96.0 and vl["growth_bps"] is None and vl["time_to_full_s"] is None
    fs = disk.findings(sec, TH)
    assert [(f.id, f.severity, f.subject) for f in fs] == [("disk.nearly_full", "critical", {"mount": "/var/log"})]


def test_readonly_archive_full_by_design_is_not_nearly_full(tmp_path, monkeypatch):
    root, _ = mixed(tmp_path, monkeypatch, {"/mnt/archive": vfs(10 * GiB, 10 * GiB)})
    sec = collect(run_ticks(ctx_for(root)))
    assert disk.findings(sec, TH) == []


def test_growth_and_time_to_full_over_the_window(tmp_path, monkeypatch):
    used = {"v": 8 * GiB}
    root, _ = mixed(tmp_path, monkeypatch, {"/var/log": lambda: vfs(10 * GiB, used["v"])})

    def grow():
        used["v"] += 100 * MiB
    sec = collect(run_ticks(ctx_for(root), [grow] * 5))
    row = next(r for r in sec.data["filesystems"] if r["mount"] == "/var/log")
    assert row["growth_bps"] == pytest.approx(100 * MiB, rel=0.01)
    # 10 GiB - 8.49 GiB left at 100 MiB/s: ~15.5 s; 85% used: past the 80% gate -> critical
    assert 14 < row["time_to_full_s"] < 17
    f = next(f for f in disk.findings(sec, TH) if f.id == "disk.nearly_full")
    assert f.severity == "critical" and f.subject == {"mount": "/var/log"} and "full in ~" in f.title


def test_steady_fill_of_a_roomy_disk_is_critical_when_minutes_away(tmp_path, monkeypatch):
    """Issue 11: an ETA inside 10 min is critical whatever today's used %."""
    used = {"v": 2 * GiB}
    root, _ = mixed(tmp_path, monkeypatch, {"/var/log": lambda: vfs(10 * GiB, used["v"])})

    def grow():
        used["v"] += 100 * MiB
    sec = collect(run_ticks(ctx_for(root), [grow] * 5))
    row = next(r for r in sec.data["filesystems"] if r["mount"] == "/var/log")
    assert 70 < row["time_to_full_s"] < 90                 # 7.5 GiB at 100 MiB/s
    (f,) = [f for f in disk.findings(sec, TH) if f.id == "disk.nearly_full"]
    assert f.severity == "critical" and f.evidence["eta_s"] == row["time_to_full_s"]


def test_one_burst_on_a_roomy_disk_is_no_alarm(tmp_path, monkeypatch):
    used = {"v": 2 * GiB}
    root, _ = mixed(tmp_path, monkeypatch, {"/var/log": lambda: vfs(10 * GiB, used["v"])})
    steps = iter([0, 500 * MiB, 0, 0, 0])

    def grow():
        used["v"] += next(steps)
    sec = collect(run_ticks(ctx_for(root), [grow] * 5))
    row = next(r for r in sec.data["filesystems"] if r["mount"] == "/var/log")
    assert row["time_to_full_s"] is None and disk.findings(sec, TH) == []


def test_inode_eta(tmp_path, monkeypatch):
    files = {"v": 1000}
    root, _ = mixed(tmp_path, monkeypatch, {"/run": lambda: vfs(10 * GiB, 1 * GiB, files=100_000,
                                                                     ifree=100_000 - files["v"])})

    def grow():
        files["v"] += 2000
    sec = collect(run_ticks(ctx_for(root), [grow] * 5))
    row = next(r for r in sec.data["filesystems"] if r["mount"] == "/run")
    assert row["inodes_per_s"] == pytest.approx(2000, rel=0.05) and 40 < row["inodes_eta_s"] < 50
    (f,) = [f for f in disk.findings(sec, TH) if f.id == "disk.inodes_exhausted"]
    assert f.severity == "critical" and "no inode left in ~" in f.title and f.evidence["limit"] == "inodes"


def test_window_zero_has_no_growth(tmp_path, monkeypatch):
    root, _ = mixed(tmp_path, monkeypatch)
    job = run_ticks(ctx_for(root))
    assert job.window_s == 0
    assert all(r["growth_bps"] is None for r in collect(job).data["filesystems"])


def test_mount_label_is_escaped_in_series_keys(tmp_path, monkeypatch):
    root, _ = mixed(tmp_path, monkeypatch)
    job = run_ticks(ctx_for(root))
    assert "disk.used_bytes[mount=/mnt/my disk]" in job.series
    assert disk._label("/mnt/a,b=c]") == "/mnt/a%2Cb%3Dc%5D"
    k = "used_bytes[mount=" + disk._label("/mnt/a,b=c]") + "]"
    assert parse_key(k) == ("used_bytes", {"mount": "/mnt/a%2Cb%3Dc%5D"})


def test_missing_mountinfo_is_unavailable(tmp_path):
    (tmp_path / "proc").mkdir()
    with pytest.raises(Unavailable, match="mountinfo missing"):
        disk.sample(ctx_for(tmp_path), {})


def test_statvfs_error_is_a_blind_spot(tmp_path, monkeypatch):
    root, _ = mixed(tmp_path, monkeypatch, {"/mnt/backup": OSError(errno.ENOTCONN, "Transport endpoint is not connected")})
    sec = collect(run_ticks(ctx_for(root)))
    assert sec.status == "partial" and "statvfs /mnt/backup failed" in sec.reason
    assert "/mnt/backup" not in [r["mount"] for r in sec.data["filesystems"]]


# ---------------------------------------------------------------- hung statvfs

def test_hung_statvfs_costs_the_bound_once_and_is_remembered(tmp_path, monkeypatch):
    release = threading.Event()

    def blocks():
        release.wait(30)   # a statvfs on a dead NFS server: does not return
        return vfs(GiB, 0)
    root, fake = mixed(tmp_path, monkeypatch, {"/mnt/backup": blocks})
    ctx = ctx_for(root, timeout_s=0.4)   # per-call bound 0.1 s
    try:
        t0 = time.monotonic()
        sec = collect(run_ticks(ctx, [None, None, None]))
        elapsed = time.monotonic() - t0
    finally:
        release.set()
    assert fake.calls.count("/mnt/backup") == 1            # stuck once, skipped on later ticks
    assert sec.status == "partial"
    assert "statvfs /mnt/backup did not return within 0.1s" in sec.reason
    assert sec.data["stuck_mounts"] == ["/mnt/backup"]
    assert "/var/log" in [r["mount"] for r in sec.data["filesystems"]]   # the rest was measured
    assert elapsed < 5   # generous: the bound is 0.1 s; without it this would wait 30 s


def test_hung_statvfs_through_the_runner_still_finishes(tmp_path, monkeypatch):
    """The real runner (its own per-sample bound) around the collector's per-call bound."""
    release = threading.Event()
    calls = []

    def blocks():
        calls.append(1)
        release.wait(30)
        return vfs(GiB, 0)
    root, _ = mixed(tmp_path, monkeypatch, {"/mnt/backup": blocks, "/srv/data": blocks})
    try:
        snap = runner.run(ctx_for(root, timeout_s=0.4), [disk], window_s=0.4, interval_s=0.2)
    finally:
        release.set()
    sec = snap.sections["disk"]
    assert sec.status == "partial", sec.reason
    assert "/mnt/backup" in sec.reason and "/srv/data" in sec.reason
    assert len(calls) == 2


def test_many_hung_mounts_stop_within_the_tick_budget(tmp_path, monkeypatch):
    release = threading.Event()

    def blocks():
        release.wait(30)
        return vfs(GiB, 0)
    table = {m: blocks for m in ("/", "/run", "/dev/shm", "/boot/efi", "/srv/data", "/mnt/backup", "/mnt/archive")}
    root, _ = mixed(tmp_path, monkeypatch, table)
    ctx = ctx_for(root, timeout_s=0.4)
    try:
        t0 = time.monotonic()
        state: dict = {}
        disk.sample(ctx, state)
        one_tick = time.monotonic() - t0
    finally:
        release.set()
    assert 1 <= len(state["stuck"]) <= 3        # budget 0.24 s of 0.1 s calls
    assert one_tick < ctx.timeout_s              # the runner's bound on sample() is never hit


# ---------------------------------------------------------------- read-only

def test_errors_remount_ro_on_root_and_ro_mount_against_fstab(tmp_path, monkeypatch):
    root = tree(tmp_path, "disk_remount_ro")
    monkeypatch.setattr(disk, "probe", FakeStatvfs(root, {}).probe)
    sec = collect(run_ticks(ctx_for(root)))
    ro = {r["mount"]: r for r in sec.data["readonly"]}
    assert set(ro) == {"/", "/var/lib/pgsql"}
    assert ro["/"]["errors_count"] == 3 and ro["/"]["super_ro"] is True
    assert "errors=remount-ro" in ro["/"]["why"]
    assert ro["/var/lib/pgsql"]["super_ro"] is False and ro["/var/lib/pgsql"]["fstab_rw"] is True
    fs = [f for f in disk.findings(sec, TH) if f.id == "disk.readonly_remount"]
    assert {f.subject["mount"]: f.severity for f in fs} == {"/": "critical", "/var/lib/pgsql": "critical"}
    assert any(s.startswith("Do not mount -o remount,rw") for s in fs[0].stabilize)
    # The root fs is ro: nothing can fill it, so no nearly_full even if statvfs says 100%.


def test_ro_superblock_without_fstab_or_errors_is_a_warning(tmp_path, monkeypatch):
    root = tree(tmp_path, "disk_remount_ro")
    (root / "etc" / "fstab").unlink()
    (root / "sys" / "fs" / "ext4" / "sda1" / "errors_count").write_text("0\n")
    monkeypatch.setattr(disk, "probe", FakeStatvfs(root, {}).probe)
    sec = collect(run_ticks(ctx_for(root)))
    assert [r["mount"] for r in sec.data["readonly"]] == ["/"]   # the pgsql ro bind of a rw xfs: deliberate
    f = next(f for f in disk.findings(sec, TH) if f.id == "disk.readonly_remount")
    assert f.severity == "critical"   # "/" itself: worst case
    mi = root / "proc" / "self" / "mountinfo"
    mi.write_text(mi.read_text().replace(" / / ro,relatime", " / / rw,relatime").replace(
        "ext4 /dev/sda1 ro,errors", "ext4 /dev/sda1 rw,errors") +
        "31 22 8:32 / /data ro,relatime - ext4 /dev/sdc ro\n")
    sec = collect(run_ticks(ctx_for(root)))
    f = next(f for f in disk.findings(sec, TH) if f.id == "disk.readonly_remount")
    assert f.subject == {"mount": "/data"} and f.severity == "warning" and f.evidence["errors_count"] is None


# ---------------------------------------------------------------- deleted-but-open

def deleted_scan(entries, procs, fd_unreadable=0):
    s = Scan(fds_scanned=True, fd_unreadable=fd_unreadable)
    s.deleted_open = [DeletedOpen(*e) for e in entries]
    for pid, name in procs.items():
        s.procs[pid] = Proc(pid, name=name)
    return s


def test_deleted_open_grouped_by_holder_and_mount(tmp_path, monkeypatch):
    # pids do not exist under the fixture /proc: stat fails, so files map to mounts by path prefix
    root, _ = mixed(tmp_path, monkeypatch, {"/var/log": vfs(10 * GiB, 5 * GiB)})
    scan = deleted_scan([(4242, 3, "/var/log/app/app.log.1", 3 * GiB), (4242, 7, "/var/log/app/app.log.2", 1 * GiB),
                         (4242, 9, "/tmp/x", 20 * MiB), (77, 4, "/memfd:jit", 5 * GiB),
                         (77, 5, "/var/log/small", 1 * MiB)],
                        {4242: "java", 77: "node"})
    sec = collect(run_ticks(ctx_for(root), scan=scan))
    groups = sec.data["deleted_open"]
    assert [(g["pid"], g["mount"], g["held_bytes"]) for g in groups] == [
        (4242, "/var/log", 4 * GiB), (4242, "/", 20 * MiB), (77, "/var/log", 1 * MiB)]   # memfd is memory
    assert groups[0]["name"] == "java" and groups[0]["held_pct"] == 40.0 and groups[0]["fds"] == [3, 7]
    fs = [f for f in disk.findings(sec, TH) if f.id == "disk.deleted_open_space"]
    assert [(f.subject, f.severity) for f in fs] == [
        ({"pid": 4242, "name": "java", "mount": "/var/log"}, "critical"),
        ({"pid": 4242, "name": "java", "mount": "/"}, "info")]      # 20 MiB on a 10 GiB fs; 1 MiB: nothing
    assert ("Do not delete the log file the process still holds open; truncate it via /proc/PID/fd/N "
            "or restart the holder instead") in fs[0].stabilize
    assert "/proc/4242/fd/3" in fs[0].stabilize[0]


def test_deleted_open_escalates_on_a_nearly_full_fs():
    sec = Section("disk", "ok", data={
        "filesystems": [{"mount": "/var", "used_pct": 96.0, "avail_bytes": 1, "size_bytes": 100 * GiB,
                         "inodes_used_pct": 1.0}],
        "deleted_open": [{"pid": 5, "name": "nginx", "mount": "/var", "held_bytes": 2 * GiB, "held_pct": 2.0,
                          "files": 1, "paths": ["/var/log/nginx/access.log"], "fds": [4]}]})
    f = next(f for f in disk.findings(sec, TH) if f.id == "disk.deleted_open_space")
    assert f.severity == "warning"


def test_deleted_open_of_a_real_process(tmp_path):
    """Our own process holds a deleted file: stat() through /proc/PID/fd finds its filesystem."""
    path = str(tmp_path / "held.log")
    fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
    try:
        os.ftruncate(fd, 12 * MiB)
        os.unlink(path)
        ctx = Context()
        state: dict = {}
        disk.sample(ctx, state)
        scan = deleted_scan([(os.getpid(), fd, path, 12 * MiB)], {os.getpid(): "pytest"})
        data = disk.collect(Job(ctx, "disk", {}, scan, 0.0, Deadline(5.0), state))
        mine = [g for g in data["deleted_open"] if g["pid"] == os.getpid()]
        st = os.fstat(fd)
        dev = f"{os.major(st.st_dev)}:{os.minor(st.st_dev)}"
        expected = next(m["mount"] for m in state["fs"] if m["dev"] == dev)
        assert mine and mine[0]["mount"] == expected and mine[0]["held_bytes"] == 12 * MiB
    finally:
        os.close(fd)


def test_unreadable_fd_tables_as_non_root_are_a_blind_spot(tmp_path, monkeypatch):
    root, _ = mixed(tmp_path, monkeypatch)
    monkeypatch.setattr(disk.os, "geteuid", lambda: 1000)
    sec = collect(run_ticks(ctx_for(root), scan=deleted_scan([], {1: "init"}, fd_unreadable=57)))
    assert sec.status == "partial"
    assert "run as root to see space held by their deleted-but-open files" in sec.reason


# ---------------------------------------------------------------- findings edges

def fsrow(**kw):
    base = {"mount": "/data", "fstype": "ext4", "source": "/dev/sdb", "ro": False, "size_bytes": 100 * GiB,
            "used_bytes": 50 * GiB, "avail_bytes": 50 * GiB, "used_pct": 50.0, "inodes_total": 1000,
            "inodes_used": 10, "inodes_used_pct": 1.0, "growth_bps": None, "time_to_full_s": None}
    return base | kw


def levels(rows, fid):
    return [f.severity for f in disk.findings(Section("disk", "ok", data={"filesystems": rows}), TH) if f.id == fid]


@pytest.mark.parametrize("pct,expected", [(89.9, []), (90.0, ["warning"]), (94.9, ["warning"]), (95.0, ["critical"])])
def test_used_pct_edges(pct, expected):
    assert levels([fsrow(used_pct=pct)], "disk.nearly_full") == expected


@pytest.mark.parametrize("pct,expected", [(89.9, []), (90.0, ["warning"]), (97.0, ["critical"]), (None, [])])
def test_inode_edges(pct, expected):
    assert levels([fsrow(inodes_used_pct=pct, inodes_total=1000, inodes_used=970)], "disk.inodes_exhausted") == expected


@pytest.mark.parametrize("used,ttf,expected", [
    (85.0, 3600, ["critical"]), (85.0, 3601, ["warning"]), (85.0, 21600, ["warning"]), (85.0, 21601, []),
    (70.0, 60, ["critical"]),    # under 10 min: critical whatever the used % (issue 11)
    (59.9, 60, ["critical"]),
    (59.9, 3600, ["warning"]), (59.9, 3601, []),   # hours away on a roomy disk: no alarm
    (85.0, None, []),
])
def test_time_to_full_gates(used, ttf, expected):
    assert levels([fsrow(used_pct=used, time_to_full_s=ttf, growth_bps=1)], "disk.nearly_full") == expected


def test_idle_data_no_findings():
    assert disk.findings(Section("disk", "ok", data={"filesystems": [fsrow()], "readonly": [],
                                                     "deleted_open": []}), TH) == []


def test_live_host_point_in_time_has_no_loud_findings():
    ctx = Context()
    state: dict = {}
    disk.sample(ctx, state)
    sec = collect(Job(ctx, "disk", {}, None, 0.0, Deadline(5.0), state))
    assert any(r["mount"] == "/" for r in sec.data["filesystems"])
    assert [f for f in disk.findings(sec, TH) if f.severity != "info"] == []


# ---------------------------------------------------------------- writers

def test_written_mounts_counts_only_files_open_for_writing(tmp_path):
    """This test process: one file open for writing, one read-only, a pipe: only the first counts,
    under the filesystem (dev) of the mount holding it."""
    from hostdiag.core.context import Context
    mounts = disk.parse_mountinfo(open("/proc/self/mountinfo").read())
    w = open(tmp_path / "w.log", "ab")
    (tmp_path / "r.txt").write_text("x")
    r = open(tmp_path / "r.txt")
    rp, wp = os.pipe()
    try:
        ctx = Context()
        got = disk.written_mounts(ctx, os.getpid(), mounts)
        dev = disk._mount_of(str(tmp_path), mounts)["dev"]
        assert got.get(dev, 0) >= 1
        w.close()
        after = disk.written_mounts(ctx, os.getpid(), mounts)
        assert after.get(dev, 0) == got[dev] - 1
    finally:
        r.close()
        os.close(rp)
        os.close(wp)

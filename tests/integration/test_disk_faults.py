"""disk: real conditions. A process holding a deleted file open; a nearly full and an
inode-exhausted tmpfs, a read-only bind mount that fstab says is rw, all inside a private
mount namespace (`unshare --mount --propagation private`: nothing leaks to the host) with
the snapshot run inside that namespace; non-root blind spots; an idle host stays quiet.

A real hung statvfs comes from a FUSE server that never answers (fuse3 + mfusepy,
tests/fixtures/fuse/hangfs.py), also in a private mount namespace."""
from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from support import IS_ROOT, findings_by_id, fuse_unavailable, needs_root, run_with_hung_mount
from hostdiag.collectors import disk

MiB = 1 << 20
NS = ["unshare", "--mount", "--propagation", "private"]
SNAP = f"{shlex.quote(sys.executable)} -m hostdiag snapshot --json --only disk --window 0"
needs_unshare = pytest.mark.skipif(not IS_ROOT or shutil.which("unshare") is None,
                                   reason="needs root and unshare (util-linux) for a private mount namespace")


def in_namespace(script: str) -> list[dict]:
    """Run `script` (sh) in a private mount namespace; each line it prints that starts with
    '{' is one snapshot --json document."""
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    p = subprocess.run([*NS, "sh", "-euc", script], capture_output=True, text=True, env=env, timeout=90,
                       cwd=os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    assert p.returncode == 0, p.stderr[-2000:]
    docs = [json.loads(line) for line in p.stdout.splitlines() if line.startswith("{")]
    assert docs, p.stdout[-2000:] + p.stderr[-2000:]
    return docs


def disk_findings(doc: dict) -> list[dict]:
    return [f for f in doc["findings"] if f["category"] == "disk"]


def compact(cmd: str) -> str:
    """snapshot --json prints one indented document; squash it to one line for in_namespace()."""
    return f"{cmd} | {shlex.quote(sys.executable)} -c 'import json,sys; print(json.dumps(json.load(sys.stdin)))'"


# ---------------------------------------------------------------- deleted-but-open

HOLDER = textwrap.dedent("""
    import os, sys, time
    path = sys.argv[1]
    with open(path, "wb") as f:
        for _ in range(50):
            f.write(b"x" * (1 << 20))      # real blocks, not a sparse file
        f.flush()
        os.fsync(f.fileno())
        os.unlink(path)                    # deleted, still open
        print("ready", flush=True)
        time.sleep(120)
""")


@pytest.fixture
def deleted_holder(tmp_path):
    p = subprocess.Popen([sys.executable, "-c", HOLDER, str(tmp_path / "app.log")],
                         stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline().strip() == "ready"
        yield p
    finally:
        p.kill()
        p.wait()


@needs_root
def test_deleted_open_file_names_its_holder(deleted_holder, snapshot, tmp_path):
    report = snapshot(only=["disk"], window=0)
    sec = report.snapshot.sections["disk"]
    assert sec.status in ("ok", "partial"), sec.reason
    mine = [f for f in findings_by_id(report, "disk.deleted_open_space") if f.subject.get("pid") == deleted_holder.pid]
    assert mine, [f.subject for f in findings_by_id(report, "disk.deleted_open_space")]
    f = mine[0]
    st = os.stat(tmp_path)
    mount = next(m["mount"] for m in disk.parse_mountinfo(open("/proc/self/mountinfo").read())
                 if m["dev"] == f"{os.major(st.st_dev)}:{os.minor(st.st_dev)}" and disk.is_real(m)
                 and m["root"] == "/")
    assert f.subject["pid"] == deleted_holder.pid and f.subject["mount"] == mount
    assert "python" in f.subject["name"]
    assert f.evidence["held_bytes"] >= 50 * MiB
    assert f.evidence["paths"] == [str(tmp_path / "app.log")]
    assert any(s.startswith("Do not delete the log file the process still holds open") for s in f.stabilize)


@needs_unshare
def test_deleted_open_space_is_the_top_disk_finding_on_its_filesystem(tmp_path):
    """50 MB held on a 64 MB tmpfs: 78% of the filesystem, critical, the top disk finding."""
    d = tmp_path / "logs"
    d.mkdir()
    holder = tmp_path / "holder.py"
    holder.write_text(HOLDER)
    script = f"""
        mount -t tmpfs -o size=64m tmpfs {d}
        {shlex.quote(sys.executable)} {holder} {d}/app.log > {tmp_path}/ready &
        HOLDER=$!
        while ! grep -q ready {tmp_path}/ready; do sleep 0.05; done
        echo "pid $HOLDER"
        {compact(SNAP)}
        kill $HOLDER
    """
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    p = subprocess.run([*NS, "sh", "-euc", script], capture_output=True, text=True, env=env, timeout=90)
    assert p.returncode == 0, p.stderr[-2000:]
    pid = int(next(line.split()[1] for line in p.stdout.splitlines() if line.startswith("pid ")))
    doc = json.loads(next(line for line in p.stdout.splitlines() if line.startswith("{")))
    top = disk_findings(doc)[0]
    assert top["id"] == "disk.deleted_open_space", disk_findings(doc)
    assert top["subject"]["pid"] == pid and top["subject"]["mount"] == str(d)
    assert top["severity"] == "critical"


# ---------------------------------------------------------------- full and inode-exhausted tmpfs

@needs_unshare
def test_nearly_full_tmpfs_is_the_top_disk_finding(tmp_path):
    d = tmp_path / "full"
    d.mkdir()
    docs = in_namespace(f"""
        mount -t tmpfs -o size=16m tmpfs {d}
        dd if=/dev/zero of={d}/fill bs=1000000 count=16 status=none
        {compact(SNAP)}
    """)
    top = disk_findings(docs[0])[0]
    assert top["id"] == "disk.nearly_full" and top["subject"] == {"mount": str(d)}
    assert top["severity"] == "critical" and top["evidence"]["used_pct"] >= 95
    assert docs[0]["sections"]["disk"]["status"] in ("ok", "partial")
    # a tmpfs is RAM: package caches and container images are not on it
    opts = " ".join(top["stabilize"])
    assert "this tmpfs (it is RAM" in opts and "apt-get clean" not in opts and "docker" not in opts, opts


@needs_unshare
def test_inode_exhausted_tmpfs_is_the_top_disk_finding(tmp_path):
    d = tmp_path / "inodes"
    d.mkdir()
    docs = in_namespace(f"""
        mount -t tmpfs -o size=16m,nr_inodes=64 tmpfs {d}
        i=0; while [ $i -lt 62 ]; do : > {d}/f$i; i=$((i+1)); done
        {compact(SNAP)}
    """)
    top = disk_findings(docs[0])[0]
    assert top["id"] == "disk.inodes_exhausted" and top["subject"] == {"mount": str(d)}
    assert top["severity"] == "critical"
    assert not any(f["id"] == "disk.nearly_full" and f["subject"] == {"mount": str(d)} for f in disk_findings(docs[0]))


@needs_unshare
def test_growing_tmpfs_gets_a_time_to_full(tmp_path):
    """A writer adding 1 MB every 0.1 s to a 128 MiB tmpfs already 67% full: a real steady rise."""
    d = tmp_path / "growing"
    d.mkdir()
    writer = (f"import time\nf = open('{d}/grow', 'ab')\n"
              "for _ in range(120):\n    f.write(b'x' * 1000000); f.flush(); time.sleep(0.1)\n")
    docs = in_namespace(f"""
        mount -t tmpfs -o size=128m tmpfs {d}
        dd if=/dev/zero of={d}/base bs=1000000 count=90 status=none
        {shlex.quote(sys.executable)} -c {shlex.quote(writer)} &
        W=$!
        {compact(SNAP.replace('--window 0', '--window 2 --interval 0.5'))}
        kill $W || true
    """)
    rows = {r["mount"]: r for r in docs[0]["sections"]["disk"]["data"]["filesystems"]}
    row = rows[str(d)]
    assert row["growth_bps"] and row["growth_bps"] > 0, row
    assert row["time_to_full_s"] is not None
    f = next(f for f in disk_findings(docs[0]) if f["id"] == "disk.nearly_full" and f["subject"] == {"mount": str(d)})
    assert f["evidence"]["time_to_full_s"] == row["time_to_full_s"]
    assert docs[0]["series"][f"disk.used_bytes[mount={d}]"]["v"][-1] > docs[0]["series"][f"disk.used_bytes[mount={d}]"]["v"][0]


@needs_unshare
def test_writer_filling_a_tmpfs_is_named_with_its_mount_and_eta(tmp_path):
    """Issue 11: a process writing ~20 MB/s into a 256 MB tmpfs (private mount namespace). The
    filesystem is nearly empty, so only the rate and the time to full make it a finding."""
    d = tmp_path / "filling"
    d.mkdir()
    writer = (f"import time\nf = open('{d}/spool.dat', 'ab')\n"
              "for _ in range(120):\n    f.write(b'x' * 2000000); f.flush(); time.sleep(0.1)\n")
    docs = in_namespace(f"""
        mount -t tmpfs -o size=256m tmpfs {d}
        {shlex.quote(sys.executable)} -c {shlex.quote(writer)} &
        W=$!
        sleep 0.3
        echo '{{"writer": '$W'}}'
        {compact(SNAP.replace('--window 0', '--window 3 --interval 0.5'))}
        kill $W || true
    """)
    wpid, doc = docs[0]["writer"], docs[1]
    fs = {f["id"]: f for f in disk_findings(doc) if f["subject"].get("mount") == str(d)}
    burst = fs.get("disk.write_burst")
    assert burst is not None, [f["title"] for f in doc["findings"]]
    assert burst["subject"] == {"pid": wpid, "name": "python3", "mount": str(d)} or \
        burst["subject"]["pid"] == wpid and burst["subject"]["mount"] == str(d)
    ev = burst["evidence"]
    assert 10e6 <= ev["write_bps"] <= 30e6, ev                    # ~20 MB/s
    # ~250 MB free at ~20 MB/s: full in roughly 10 s, inside 10 min: critical, said in words
    assert burst["severity"] == "critical" and f"{d} full in ~" in burst["title"]
    assert ev["eta_s"] == pytest.approx(ev["avail_bytes"] / ev["write_bps"], rel=0.05)
    assert 3 <= ev["eta_s"] <= 30
    full = fs.get("disk.nearly_full")
    assert full is not None and full["severity"] == "critical" and full["evidence"]["writer"]["pid"] == wpid
    assert f"(pid {wpid})" in full["title"] and 3 <= full["evidence"]["eta_s"] <= 30


@needs_unshare
def test_fast_writer_to_a_pipe_is_no_disk_finding(tmp_path):
    """wchar counts pipe writes too: a process holding a log open for writing on a tmpfs while it
    pours 40 MB/s into a pipe does not fill that tmpfs, and is no write burst there."""
    d = tmp_path / "quiet"
    d.mkdir()
    writer = (f"import sys, time\nlog = open('{d}/app.log', 'ab')\n"
              "for _ in range(60):\n    sys.stdout.buffer.write(b'x' * 4000000); sys.stdout.flush(); time.sleep(0.1)\n")
    docs = in_namespace(f"""
        mount -t tmpfs -o size=64m tmpfs {d}
        {shlex.quote(sys.executable)} -c {shlex.quote(writer)} | cat > /dev/null &
        sleep 0.3
        {compact(SNAP.replace('--window 0', '--window 2 --interval 0.5'))}
    """)
    assert not [f for f in disk_findings(docs[0]) if f["id"] == "disk.write_burst"
                and f["subject"]["mount"] == str(d)], [f["title"] for f in docs[0]["findings"]]
    assert str(d) in {r["mount"] for r in docs[0]["sections"]["disk"]["data"]["filesystems"]}


# ---------------------------------------------------------------- read-only bind mount

@needs_unshare
def test_readonly_bind_mount_against_fstab(tmp_path):
    src, ro = tmp_path / "src", tmp_path / "ro"
    src.mkdir()
    ro.mkdir()
    fstab = tmp_path / "fstab"
    fstab.write_text(f"tmpfs {src} tmpfs rw 0 0\n{src} {ro} none bind,rw 0 0\n")
    docs = in_namespace(f"""
        mount -t tmpfs -o size=8m tmpfs {src}
        mount --bind {src} {ro}
        mount -o remount,bind,ro {ro}
        {compact(SNAP)}
        mount --bind {fstab} /etc/fstab
        {compact(SNAP)}
    """)
    before, after = docs
    # Without an fstab entry a ro bind of a rw filesystem is deliberate sandboxing: no finding.
    assert not any(f["id"] == "disk.readonly_remount" and f["subject"].get("mount") == str(ro)
                   for f in before["findings"])
    ro_f = [f for f in after["findings"] if f["id"] == "disk.readonly_remount"]
    assert [f["subject"] for f in ro_f] == [{"mount": str(ro)}]
    assert ro_f[0]["severity"] == "critical" and ro_f[0]["evidence"]["fstab_rw"] is True
    assert disk_findings(after)[0]["id"] == "disk.readonly_remount"


# ---------------------------------------------------------------- hung statvfs

def test_hung_fuse_mount_is_a_blind_spot_and_hostdiag_exits(tmp_path):
    """A real FUSE server whose statfs and reads never answer (a dead NFS server), mounted in a
    private mount namespace: the snapshot prints, names the mount, and the process exits even
    though a statfs is still stuck in the kernel (the prober child is abandoned, not waited for)."""
    why = fuse_unavailable()
    if why:
        pytest.skip(why)
    # `timeout` only guards the test run; the snapshot itself must end after its 2 s window.
    p = run_with_hung_mount(tmp_path, f"timeout -s KILL 25 {sys.executable} -m hostdiag snapshot --json "
                                      "--only disk --window 2 --interval 0.5; echo rc=$?", timeout=60)
    body, _, rc = p.stdout.rpartition("rc=")
    assert rc.strip() in ("0", "1", "2"), p.stdout[-2000:] + p.stderr
    doc = json.loads(body)
    mnt = str(tmp_path / "mnt")
    sec = doc["sections"]["disk"]
    assert sec["status"] == "partial" and sec["data"]["stuck_mounts"] == [mnt]
    assert any(mnt in b["reason"] and "did not return" in b["reason"] for b in doc["blind_spots"])
    assert any(r["mount"] == "/" for r in sec["data"]["filesystems"])      # the rest was measured


# ---------------------------------------------------------------- non-root, idle

def test_non_root_snapshot_has_blind_spots_not_crashes():
    if not IS_ROOT or shutil.which("setpriv") is None:
        pytest.skip("needs root to drop to nobody (setpriv)")
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONDONTWRITEBYTECODE": "1", "HOME": "/nonexistent"}
    p = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable, "-m",
                        "hostdiag", "snapshot", "--json", "--only", "disk,io", "--window", "1", "--interval", "0.5"],
                       capture_output=True, text=True, env=env, timeout=60, cwd="/")
    if "Permission denied" in p.stderr and "python" in p.stderr.lower():
        pytest.skip("the interpreter or venv is not readable by nobody here")
    assert p.returncode in (0, 1, 2) and "Traceback" not in p.stderr, p.stderr
    doc = json.loads(p.stdout)
    d = doc["sections"]["disk"]
    assert d["status"] == "partial" and "run as root to see space held by their deleted-but-open files" in d["reason"]
    assert any(r["mount"] == "/" for r in d["data"]["filesystems"])   # statvfs needs no privilege
    i = doc["sections"]["io"]
    assert i["status"] == "partial" and "run as root to see per-process I/O" in i["reason"]
    assert i["data"]["devices"] is not None


def test_idle_host_disk_and_io_stay_quiet(snapshot):
    report = snapshot(only=["disk", "io"], window=1.0, interval=0.5)
    loud = [(f.id, f.title) for f in report.findings if f.severity in ("warning", "critical")]
    assert loud == []
    assert report.snapshot.sections["disk"].status in ("ok", "partial")

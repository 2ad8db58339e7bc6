"""`hostdiag snapshot` reads the capture store: a real child growing its RSS in steps and a real
tmpfs filling, captured ten times over "six hours" (the capture clock is injected with
HOSTDIAG_NOW, so the test takes seconds): the snapshot names the stair-step with that process's
pid and name, and the disk's time to full from the multi-hour slope, which a point-in-time
window cannot see. All in a private mount namespace (the tmpfs is nobody else's)."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap

import pytest

from support import IS_ROOT

GROWER = textwrap.dedent("""
    import sys
    blocks = [b"\\x01" * (40 << 20)]
    print("ready", flush=True)
    for line in sys.stdin:
        blocks.append(b"\\x01" * (160 << 20))     # written, so resident: RSS steps up and stays
        print("grown", flush=True)
""")

DRIVER = textwrap.dedent("""
    import json, os, subprocess, sys, time
    store, mnt, grower = sys.argv[1], sys.argv[2], sys.argv[3]
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", mnt], check=True)
    child = subprocess.Popen([sys.executable, "-c", grower], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             text=True)
    child.stdout.readline()
    now, n = time.time(), 10
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    try:
        for i in range(n):
            if i in (3, 6):
                child.stdin.write("grow\\n"); child.stdin.flush(); child.stdout.readline()
            with open(os.path.join(mnt, f"f{i}"), "wb") as f:
                f.write(b"x" * (5 << 20))
            p = subprocess.run([sys.executable, "-m", "hostdiag", "capture", "--store", store, "--window", "0"],
                               env={**env, "HOSTDIAG_NOW": str(now - (n - 1 - i) * 2400)},
                               capture_output=True, text=True, timeout=120)
            assert p.returncode == 0, p.stderr
        p = subprocess.run([sys.executable, "-m", "hostdiag", "snapshot", "--json", "--window", "0",
                            "--store", store, "--only", "memory,disk,processes"],
                           env=env, capture_output=True, text=True, timeout=120)
        print(json.dumps({"child": child.pid, "rc": p.returncode, "out": p.stdout, "err": p.stderr, "mnt": mnt}))
    finally:
        child.kill()
        child.wait()
""")


@pytest.mark.skipif(not IS_ROOT or shutil.which("unshare") is None, reason="needs root for a private tmpfs")
def test_snapshot_names_multi_hour_shapes_and_disk_eta_from_the_store(tmp_path):
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    store = tmp_path / "state" / "h.db"
    p = subprocess.run(["unshare", "--mount", "--propagation", "private", sys.executable, "-c", DRIVER,
                        str(store), str(mnt), GROWER], capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    res = json.loads(p.stdout.strip().splitlines()[-1])
    assert res["rc"] in (0, 1, 2), res["err"]
    doc = json.loads(res["out"])
    hist = doc["sections"]["history"]
    assert hist["status"] in ("ok", "partial") and hist["data"]["captures"] == 10
    # the child's RSS over the captures: two steps of +160 MiB that held
    mine = [s for s in doc["shapes"] if f"pid={res['child']}]" in s["series"]]
    assert mine and mine[0]["shape"] == "stair_step", [(s["series"], s["shape"]) for s in doc["shapes"]]
    assert "name=python" in mine[0]["series"]
    # the tmpfs: 5 MiB per 40 min, full within hours: only the store's slope can say so
    fill = [f for f in doc["findings"] if f["id"] == "disk.filling_trend" and f["subject"].get("mount") == res["mnt"]]
    assert fill, [(f["id"], f["subject"]) for f in doc["findings"]]
    assert fill[0]["severity"] in ("warning", "critical") and 0 < fill[0]["eta_s"] < 6 * 3600


def test_no_history_and_no_store(tmp_path):
    """--no-history reads nothing; a store path that does not exist is silence, not a blind spot."""
    from support import cli

    p = cli("snapshot", "--json", "--window", "0", "--only", "memory", "--store", str(tmp_path / "none.db"))
    doc = json.loads(p.stdout)
    assert "history" not in doc["sections"] and not any(b["collector"] == "history" for b in doc["blind_spots"])
    p = cli("snapshot", "--json", "--window", "0", "--only", "memory", "--no-history")
    assert "history" not in json.loads(p.stdout)["sections"]
    assert not os.path.exists(tmp_path / "none.db")


def test_an_unusable_store_is_a_blind_spot_and_left_alone(tmp_path):
    from support import cli

    bad = tmp_path / "h.db"
    bad.write_bytes(b"not a database, but someone's file\n" * 10)
    before = bad.read_bytes()
    p = cli("snapshot", "--json", "--window", "0", "--only", "memory", "--store", str(bad))
    doc = json.loads(p.stdout)
    assert doc["sections"]["history"]["status"] == "unavailable"
    assert any(b["collector"] == "history" for b in doc["blind_spots"])
    assert bad.read_bytes() == before and sorted(os.listdir(tmp_path)) == ["h.db"]


def test_a_store_on_a_hung_mount_does_not_hold_the_snapshot(tmp_path):
    """--store on a FUSE filesystem whose reads never answer (a dead NFS server): the snapshot
    prints, with the store named as a blind spot, and exits."""
    from support import fuse_unavailable, run_with_hung_mount

    why = fuse_unavailable()
    if why:
        pytest.skip(why)
    p = run_with_hung_mount(tmp_path, f"timeout -s KILL 40 {sys.executable} -m hostdiag snapshot --json "
                                      "--window 0 --only memory --store $MNT/f; echo rc=$?", timeout=90)
    body, _, rc = p.stdout.rpartition("rc=")
    assert rc.strip() in ("0", "1", "2"), p.stdout[-2000:] + p.stderr
    doc = json.loads(body)
    assert doc["sections"]["history"]["status"] == "unavailable"
    assert "did not answer" in doc["sections"]["history"]["reason"]

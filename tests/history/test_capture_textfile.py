"""`capture --textfile DIR`: the node_exporter textfile written beside (or instead of) the store."""
from __future__ import annotations

import os
import stat

from support import cli


def test_textfile_beside_the_store(tmp_path):
    d = tmp_path / "textfile"
    d.mkdir()
    store = tmp_path / "state" / "h.db"
    p = cli("capture", "--store", str(store), "--window", "0", "--textfile", str(d))
    assert (p.returncode, p.stderr) == (0, ""), p.stderr
    prom = (d / "hostdiag.prom").read_text()
    assert "hostdiag_last_run_timestamp_seconds " in prom and 'hostdiag_findings{severity="critical"}' in prom
    assert stat.S_IMODE(os.stat(d / "hostdiag.prom").st_mode) == 0o644
    assert store.exists() and sorted(os.listdir(d)) == ["hostdiag.prom"]     # no temp file left


def test_textfile_only_and_bad_dirs(tmp_path):
    d = tmp_path / "tf"
    d.mkdir()
    p = cli("capture", "--no-store", "--textfile", str(d), "--window", "0", "--verbose")
    assert p.returncode == 0 and "no local history kept" in p.stdout, p.stderr
    assert (d / "hostdiag.prom").exists()
    (tmp_path / "link").symlink_to(d)
    (d / "hostdiag.prom").unlink()
    (d / "hostdiag.prom").symlink_to(tmp_path / "victim")
    p = cli("capture", "--no-store", "--textfile", str(d), "--window", "0")
    assert p.returncode == 3 and "symbolic link" in p.stderr and not (tmp_path / "victim").exists()
    p = cli("capture", "--no-store", "--textfile", "/proc/sys/kernel", "--window", "0")
    assert p.returncode == 3 and "/proc" in p.stderr
    p = cli("capture", "--no-store", "--window", "0")
    assert p.returncode == 2 and "--textfile" in p.stderr


def test_capture_textfile_redacts_label_values(tmp_path):
    """End to end through `hostdiag capture`: a real tmpfs at a path holding a secret, in a
    private mount namespace, must not reach the 0644 textfile."""
    import shutil
    import subprocess
    import sys

    if os.geteuid() != 0 or not shutil.which("unshare"):
        import pytest
        pytest.skip("needs root for a tmpfs in a private mount namespace")
    mnt = tmp_path / "db_password=MountPw5ecret99"
    mnt.mkdir()
    out = tmp_path / "tf"
    script = (f"mount -t tmpfs -o size=1m tmpfs '{mnt}' && {sys.executable} -m hostdiag capture --no-store "
              f"--window 0 --textfile '{out}'")
    out.mkdir()
    p = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
                       capture_output=True, text=True, timeout=120)
    text = (out / "hostdiag.prom").read_text()
    assert "hostdiag_disk_used_bytes{" in text and "db_password" in text, p.stderr + text[:2000]
    assert "MountPw5ecret99" not in text

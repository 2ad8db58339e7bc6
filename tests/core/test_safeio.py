"""safeio: every way --output (and the store, and bundles) could be turned against the host."""
from __future__ import annotations

import os
import stat
import subprocess
import threading

import pytest

from hostdiag.core import safeio
from support import IS_ROOT


def test_new_file_is_0600_and_whole(tmp_path):
    p = safeio.write_file(tmp_path / "r.txt", b"report\n")
    st = os.stat(p)
    assert stat.S_IMODE(st.st_mode) == 0o600
    assert open(p, "rb").read() == b"report\n"
    assert os.listdir(tmp_path) == ["r.txt"]            # no temporary left behind


def test_existing_file_needs_force(tmp_path):
    t = tmp_path / "r.txt"
    t.write_text("old")
    with pytest.raises(safeio.UnsafePath, match="--force"):
        safeio.write_file(t, b"new")
    assert t.read_text() == "old"
    safeio.write_file(t, b"new", force=True)
    assert t.read_text() == "new"


def test_symlink_is_never_followed_even_with_force(tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("precious")
    link = tmp_path / "out"
    link.symlink_to(victim)
    for force in (False, True):
        with pytest.raises(safeio.UnsafePath, match="symbolic link"):
            safeio.write_file(link, b"x", force=force)
    assert victim.read_text() == "precious"


@pytest.mark.skipif(not IS_ROOT, reason="plants a link as another uid")
def test_symlink_planted_by_another_uid_in_sticky_tmp(tmp_path):
    for d in (tmp_path, *tmp_path.parents):       # let nobody reach the sticky dir
        if str(d).startswith("/tmp/pytest-of"):
            os.chmod(d, 0o755)
    sticky = tmp_path / "tmp"
    sticky.mkdir()
    os.chmod(sticky, 0o1777)
    victim = tmp_path / "etc_passwd_standin"
    victim.write_text("root:x:0:0")
    subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                    "ln", "-s", str(victim), str(sticky / "report.txt")], check=True)
    with pytest.raises(safeio.UnsafePath):
        safeio.write_file(sticky / "report.txt", b"pwn", force=True)
    assert victim.read_text() == "root:x:0:0"


@pytest.mark.skipif(not IS_ROOT, reason="plants a link as another uid")
def test_directory_link_planted_by_another_uid(tmp_path):
    """O_NOFOLLOW guards the last component only: /tmp/x -> /etc planted by nobody turned
    `-o /tmp/x/passwd --force` into a replaced /etc/passwd (fs.protected_symlinks is 0 here)."""
    for d in (tmp_path, *tmp_path.parents):
        if str(d).startswith("/tmp/pytest-of"):
            os.chmod(d, 0o755)
    sticky = tmp_path / "tmp"
    sticky.mkdir()
    os.chmod(sticky, 0o1777)
    etc = tmp_path / "etc_standin"
    etc.mkdir()
    (etc / "passwd").write_text("root:x:0:0")
    subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                    "ln", "-s", str(etc), str(sticky / "x")], check=True)
    for name, force in (("passwd", True), ("new", False)):
        with pytest.raises(safeio.UnsafePath, match="owned by another user"):
            safeio.write_file(sticky / "x" / name, b"pwn", force=force)
        with pytest.raises(safeio.UnsafePath, match="owned by another user"):
            safeio.ExclusiveFile(sticky / "x" / name)
    with pytest.raises(safeio.UnsafePath, match="owned by another user"):
        safeio.private_dir(sticky / "x" / "store")
    assert sorted(os.listdir(etc)) == ["passwd"] and (etc / "passwd").read_text() == "root:x:0:0"
    (tmp_path / "mine").symlink_to(etc)              # our own (root's) link stays usable
    safeio.write_file(tmp_path / "mine" / "ok.txt", b"fine")


@pytest.mark.parametrize("target", ["/proc/sys/kernel/domainname", "/sys/kernel/notes", "/dev/null",
                                    "/dev/shm/x", "/proc/self/../self/environ"])
def test_refuses_proc_sys_dev(target):
    with pytest.raises(safeio.UnsafePath, match="refusing to write under"):
        safeio.check_target(target, force=True)


def test_refuses_path_resolving_into_proc(tmp_path):
    (tmp_path / "p").symlink_to("/proc/sys/kernel")
    with pytest.raises(safeio.UnsafePath, match="/proc"):
        safeio.check_target(tmp_path / "p" / "domainname", force=True)


def test_fifo_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    out = []

    def attempt():
        try:
            safeio.write_file(fifo, b"x", force=True)
            out.append("wrote")
        except safeio.UnsafePath as e:
            out.append(str(e))

    t = threading.Thread(target=attempt, daemon=True)
    t.start()
    t.join(2)
    assert out and "not a regular file" in out[0], out or "write_file blocked on a FIFO"


def test_directory_and_missing_directory(tmp_path):
    with pytest.raises(safeio.UnsafePath, match="is a directory"):
        safeio.check_target(tmp_path, force=True)
    with pytest.raises(safeio.UnsafePath, match="does not exist"):
        safeio.check_target(tmp_path / "nope" / "r.txt")
    with pytest.raises(safeio.UnsafePath, match="not a file name"):
        safeio.check_target(str(tmp_path) + "/")


def test_exclusive_file_streams_and_never_replaces(tmp_path):
    p = tmp_path / "b.tgz"
    with safeio.ExclusiveFile(p) as f:
        f.write(b"a" * 10)
        assert not p.exists()                     # published only when complete
    assert p.read_bytes() == b"a" * 10
    assert stat.S_IMODE(os.stat(p).st_mode) == 0o600
    with pytest.raises(safeio.UnsafePath):
        safeio.ExclusiveFile(p)
    q = tmp_path / "c.tgz"
    with pytest.raises(RuntimeError):
        with safeio.ExclusiveFile(q) as f:
            f.write(b"half")
            raise RuntimeError("stream broke")
    assert os.listdir(tmp_path) == ["b.tgz"]


def test_private_dir(tmp_path):
    d = safeio.private_dir(tmp_path / "a" / "b")
    assert stat.S_IMODE(os.stat(d).st_mode) == 0o700
    (tmp_path / "l").symlink_to(tmp_path / "a")
    with pytest.raises(safeio.UnsafePath):
        safeio.private_dir(tmp_path / "l")

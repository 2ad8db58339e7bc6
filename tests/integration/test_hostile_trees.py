"""Trees that try to hang hostdiag: --proc-root full of FIFOs, --root on a filesystem whose
reads never answer (a real FUSE server, in a private mount namespace). The snapshot must end
with a report and name what it could not read (issue: hardening)."""
from __future__ import annotations

import json
import os
import shutil
import sys

import pytest

from support import FIXTURES, cli, fuse_unavailable, run_with_hung_mount


def test_proc_root_of_fifos_is_refused_not_waited_on(tmp_path):
    tree = tmp_path / "host"
    shutil.copytree(FIXTURES / "sockets_closewait", tree, symlinks=True)
    for rel in ("proc/meminfo", "proc/stat", "proc/loadavg", "proc/net/tcp", "proc/sys/fs/file-nr"):
        p = tree / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        if p.exists() or p.is_symlink():
            p.unlink()
        os.mkfifo(p)                     # nobody will ever write: an open for reading would block
    p = cli("snapshot", "--json", "--window", "0", "--proc-root", str(tree / "proc"),
            "--sys-root", str(tree / "sys"), "--root", str(tree), timeout=60)
    assert p.returncode in (0, 1, 2, 3) and "Traceback" not in p.stderr, p.stderr
    doc = json.loads(p.stdout)
    reasons = " ".join(b["reason"] for b in doc["blind_spots"])
    assert "not a regular file" in reasons or "meminfo" in reasons, reasons


def test_root_on_a_hung_filesystem_still_reports(tmp_path):
    why = fuse_unavailable()
    if why:
        pytest.skip(why)
    # `timeout -s KILL` only guards the test; hostdiag's own bounds must end the run.
    p = run_with_hung_mount(tmp_path, f"timeout -s KILL 40 {sys.executable} -m hostdiag snapshot --json "
                                      "--window 0 --timeout 1 --root $MNT; echo rc=$?", timeout=90)
    body, _, rc = p.stdout.rpartition("rc=")
    assert rc.strip() in ("0", "1", "2", "3"), p.stdout[-2000:] + p.stderr
    doc = json.loads(body)
    assert doc["host"]["os"] in ("?", "", None) or "timed out" in json.dumps(doc["blind_spots"])
    assert "Traceback" not in p.stderr


def test_big_proc_file_and_odd_entries_cost_only_their_own_section(tmp_path):
    """Under --proc-root every read goes through the prober child. A net/tcp over 1 MiB (a
    host with ~7k sockets) was refused and left its reply in the pipe: cpu, network and
    processes then failed as "hostdiag bug: bad marshal data". A FIFO where self/ belongs
    was "hostdiag bug: NotADirectoryError" instead of a named blind spot."""
    tree = tmp_path / "host"
    shutil.copytree(FIXTURES / "sockets_closewait", tree, symlinks=True)
    tcp = tree / "proc" / "net" / "tcp"
    head, _, rows = tcp.read_text().partition("\n")
    rows = rows.splitlines()
    body = [head] + [r for _ in range(1 + (3 << 20) // max(1, len("\n".join(rows)))) for r in rows]
    tcp.write_text("\n".join(body) + "\n")
    assert tcp.stat().st_size > 3 << 20
    self_ = tree / "proc" / "self"
    if self_.is_symlink() or self_.exists():
        shutil.rmtree(self_) if self_.is_dir() and not self_.is_symlink() else self_.unlink()
    os.mkfifo(self_)
    p = cli("snapshot", "--json", "--window", "0", "--proc-root", str(tree / "proc"),
            "--sys-root", str(tree / "sys"), "--root", str(tree), timeout=60)
    assert p.returncode in (0, 1, 2) and "Traceback" not in p.stderr, p.stderr
    doc = json.loads(p.stdout)
    bugs = [b for b in doc["blind_spots"] if "hostdiag bug" in b["reason"]]
    assert not bugs, bugs
    assert doc["sections"]["sockets"]["status"] != "unavailable", doc["blind_spots"]


def test_a_tree_without_processes_is_not_an_empty_ok(tmp_path):
    """A copy of the system files with no pid directories: files and processes say they saw no
    process, instead of an "ok" with empty tables (a false all-clear)."""
    proc = tmp_path / "proc"
    (proc / "sys" / "fs").mkdir(parents=True)
    for name in ("stat", "meminfo", "loadavg"):
        (proc / name).write_bytes(open(f"/proc/{name}", "rb").read())
    (proc / "sys" / "fs" / "file-nr").write_bytes(open("/proc/sys/fs/file-nr", "rb").read())
    p = cli("snapshot", "--json", "--window", "0", "--only", "files,processes", "--no-history",
            "--proc-root", str(proc))
    doc = json.loads(p.stdout)
    for name in ("files", "processes"):
        sec = doc["sections"][name]
        assert sec["status"] == "partial" and "no process directory readable" in sec["reason"], sec

"""Read-only, proven: run the real CLI under strace -f and fail on any mutating syscall.

What counts as a write follows shared/TESTBED.md: opens for writing/creating, writes to
path-backed fds, unlink/rename/mkdir/chmod/chown/truncate/link/utime/xattr/mount, signals to
other processes, priority/scheduler/rlimit changes, ptrace. Failed attempts count too.
"""
from __future__ import annotations

import fnmatch
import os
import re
import shutil
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(shutil.which("strace") is None, reason="strace not installed (.ci/run installs it)")

MUTATING = ("open,openat,openat2,creat,write,pwrite64,writev,pwritev,pwritev2,unlink,unlinkat,rename,renameat,"
            "renameat2,mkdir,mkdirat,rmdir,chmod,fchmod,fchmodat,chown,fchown,lchown,fchownat,truncate,"
            "ftruncate,link,linkat,symlink,symlinkat,mknod,mknodat,utime,utimes,utimensat,futimesat,setxattr,"
            "lsetxattr,fsetxattr,removexattr,lremovexattr,fremovexattr,mount,umount2,kill,tkill,tgkill,"
            "setpriority,ioprio_set,sched_setscheduler,sched_setparam,sched_setaffinity,ptrace,prlimit64,"
            "setrlimit,setsockopt,bind,memfd_create")
SAFE_DEV = re.compile(r"^/dev/(null|tty|pts/\d+)$")
WRITE_FLAGS = re.compile(r"O_WRONLY|O_RDWR|O_CREAT|O_TRUNC|O_APPEND|O_TMPFILE")


def trace(args: list[str], tmp_path, text: bool = True) -> tuple[list[str], subprocess.CompletedProcess]:
    log = tmp_path / "strace.log"
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1", NO_COLOR="1")
    p = subprocess.run(["strace", "-f", "-qq", "-y", "-s", "256", "-o", str(log), "-e", f"trace={MUTATING}",
                        sys.executable, "-m", "hostdiag", *args],
                       capture_output=True, text=text, env=env, timeout=120)
    return log.read_text().splitlines(), p


def _ok(path: str, allowed: set[str]) -> bool:
    """Allowed entries are exact paths or fnmatch patterns (safeio's temporary names)."""
    return any(path == a or fnmatch.fnmatchcase(path, a) for a in allowed)


def violations(lines: list[str], allowed: set[str]) -> list[str]:
    self_pids = {int(x.split()[0]) for x in lines if x[:1].isdigit()}  # hostdiag and its threads
    bad = []
    for line in lines:
        m = re.match(r"^(\d+)\s+(\w+)\((.*)$", line)
        if not m:
            continue
        call, rest = m.group(2), m.group(3)
        if call in ("open", "openat", "openat2", "creat"):
            path = re.search(r'"([^"]*)"', rest)
            path = path.group(1) if path else ""
            if (call == "creat" or WRITE_FLAGS.search(rest)) and not SAFE_DEV.match(path) and not _ok(path, allowed):
                bad.append(line)
        elif call in ("write", "pwrite64", "writev", "pwritev", "pwritev2"):
            fd = re.match(r"(\d+)<([^>]*)>", rest)
            if fd and fd.group(1) not in ("1", "2") and fd.group(2).startswith("/") \
                    and not SAFE_DEV.match(fd.group(2)) and not _ok(fd.group(2), allowed):
                bad.append(line)
        elif call in ("kill", "tkill", "tgkill"):
            args = [a.strip() for a in rest.split(")")[0].split(",")]
            if args[-1] != "0" and int(args[0]) not in self_pids:  # kill(pid, 0) only probes
                bad.append(line)
        elif call == "prlimit64":
            if not re.match(r"\d+, \w+, NULL", rest):  # a NULL new-limit is a read
                bad.append(line)
        elif call == "setsockopt":
            if "PACKET_ADD_MEMBERSHIP" in rest or "PROMISC" in rest:
                bad.append(line)
        elif call == "bind":
            if "AF_UNIX" in rest and 'sun_path="' in rest:
                bad.append(line)
        elif call in ("ftruncate",):
            fd = re.match(r"(\d+)<([^>]*)>", rest)
            if fd and not _ok(fd.group(2), allowed):
                bad.append(line)
        else:  # link/unlink/rename of the named file's own temporary is the only allowed kind
            # fd-based calls (fchown/fchmod: SQLite matches a new -wal's owner to the store's) name
            # their file as fd<path>
            paths = re.findall(r'"([^"]*)"', rest) or re.findall(r"^\d+<([^>]*)>", rest)
            if not paths or not all(_ok(x, allowed) for x in paths):
                bad.append(line)
    return bad


def test_snapshot_writes_nothing(tmp_path):
    lines, p = trace(["snapshot", "--window", "1", "--interval", "0.5"], tmp_path)
    assert p.returncode in (0, 1, 2), p.stderr
    assert "Condition" in p.stdout
    assert any("openat" in x for x in lines), "strace saw no syscalls: the detector itself is broken"
    assert violations(lines, set()) == []


def test_json_to_named_output_writes_only_that_file(tmp_path):
    out = tmp_path / "report.json"
    lines, p = trace(["snapshot", "--window", "0", "--json", "--output", str(out)], tmp_path)
    assert p.returncode in (0, 1, 2), p.stderr
    assert out.read_text().startswith("{")
    assert violations(lines, {str(out), str(tmp_path / ".report.json.*.tmp")}) == []
    # and the named file really was opened for writing (the detector sees such opens)
    assert violations(lines, set()) != []


def test_detector_catches_a_write():
    """The detector must fail on the things it exists to catch (a test that cannot fail is a defect)."""
    lines = ['100 openat(AT_FDCWD</>, "/var/tmp/x", O_WRONLY|O_CREAT|O_TRUNC|O_CLOEXEC, 0666) = 3</var/tmp/x>',
             '100 unlink("/tmp/y") = -1 ENOENT (No such file or directory)',
             '100 kill(4242, SIGTERM) = 0',
             '100 setpriority(PRIO_PROCESS, 4242, 10) = 0',
             '100 write(3</var/log/x.log>, "hi", 2) = 2']
    assert len(violations(lines, set())) == 5
    ok = ['100 openat(AT_FDCWD</>, "/proc/stat", O_RDONLY|O_CLOEXEC) = 3</proc/stat>',
          '100 write(1<pipe:[123]>, "x", 1) = 1', '100 openat(AT_FDCWD</>, "/dev/null", O_WRONLY) = 3</dev/null>',
          '100 prlimit64(0, RLIMIT_NOFILE, NULL, {rlim_cur=1024, rlim_max=4096}) = 0']
    assert violations(ok, set()) == []


def test_bundle_streamed_to_stdout_writes_nothing(tmp_path):
    """`hostdiag bundle -o -`: the whole archive goes to fd 1; no file is created, not even a temp."""
    lines, p = trace(["bundle", "-o", "-", "--window", "1", "--interval", "0.5", "--since", "10m"], tmp_path, text=False)
    assert p.returncode == 0, p.stderr
    assert p.stdout[:2] == b"\x1f\x8b" and len(p.stdout) > 1000
    assert any("openat" in x for x in lines)
    assert violations(lines, set()) == []

def _store_files(store) -> set[str]:
    return {f"{store}{side}" for side in ("", "-wal", "-shm", "-journal")}


def test_capture_writes_only_the_store(tmp_path):
    d = tmp_path / "state"
    d.mkdir(mode=0o700)
    store = d / "h.db"
    for _ in range(2):      # creating the store, then appending to it
        lines, p = trace(["capture", "--store", str(store), "--window", "0"], tmp_path)
        assert p.returncode == 0, p.stderr
        assert violations(lines, _store_files(store)) == []
        assert violations(lines, set()) != [], "the store write went unseen: the detector is broken"
    assert sorted(os.listdir(d)) == ["h.db"]


def _store_with_two_captures(tmp_path):
    """(directory, store) after two real captures at fixed times (untraced: setup, not the test)."""
    d = tmp_path / "state"
    d.mkdir(mode=0o700)
    store = d / "h.db"
    for t in ("1790000000", "1790000060"):
        p = subprocess.run([sys.executable, "-m", "hostdiag", "capture", "--store", str(store), "--window", "0"],
                           env=dict(os.environ, HOSTDIAG_NOW=t), capture_output=True, text=True, timeout=120)
        assert p.returncode == 0, p.stderr
    return d, store


def test_history_and_read_only_open_write_nothing(tmp_path):
    from hostdiag.history.store import History

    d, store = _store_with_two_captures(tmp_path)
    before = {n: (d / n).read_bytes() for n in os.listdir(d)}
    for args in (["history", "--since", "3650d"], ["history", "--since", "3650d", "--metric", "memory.available_bytes", "--json"],
                 ["history", "--diff", "1790000000", "1790000060"], ["history", "--since", "3650d", "--process", "python*", "--csv"]):
        lines, p = trace([*args, "--store", str(store)], tmp_path)
        assert p.returncode == 0, (args, p.stderr)
        assert violations(lines, set()) == [], args
        assert {n: (d / n).read_bytes() for n in os.listdir(d)} == before, f"{args}: a -wal/-shm appeared or the store changed"
    with History.open_ro(str(store)) as h:      # the API the snapshot will use: no file appears either
        assert h.span()[2] == 2
    assert sorted(os.listdir(d)) == ["h.db"]

@pytest.mark.skipif(os.geteuid() != 0, reason="a packet capture needs root")
def test_packets_capture_writes_nothing_and_is_not_promiscuous(tmp_path):
    lines, p = trace(["packets", "1", "--json"], tmp_path)
    assert p.returncode in (0, 1, 2), p.stderr
    assert '"source": "live"' in p.stdout
    assert any("SO_ATTACH_FILTER" in x for x in lines), "no filtered packet socket seen: the capture did not run"
    assert violations(lines, set()) == []
    # --promisc is the one opt-in that changes interface state, and the detector sees it
    lines, p = trace(["packets", "0.2", "--iface", "lo", "--promisc"], tmp_path)
    assert any("PACKET_MR_PROMISC" in x for x in lines) and violations(lines, set()) != []


@pytest.mark.skipif(os.geteuid() != 0, reason="a packet capture needs root")
def test_packets_pcap_out_writes_only_that_file(tmp_path):
    out = tmp_path / "cap.pcap"
    lines, p = trace(["packets", "0.5", "--iface", "lo", "--pcap-out", str(out)], tmp_path)
    assert p.returncode in (0, 1, 2), p.stderr
    assert out.read_bytes()[:4] == b"\xd4\xc3\xb2\xa1"
    assert violations(lines, {str(out), str(tmp_path / ".cap.pcap.*.tmp")}) == []


def test_capture_textfile_writes_only_its_file(tmp_path):
    d = tmp_path / "tf"
    d.mkdir()
    lines, p = trace(["capture", "--no-store", "--textfile", str(d), "--window", "0"], tmp_path)
    assert p.returncode == 0, p.stderr
    assert violations(lines, {str(d / "hostdiag.prom"), str(d / ".hostdiag.prom.*.tmp")}) == []
    assert violations(lines, set()) != [], "the textfile write went unseen: the detector is broken"


def test_snapshot_with_a_store_present_writes_nothing(tmp_path):
    """The snapshot reads the capture store read-only: no write, no -wal/-shm/-journal created."""
    d, store = _store_with_two_captures(tmp_path)
    before = {n: (d / n).read_bytes() for n in os.listdir(d)}
    lines, p = trace(["snapshot", "--window", "0", "--json", "--store", str(store)], tmp_path)
    assert p.returncode in (0, 1, 2), p.stderr
    assert '"history"' in p.stdout                   # the store was read
    assert violations(lines, set()) == []
    assert {n: (d / n).read_bytes() for n in os.listdir(d)} == before


def test_snapshot_with_packets_is_passive(tmp_path):
    """`snapshot --packets`: no promiscuous mode, no file written."""
    if os.geteuid() != 0:
        pytest.skip("packet capture needs root")
    lines, p = trace(["snapshot", "--window", "1", "--interval", "0.5", "--packets", "1", "--only", "sockets",
                      "--json"], tmp_path)
    assert p.returncode in (0, 1, 2), p.stderr
    assert '"packets"' in p.stdout
    assert violations(lines, set()) == []

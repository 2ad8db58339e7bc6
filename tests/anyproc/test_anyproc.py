"""Issue 9: correct on any /proc. Every collector against real trees copied from this machine at
test time (tests/proctree.py): a full copy, a partial one, a 'bigger host' and a container-style
/host layout, through the real CLI in every format; then random deletions (hypothesis).

Facts are checked against the tree, which is edited to differ from this machine where that
proves the fact came from the tree (hostname, kernel, CPUs, MemTotal, socket totals, disks).
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import proctree
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support import IS_ROOT, cli

from hostdiag.core.runner import cpu_count

STATUSES = {"ok", "partial", "unavailable"}
# Sections that read only the tree, so must never be unavailable on a full copy.
TREE_SECTIONS = ("cpu", "memory", "io", "disk", "files", "sockets", "processes")
FORMATS = ("--json", "--plain", "--markdown")
HOSTNAME = "copied-host-k9"
BIG_MEMTOTAL_KB = 263_921_664       # 251.7 GiB: not this machine's
BIG_TCP_INUSE = 4242


def snap(tree: proctree.Tree, fmt: str = "--json", *extra: str) -> subprocess.CompletedProcess:
    # --full: these tests read the evidence (device tables, interfaces), not just the findings
    p = cli("snapshot", "--window", "0", fmt, "--full", *tree.args(), *extra)
    out = p.stdout + p.stderr
    assert p.returncode in (0, 1, 2), out
    assert "Traceback" not in out and "hostdiag bug" not in out, out
    return p


def sections_well_formed(doc: dict) -> None:
    for name, sec in doc["sections"].items():
        assert sec["status"] in STATUSES, name
        if sec["status"] != "ok":
            assert sec["reason"], name


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> proctree.Tree:
    """One copy of this machine per module; tests take private copies of it (cheap: ~2 MB)."""
    return proctree.copy_tree(tmp_path_factory.mktemp("live") / "tree")


def clone(base: proctree.Tree, dst: Path) -> proctree.Tree:
    shutil.copytree(base.root, dst, symlinks=True)
    return proctree.Tree(dst, list(base.pids), list(base.files))


def test_copy_is_real_and_complete(base):
    # The helper itself: procfs files (st_size 0) were read, not copied empty; fd links kept.
    assert base.read("proc/meminfo").startswith("MemTotal:")
    assert "cpu0 " in base.read("proc/stat") and "sl  local_address" in base.read("proc/net/tcp")
    assert os.readlink(base.proc / "self") == str(os.getpid())
    me = base.proc / str(os.getpid())
    assert (me / "status").read_text().startswith("Name:") and os.path.islink(me / "fd" / "0")
    assert os.listdir(base.sys / "block")


# ---------------------------------------------------------------- a full copy

@pytest.mark.parametrize("fmt", FORMATS)
def test_full_copy_every_format(base, tmp_path, fmt):
    tree = clone(base, tmp_path / "t")
    tree.write("proc/sys/kernel/hostname", HOSTNAME + "\n")
    p = snap(tree, fmt)
    if fmt != "--json":
        assert HOSTNAME in "".join(p.stdout.splitlines(keepends=True)[:3])   # the header names the tree
    else:
        doc = json.loads(p.stdout)
        assert doc["host"]["hostname"] == HOSTNAME
        sections_well_formed(doc)
        for name in TREE_SECTIONS:
            assert doc["sections"][name]["status"] != "unavailable", (name, doc["sections"][name]["reason"])
        assert doc["host"]["cpus"] == cpu_count(tree.ctx(), tree.read("proc/stat"))


def test_full_copy_sampled_over_a_window(base, tmp_path):
    # Two ticks: the per-tick readers (files' fd watch, sockets' listen depths) run on the tree too.
    tree = clone(base, tmp_path / "t")
    p = cli("snapshot", "--window", "0.3", "--interval", "0.1", "--json", *tree.args())
    assert p.returncode in (0, 1, 2) and "Traceback" not in p.stderr, p.stderr
    doc = json.loads(p.stdout)
    sections_well_formed(doc)
    assert "hostdiag bug" not in json.dumps(doc["sections"])
    assert doc["window_s"] > 0


# ---------------------------------------------------------------- a partial copy

def test_partial_system_files_lose_only_what_they_held(base, tmp_path):
    tree = clone(base, tmp_path / "t")
    proctree.remove(tree, "proc/net/tcp", "proc/vmstat", "proc/net/netstat", "proc/pressure/io")
    tree.write("proc/net/sockstat", re.sub(r"TCP: inuse \d+", f"TCP: inuse {BIG_TCP_INUSE}",
                                           tree.read("proc/net/sockstat")))
    doc = json.loads(snap(tree).stdout)
    sections_well_formed(doc)
    s = doc["sections"]
    # sockets: partial, names net/tcp, and still has the counters that were there
    assert s["sockets"]["status"] == "partial"
    assert f"{tree.proc}/net/tcp missing" in s["sockets"]["reason"]
    assert f"{tree.proc}/net/netstat missing" in s["sockets"]["reason"]
    assert s["sockets"]["data"]["totals"]["tcp_inuse"] == BIG_TCP_INUSE
    assert "sockets.retrans_segs" in doc["series"]           # Tcp: from net/snmp, which is still there
    assert "sockets.listen_overflows" not in doc["series"]  # TcpExt: net/netstat is gone
    assert s["sockets"]["data"]["ipv4_table"] is False and s["sockets"]["data"]["ipv6_table"] is True
    assert "IPv4 TCP sockets not listed" in s["sockets"]["reason"]
    # memory: partial for vmstat, and RAM still reported
    assert s["memory"]["status"] == "partial" and f"{tree.proc}/vmstat missing" in s["memory"]["reason"]
    assert s["memory"]["data"]["total_bytes"] > 0
    # io: PSI gone is named, the devices are still there
    assert "pressure/io missing" in s["io"]["reason"]
    # A missing file is not a permission problem: nothing may tell root to become root.
    for name in ("sockets", "memory", "io"):
        assert "run as root" not in s[name]["reason"]
    plain = snap(tree, "--plain").stdout
    need = plain.split("Need:", 1)[1].split("\n\n", 1)[0]
    assert "run as root" not in need
    assert "net/tcp missing" in plain and "vmstat missing" in plain
    md = snap(tree, "--markdown").stdout
    assert "net/tcp missing" in md


def test_partial_per_process_files_cost_only_that_pid(base, tmp_path):
    tree = clone(base, tmp_path / "t")
    pids = [p for p in tree.pids if p != os.getpid()][:3] or [os.getpid()]
    for pid, name in zip(pids, ("status", "io", "statm")):
        proctree.remove(tree, f"proc/{pid}/{name}")
    for fmt in FORMATS:
        snap(tree, fmt)     # no traceback, no hostdiag bug
    doc = json.loads(snap(tree).stdout)
    sections_well_formed(doc)
    for name in TREE_SECTIONS:
        assert doc["sections"][name]["status"] != "unavailable", (name, doc["sections"][name]["reason"])


# ---------------------------------------------------------------- a bigger host

def _bigger(base: proctree.Tree, root: Path) -> proctree.Tree:
    tree = proctree.make_bigger(clone(base, root))
    tree.write("proc/meminfo", re.sub(r"^MemTotal:\s+\d+ kB", f"MemTotal:       {BIG_MEMTOTAL_KB} kB",
                                      tree.read("proc/meminfo"), flags=re.M))
    return tree


def test_bigger_host_facts_are_the_trees(base, tmp_path):
    tree = _bigger(base, tmp_path / "t")
    doc = json.loads(snap(tree).stdout)
    sections_well_formed(doc)
    h, s = doc["host"], doc["sections"]
    assert (h["hostname"], h["kernel"], h["cpus"]) == (proctree.BIG_HOSTNAME, proctree.BIG_KERNEL, proctree.BIG_CPUS)
    assert s["memory"]["data"]["total_bytes"] == BIG_MEMTOTAL_KB * 1024
    # disks: the tree's nvme devices are there; sdq (in diskstats, not in its /sys/block) is
    # reported and named, never dropped silently
    devices = {d["device"] for d in s["io"]["data"]["devices"]}
    assert {"nvme0n1", "nvme1n1", "sdq"} <= devices and "nvme0n1p1" not in devices
    assert "(sdq)" in s["io"]["reason"] and "run as root" not in s["io"]["reason"]
    # mounts: the tree's extra mounts are seen, and no size from whatever disk holds the copy
    fs = {r["mount"] for r in s["disk"]["data"]["filesystems"]}
    assert not fs & {"/", "/data", "/var/lib/db"}, fs
    assert f"not the mount's {proctree.BIG_ROOT_DEV}: size of / not reported" in s["disk"]["reason"]
    for mp, dev, *_ in proctree.BIG_MOUNTS:
        assert f"not the mount's {dev}: size of {mp} not reported" in s["disk"]["reason"]
    for fmt in ("--plain", "--markdown"):
        out = snap(tree, fmt).stdout
        assert proctree.BIG_HOSTNAME in out and proctree.BIG_KERNEL in out and "sdq" in out


def test_bigger_host_cpu_section_counts_the_trees_cpus(base, tmp_path):
    doc = json.loads(snap(_bigger(base, tmp_path / "t"), "--json", "--only", "cpu").stdout)
    assert doc["sections"]["cpu"]["data"]["cpus"] == proctree.BIG_CPUS


# ---------------------------------------------------------------- a container's view

def test_container_layout_with_a_copied_host(base, tmp_path):
    host = _bigger(base, tmp_path / "host")          # <tmp>/host/{proc,sys,etc}
    tree = proctree.Tree(host.root, host.pids, host.files)
    assert tree.proc == tmp_path / "host" / "proc"
    for fmt in FORMATS:
        out = snap(tree, fmt).stdout
        assert proctree.BIG_HOSTNAME in out
    doc = json.loads(snap(tree).stdout)
    sections_well_formed(doc)
    assert doc["host"]["cpus"] == proctree.BIG_CPUS and doc["host"]["kernel"] == proctree.BIG_KERNEL


@pytest.mark.skipif(not IS_ROOT or not shutil.which("unshare"), reason="needs root and unshare for bind mounts")
def test_container_layout_with_the_live_host_bind_mounted(tmp_path):
    """The real container case: this host's live /proc and /sys bind-mounted at <tmp>/host in a
    private mount namespace, as `docker run -v /proc:/host/proc` does."""
    host = tmp_path / "host"
    for d in ("proc", "sys"):
        (host / d).mkdir(parents=True)
    script = (f"mount --bind /proc {host}/proc && mount --bind /sys {host}/sys && "
              f"{sys.executable} -m hostdiag snapshot --window 0 --json --proc-root {host}/proc "
              f"--sys-root {host}/sys --root /")
    p = subprocess.run(["unshare", "--mount", "--propagation", "private", "bash", "-c", script],
                       capture_output=True, text=True, timeout=120, env=dict(os.environ, PYTHONDONTWRITEBYTECODE="1"))
    assert p.returncode in (0, 1, 2), p.stderr
    assert "Traceback" not in p.stderr and "hostdiag bug" not in p.stdout
    doc = json.loads(p.stdout)
    sections_well_formed(doc)
    assert doc["host"]["hostname"] == os.uname().nodename and doc["host"]["cpus"] == os.cpu_count()
    disk = doc["sections"]["disk"]
    # PID 1's mount table was read (the host's), not hostdiag's own: no fallback note
    assert "self/mountinfo" not in (disk["reason"] or "")
    assert "/" in {r["mount"] for r in disk["data"]["filesystems"]}
    for name in TREE_SECTIONS:
        assert doc["sections"][name]["status"] != "unavailable", (name, doc["sections"][name]["reason"])


# ---------------------------------------------------------------- random deletions

def _run_api(tree: proctree.Tree):
    from hostdiag.commands.snapshot import Options, run

    return run(Options(window_s=0), tree.ctx()).snapshot


def _system_files(base: proctree.Tree) -> list[str]:
    return [f for f in base.files if not re.match(r"proc/\d+/", f)]


def test_missing_proc_stat_costs_boot_time_not_the_process_scan(base, tmp_path):
    tree = clone(base, tmp_path / "t")
    proctree.remove(tree, "proc/stat")
    for name, sec in _run_api(tree).sections.items():
        assert "hostdiag bug" not in (sec.reason or ""), (name, sec.reason)


# Whole directories too: a bundle that lost proc/net, sys/block or a pid.
_DIRS = ("proc/net", "proc/pressure", "proc/sys", "sys/block", "sys/class", "sys/devices", "sys/fs", "etc")


def _deletions(base: proctree.Tree, files: list[str]):
    return st.lists(st.sampled_from(files + list(_DIRS)), min_size=1, max_size=25, unique=True)


class _Quiet(tuple):
    def __repr__(self) -> str:      # hypothesis prints the arguments of a failing example
        return "<copied tree>"


@pytest.fixture(scope="module")
def base_files(base, tmp_path_factory):
    """A private copy the property tests hide files in (and restore: see proctree.hidden)."""
    scratch = clone(base, tmp_path_factory.mktemp("scratch") / "t")
    return _Quiet((scratch, sorted(scratch.files)))


@settings(max_examples=int(os.environ.get("ANYPROC_EXAMPLES", "25")), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_random_deletions_always_complete(base_files, data):
    base, files = base_files
    gone = data.draw(_deletions(base, files + [f"proc/{p}" for p in base.pids]))
    with proctree.hidden(base, *gone):
        assert not any((base.root / g).exists() for g in gone)
        snapshot = _run_api(base)
    assert all((base.root / g).exists() for g in gone)     # put back for the next example
    for name, sec in snapshot.sections.items():
        assert sec.status in STATUSES, name
        if sec.status != "ok":
            assert sec.reason, (name, gone)


@settings(max_examples=int(os.environ.get("ANYPROC_EXAMPLES", "25")), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_random_system_file_deletions_are_never_a_bug_and_never_run_as_root(base_files, data):
    """System files only (per-pid files are the procscan branch's): no "hostdiag bug", and as
    root no blind spot tells the user to run as root, since nothing was denied."""
    base, _ = base_files
    gone = data.draw(_deletions(base, _system_files(base)))
    with proctree.hidden(base, *gone):
        snapshot = _run_api(base)
    for name, sec in snapshot.sections.items():
        assert sec.status in STATUSES, name
        if sec.status != "ok":
            assert sec.reason, (name, gone)
        assert "hostdiag bug" not in (sec.reason or ""), (name, gone, sec.reason)
        if IS_ROOT and name in ("memory", "io", "sockets", "files"):
            assert "run as root" not in (sec.reason or ""), (name, gone, sec.reason)


# ---------------------------------------------------------------- facts from the tree, not os

def test_fd_counts_in_a_copied_tree_are_the_links_not_the_dir_size(tmp_path):
    """On procfs >= 6.2 st_size of PID/fd is the fd count; a copied tree's fd/ is a directory
    on disk whose st_size is a block size (4096), which must not be read as 4096 fds."""
    from hostdiag.collectors import files

    child = subprocess.Popen([sys.executable, "-c", "import os,sys; fds=[os.open(os.devnull, 0) for _ in range(80)]; "
                              "sys.stdout.write('ready\\n'); sys.stdout.flush(); sys.stdin.read()"],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline() == "ready\n"
        tree = proctree.copy_tree(tmp_path / "t", pids=[child.pid])
        links = len(os.listdir(tree.proc / str(child.pid) / "fd"))
        assert links >= 80 and os.stat(tree.proc / str(child.pid) / "fd").st_size != links
        assert files.size_counts_fds(tree.ctx()) is False
        state: dict = {}
        files.sample(tree.ctx(), state)
        second = files.sample(tree.ctx(), state)
        assert second[f"fds[pid={child.pid}]"] == links
    finally:
        child.kill()
        child.wait()


def test_page_size_comes_from_the_tree(base, tmp_path):
    from hostdiag.core import tree as treefacts

    tree = clone(base, tmp_path / "t")
    assert treefacts.page_size(tree.ctx()) == os.sysconf("SC_PAGE_SIZE")   # copied from here
    # An arm64 host with 64 KiB pages: its statm counts 16 times fewer pages for the same VmRSS.
    for pid in tree.pids:
        statm = tree.read(f"proc/{pid}/statm").split()
        rss_kb = int(re.search(r"^VmRSS:\s+(\d+)", tree.read(f"proc/{pid}/status"), re.M).group(1)) \
            if "VmRSS:" in tree.read(f"proc/{pid}/status") else 0
        statm[1] = str(rss_kb // 64 if rss_kb >= 64 * 200 else 0)   # coarser ratios are skipped
        tree.write(f"proc/{pid}/statm", " ".join(statm) + "\n")
    # Every pid's ratio now says 64 KiB (within the 1% the rounding of VmRSS // 64 allows).
    assert treefacts.page_size(tree.ctx()) == 65536

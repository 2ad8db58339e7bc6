"""Real /proc and /sys trees for tests, copied from this machine at test time.

Nothing captured here is committed: each test copies what it needs into its tmp_path. procfs
and sysfs files report st_size 0, so every file is read (bounded) and written, never
shutil.copy'd; fd/ entries become symlinks with the same targets ('socket:[123]', '/dev/null'),
which is what readlink() on a real /proc/PID/fd/N gives.

Shapes built from a copy (issue 9):
  copy_tree()      a faithful subset: the system files the collectors read plus a few pids
  remove()         a partial copy (per-process files, net/tcp, vmstat gone)
  hidden()         the same for one with-block (property tests reuse one copy)
  make_bigger()    another host: 8 cpuN lines, extra mounts and devices, its own hostname/kernel
  container()      the same tree at <tmp>/host/{proc,sys} as a container sees the host
"""
from __future__ import annotations

import os
import re
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

LIMIT = 4 << 20    # /proc/net/tcp of a busy host; nothing we copy should be bigger
CHUNK = 64 << 10   # sysctl handlers allocate what read() asks for: read in chunks

# /proc files the collectors and host_info read; ones this kernel lacks are skipped.
PROC_FILES = (
    "stat", "meminfo", "vmstat", "loadavg", "uptime", "diskstats", "swaps", "version", "cpuinfo",
    "pressure/cpu", "pressure/memory", "pressure/io", "pressure/irq",
    "net/tcp", "net/tcp6", "net/udp", "net/udp6", "net/sockstat", "net/sockstat6", "net/snmp",
    "net/snmp6", "net/netstat", "net/dev", "net/softnet_stat",
    "sys/fs/file-nr", "sys/fs/file-max", "sys/fs/nr_open",
    "sys/kernel/hostname", "sys/kernel/osrelease", "sys/kernel/pid_max", "sys/kernel/threads-max",
    "sys/kernel/random/boot_id",
    "sys/net/ipv4/ip_local_port_range", "sys/net/ipv4/tcp_max_tw_buckets", "sys/net/core/somaxconn",
    "sys/net/netfilter/nf_conntrack_count", "sys/net/netfilter/nf_conntrack_max",
)
PID_FILES = ("stat", "status", "statm", "io", "cmdline", "comm", "limits", "cgroup", "wchan")
BLOCK_FILES = ("stat", "size", "dev", "ro", "removable", "queue/rotational", "queue/logical_block_size",
               "queue/physical_block_size", "queue/hw_sector_size", "queue/nr_requests", "queue/scheduler",
               "dm/name")
NET_FILES = ("operstate", "carrier", "speed", "duplex", "mtu", "type", "flags", "tx_queue_len")
ETC_FILES = ("os-release", "fstab", "passwd", "group")


@dataclass
class Tree:
    root: Path                      # --root; proc/ and sys/ live under it
    pids: list[int] = field(default_factory=list)
    files: list[str] = field(default_factory=list)   # every regular file written, relative to root

    @property
    def proc(self) -> Path:
        return self.root / "proc"

    @property
    def sys(self) -> Path:
        return self.root / "sys"

    def args(self) -> list[str]:
        """The CLI flags that point hostdiag at this tree."""
        return ["--proc-root", str(self.proc), "--sys-root", str(self.sys), "--root", str(self.root)]

    def ctx(self, timeout_s: float = 2.0):
        from hostdiag.core.context import Context

        return Context(proc=str(self.proc), sys=str(self.sys), root=str(self.root), timeout_s=timeout_s)

    def read(self, rel: str) -> str:
        return (self.root / rel).read_text()

    def write(self, rel: str, text: str) -> None:
        self.write_bytes(rel, text.encode())

    def write_bytes(self, rel: str, data: bytes) -> None:
        p = self.root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
        if rel not in self.files:
            self.files.append(rel)


def _read(path: str) -> bytes | None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        if not os.path.isfile(path):
            return None
        chunks, left = [], LIMIT
        while left > 0:
            b = os.read(fd, min(CHUNK, left))
            if not b:
                break
            chunks.append(b)
            left -= len(b)
        return b"".join(chunks)
    except OSError:     # EIO, EINVAL: a file this kernel has but will not give us
        return None
    finally:
        os.close(fd)


def _copy(tree: Tree, src: str, rel: str) -> bool:
    data = _read(src)
    if data is not None:
        tree.write_bytes(rel, data)
    return data is not None


def _copy_pid(tree: Tree, proc: str, pid: int, mountinfo: bool) -> bool:
    """All of a pid or none of it: a pid with a file this machine would not give us (pid 1's io
    is EACCES here even for root) is left out, so a full copy is a complete one. Partial pids
    are made on purpose with remove()."""
    base = f"{proc}/{pid}"
    got = {name: _read(f"{base}/{name}") for name in PID_FILES + (("mountinfo",) if mountinfo else ())}
    if any(v is None for k, v in got.items() if k != "wchan"):
        return False        # exited, or a file we may not read
    for name, data in got.items():
        if data is not None:
            tree.write_bytes(f"proc/{pid}/{name}", data)
    fd_dir = tree.proc / str(pid) / "fd"
    fd_dir.mkdir(parents=True, exist_ok=True)
    try:
        names = os.listdir(f"{base}/fd")
    except OSError:
        names = []
    for n in names:
        try:
            target = os.readlink(f"{base}/fd/{n}")
        except OSError:
            continue
        os.symlink(target, fd_dir / n)
    return True


def copy_tree(dst: Path, pids=(), *, extra_pids: int = 6, proc: str = "/proc", sys: str = "/sys") -> Tree:
    """Copy the collectors' system files, /etc bits, /sys bits and some pids into dst.

    Pid 1 and this process (proc/self is a symlink to it, as on a real procfs), plus `pids`
    and the first `extra_pids` user-space processes that can be read whole."""
    tree = Tree(Path(dst))
    tree.root.mkdir(parents=True, exist_ok=True)
    for rel in PROC_FILES:
        _copy(tree, f"{proc}/{rel}", f"proc/{rel}")
    for name in ETC_FILES:
        _copy(tree, f"/etc/{name}", f"etc/{name}")

    me = os.getpid()
    want = [1, me, *pids]
    others = [p for p in sorted(int(n) for n in os.listdir(proc) if n.isdigit())
              if p not in want and _read(f"{proc}/{p}/cmdline")]   # kernel threads have none
    for pid in dict.fromkeys(want + others):
        if len(tree.pids) >= len(set(want)) + extra_pids:
            break
        if _copy_pid(tree, proc, pid, mountinfo=pid in (1, me)):
            tree.pids.append(pid)
    if me in tree.pids:
        os.symlink(str(me), tree.proc / "self")
    _copy_sys(tree, sys)
    return tree


def _copy_sys(tree: Tree, sys: str) -> None:
    for rel in ("devices/system/cpu/online", "devices/system/cpu/possible", "devices/system/cpu/present"):
        _copy(tree, f"{sys}/{rel}", f"sys/{rel}")
    try:
        disks = sorted(os.listdir(f"{sys}/block"))
    except OSError:
        disks = []
    for disk in disks:
        src = f"{sys}/block/{disk}"
        _block_dev(tree, sys, src, f"sys/block/{disk}")
        try:
            subs = os.listdir(src)
        except OSError:
            continue
        for part in subs:   # partitions: sda/sda1 with a 'partition' file
            if os.path.exists(f"{src}/{part}/partition"):
                _copy(tree, f"{src}/{part}/partition", f"sys/block/{disk}/{part}/partition")
                _block_dev(tree, sys, f"{src}/{part}", f"sys/block/{disk}/{part}")
    try:
        ifaces = sorted(os.listdir(f"{sys}/class/net"))
    except OSError:
        ifaces = []
    for iface in ifaces:
        src = f"{sys}/class/net/{iface}"
        if not os.path.isdir(src):
            continue
        for name in NET_FILES:
            _copy(tree, f"{src}/{name}", f"sys/class/net/{iface}/{name}")
        try:
            stats = os.listdir(f"{src}/statistics")
        except OSError:
            stats = []
        for name in stats:
            _copy(tree, f"{src}/statistics/{name}", f"sys/class/net/{iface}/statistics/{name}")
    _copy_cgroup(tree, f"{sys}/fs/cgroup", "sys/fs/cgroup", depth=0)


_CG_FILE = re.compile(r"^(cgroup\.(controllers|subtree_control|procs)|(memory|cpu|pids|io|blkio|cpuacct)\..*)$")


def _copy_cgroup(tree: Tree, src: str, rel: str, depth: int) -> None:
    """Top of the cgroup tree (v1, v2 or hybrid): controller files two levels down, no deeper."""
    try:
        entries = list(os.scandir(src))
    except OSError:
        return
    for e in entries:
        if e.is_dir(follow_symlinks=False):
            if depth < 2:
                _copy_cgroup(tree, e.path, f"{rel}/{e.name}", depth + 1)
        elif e.is_file(follow_symlinks=False) and _CG_FILE.match(e.name) and e.stat().st_mode & 0o444:
            _copy(tree, e.path, f"{rel}/{e.name}")


def _block_dev(tree: Tree, sys: str, src: str, rel: str) -> None:
    for name in BLOCK_FILES:
        _copy(tree, f"{src}/{name}", f"{rel}/{name}")
    dev = _read(f"{src}/dev")
    if dev:   # /sys/dev/block/MAJ:MIN -> the device directory, as sysfs links it
        link = tree.sys / "dev" / "block" / dev.decode().strip()
        link.parent.mkdir(parents=True, exist_ok=True)
        if not link.is_symlink():
            os.symlink(os.path.relpath(tree.root / rel, link.parent), link)


def remove(tree: Tree, *rels: str) -> None:
    """Delete files (or whole directories) from the copy, as a partial bundle lacks them."""
    import shutil

    for rel in rels:
        p = tree.root / rel
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        elif p.exists() or p.is_symlink():
            p.unlink()
        tree.files = [f for f in tree.files if f != rel and not f.startswith(rel.rstrip("/") + "/")]


@contextmanager
def hidden(tree: Tree, *rels: str):
    """Make files or directories absent for the duration of a with block, then put them back:
    renames, so a property test can delete from one copy many times without re-copying it."""
    stash = Path(tempfile.mkdtemp(prefix="hidden-", dir=tree.root.parent))
    moved = []
    try:
        for i, rel in enumerate(sorted(rels, key=len)):   # a parent first: its children go with it
            src = tree.root / rel
            if src.exists() or src.is_symlink():
                os.rename(src, stash / str(i))
                moved.append((stash / str(i), src))
        yield tree
    finally:
        for held, src in reversed(moved):
            os.rename(held, src)
        os.rmdir(stash)


# ---------------------------------------------------------------- another host

BIG_HOSTNAME = "bighost-db-07"
BIG_KERNEL = "5.15.0-1099-bigvendor"
BIG_CPUS = 8
BIG_ROOT_DEV = "259:1"
# Extra mounts and devices of the bigger host: majors this machine does not use for them.
BIG_MOUNTS = (("/data", "259:3", "nvme0n1p1", "xfs"), ("/var/lib/db", "259:5", "nvme1n1", "ext4"))
BIG_DISKS = (("259", "0", "nvme0n1"), ("259", "3", "nvme0n1p1"), ("259", "5", "nvme1n1"),
             ("8", "0", "sdq"))


def _redev(line: str, mount: str, dev: str) -> str:
    """A mountinfo line with `mount`'s major:minor replaced by dev."""
    f = line.split(" ")
    if len(f) > 4 and f[4] == mount:
        f[2] = dev
    return " ".join(f)


def _cpu_lines(stat: str, n: int) -> str:
    """/proc/stat with exactly n cpuN lines (copies of cpu0's, renumbered)."""
    lines = stat.splitlines()
    cpus = [ln for ln in lines if re.match(r"cpu\d+ ", ln)]
    template = cpus[0].split(None, 1)[1] if cpus else "100 0 100 1000 0 0 0 0 0 0"
    out, done = [], False
    for ln in lines:
        if re.match(r"cpu\d+ ", ln):
            if not done:
                out += [f"cpu{i} {template}" for i in range(n)]
                done = True
            continue
        out.append(ln)
    return "\n".join(out) + "\n"


def make_bigger(tree: Tree) -> Tree:
    """Turn a copy into a 'bigger host': 8 CPUs, its own hostname and kernel, / on its own disk
    and two more mounts (on devices this machine does not have), and four more disks in
    diskstats (sdq has no /sys/block entry, as in a bundle that copied /proc but not all of /sys)."""
    tree.write("proc/stat", _cpu_lines(tree.read("proc/stat"), BIG_CPUS))
    tree.write("sys/devices/system/cpu/online", f"0-{BIG_CPUS - 1}\n")
    tree.write("proc/sys/kernel/hostname", BIG_HOSTNAME + "\n")
    tree.write("proc/sys/kernel/osrelease", BIG_KERNEL + "\n")
    for pid in ("1", "self"):
        rel = f"proc/{pid}/mountinfo"
        if (tree.root / rel).exists():
            # Its / is on its own disk: the directory holding the copy here must not be measured as it.
            text = "".join(_redev(line, "/", BIG_ROOT_DEV) for line in tree.read(rel).splitlines(keepends=True))
            extra = "".join(f"{900 + i} 1 {dev} / {mp} rw,relatime shared:{900 + i} - {fs} /dev/{src} rw\n"
                            for i, (mp, dev, src, fs) in enumerate(BIG_MOUNTS))
            tree.write(rel, text + extra)
    for mp, *_ in BIG_MOUNTS:
        (tree.root / mp.lstrip("/")).mkdir(parents=True, exist_ok=True)
    stats = "".join(f"{maj:>4} {mi:>7} {name} 5000 10 80000 900 7000 20 160000 4000 3 5200 4900 0 0 0 0 40 30\n"
                    for maj, mi, name in BIG_DISKS)
    tree.write("proc/diskstats", tree.read("proc/diskstats") + stats)
    for maj, mi, name in BIG_DISKS:
        if name == "sdq":
            continue
        parent = re.sub(r"p\d+$", "", name)
        rel = f"sys/block/{parent}" + (f"/{name}" if parent != name else "")
        tree.write(f"{rel}/dev", f"{maj}:{mi}\n")
        if parent != name:
            tree.write(f"{rel}/partition", "1\n")
    return tree


def container(tmp: Path, pids=()) -> tuple[Tree, Path]:
    """A copy laid out as a container sees its host: <tmp>/host/{proc,sys,etc}. Returns the tree
    (root = <tmp>/host) and <tmp>, the container's own root."""
    return copy_tree(Path(tmp) / "host", pids), Path(tmp)

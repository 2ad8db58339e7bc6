"""Bounded, self-cleaning benchmark load: sleeping processes and loopback TCP connections.

Library use (from bench_snapshot.py)::

    with Load(ttl_s=600) as load:
        load.add_procs(5000)          # 5,000 extra sleeping processes
        load.add_conns(10000)         # 10,000 ESTABLISHED pairs = 20,000 sockets
        ...                           # measure
    # everything started is gone here, also after Ctrl-C or an exception

Script use (internal): ``python -I -S loadgen.py procs|conns N --parent PID --ttl S``
runs one *holder*. Each holder is its own session and process group, prints one
``ready ...`` line on stdout once its load exists, then waits for SIGTERM/SIGINT/SIGHUP
or its TTL. Cleanup is layered so nothing outlives the benchmark:

1. the harness sends SIGTERM to each holder, waits, then SIGKILLs its whole process group;
2. a holder gets SIGTERM when the harness dies (PR_SET_PDEATHSIG), even by SIGKILL;
3. each forked sleeper gets SIGKILL when its holder dies (PR_SET_PDEATHSIG);
4. a holder exits by itself after its TTL;
5. the harness may be a child subreaper (``become_subreaper()``), so orphaned sleepers
   are reaped by it instead of depending on PID 1 (not systemd on the test VM).

Only the standard library is used, so holders start with ``-I -S`` (small and fast).
Loopback only: listeners bind 127.0.0.1. Sockets use SO_LINGER 0, so teardown sends RST
and leaves no TIME_WAIT behind to skew the next measurement or other people's tests.
"""

from __future__ import annotations

# Holders fork thousands of children: every module imported before fork() costs page
# tables and copy-on-write pages in each child (~800 KiB/child with subprocess, socket,
# selectors... against ~100 KiB with these), so anything else is imported where used.
import os
import signal
import sys
import time

PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36
# Hard bounds so a typo cannot fork-bomb the machine or exhaust its ports.
MAX_PROCS = 20000
MAX_CONNS = 25000
PID_HEADROOM = 2000          # pids left free for everything else on the host
BATCH = 16                   # children forked/killed at a time (bounds the run queue)
FD_SLACK = 64                # fds a conns holder keeps free for itself
BYTES_PER_SLEEPER = 1 << 20  # generous: ~100-300 KiB private per forked sleeper seen
_WAIT_SIGNALS = {signal.SIGTERM, signal.SIGINT, signal.SIGHUP}

_libc = None


def _prctl(option: int, arg: int) -> bool:
    """Call prctl(2); False when libc or the option is not available."""
    global _libc
    try:
        if _libc is None:
            import ctypes
            _libc = ctypes.CDLL(None, use_errno=True)  # the running libc; no find_library (it runs gcc)
        return _libc.prctl(option, arg, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def become_subreaper() -> bool:
    """Make this process reap orphaned descendants (so killed holders' sleepers do not linger)."""
    return _prctl(PR_SET_CHILD_SUBREAPER, 1)


# --------------------------------------------------------------------------- holders


def _die_with_parent(parent: int, sig: int) -> None:
    """Get `sig` when our parent dies; exit now if it already did."""
    _prctl(PR_SET_PDEATHSIG, sig)
    if os.getppid() != parent:
        os._exit(0)


def _wait_for_stop(ttl_s: float) -> None:
    """Block until a stop signal or the TTL (signals are blocked, so none is lost)."""
    deadline = time.monotonic() + ttl_s
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return
        try:
            if signal.sigtimedwait(_WAIT_SIGNALS, left) is not None:
                return
        except InterruptedError:
            pass


def _hold_procs(n: int, parent: int, ttl_s: float) -> int:
    """Fork n children that sleep in pause(); on stop, kill and reap them all.

    Forking and killing go in small batches, each waited for: thousands of children
    runnable at once would push the 1-minute load average into the hundreds for minutes
    (seen: 294 on 2 CPUs), a false run-queue alarm for anything measuring this host."""
    _die_with_parent(parent, signal.SIGTERM)
    signal.pthread_sigmask(signal.SIG_BLOCK, _WAIT_SIGNALS)
    devnull = os.open(os.devnull, os.O_RDWR)
    r, w = os.pipe()  # each child writes one byte once it is about to sleep
    kids = []
    try:
        for start in range(0, n, BATCH):
            k = min(BATCH, n - start)
            for _ in range(k):
                pid = os.fork()
                if pid == 0:
                    try:
                        # No PR_SET_PDEATHSIG here: a ctypes call per child doubles fork time
                        # and memory. Sleepers share the holder's process group, which the
                        # harness kills as a whole, and the holder kills them on any exit path.
                        for fd in (0, 1, 2):  # drop the ready pipe so the harness sees EOF if we crash
                            os.dup2(devnull, fd)
                        for s in _WAIT_SIGNALS:
                            signal.signal(s, signal.SIG_DFL)
                        signal.pthread_sigmask(signal.SIG_UNBLOCK, _WAIT_SIGNALS)
                        os.write(w, b".")
                        for fd in (r, w, devnull):
                            os.close(fd)
                        while True:
                            signal.pause()
                    finally:
                        os._exit(0)
                kids.append(pid)
            got = 0
            while got < k:
                got += len(os.read(r, k - got))
        print(f"ready procs={len(kids)}", flush=True)
        _wait_for_stop(ttl_s)
    finally:
        for start in range(0, len(kids), BATCH):
            chunk = kids[start:start + BATCH]
            for pid in chunk:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            for pid in chunk:
                try:
                    os.waitpid(pid, 0)
                except ChildProcessError:
                    pass
    return 0


def _hold_conns(n: int, parent: int, ttl_s: float) -> int:
    """Open n ESTABLISHED loopback connections (both ends held here) and wait."""
    import resource
    import socket
    import struct
    _die_with_parent(parent, signal.SIGTERM)
    signal.pthread_sigmask(signal.SIG_BLOCK, _WAIT_SIGNALS)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = 2 * n + FD_SLACK
    if soft < need:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(need, hard), hard))
    linger0 = struct.pack("ii", 1, 0)  # close() sends RST: no TIME_WAIT left behind
    lst = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    lst.bind(("127.0.0.1", 0))
    lst.listen(min(n, 4096))
    addr = lst.getsockname()
    held = []
    for _ in range(n):
        c = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger0)
        c.connect(addr)  # loopback handshake completes in the kernel; accept right after
        s, _ = lst.accept()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger0)
        held += (c, s)
    print(f"ready conns={n} port={addr[1]}", flush=True)
    _wait_for_stop(ttl_s)
    return 0  # exit closes every fd (RST each, thanks to SO_LINGER 0)


def _holder_main(argv: list[str]) -> int:
    """Entry point of one holder process: KIND N --parent PID --ttl S (argparse is too heavy
    to carry into thousands of forked children)."""
    try:
        kind, n, _, parent, _, ttl = argv
        fn = {"procs": _hold_procs, "conns": _hold_conns}[kind]
        return fn(int(n), int(parent), float(ttl))
    except (ValueError, KeyError):
        print("usage: loadgen.py procs|conns N --parent PID --ttl SECONDS", file=sys.stderr)
        return 2


# --------------------------------------------------------------------------- harness side


def _split(total: int, parts: int) -> list[int]:
    """Split total into `parts` near-equal positive chunks."""
    parts = max(1, min(parts, total))
    base, extra = divmod(total, parts)
    return [base + (1 if i < extra else 0) for i in range(parts)]


def count_procs() -> int:
    """Processes currently on the host (numeric /proc entries)."""
    return sum(1 for e in os.listdir("/proc") if e.isdigit())


def count_tcp_sockets() -> dict[str, int]:
    """TCP sockets by state name from /proc/net/tcp{,6} (the kernel's own count, no ss needed)."""
    names = {"01": "established", "06": "time_wait", "08": "close_wait", "0A": "listen"}
    out = {"total": 0}
    for path in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(path) as f:
                next(f, None)
                for line in f:
                    parts = line.split(None, 4)
                    if len(parts) < 4:
                        continue
                    out["total"] += 1
                    k = names.get(parts[3], "other")
                    out[k] = out.get(k, 0) + 1
        except OSError:
            pass
    return out


def _pgid_members(pgids: set[int]) -> int:
    """How many live (non-zombie) processes are still in the given process groups."""
    n = 0
    for e in os.listdir("/proc"):
        if not e.isdigit():
            continue
        try:
            with open(f"/proc/{e}/stat") as f:
                rest = f.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if rest[0] != "Z" and int(rest[2]) in pgids:
            n += 1
    return n


class Load:
    """Extra processes and sockets that are all removed again by close() (also via atexit)."""

    def __init__(self, ttl_s: float = 600.0, ready_timeout_s: float = 60.0, log=None):
        self.ttl_s = ttl_s
        self.ready_timeout_s = ready_timeout_s
        self.log = log or (lambda msg: None)
        self.holders: list = []  # subprocess.Popen of each holder
        self.procs = 0
        self.conns = 0
        self._closed = False
        import atexit
        atexit.register(self.close)

    # context manager: the `with` block guarantees close() on any exit path
    def __enter__(self) -> "Load":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _start(self, kind: str, sizes: list[int]) -> list[str]:
        """Start one holder per size and wait until every one of them reports ready."""
        import selectors
        import subprocess
        script = os.path.abspath(__file__)
        started = []
        for n in sizes:
            p = subprocess.Popen(
                [sys.executable, "-I", "-S", script, kind, str(n),
                 "--parent", str(os.getpid()), "--ttl", str(self.ttl_s)],
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                start_new_session=True,  # own session + process group: killpg reaches all of it
            )
            self.holders.append(p)
            started.append(p)
        lines = []
        sel = selectors.DefaultSelector()
        for p in started:
            sel.register(p.stdout, selectors.EVENT_READ, p)
        deadline = time.monotonic() + self.ready_timeout_s
        pending = set(started)
        while pending:
            left = deadline - time.monotonic()
            if left <= 0:
                raise RuntimeError(f"{len(pending)} {kind} holder(s) not ready after {self.ready_timeout_s:g}s")
            for key, _ in sel.select(left):
                p = key.data
                line = p.stdout.readline().decode(errors="replace").strip()
                sel.unregister(p.stdout)
                pending.discard(p)
                if not line.startswith("ready"):
                    err = p.stderr.read1(4000).decode(errors="replace") if p.poll() is not None else ""
                    raise RuntimeError(f"{kind} holder pid {p.pid} failed: {line or err.strip()[-500:]}")
                lines.append(line)
        sel.close()
        return lines

    def add_procs(self, total: int, holders: int = 4) -> None:
        """Add `total` sleeping processes, forked by `holders` parents in parallel."""
        before = count_procs()
        pid_max = int(open("/proc/sys/kernel/pid_max").read())
        if not 0 < total <= MAX_PROCS or before + total + PID_HEADROOM > pid_max:
            raise ValueError(f"refusing {total} extra processes: {before} exist, pid_max {pid_max}, "
                             f"cap {MAX_PROCS}, headroom {PID_HEADROOM}")
        avail = _mem_available()
        if avail is not None and total * BYTES_PER_SLEEPER > avail // 2:
            raise ValueError(f"refusing {total} extra processes: only {avail >> 20} MiB available")
        self._start("procs", _split(total, holders))
        self.procs += total

    def add_conns(self, total: int, holders: int = 4) -> None:
        """Add `total` ESTABLISHED loopback connections (2 sockets each), spread so each
        holder stays under its RLIMIT_NOFILE hard limit (20000 on the test VM)."""
        import resource
        if not 0 < total <= MAX_CONNS:
            raise ValueError(f"refusing {total} connections (cap {MAX_CONNS})")
        hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        per = max(1, (hard - FD_SLACK) // 2) if hard != resource.RLIM_INFINITY else total
        holders = max(holders, -(-total // per))
        self._start("conns", _split(total, holders))
        self.conns += total

    def close(self, timeout_s: float = 20.0) -> float:
        """Stop every holder and its children; returns seconds taken. Idempotent."""
        import subprocess
        if self._closed:
            return 0.0
        self._closed = True
        t0 = time.monotonic()
        pgids = {p.pid for p in self.holders}  # start_new_session: pgid == holder pid
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for pg in pgids:
                try:
                    # SIGTERM only the holder, which stops its sleepers in batches; a group-wide
                    # SIGKILL is the fallback (it wakes them all at once: a load-average spike).
                    if sig == signal.SIGTERM:
                        os.kill(pg, sig)
                    else:
                        os.killpg(pg, sig)
                except (ProcessLookupError, PermissionError):
                    pass
            deadline = time.monotonic() + (timeout_s if sig == signal.SIGTERM else 5.0)
            for p in self.holders:
                try:
                    p.wait(max(0.0, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    pass
            _reap_orphans()
            if all(p.poll() is not None for p in self.holders) and not _pgid_members(pgids):
                break
            self.log(f"load: holders did not stop on {signal.Signals(sig).name}; escalating")
        for p in self.holders:
            for f in (p.stdout, p.stderr):
                if f:
                    f.close()
        left = _pgid_members(pgids)
        self.holders.clear()
        self.procs = self.conns = 0
        if left:
            self.log(f"load: WARNING {left} processes still alive in groups {sorted(pgids)}")
        return time.monotonic() - t0


def _reap_orphans() -> None:
    """Reap any exited children we inherited as a subreaper (never blocks)."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def _mem_available() -> int | None:
    """MemAvailable in bytes, or None when /proc/meminfo does not say."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


if __name__ == "__main__":
    sys.exit(_holder_main(sys.argv[1:]))

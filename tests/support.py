"""Helpers shared by the tests (import as `from support import ...`; tests/ is on sys.path).

Kept out of conftest.py on purpose: several test folders have a conftest.py of their own, and
`from support import` would pick whichever was imported last.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

HOSTDIAG = [sys.executable, "-m", "hostdiag"]
IS_ROOT = os.geteuid() == 0


def cli(*args, env=None, timeout=60, **kw) -> subprocess.CompletedProcess:
    """Run the real CLI in a subprocess (python -m hostdiag ...)."""
    e = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    e.pop("NO_COLOR", None)
    e.update(env or {})
    return subprocess.run([*HOSTDIAG, *args], capture_output=True, text=True, env=e, timeout=timeout, **kw)


def bash_argv(text: str) -> list[str]:
    """The argv bash makes of `text` (one command's arguments, possibly folded over lines)."""
    out = subprocess.run(["bash", "-c", "printf '%s\\0' " + text], capture_output=True, timeout=10).stdout
    return out.decode("utf-8", "surrogateescape").split("\0")[:-1]


def cli_json(*args, **kw) -> tuple[dict, int]:
    p = cli("snapshot", "--json", *args, **kw)
    assert p.returncode in (0, 1, 2), p.stderr
    return json.loads(p.stdout), p.returncode


def drive(module, ctx, mutate=(), scan=None, dt: float = 1.0):
    """Drive module.sample() as the runner does (one tick, then one per mutation callable),
    recording with the runner's own code, and return the Job that collect() would see."""
    from hostdiag.core.context import Deadline
    from hostdiag.core.runner import Job, record

    state: dict = {}
    series: dict = {}
    steps = [None, *mutate]
    for i, step in enumerate(steps):
        if step:
            step()
        record(series, module, module.sample(ctx, state), i * dt)
    return Job(ctx, module.NAME, series, scan, dt * (len(steps) - 1), Deadline(5.0), state)


def section(module, job):
    """module.collect(job) wrapped in a Section the way the runner builds it."""
    from hostdiag.core.model import Section

    data = module.collect(job)
    return Section(module.NAME, "partial" if job.blind_spots else "ok", "; ".join(job.blind_spots) or None,
                   0.0, data, list(job.blind_spots))


def findings_by_id(report, fid: str) -> list:
    return [f for f in report.findings if f.id == fid]


needs_root = pytest.mark.skipif(not IS_ROOT, reason="needs root")


def snapshot_as_nobody(only: str) -> dict:
    """Run a snapshot in a forked child that dropped to nobody: the interpreter lives under /root (0700),
    so exec'ing it as nobody is impossible here; a fork needs no exec."""
    from hostdiag.commands.snapshot import Options, run
    from hostdiag.core.context import Context

    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        try:
            os.close(r)
            os.setgroups([])
            os.setresgid(65534, 65534, 65534)
            os.setresuid(65534, 65534, 65534)
            rep = run(Options(window_s=0, only=only.split(",")), Context())
            with os.fdopen(w, "w") as f:
                json.dump(rep.to_dict(), f, default=str)
        finally:
            os._exit(0)
    os.close(w)
    with os.fdopen(r) as f:
        out = f.read()
    os.waitpid(pid, 0)
    return json.loads(out)


FIXTURES = Path(__file__).resolve().parent / "fixtures" / "hosts"


def fixture_tree(tmp_path: Path, name: str) -> Path:
    """A private copy of tests/fixtures/hosts/NAME (tests may edit or chmod it)."""
    dst = tmp_path / name
    shutil.copytree(FIXTURES / name, dst, symlinks=True)
    return dst


def fixture_ctx(root: Path, timeout_s: float = 2.0):
    """A Context reading proc/, sys/ and / from a fixture tree."""
    from hostdiag.core.context import Context

    return Context(proc=str(root / "proc"), sys=str(root / "sys"), root=str(root), timeout_s=timeout_s)


# ---------------------------------------------------------------- a hung mount (real FUSE)

HANGFS = Path(__file__).resolve().parent / "fixtures" / "fuse" / "hangfs.py"


def fuse_unavailable() -> str | None:
    if not IS_ROOT:
        return "needs root to mount FUSE"
    if not os.path.exists("/dev/fuse") or shutil.which("fusermount3") is None:
        return "no /dev/fuse or fuse3 (.ci/run installs fuse3)"
    try:
        import mfusepy  # noqa: F401
    except (ImportError, OSError) as e:
        return f"mfusepy unavailable: {e}"
    return None


def run_with_hung_mount(tmp_path, body: str, timeout: float = 60) -> subprocess.CompletedProcess:
    """Run `body` (bash, with $MNT a mounted hanging FUSE fs) in a private mount namespace;
    the FUSE server is SIGKILLed afterwards, which releases anything stuck on it. `touch $DEAD`
    makes every later call on the mount hang too (lookup, getattr, open), like a dead NFS server."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    pidfile = tmp_path / "fs.pid"
    script = textwrap.dedent(f"""
        set -u
        {sys.executable} {HANGFS} {mnt} --hang-read --hang-all-after {tmp_path / "dead"} </dev/null >/dev/null 2>&1 &
        echo $! > {pidfile}
        for i in $(seq 100); do grep -q ' {mnt} ' /proc/self/mountinfo && break; sleep 0.05; done
        export MNT={mnt} DEAD={tmp_path / "dead"}
        {body}
    """)
    try:
        return subprocess.run(["unshare", "--mount", "--propagation", "private", "bash", "-c", script],
                              capture_output=True, text=True, timeout=timeout,
                              env=dict(os.environ, PYTHONDONTWRITEBYTECODE="1"))
    finally:
        if pidfile.exists():
            try:
                os.kill(int(pidfile.read_text()), 9)      # the test's own FUSE server
            except (ProcessLookupError, ValueError):
                pass


def my_memory_cgroup_v1() -> Path | None:
    """This process's v1 memory cgroup directory (a test makes limited children under it), or
    None on a pure v2 host (TESTBED.md: this machine is hybrid)."""
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, ctrls, path = line.split(":", 2)
        if "memory" in ctrls.split(","):
            d = Path("/sys/fs/cgroup/memory") / path.lstrip("/")
            return d if (d / "memory.limit_in_bytes").exists() else None
    return None

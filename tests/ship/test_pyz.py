"""hostdiag.pyz: one file, the host's python3 and nothing else; compiled code from memfds.

Runs the archive with Debian's /usr/bin/python3 -I -S (no site-packages: nothing installed),
both as a file and piped through the stdin stage, under strace's write detector and inside a
private mount namespace where every mount is read-only, HOME does not exist and /tmp is full.
"""
from __future__ import annotations

import glob
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from support import IS_ROOT

ROOT = Path(__file__).resolve().parents[2]
PY = "/usr/bin/python3"
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not os.access(PY, os.X_OK), reason="no /usr/bin/python3 (the host python the pyz targets)")]


def run(args, *, stdin=None, timeout=120):
    return subprocess.run([PY, "-I", "-S", *args], capture_output=True, text=True, timeout=timeout, stdin=stdin)


def test_archive_is_small_and_carries_psutil_for_both_machines(pyz):
    import zipfile

    with zipfile.ZipFile(pyz) as z:
        index = json.loads(z.read("_hostdiag_ext/index.json"))
        names = z.namelist()
    assert set(index["machines"]) == {"x86_64", "aarch64"}
    assert all(m == {"psutil._psutil_linux": f"_hostdiag_ext/{k}/psutil/_psutil_linux.abi3.so"}
               for k, m in index["machines"].items())
    assert not [n for n in names if n.endswith(".so") and not n.startswith("_hostdiag_ext/")]
    assert not [n for n in names if n.startswith(("pydantic", "numpy"))]
    assert "hostdiag/signatures/memory.leak_stair_step.toml" in names
    tag = subprocess.run([PY, "-c", "import sys; print(sys.implementation.cache_tag)"], capture_output=True,
                         text=True).stdout.strip()
    assert tag in index["pyc"]                       # the build host's python starts from bytecode
    for t in index["pyc"]:
        assert f"_pyc/{t}/hostdiag/cli.pyc" in names and f"_pyc/{t}/hostdiag/signatures/disk.filling.toml" in names
    assert not [n for n in names if n.startswith("_pyc/") and (n.endswith(".py") or "/pygments/" in n)]
    assert pyz.stat().st_size < 10_000_000


OTHER_PYTHONS = sorted({p for p in glob.glob(os.path.expanduser("~/.pyenv/versions/3.1[0-3]*/bin/python3"))})


@pytest.mark.skipif(not OTHER_PYTHONS, reason="no other CPython 3.10-3.13 here (pyenv)")
@pytest.mark.parametrize("py", OTHER_PYTHONS)
def test_every_python_version_runs_it(pyz, py):
    p = subprocess.run([py, "-I", "-S", str(pyz), "snapshot", "--window", "0", "--json", "--only", "memory,processes"],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode in (0, 1, 2), p.stderr
    assert json.loads(p.stdout)["sections"]["memory"]["status"] == "ok"


def test_runs_with_nothing_installed(pyz):
    p = run([str(pyz), "snapshot", "--window", "0", "--json"])
    assert p.returncode in (0, 1, 2), p.stderr
    doc = json.loads(p.stdout)
    assert doc["sections"]["processes"]["status"] in ("ok", "partial")
    assert run([str(pyz), "--version"]).stdout.startswith("hostdiag ")


def test_psutil_comes_from_a_memfd(pyz):
    code = (f"import sys; sys.path.insert(0, {str(pyz)!r}); import _hostdiag_boot as b; "
            f"assert b.install({str(pyz)!r}) is None; import psutil._psutil_linux as m; "
            "import os; print(m.__file__, os.readlink(m.__file__))")
    p = run(["-c", code])
    assert p.returncode == 0, p.stderr
    path, target = p.stdout.split(" ", 1)
    assert re.fullmatch(r"/proc/self/fd/\d+", path)
    assert target.startswith("/memfd:hostdiag:psutil._psutil_linux")


def test_stage_is_shipped_and_runs_from_stdin(pyz):
    stage = run([str(pyz), "--print-stage"]).stdout
    assert stage == (ROOT / "packaging" / "stage.py").read_text()
    with open(pyz, "rb") as f:
        p = run(["-c", stage, "snapshot", "--window", "0", "--only", "memory"], stdin=f)
    assert p.returncode in (0, 1, 2), p.stderr
    assert "Condition" in p.stdout


def test_signatures_list_inside_the_zip(pyz):
    p = run([str(pyz), "signatures", "list"])
    assert "memory.leak_stair_step" in p.stdout


@pytest.mark.skipif(shutil.which("strace") is None, reason="strace not installed (.ci/run installs it)")
@pytest.mark.parametrize("how", ["file", "stage"])
def test_strace_sees_no_write(pyz, tmp_path, how):
    """The detector of test_readonly; the only writes allowed are into hostdiag's own memfds
    (anonymous memory, no filesystem)."""
    sys.path.insert(0, str(ROOT / "tests" / "integration"))
    from test_readonly import MUTATING, violations

    log = tmp_path / "strace.log"
    args = [str(pyz), "snapshot", "--window", "1", "--interval", "0.5"] if how == "file" else \
        ["-c", (ROOT / "packaging" / "stage.py").read_text(), "snapshot", "--window", "1", "--interval", "0.5"]
    with open(pyz, "rb") as f:
        p = subprocess.run(["strace", "-f", "-qq", "-y", "-s", "256", "-o", str(log), "-e", f"trace={MUTATING}",
                            PY, "-I", "-S", *args], capture_output=True, text=True, timeout=120,
                           stdin=f if how == "stage" else subprocess.DEVNULL)
    assert p.returncode in (0, 1, 2), p.stderr
    lines = log.read_text().splitlines()
    memfds = {"hostdiag.pyz", "hostdiag:*", "/memfd:hostdiag.pyz", "/memfd:hostdiag:*"}
    assert violations(lines, memfds) == []
    if how == "stage":      # the stage writes the archive into a memfd
        assert any("memfd_create" in x for x in lines), "no memfd seen: the detector or the loader is broken"
        assert violations(lines, set()) != []      # the memfd writes are seen: the detector works
    else:                   # a snapshot loads no native module (the process scan reads /proc itself)
        assert not any("memfd_create" in x for x in lines)


READONLY_SCRIPT = r"""
set -e
mount --bind "$PYZ_DIR" /srv                      # the archive, reachable once /tmp is covered
mount -t tmpfs -o size=64k tmpfs /tmp
dd if=/dev/zero of=/tmp/fill bs=4k 2>/dev/null || true   # /tmp is full
for mp in $(awk '{print $5}' /proc/self/mountinfo | sort -u); do
    mount -o remount,bind,ro "$mp" 2>/dev/null || true
done
if touch /tmp/x 2>/dev/null || touch /x 2>/dev/null || touch /srv/x 2>/dev/null; then echo WRITABLE; exit 9; fi
export HOME=/nonexistent/home
cd /
/usr/bin/python3 -I -S /srv/hostdiag.pyz snapshot --window 0 --json > /dev/null && echo FILE_OK || echo "FILE_RC=$?"
/usr/bin/python3 -I -S -c "$(cat /srv/stage.py)" snapshot --window 0 --json < /srv/hostdiag.pyz > /dev/null \
    && echo STAGE_OK || echo "STAGE_RC=$?"
"""


@pytest.mark.root
@pytest.mark.skipif(not IS_ROOT or shutil.which("unshare") is None, reason="needs root and unshare")
def test_read_only_root_unwritable_home_full_tmp(pyz):
    shutil.copy(ROOT / "packaging" / "stage.py", pyz.parent / "stage.py")
    p = subprocess.run(["unshare", "--mount", "--propagation", "private", "bash", "-c", READONLY_SCRIPT],
                       capture_output=True, text=True, timeout=180, env=dict(os.environ, PYZ_DIR=str(pyz.parent)))
    assert "WRITABLE" not in p.stdout, "the namespace is not read-only: the test proves nothing"
    # exit statuses 1 and 2 are warning/critical reports: the report printed either way
    assert re.search(r"FILE_(OK|RC=[12])\b", p.stdout) and re.search(r"STAGE_(OK|RC=[12])\b", p.stdout), p.stdout + p.stderr


def test_no_memfd_build_uses_the_hosts_psutil(tmp_path):
    """`--machines none`: no compiled code in the archive, nothing loaded from memory."""
    if subprocess.run([PY, "-I", "-c", "import psutil"], capture_output=True).returncode != 0:
        pytest.skip("no python3-psutil on this host (.ci/run installs it)")
    out = tmp_path / "hostdiag-host-psutil.pyz"
    p = subprocess.run([PY, str(ROOT / "packaging" / "build-pyz"), "--machines", "none", "--pyc", "none", "--out", str(out)],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    code = (f"import sys, runpy; sys.argv = [{str(out)!r}, 'snapshot', '--window', '0', '--only', 'processes'];"
            f"import os; real = os.memfd_create; os.memfd_create = lambda *a: (_ for _ in ()).throw(AssertionError('memfd'));"
            f"runpy.run_path({str(out)!r}, run_name='__main__')")
    r = subprocess.run([PY, "-I", "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode in (0, 1, 2), r.stderr
    assert "Condition" in r.stdout

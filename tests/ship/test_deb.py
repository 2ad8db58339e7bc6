"""The Debian package: built with dh-python/pybuild, `apt install ./hostdiag_*.deb` on this very
machine (bookworm's own python3-psutil/typer/rich/numpy satisfy it), `hostdiag snapshot` runs,
then the package is purged. Slow and root; skipped without the Debian build tools."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from support import IS_ROOT

ROOT = Path(__file__).resolve().parents[2]
TOOLS = ("dpkg-buildpackage", "dh_python3", "apt-get")
pytestmark = [pytest.mark.slow, pytest.mark.root,
              pytest.mark.skipif(not IS_ROOT, reason="needs root (apt install)"),
              pytest.mark.skipif(not all(shutil.which(t) for t in TOOLS) or not os.path.exists(
                  "/usr/share/dh-python/dhpython/build/plugin_pyproject.py"),
                  reason="dh-python/pybuild-plugin-pyproject/dpkg-dev not installed (.ci/run installs them)")]

CLEAN_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8", "DEBIAN_FRONTEND": "noninteractive",
             "NO_COLOR": "1"}


def installed() -> bool:
    p = subprocess.run(["dpkg-query", "-W", "-f=${Status}", "hostdiag"], capture_output=True, text=True)
    return "install ok installed" in p.stdout


def test_build_install_run_purge(tmp_path):
    if installed():
        pytest.skip("a hostdiag package is already installed here; not replacing it")
    p = subprocess.run([str(ROOT / "packaging" / "build-deb"), str(tmp_path)], capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr
    deb = next(tmp_path.glob("hostdiag_*_all.deb"))
    info = subprocess.run(["dpkg-deb", "-f", str(deb), "Depends"], capture_output=True, text=True).stdout
    for dep in ("python3-psutil (>= 5.9)", "python3-typer (>= 0.7)", "python3-rich (>= 13)", "python3-numpy"):
        assert dep in info
    try:
        p = subprocess.run(["apt-get", "install", "-y", "-q", str(deb)], capture_output=True, text=True,
                           timeout=600, env=CLEAN_ENV)
        assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
        assert shutil.which("hostdiag", path=CLEAN_ENV["PATH"]) == "/usr/bin/hostdiag"
        r = subprocess.run(["/usr/bin/hostdiag", "snapshot", "--window", "1", "--interval", "0.5", "--json"],
                           capture_output=True, text=True, timeout=120, env=CLEAN_ENV, cwd="/")
        assert r.returncode in (0, 1, 2), r.stderr
        doc = json.loads(r.stdout)
        assert doc["host"]["hostdiag_version"]
        assert "/usr/lib/python3/dist-packages" in subprocess.run(
            ["/usr/bin/python3", "-c", "import hostdiag, hostdiag.export.textfile, hostdiag.matcher.prometheus; print(hostdiag.__file__)"],
            capture_output=True, text=True, env=CLEAN_ENV, cwd="/").stdout
        shared = Path("/usr/share/hostdiag/signatures")     # one copy: the catalog that runs
        assert len(list(shared.glob("*.toml"))) >= 10 and (shared / "README.md").is_file()
        assert shared.resolve() == Path("/usr/lib/python3/dist-packages/hostdiag/signatures")
        files = subprocess.run(["dpkg", "-L", "hostdiag"], capture_output=True, text=True).stdout.split()
        assert [f for f in files if f.endswith("/memory.leak_stair_step.toml")] == \
            ["/usr/lib/python3/dist-packages/hostdiag/signatures/memory.leak_stair_step.toml"]
        assert Path("/etc/hostdiag/signatures.d").is_dir()
        listed = subprocess.run(["/usr/bin/hostdiag", "signatures", "list"], capture_output=True, text=True,
                                env=CLEAN_ENV, cwd="/").stdout
        assert "memory.leak_stair_step" in listed
        if (ROOT / "packaging" / "systemd" / "hostdiag-capture.timer").exists():
            assert Path("/lib/systemd/system/hostdiag-capture.timer").exists()
            assert not list(Path("/etc/systemd/system").rglob("hostdiag-capture.timer"))   # installed disabled
    finally:
        subprocess.run(["apt-get", "purge", "-y", "-q", "hostdiag"], capture_output=True, timeout=300, env=CLEAN_ENV)
    assert not installed()
    assert not Path("/usr/bin/hostdiag").exists() and not Path("/etc/hostdiag/signatures.d").exists()

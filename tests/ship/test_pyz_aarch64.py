"""hostdiag.pyz on aarch64, under qemu-user-static: Debian's arm64 python3.11 (downloaded with
apt-get download into a private state dir and unpacked with dpkg -x: nothing installed) runs
the archive, and psutil's aarch64 module loads from a memfd."""
from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
QEMU = shutil.which("qemu-aarch64-static")
DEBS = ["python3.11-minimal", "libpython3.11-minimal", "libpython3.11-stdlib", "libc6", "zlib1g", "libexpat1",
        "libffi8", "libbz2-1.0", "liblzma5", "libssl3"]
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not QEMU, reason="qemu-user-static not installed (.ci/run installs it)"),
              pytest.mark.skipif(not shutil.which("apt-get"), reason="needs apt-get to fetch arm64 python")]


@pytest.fixture(scope="module")
def arm64(tmp_path_factory):
    a = tmp_path_factory.mktemp("arm64")
    for d in ("lists/partial", "cache/archives/partial", "root"):
        (a / d).mkdir(parents=True)
    opts = ["-o", "APT::Architecture=arm64", "-o", "APT::Architectures::=arm64", "-o", f"Dir::State::Lists={a}/lists",
            "-o", f"Dir::Cache={a}/cache", "-o", "Dir::State::status=/dev/null", "-o", "Debug::NoLocking=1"]
    for cmd in (["update", "-qq"], ["download", *(f"{d}:arm64" for d in DEBS)]):
        p = subprocess.run(["apt-get", *opts, *cmd], cwd=a, capture_output=True, text=True, timeout=300)
        if p.returncode != 0:
            pytest.skip(f"cannot fetch arm64 packages: {p.stderr.strip()[-300:]}")
    for deb in a.glob("*.deb"):
        subprocess.run(["dpkg", "-x", str(deb), str(a / "root")], check=True)
    return a / "root"


def qemu_python(root, *args, stdin=None):
    return subprocess.run([QEMU, "-L", str(root), str(root / "usr/bin/python3.11"), "-I", "-S", *args],
                          capture_output=True, text=True, timeout=300, stdin=stdin)


def test_aarch64_runs_the_pyz_from_a_memfd(arm64, pyz):
    probe = qemu_python(arm64, "-c", f"import sys; sys.path.insert(0, {str(pyz)!r}); import _hostdiag_boot as b;"
                        f"assert b.install({str(pyz)!r}) is None; import os, psutil._psutil_linux as m;"
                        "print(os.uname().machine, os.readlink(m.__file__))")
    assert probe.returncode == 0, probe.stderr
    assert probe.stdout.split() [:2] == ["aarch64", "/memfd:hostdiag:psutil._psutil_linux"]
    p = qemu_python(arm64, str(pyz), "snapshot", "--window", "0", "--json", "--only", "memory,processes")
    assert p.returncode in (0, 1, 2), p.stderr
    assert json.loads(p.stdout)["sections"]["memory"]["status"] == "ok"
    with open(pyz, "rb") as f:
        s = qemu_python(arm64, "-c", (ROOT / "packaging" / "stage.py").read_text(), "--version", stdin=f)
    assert s.stdout.startswith("hostdiag "), s.stderr

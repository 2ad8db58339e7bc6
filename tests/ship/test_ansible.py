"""packaging/ansible/collect.yml, mode=pyz, run for real by ansible-playbook. There is no sshd
on the test machine, so an `ssh` shim on PATH runs the remote command locally through a shell,
as sshd would: the stage's quoting through Ansible, ssh and the remote shell is what is tested."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PLAYBOOK = shutil.which("ansible-playbook")
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not PLAYBOOK, reason="ansible-playbook not installed (.ci/run installs ansible-core)")]

SSH_SHIM = """#!/bin/bash
# ssh [-o opt]... host command...: run the command here, through a shell, like sshd does
while [ "${1:0:1}" = "-" ]; do [ "$1" = "-o" ] && shift; shift; done
shift
exec bash -c "$*"
"""


def test_pyz_mode_collects_one_report_per_host(tmp_path, pyz):
    shim = tmp_path / "bin"
    shim.mkdir()
    (shim / "ssh").write_text(SSH_SHIM)
    (shim / "ssh").chmod(0o755)
    inv = tmp_path / "inventory"
    inv.write_text("[web]\nweb1 ansible_host=127.0.0.1\nweb2 ansible_host=127.0.0.2\n")
    evidence = tmp_path / "evidence"
    env = dict(os.environ, PATH=f"{shim}:{os.environ['PATH']}", ANSIBLE_NOCOLOR="1",
               ANSIBLE_LOCAL_TEMP=str(tmp_path / "ansible-tmp"), ANSIBLE_HOME=str(tmp_path / "ansible-home"))
    p = subprocess.run([PLAYBOOK, "-i", str(inv), str(ROOT / "packaging" / "ansible" / "collect.yml"),
                        "-e", "target=web", "-e", "mode=pyz", "-e", "use_sudo=false",
                        "-e", f"evidence_dir={evidence}", "-e", f"pyz={pyz}"],
                       capture_output=True, text=True, timeout=300, env=env)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-2000:]
    got = sorted(evidence.glob("*.json"))
    assert [f.name.split("-")[0] for f in got] == ["web1", "web2"]
    for f in got:
        assert json.loads(f.read_text())["host"]["hostdiag_version"]
        assert f.stat().st_mode & 0o077 == 0

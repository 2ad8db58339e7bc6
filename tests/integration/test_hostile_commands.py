"""Commands are pasted into a root shell: a mount path and a memory cgroup named like an attack
(`x;id>>PWNED;#`) must stay one shell word in every verify/stabilize line and the headline.
Real conditions: a full tmpfs at that path and a v1 memory cgroup of that name near its limit,
inside a private mount namespace; the printed lines are split as a shell would (never run)."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap

import pytest

from support import IS_ROOT

EVIL = "x;id>>PWNED;#"
MEMCG_V1 = "/sys/fs/cgroup/memory"


DRIVER = textwrap.dedent("""
    import os, subprocess, sys
    base, evil, memcg = sys.argv[1], sys.argv[2], sys.argv[3]
    mnt = os.path.join(base, "m" + evil)
    os.makedirs(mnt)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", mnt], check=True)
    with open(os.path.join(mnt, "fill"), "wb") as f:
        f.write(b"x" * ((4 << 20) - 8192))
    kid = None
    cg = None
    if memcg:
        own = open("/proc/self/cgroup").read()
        rel = next((l.split(":", 2)[2].strip() for l in own.splitlines() if ":memory:" in l), "/")
        cg = os.path.join(memcg, rel.lstrip("/"), "hd" + evil)
        os.makedirs(cg, exist_ok=True)
        open(os.path.join(cg, "memory.limit_in_bytes"), "w").write(str(64 << 20))
        # the child allocates only once it is in the cgroup (v1 does not move charges with a task)
        kid = subprocess.Popen([sys.executable, "-c", "import sys, time; sys.stdin.readline(); "
                                "b = b'x' * (60 << 20); print('ok', flush=True); time.sleep(60)"],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        open(os.path.join(cg, "cgroup.procs"), "w").write(str(kid.pid))
        kid.stdin.write("go\\n"); kid.stdin.flush(); kid.stdout.readline()
    try:
        p = subprocess.run([sys.executable, "-m", "hostdiag", "snapshot", "--json", "--window", "0",
                            "--only", "disk,memory", "--no-history"], capture_output=True, text=True, timeout=120)
        sys.stdout.write(p.stdout)
    finally:
        if kid:
            kid.kill(); kid.wait()
        if cg:
            try:
                os.rmdir(cg)
            except OSError:
                pass
""")


@pytest.mark.skipif(not IS_ROOT or shutil.which("unshare") is None, reason="needs root for a tmpfs and a cgroup")
def test_hostile_mount_and_cgroup_names_stay_one_word(tmp_path):
    memcg = MEMCG_V1 if os.path.isdir(MEMCG_V1) else ""
    p = subprocess.run(["unshare", "--mount", "--propagation", "private", sys.executable, "-c", DRIVER,
                        str(tmp_path), EVIL, memcg], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    doc = json.loads(p.stdout)
    lines = [doc["headline"]["action"], doc["headline"].get("verify") or ""]
    for f in doc["findings"]:
        lines += [f["verify"], *f["stabilize"]]
    hostile = [ln for ln in lines if "PWNED" in ln]
    ids = {f["id"] for f in doc["findings"]}
    assert "disk.nearly_full" in ids and hostile, (ids, lines)
    if memcg:
        assert "memory.cgroup_near_limit" in ids, ids
    for ln in hostile:
        cmd = ln.split("Verify: ", 1)[-1]
        # the hostile name stays inside one word: `id` never becomes a command of its own
        ws = shell_tokens(cmd)
        assert any(EVIL in w for w in ws), (cmd, ws)
        assert "id" not in ws and "PWNED" not in ws, (cmd, ws)


def shell_tokens(cmdline: str) -> list[str]:
    """Tokens as a POSIX shell splits the line: quotes respected, ; && | ( ) < > as operators.
    (Nothing is executed. `#` is kept in words: with operators split out, a comment cannot hide.)"""
    import shlex

    lex = shlex.shlex(cmdline, posix=True, punctuation_chars=";&|()<>")
    lex.whitespace_split = True
    lex.commenters = ""
    return list(lex)

"""`hostdiag capture` under real trouble: concurrent captures, kill -9, a full filesystem, a lock
held past the timeout, a corrupt or foreign file at the store path. Real processes throughout."""
from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from histgen import T0, record
from support import HOSTDIAG, IS_ROOT, cli

from hostdiag.history.store import History, Store

HERE = Path(__file__).resolve().parent


def capture(store, *args, now=None, **kw):
    env = {"HOSTDIAG_NOW": str(now)} if now is not None else {}
    return cli("capture", "--store", str(store), "--window", "0", *args, env=env, **kw)


def integrity(path) -> str:
    """Test-only read-write open (it may recover a WAL left by kill -9, as the next capture would)."""
    c = sqlite3.connect(str(path))
    try:
        return c.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        c.close()


def count(path) -> int:
    with History.open_ro(str(path)) as h:
        return h.span()[2]


def test_capture_is_silent_and_private(tmp_path):
    store = tmp_path / "state" / "h.db"
    p = capture(store)
    assert (p.returncode, p.stdout, p.stderr) == (0, "", "")
    assert oct(store.stat().st_mode & 0o777) == "0o600" and oct(store.parent.stat().st_mode & 0o777) == "0o700"
    p = capture(store, "--verbose", now=T0)
    assert p.returncode == 0 and "stored capture" in p.stdout and "2 captures" in p.stdout, p.stdout
    with History.open_ro(str(store)) as h:
        assert h.span()[0] == T0                           # HOSTDIAG_NOW set the capture time
        assert h.series("memory.available_bytes")[0].v[0] > 0
        assert h.conn.execute("SELECT count(*) FROM proc_sample").fetchone()[0] > 0
        # this very process (pytest) is on the host: the process table has real start times
        assert h.conn.execute("SELECT count(*) FROM proc WHERE start IS NOT NULL").fetchone()[0] > 0


def test_four_captures_at_once(tmp_path):
    store = tmp_path / "h.db"                              # does not exist yet: creation races too
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    procs = [subprocess.Popen([*HOSTDIAG, "capture", "--store", str(store), "--window", "0"], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(4)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0, 0], outs
    assert count(store) == 4
    assert integrity(store) == "ok"


def test_lock_held_past_timeout_gives_up_cleanly(tmp_path):
    store = tmp_path / "h.db"
    assert capture(store).returncode == 0
    holder = sqlite3.connect(str(store), isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")                      # a stuck capture holding the write lock
    try:
        p = capture(store, "--lock-timeout", "0.5")
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert p.returncode == 3 and p.stdout == ""
    assert len(p.stderr.strip().splitlines()) == 1 and "busy" in p.stderr, p.stderr
    assert count(store) == 1
    assert capture(store).returncode == 0 and count(store) == 2


_APPEND_LOOP = """
import sys, time
sys.path.insert(0, {here!r})
from histgen import record
from hostdiag.history.store import Store
st = Store.open({store!r})
i = {start}
while True:
    st.append(record({t0} + 60 * i, i))
    i += 1
"""


def test_kill_9_at_random_points_of_20_captures(tmp_path):
    store = tmp_path / "h.db"
    assert capture(store, now=T0 - 60).returncode == 0
    rng = random.Random(os.getpid())
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    for r in range(20):
        before = count(store)
        if r % 2:   # the real command, killed while collecting or while writing
            argv = [*HOSTDIAG, "capture", "--store", str(store), "--window", "0"]
            env["HOSTDIAG_NOW"] = str(T0 + 10 ** 6 + r)
            delay = rng.uniform(0.2, 2.0)
        else:       # a writer appending as fast as it can: the kill lands mid-transaction
            argv = [sys.executable, "-c", _APPEND_LOOP.format(here=str(HERE), store=str(store),
                                                              start=200 * (r + 1), t0=T0)]
            delay = rng.uniform(0.3, 1.0)
        p = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        time.sleep(delay)
        p.send_signal(signal.SIGKILL)                      # our own child, by its pid
        p.wait(timeout=30)
        assert integrity(store) == "ok", f"round {r}"
        assert count(store) >= before, f"round {r}: history lost"
    n = count(store)
    assert capture(store, now=T0 + 10 ** 6 + 100).returncode == 0
    assert count(store) == n + 1


_FULL_DISK = r"""
set -e
mount -t tmpfs -o size=384k,mode=0700 tmpfs "$D"
export HOSTDIAG_STORE="$D/h.db"
for i in 1 2; do HOSTDIAG_NOW=$((1790000000 + i * 60)) "$PY" -m hostdiag capture --window 0; done
sha256sum "$D/h.db" | cut -d' ' -f1 > "$OUT/before"
"$PY" -c 'import sys; open(sys.argv[1], "w").write(str(__import__("os").statvfs(sys.argv[2]).f_bavail))' "$OUT/bavail0" "$D"
dd if=/dev/zero of="$D/filler" bs=4096 2>/dev/null || true
set +e
HOSTDIAG_NOW=1790000600 "$PY" -m hostdiag capture --window 0 > "$OUT/stdout" 2> "$OUT/stderr"
echo $? > "$OUT/rc"
"$PY" -c '
import sys, json
from hostdiag.history.store import History
with History.open_ro(sys.argv[1]) as h:
    n = h.span()[2]
    ok = h.conn.execute("PRAGMA integrity_check").fetchone()[0]
print(json.dumps({"captures": n, "integrity": ok}))' "$D/h.db" > "$OUT/after"
sha256sum "$D/h.db" | cut -d' ' -f1 > "$OUT/sha_after"
rm -f "$D/filler"
HOSTDIAG_NOW=1790000660 "$PY" -m hostdiag capture --window 0; echo $? > "$OUT/rc_after_space"
"""


@pytest.mark.skipif(not IS_ROOT or not shutil.which("unshare"), reason="needs root and unshare (mount namespace)")
def test_full_filesystem_fails_cleanly_history_intact(tmp_path):
    d, out = tmp_path / "mnt", tmp_path / "out"
    d.mkdir()
    out.mkdir()
    env = dict(os.environ, D=str(d), OUT=str(out), PY=sys.executable, PYTHONDONTWRITEBYTECODE="1")
    p = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", _FULL_DISK],
                       env=env, capture_output=True, text=True, timeout=240)
    assert p.returncode == 0, p.stderr
    assert (out / "rc").read_text().strip() == "3"
    err = (out / "stderr").read_text()
    assert len(err.strip().splitlines()) == 1 and "disk full" in err and "history unchanged" in err, err
    assert (out / "stdout").read_text() == ""
    assert json.loads((out / "after").read_text()) == {"captures": 2, "integrity": "ok"}
    assert (out / "before").read_text() == (out / "sha_after").read_text(), "the store file changed"
    assert (out / "rc_after_space").read_text().strip() == "0"     # room again: captures resume
    assert not os.path.ismount(d)                                  # the mount stayed in its namespace


def test_corrupt_and_foreign_files_left_byte_identical(tmp_path):
    store = tmp_path / "h.db"
    st = Store.open(str(store))
    for i in range(30):
        st.append(record(T0 + 60 * i, i))
    st.close()
    raw = bytearray(store.read_bytes())
    raw[4096:] = b"\xa5" * (len(raw) - 4096)
    store.write_bytes(raw)
    notes = tmp_path / "notes.txt"
    notes.write_text("not a database\n")
    for path in (store, notes):
        before = hashlib.sha256(path.read_bytes()).hexdigest()
        p = capture(path)
        assert p.returncode == 3 and p.stdout == "", p.stderr
        assert len(p.stderr.strip().splitlines()) == 1 and ("corrupt" in p.stderr or "not a hostdiag" in p.stderr)
        assert hashlib.sha256(path.read_bytes()).hexdigest() == before
        p = cli("history", "--store", str(path))
        assert p.returncode == 3 and "Traceback" not in p.stderr
        assert hashlib.sha256(path.read_bytes()).hexdigest() == before

"""Paths the user names (--catalog, --journal-dir, --store, -o, --pcap-in) on a mount whose server
died (a real FUSE server that stops answering every call, in a private mount namespace): the
command must end by itself, saying which path did not answer. `timeout -s KILL` only guards the
test: rc=137 means it waited for the dead server until it was killed."""
from __future__ import annotations

import sys

import pytest

from support import fuse_unavailable, run_with_hung_mount

GUARD = 12
# Every path option is a str, not a typer Path: typer os.stat()s a Path while parsing arguments
# (typer/models.py convert), in the main thread, before any hostdiag bound.
CASES = {
    "catalog": ("snapshot --json --only cpu --window 0 --catalog $MNT/sigs", (0, 1, 2)),
    "journal-dir": ("snapshot --json --only journal --window 0 --journal-dir $MNT/j", (0, 1, 2, 3)),
    "history": ("history --store $MNT/store.db", (3,)),
    "capture": ("capture --window 0 --store $MNT/store.db", (3,)),
    "bundle": ("bundle --window 0 --only cpu -o $MNT/b.tar.gz", (2,)),
    "bundle-redact-config": ("bundle --window 0 --only cpu --redact-config $MNT/r.toml -o $MNT/../b.tgz", (2,)),
    "bundle-journal-dir": ("bundle --window 0 --only journal --journal-dir $MNT/j -o $MNT/../b.tgz", (0, 1, 2, 3)),
    "snapshot-output": ("snapshot --json --only cpu --window 0 -o $MNT/r.json", (2,)),
    "pcap-out": ("packets 1 --pcap-out $MNT/x.pcap", (2,)),
    "pcap-in": ("packets --pcap-in $MNT/x.pcap", (0, 2, 3)),
    "signatures": ("signatures list --catalog $MNT/sigs", (0, 1, 2, 3)),
    # a whole tree on the dead mount: every collector would wait in os.listdir/os.path.exists
    "root": ("snapshot --json --window 0 --timeout 1 --root $MNT", (0, 1, 2, 3)),
    "proc-root": ("snapshot --json --window 0 --timeout 1 --proc-root $MNT/proc", (0, 1, 2, 3)),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_named_path_on_a_dead_mount_is_refused_not_waited_on(tmp_path, name):
    why = fuse_unavailable()
    if why:
        pytest.skip(why)
    args, codes = CASES[name]
    body = f"""
        exec </dev/null
        touch "$DEAD"; sleep 1.2            # the server stops answering; cached attributes expire
        timeout -s KILL {GUARD} {sys.executable} -m hostdiag {args} >"$MNT/../out" 2>"$MNT/../err"
        echo $? >"$MNT/../rc"
    """
    run_with_hung_mount(tmp_path, body, timeout=GUARD + 40)
    rc = int((tmp_path / "rc").read_text())
    said = (tmp_path / "out").read_text() + (tmp_path / "err").read_text()
    if (tmp_path / "b.tgz").exists():       # a bundle that was made says it in its manifest
        import tarfile
        with tarfile.open(tmp_path / "b.tgz") as t:
            said += next(t.extractfile(m).read().decode() for m in t.getmembers() if m.name.endswith("manifest.json"))
    assert rc in codes, f"rc={rc} (137: waited for the dead server until killed) {said[-1500:]}"
    assert "Traceback" not in said
    assert "did not answer" in said, said[-1500:]


@pytest.mark.parametrize("args", ["history --store $MNT/f", "packets --pcap-in $MNT/f"])
def test_named_file_whose_reads_hang_is_refused_not_waited_on(tmp_path, args):
    """The server still answers lookups, but reads of $MNT/f never return (a half-dead NFS server)."""
    why = fuse_unavailable()
    if why:
        pytest.skip(why)
    body = f"""
        exec </dev/null
        timeout -s KILL {GUARD} {sys.executable} -m hostdiag {args} >"$MNT/../out" 2>"$MNT/../err"
        echo $? >"$MNT/../rc"
    """
    run_with_hung_mount(tmp_path, body, timeout=GUARD + 40)
    rc = int((tmp_path / "rc").read_text())
    said = (tmp_path / "out").read_text() + (tmp_path / "err").read_text()
    assert rc in (0, 2, 3), f"rc={rc} (137: waited for the dead server until killed) {said[-1500:]}"
    assert "Traceback" not in said and "did not answer" in said, said[-1500:]

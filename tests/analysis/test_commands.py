"""Every printed command runs as printed: no placeholder survives into a report, host values
are quoted, and a command that cannot be filled is not printed."""
from __future__ import annotations

import re
import shlex
import subprocess

import pytest
from hypothesis import given, settings, strategies as st
from support import FIXTURES, fixture_ctx

from hostdiag.analysis.commands import fill, for_host, shape_checks, commands
from hostdiag.core.model import Finding, ShapeMatch

# Broader than the filler's own pattern, so the test does not only check itself.
LEFT = re.compile(r"\{(pid|port|unit|mount|iface|cgroup|device)\}|<[a-z_][a-z_ ]*>|/PID/|-p PID\b|\bUNIT\b|<port>")
SUBJECT = {"pid": 4242, "port": 8443, "unit": "app.service", "cgroup": "/system.slice/app.service",
           "iface": "eth0", "mount": "/var/lib/x y", "device": "sda"}


def _texts(f) -> list[str]:
    return [f.verify, *f.stabilize]


@pytest.mark.parametrize("host", sorted(p.name for p in FIXTURES.iterdir() if (p / "proc").is_dir()))
def test_no_placeholder_in_any_finding_of_a_fixture_host(host):
    from hostdiag.commands.snapshot import Options, run

    report = run(Options(window_s=0), fixture_ctx(FIXTURES / host))
    for f in report.findings:
        for t in _texts(f):
            assert not LEFT.search(t), (f.id, t)


def test_every_catalog_check_with_a_subject_has_no_placeholder():
    from hostdiag import catalog

    cat = catalog.load()
    assert cat.entries
    for e in cat.entries.values():
        m = ShapeMatch(series="x", metric="x", labels={k: str(v) for k, v in SUBJECT.items()}, shape="ramp",
                       signature=e.id, score=1, start=0, end=1, why="", start_epoch=0, end_epoch=1,
                       first_checks=list(e.data.get("first_checks", [])), stabilize=list(e.data.get("stabilize", [])))
        got = shape_checks([m], has_journal=True)[0]
        assert len(got.first_checks) == len(m.first_checks), e.id   # everything fillable here is filled
        for t in [*got.first_checks, *got.stabilize]:
            assert not LEFT.search(t), (e.id, t)


def test_unfillable_command_is_dropped_and_fillable_ones_filled():
    f = Finding("kernel.syn_flood", "kernel", "warning", "t", subject={"port": 8443},
                verify="ss -ltn 'sport = :<port>'",
                stabilize=["Cap it (systemctl set-property UNIT CPUQuota=50%)", "ls -l /proc/PID/fd", "Keep calm"])
    got = commands([f])[0]
    assert got.verify == "ss -ltn 'sport = :8443'"
    assert got.stabilize == ["Cap it", "Keep calm"]     # no pid: the /proc/PID line is not printed
    assert commands([Finding("a.b", "a", "info", "t", verify="cat /proc/{pid}/status")])[0].verify == ""


def test_no_journal_means_dmesg():
    assert for_host("journalctl -k -g 'Killed process'", False) == "dmesg -T | grep -E 'Killed process'"
    assert for_host("journalctl -k -g 'Killed process'", True) == "journalctl -k -g 'Killed process'"


@settings(deadline=None)
@given(st.text(min_size=1, max_size=40).filter(lambda s: "\x00" not in s))
def test_hostile_subject_is_one_argument(value):
    out = fill("systemctl status <unit> --no-pager", {"unit": value})
    if re.search(r"[\x00-\x1f\x7f]", value):   # written as bash's $'...': bash is the judge
        words = subprocess.run(["bash", "-c", "printf '%s\\0' " + out], capture_output=True, timeout=10).stdout
        assert words.split(b"\0")[:-1] == [b"systemctl", b"status", value.encode(), b"--no-pager"]
    else:
        assert shlex.split(out) == ["systemctl", "status", value, "--no-pager"]
    assert fill("ls /proc/{pid}/fd", {"pid": value}) in (None, f"ls /proc/{value}/fd")


# Tools a check may name that this test machine lacks (hardware and systemd helpers).
ABSENT_HERE = {"smartctl", "ras-mc-ctl", "edac-util", "ipmitool", "coredumpctl", "conntrack", "tune2fs",
               "systemctl", "journalctl", "mpstat", "pidstat", "iostat", "nstat", "ethtool", "lsof", "hostdiag"}


def test_every_catalog_check_is_a_command_not_prose():
    """A check is pasted into a root shell: "compare with the deploy and change log: hostdiag ..."
    ran `compare` (not found), and "hostdiag snapshot --only changes (what changed just before)"
    was a syntax error. Words for the reader go in a trailing `# comment`."""
    import shutil

    from hostdiag import catalog

    for e in catalog.load().entries.values():
        m = ShapeMatch(series="x", metric="x", labels={k: str(v) for k, v in SUBJECT.items()}, shape="ramp",
                       signature=e.id, score=1, start=0, end=1, why="", start_epoch=0, end_epoch=1,
                       first_checks=list(e.data.get("first_checks", [])))
        for cmd in shape_checks([m], has_journal=True)[0].first_checks:
            p = subprocess.run(["bash", "-n", "-c", cmd], capture_output=True, text=True, timeout=10)
            assert p.returncode == 0, (e.id, cmd, p.stderr)
            first = shlex.split(cmd, comments=True)[0].lstrip("(")
            assert first in ABSENT_HERE or first in ("for", "cd") or shutil.which(first), (e.id, cmd)


def test_a_device_name_from_a_proc_tree_is_one_word():
    """/proc/diskstats under --proc-root is host text like any other: the io verify printed it bare."""
    from hostdiag.collectors import io
    from hostdiag.commands.snapshot import thresholds_for
    from hostdiag.core.model import Section

    dev = {"device": "sda;id>PWNED", "util_pct": 99.0, "aqu_sz": 9.0, "r_await_ms": 90.0, "w_await_ms": 90.0}
    fs = [f for f in io.findings(Section("io", "ok", data={"devices": [dev], "window_s": 5.0}), thresholds_for([io]))
          if f.id == "io.saturation"]
    assert fs, "a 99 % busy device must be a finding"
    lex = shlex.shlex(fs[0].verify, posix=True, punctuation_chars=";&|()<>")   # ; and > split as bash does
    lex.whitespace_split, lex.commenters = True, "#"
    assert list(lex) == ["iostat", "-x", "sda;id>PWNED", "1", "5"], fs[0].verify

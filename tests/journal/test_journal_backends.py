"""The journal collector on real journal files (systemd-journal-remote), through every backend."""
from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time

import pytest

import journalgen
from hostdiag import logs
from hostdiag import catalog
from hostdiag.collectors import journal as J
from hostdiag.core.context import Context

BACKENDS = ["systemd-python", "journalctl"]
HAVE_PY = importlib.util.find_spec("systemd") is not None


def _backends():
    out = []
    for b in BACKENDS:
        if b == "systemd-python" and not HAVE_PY:
            out.append(pytest.param(b, marks=pytest.mark.skip(reason="systemd-python not installed")))
        elif b == "journalctl" and not shutil.which("journalctl"):
            out.append(pytest.param(b, marks=pytest.mark.skip(reason="journalctl not installed")))
        else:
            out.append(b)
    return out


def _analyse(path, since, until, backend, cap=logs.MAX_ENTRIES):
    ctx = Context(journal_path=str(path), since=since, until=until)
    rd = logs.open_journal(ctx, since, until, cap=cap, backends=(backend,))
    cat = catalog.load(); pats, errs = cat.log_patterns(), cat.errors
    assert not [e for e in errs if "kernel." in e], errs
    data = J.analyse(rd.entries, since, until, pats)
    return rd, data


@pytest.mark.parametrize("backend", _backends())
def test_incident_through_backend(incident_dir, backend):
    d, end = incident_dir
    rd, data = _analyse(d, end - 1800, end, backend)
    assert rd.backend == backend and rd.truncated is None
    assert data["entries"] == rd.read > 300
    ev = data["kernel_events"]
    assert [e["id"] for e in ev] == ["kernel.oom_kill"]
    assert ev[0]["subject"] == {"pid": 4242, "name": "app-worker", "cgroup": "/system.slice/app.service"}
    assert data["top_messages"][0]["template"] == "upstream <ip> connection refused (attempt <n>)"
    assert data["unit_errors"][0] == {"unit": "app.service", "errors": 256}
    assert sum(data["per_minute"]["err"]) == data["by_priority"]["err"]


def test_backends_agree(incident_dir):
    if not (HAVE_PY and shutil.which("journalctl")):
        pytest.skip("needs both systemd-python and journalctl")
    d, end = incident_dir
    a = _analyse(d, end - 1800, end, "systemd-python")[1]
    b = _analyse(d, end - 1800, end, "journalctl")[1]
    assert a == b


def test_window_excludes_outside(incident_dir):
    d, end = incident_dir
    # The last 5 minutes of the story: no OOM (minute 21 of 30), no burst minutes (20, 21).
    rd, data = _analyse(d, end - 300, end, BACKENDS[0] if HAVE_PY else "journalctl")
    assert data["kernel_events"] == []
    assert data["errors_per_minute"]["peak"] <= 3
    assert min(J.analyse([], end - 300, end, [])["per_minute"]["t"]) <= end - 300


@pytest.mark.parametrize("backend", _backends())
def test_entry_cap_keeps_newest(big_dir, backend):
    d, now = big_dir
    rd, data = _analyse(d, now - 3600, now, backend, cap=5000)
    assert rd.read == 5000 and data["entries"] == 5000
    assert rd.truncated and "cap" in rd.truncated
    # Newest first: the kept entries are the last ~2.5 minutes of the hour, not the first ones.
    first_bucket = next(i for i, _ in enumerate(data["per_minute"]["t"])
                        if any(data["per_minute"][k][i] for k in ("info", "warning", "err")))
    assert data["per_minute"]["t"][first_bucket] >= now - 300


def test_default_window_bound_on_big_journal(big_dir):
    """The whole 100k+ journal in the window: read completes within the collector's own caps."""
    d, now = big_dir
    rd, data = _analyse(d, now - 3600, now, "systemd-python" if HAVE_PY else "journalctl")
    assert data["entries"] == rd.read == 100_000 == logs.MAX_ENTRIES
    assert rd.truncated


def test_time_budget_stops_reading(big_dir):
    d, now = big_dir
    ctx = Context(journal_path=str(d))
    rd = logs.open_journal(ctx, now - 3600, now, expired=lambda: True,
                        backends=("systemd-python" if HAVE_PY else "journalctl",))
    n = sum(1 for _ in rd.entries)
    assert n <= 1024 and rd.truncated == "time budget spent"


HOSTILE = [
    "esc \x1b[31mRED\x1b[0m \x07bell",
    "[bold red]markup[/] <script>alert(1)</script>",
    b"invalid utf8 \xff\xfe\xc3(",
    "multi\nline\nmessage",
]


@pytest.fixture(scope="module")
def hostile_dir(tmp_path_factory):
    why = journalgen.available()
    if why:
        pytest.skip(why)
    d = tmp_path_factory.mktemp("hostile")
    end = time.time() - 60
    evs = [(end - 100 + i, journalgen.service("evil.service", m, 3)) for i, m in enumerate(HOSTILE)]
    evs.append((end - 50, journalgen.service("evil.service", "A" * (1 << 20), 3)))
    evs.append((end - 40, journalgen.kernel("Out of memory: Killed process 66 (\x1b]0;pwned\x07x) total-vm:1kB")))
    journalgen.write_journal(str(d / "h.journal"), evs)
    return d, end


@pytest.mark.parametrize("backend", _backends())
def test_hostile_content_survives(hostile_dir, backend):
    d, end = hostile_dir
    rd, data = _analyse(d, end - 600, end, backend)
    msgs = [x["message"] for x in data["latest"]]
    assert "esc \x1b[31mRED\x1b[0m \x07bell" in msgs
    assert "[bold red]markup[/] <script>alert(1)</script>" in msgs
    assert "invalid utf8 \\xff\\xfe\\xc3(" in msgs
    assert "multi\nline\nmessage" in msgs
    big = [m for m in msgs if m.startswith("AAAA")]
    assert big and len(big[0]) == J.LATEST_CHARS          # a megabyte line, kept bounded
    oom = data["kernel_events"][0]
    assert oom["subject"]["pid"] == 66 and "\x1b" in oom["subject"]["name"]


def test_hostile_backends_agree(hostile_dir):
    if not (HAVE_PY and shutil.which("journalctl")):
        pytest.skip("needs both backends")
    d, end = hostile_dir
    assert _analyse(d, end - 600, end, "systemd-python")[1] == _analyse(d, end - 600, end, "journalctl")[1]


def _cli(*args):
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    return subprocess.run([sys.executable, "-m", "hostdiag", "snapshot", *args], capture_output=True,
                          env=env, timeout=90)


def test_cli_end_to_end(incident_dir):
    """`hostdiag snapshot --journal-dir DIR --json` names the OOM victim and the burst as findings."""
    d, end = incident_dir
    p = _cli("--journal-dir", str(d), "--since", f"{end - 1800:.0f}", "--until", f"{end:.0f}",
             "--window", "0", "--only", "journal", "--json")
    assert p.returncode == 2, p.stderr.decode()
    doc = json.loads(p.stdout)
    ids = {f["id"]: f for f in doc["findings"]}
    oom = ids["kernel.oom_kill"]
    assert oom["subject"]["pid"] == 4242 and oom["subject"]["name"] == "app-worker"
    assert oom["severity"] == "critical" and oom["since"]
    burst = ids["journal.error_burst"]
    assert burst["subject"] == {"unit": "app.service"}
    assert doc["sections"]["journal"]["data"]["backend"] in ("systemd-python", "journalctl")


def test_cli_hostile_plain_output_has_no_escapes(hostile_dir):
    d, end = hostile_dir
    p = _cli("--journal-dir", str(d), "--since", f"{end - 600:.0f}", "--until", f"{end:.0f}",
             "--window", "0", "--only", "journal", "--plain")
    assert p.returncode in (0, 1, 2), p.stderr.decode()
    assert b"\x1b" not in p.stdout and b"\x07" not in p.stdout
    assert b"pwned" in p.stdout   # shown, but defused


def test_change_before_the_oom_is_shown_next_to_it(incident_dir, tmp_path):
    """Done-when of the logs issue: a package upgrade from a fixture dpkg.log, 2 min before the OOM
    kill in the generated journal, sits next to that finding and in the What changed block."""
    d, end = incident_dir
    oom_t = end - 30 * 60 + 21 * 60 + 30            # journalgen.incident: minute 21, +30 s
    log = tmp_path / "root" / "var" / "log"
    log.mkdir(parents=True)
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(oom_t - 120))   # dpkg.log is local time
    (log / "dpkg.log").write_text(f"{stamp} upgrade nginx:amd64 1.24.0-1 1.26.1-1\n")
    (tmp_path / "proc").mkdir()   # no live processes: on a freshly booted host they crowd the timeline
    args = ("--journal-dir", str(d), "--root", str(tmp_path / "root"), "--proc-root", str(tmp_path / "proc"),
            "--since", f"{end - 1800:.0f}",
            "--until", f"{end:.0f}", "--window", "0", "--only", "journal,changes")
    doc = json.loads(_cli(*args, "--json").stdout)
    oom = next(f for f in doc["findings"] if f["id"] == "kernel.oom_kill")
    # Nothing but time ties the upgrade to the OOM kill: shown next to it, never offered as a rollback.
    assert oom["evidence"]["unrelated_change"]["what"] == "upgrade nginx 1.24.0-1 → 1.26.1-1"
    assert oom["evidence"]["unrelated_change"]["minutes_before"] == pytest.approx(2.0, abs=0.1)
    assert oom["evidence"]["unrelated_change"]["note"] == "unrelated by anything but time"
    assert not any(s.startswith("Consider rolling back") for s in oom["stabilize"])
    plain = _cli(*args, "--plain", "--full").stdout.decode()
    changed = plain[plain.index("WHAT CHANGED"):plain.index("EVIDENCE")]
    assert "upgrade nginx 1.24.0-1 → 1.26.1-1" in changed
    assert plain.index("kernel.oom_kill") < plain.index("WHAT CHANGED")


def test_failed_unit_is_a_changes_finding_with_a_quoted_verify(tmp_path, snapshot):
    """A real journal with pid 1's "unit failed" catalog messages for a hostile unit name: the changes
    collector reads it through hostdiag.logs and its finding's commands keep the name one argument."""
    import shlex

    _need = journalgen.available()
    if _need:
        pytest.skip(_need)
    unit = "x;id>>PWNED;#.service"
    end = time.time() - 120
    pid1 = {"_PID": 1, "_TRANSPORT": "journal", "SYSLOG_IDENTIFIER": "systemd", "PRIORITY": 3, "UNIT": unit}
    entries = [(end - 300, {**pid1, "MESSAGE": f"{unit}: Failed with result 'exit-code'.",
                            "MESSAGE_ID": "7ad2d189f7e94e70a38c781354912448"}),
               (end - 300, {**pid1, "MESSAGE": f"Failed to start {unit}.",
                            "MESSAGE_ID": "be02cf6855d2428ba40df7e9d022f03d"}),
               (end - 60, {**pid1, "MESSAGE": f"Failed to start {unit}.",
                           "MESSAGE_ID": "be02cf6855d2428ba40df7e9d022f03d"})]
    d = tmp_path / "j"
    d.mkdir()
    journalgen.write_journal(str(d / "system.journal"), entries)
    (tmp_path / "proc").mkdir()
    rep = snapshot(only=["changes"], proc=str(tmp_path / "proc"), root=str(tmp_path), journal_path=str(d), until=end)
    assert any(e["kind"] == "unit" for e in rep.snapshot.sections["changes"].data["timeline"])
    fs = [f for f in rep.findings if f.id == "changes.unit_failed"]
    assert len(fs) == 1 and fs[0].subject == {"unit": unit}
    assert fs[0].evidence["failures"] == 2   # one failure logs two messages in the same second
    status, logs_cmd = fs[0].verify.split("   # and: ")
    assert shlex.split(status) == ["systemctl", "status", "--no-pager", unit]
    assert shlex.split(logs_cmd) == ["journalctl", "-u", unit, "-n", "50", "--no-pager"]

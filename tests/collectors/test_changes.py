"""changes collector: parsers on literal strings, collect() on a fixture tree with mtimes set at run
time, wtmp records built here, correlation of a change with a finding's onset."""
from __future__ import annotations

import os
import shutil
from datetime import datetime
from pathlib import Path

import pytest

from hostdiag.analysis import correlate as C
from hostdiag.collectors import changes as CH
from hostdiag.core.model import Finding

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "hosts" / "changes_upgrade"


def local(s: str) -> float:
    return datetime.strptime(s, "%Y-%m-%d %H:%M:%S").astimezone().timestamp()


UPGRADE_T = local("2026-11-20 10:14:04")
UNTIL = local("2026-11-20 10:30:00")


def test_parse_dpkg_log():
    out = CH.parse_dpkg_log((FIX / "root/var/log/dpkg.log").read_text())
    assert out == [(UPGRADE_T, "upgrade", "nginx 1.24.0-1 → 1.26.1-1"),
                   (local("2026-11-20 10:14:06"), "install", "libfoo1 2.0-1"),
                   (local("2026-11-20 10:14:07"), "remove", "oldtool 0.9-3")]


def test_parse_apt_history():
    out = CH.parse_apt_history((FIX / "root/var/log/apt/history.log").read_text())
    assert out == [(local("2026-11-20 10:14:01"), "apt", "apt-get install --only-upgrade nginx (by deploy (1001))")]
    assert CH.parse_apt_history("Start-Date: garbage\n") == []


def test_parse_rpm_logs():
    out = CH.parse_rpm_logs("2026-11-20T08:00:00+0000 SUBDEBUG Upgrade: curl-8.5.0-1.fc40.x86_64\n"
                            "Nov 20 08:00:00 Updated: bash-5.2-1.el9.x86_64\nnoise\n", 2026)
    assert out[0] == (datetime.fromisoformat("2026-11-20T08:00:00+00:00").timestamp(), "upgrade", "curl-8.5.0-1.fc40.x86_64")
    assert out[1][1:] == ("updated", "bash-5.2-1.el9.x86_64")


def utmp(typ, user, line, host, t):
    return CH._UTMP.pack(typ, 123, line.encode(), b"ts/0", user.encode(), host.encode(), 0, 0, 0,
                         int(t), 0, 0, 0, 0, 0, b"")


def test_parse_wtmp():
    data = utmp(2, "reboot", "~", "6.1.0-26-amd64", 1000) + utmp(7, "alice", "pts/0", "10.0.0.5", 2000) + \
        utmp(8, "", "pts/0", "", 3000) + b"\0" * 10
    assert CH.parse_wtmp(data) == [(1000.0, "boot", "system boot (6.1.0-26-amd64)"),
                                   (2000.0, "login", "alice on pts/0 from 10.0.0.5")]


@pytest.fixture
def host(tmp_path):
    """The fixture tree copied to tmp, with /etc mtimes chosen relative to UNTIL."""
    root = tmp_path / "root"
    shutil.copytree(FIX / "root", root)
    old = UNTIL - 3 * 86400
    for dirpath, dirs, files in os.walk(root / "etc"):
        for n in files + dirs:
            os.utime(os.path.join(dirpath, n), (old, old))
    os.utime(root / "etc/nginx/nginx.conf", (UPGRADE_T + 30, UPGRADE_T + 30))   # hand edit after the upgrade
    os.utime(root / "etc/cron.d/backup", (UNTIL - 3600, UNTIL - 3600))
    with open(root / "var/log/wtmp", "wb") as f:
        f.write(utmp(2, "reboot", "~", "6.1.0", UNTIL - 7200) + utmp(7, "deploy", "pts/1", "192.0.2.7", UPGRADE_T - 120))
    return root


def test_collect_fixture(host, snapshot):
    rep = snapshot(only=["changes"], root=str(host), proc=str(host / "proc"), until=UNTIL)
    sec = rep.snapshot.sections["changes"]
    assert sec.status in ("ok", "partial"), sec.reason
    tl = sec.data["timeline"]
    times = [C.parse_time(e["time"]) for e in tl]
    assert times == sorted(times, reverse=True)              # newest first
    whats = [(e["kind"], e["what"], e["source"]) for e in tl]
    assert ("package", "upgrade nginx 1.24.0-1 → 1.26.1-1", "/var/log/dpkg.log") in whats
    assert ("package", "install htop 3.2.2-2", "/var/log/dpkg.log.1") in whats       # rotated log read
    assert not any("openssl" in w for _, w, _ in whats)                               # older than 24 h
    assert ("config", "/etc/nginx/nginx.conf modified", "/etc mtime") in whats
    assert not any("/etc/hostname" in w for _, w, _ in whats)                         # old mtime
    assert ("crontab", "/etc/cron.d/backup changed", "mtime") in whats
    assert ("login", "deploy on pts/1 from 192.0.2.7", "/var/log/wtmp") in whats
    assert ("boot", "system boot (6.1.0)", "/var/log/wtmp") in whats
    assert ("apt", "apt-get install --only-upgrade nginx (by deploy (1001))", "/var/log/apt/history.log") in whats
    assert any(k == "package" and "curl" in w for k, w, _ in whats)
    assert sec.data["counts"]["config"] == 1
    assert all({"time", "kind", "what", "source"} <= set(e) <= {"time", "kind", "what", "source", "package",
                                                               "path", "unit", "linked", "pid", "count"} for e in tl)
    assert next(e for e in tl if e["what"].startswith("upgrade nginx"))["package"] == "nginx"
    assert next(e for e in tl if e["kind"] == "config")["path"] == "/etc/nginx/nginx.conf"
    # No journal under this root: said, not hidden.
    assert "no journal" in (sec.reason or "")


def test_collect_empty_root(tmp_path, snapshot):
    (tmp_path / "proc").mkdir()
    rep = snapshot(only=["changes"], root=str(tmp_path), proc=str(tmp_path / "proc"))
    sec = rep.snapshot.sections["changes"]
    assert sec.status in ("ok", "partial") and sec.data["timeline"] == []


def test_collect_live_host(snapshot):
    """One real run on the test machine: dpkg.log exists here; recent installs show if any."""
    rep = snapshot(only=["changes"])
    sec = rep.snapshot.sections["changes"]
    assert sec.status in ("ok", "partial"), sec.reason
    assert not [f for f in rep.findings if f.severity != "info"]


def _finding(since):
    return Finding(id="memory.leak", category="memory", severity="warning", title="memory rise",
                   since=since, stabilize=["Restart it off-peak"])


def test_time_alone_is_unrelated_and_offers_no_rollback(host, snapshot):
    tl = snapshot(only=["changes"], root=str(host), proc=str(host / "proc"), until=UNTIL) \
        .snapshot.sections["changes"].data["timeline"]
    onset = CH.rfc3339(UPGRADE_T + 121)
    out = C.correlate([_finding(onset), _finding(None)], tl)
    f = out[0]
    # Newest change before onset: the nginx.conf edit 1.5 min before; nothing ties it to this finding.
    ch = f.evidence["unrelated_change"]
    assert ch["what"] == "/etc/nginx/nginx.conf modified" and ch["minutes_before"] == 1.5
    assert ch["note"] == "unrelated by anything but time" and "after_change" not in f.evidence
    assert f.stabilize == ["Restart it off-peak"]                     # never a rollback without a link
    assert out[1].evidence == {} and out[1].stabilize == ["Restart it off-peak"]


def _at(t, kind, what, **kw):
    return {"time": CH.rfc3339(t), "kind": kind, "what": what, "source": "fixture", **kw}


def _subject_finding(since, **subject):
    return Finding(id="memory.leak", category="memory", severity="warning", title="memory rise",
                   since=since, subject=subject, stabilize=["Restart it off-peak"])


def test_the_linked_change_wins_over_a_newer_unrelated_one():
    tl = [_at(1940, "package", "upgrade fonts-font-awesome 4 → 5", package="fonts-font-awesome"),
          _at(1500, "unit", "other.service started", unit="other.service"),
          _at(1000, "package", "upgrade app 1 → 2", package="app",
              linked=[{"pid": 42, "name": "app", "why": "its executable /usr/bin/app belongs to package app"}])]
    f = C.correlate([_subject_finding(CH.rfc3339(2000), pid=42, name="app")], tl)[0]
    ch = f.evidence["after_change"]
    assert ch["what"] == "upgrade app 1 → 2" and ch["minutes_before"] == 16.7 and "package app" in ch["link"]
    assert f.stabilize[0].startswith("Consider rolling back upgrade app 1 → 2") and "linked: its executable" \
        in f.stabilize[0]
    # the same timeline for a finding about another process: only time ties it, no rollback
    g = C.correlate([_subject_finding(CH.rfc3339(2000), pid=7)], tl)[0]
    assert g.evidence["unrelated_change"]["what"] == "upgrade fonts-font-awesome 4 → 5"
    assert g.stabilize == ["Restart it off-peak"]
    # a linked change is found hours back; a time-only one only within the window
    h = C.correlate([_subject_finding(CH.rfc3339(1000 + 6 * 3600), pid=42)], tl)[0]
    assert h.evidence["after_change"]["what"] == "upgrade app 1 → 2"


def test_unit_events_link_by_unit_and_cgroup():
    tl = [_at(1950, "package", "upgrade tzdata a → b", package="tzdata"),
          _at(1800, "unit", "app.service restart scheduled", unit="app.service"),
          _at(1700, "unit", "db.service started", unit="db.service")]
    by_cg = C.correlate([_subject_finding(CH.rfc3339(2000), cgroup="/system.slice/app.service")], tl)[0]
    assert by_cg.evidence["after_change"]["what"] == "app.service restart scheduled"
    assert by_cg.stabilize[0].startswith("Consider whether app.service restart scheduled")   # a cause, not a rollback
    by_unit = C.correlate([_subject_finding(CH.rfc3339(2000), unit="db.service")], tl)[0]
    assert by_unit.evidence["after_change"]["link"] == "same unit db.service"


def test_unrelated_only_offers_no_rollback():
    tl = [_at(1990, "package", "upgrade fonts-font-awesome 4 → 5", package="fonts-font-awesome"),
          _at(1980, "config", "/etc/motd modified", path="/etc/motd")]
    for f in C.correlate([_finding(CH.rfc3339(2000)), _subject_finding(CH.rfc3339(2000), pid=1, port=38335)], tl):
        assert not any(s.startswith("Consider") for s in f.stabilize) and "after_change" not in f.evidence
        assert f.evidence["unrelated_change"]["note"] == "unrelated by anything but time"


def test_correlate_window_and_kinds():
    tl = [_at(1000, "package", "upgrade nginx 1 → 2"), _at(1500, "login", "bob on pts/0"),
          _at(2100, "package", "after onset")]
    f = C.correlate([_finding(CH.rfc3339(2000))], tl)[0]
    assert f.evidence["unrelated_change"]["what"] == "upgrade nginx 1 → 2"    # logins are not causes
    assert C.correlate([_finding(CH.rfc3339(1000 + 1801))], tl[:2])[0].evidence == {}   # outside the window
    assert C.correlate([_finding(CH.rfc3339(1000 + 1801))], tl, window_s=3600)[0].evidence
    assert C.correlate([_finding("garbage")], tl)[0].evidence == {}
    assert C.correlate([_finding(CH.rfc3339(2000))], None)[0].stabilize == ["Restart it off-peak"]


def test_package_of_a_live_process_executable_is_linked(tmp_path, snapshot):
    """End to end on a fixture root: dpkg.log upgrades `app` 10 min ago and an unrelated font 1 min
    ago; /var/lib/dpkg/info/app.list owns the executable of a real child (`sleep`). The link,
    found by the changes collector, makes the older upgrade the one to consider rolling back."""
    import subprocess
    import time as _t
    # its own copy of sleep: other processes on the host running /usr/bin/sleep must not crowd it out
    mine = tmp_path / "appd"
    shutil.copy2(shutil.which("sleep"), mine)
    child = subprocess.Popen([str(mine), "60"])
    try:
        exe = os.readlink(f"/proc/{child.pid}/exe")
        root = tmp_path / "root"
        (root / "var/log").mkdir(parents=True)
        (root / "var/lib/dpkg/info").mkdir(parents=True)
        now = _t.time()
        stamp = lambda t: _t.strftime("%Y-%m-%d %H:%M:%S", _t.localtime(t))   # noqa: E731
        (root / "var/log/dpkg.log").write_text(
            f"{stamp(now - 600)} upgrade app:amd64 1.0 2.0\n"
            f"{stamp(now - 60)} upgrade fonts-font-awesome:all 4.7 5.0\n")
        (root / "var/lib/dpkg/info/app:amd64.list").write_text(f"/.\n/usr\n{exe}\n")
        (root / "var/lib/dpkg/info/fonts-font-awesome.list").write_text("/usr/share/fonts/fa.ttf\n")
        (root / "var/lib/dpkg/info/app:amd64.conffiles").write_text("/etc/app/app.conf\n/etc/app/old.conf obsolete\n")
        (root / "etc/app").mkdir(parents=True)
        (root / "etc/app/app.conf").write_text("x = 1\n")                      # edited just now
        rep = snapshot(only=["changes"], root=str(root), window=0)
        tl = rep.snapshot.sections["changes"].data["timeline"]
        app = next(e for e in tl if e.get("package") == "app")
        assert any(ln["pid"] == child.pid and exe in ln["why"] for ln in app["linked"]), app
        assert not next(e for e in tl if e.get("package") == "fonts-font-awesome").get("linked")
        conf = next(e for e in tl if e.get("path") == "/etc/app/app.conf")
        assert any(ln["pid"] == child.pid and "belongs to package app" in ln["why"] for ln in conf["linked"]), conf
        # before the config edit, the upgrade is the linked change; after it, the edit (also linked)
        f = C.correlate([_subject_finding(CH.rfc3339(now - 30), pid=child.pid, name="sleep")], tl)[0]
        assert f.evidence["after_change"]["what"] == "upgrade app 1.0 → 2.0"
        assert f.stabilize[0].startswith("Consider rolling back upgrade app 1.0 → 2.0")
        g = C.correlate([_subject_finding(CH.rfc3339(now + 30), pid=child.pid, name="sleep")], tl)[0]
        assert g.evidence["after_change"]["what"] == "/etc/app/app.conf modified"
    finally:
        child.kill()
        child.wait()


def test_process_starts_are_summarised_and_hostdiag_session_left_out(snapshot):
    import subprocess
    kids = [subprocess.Popen(["sleep", "30"]) for _ in range(3)]
    try:
        rep = snapshot(only=["changes"], window=0)
        tl = rep.snapshot.sections["changes"].data["timeline"]
        procs = [e for e in tl if e["kind"] == "process"]
        assert not any(f"(pid {os.getpid()})" in e["what"] for e in procs)        # hostdiag itself
        assert not any(e.get("pid") in {k.pid for k in kids} for e in procs)      # our own children
        summary = [e for e in procs if "short-lived processes started" in e["what"]]
        assert len(summary) <= 1 and len(procs) <= CH.SHOWN_PER_KIND["process"]
    finally:
        for k in kids:
            k.kill()
            k.wait()


def test_a_finding_without_onset_gets_only_a_linked_change():
    tl = [_at(1990, "package", "upgrade fonts 4 → 5", package="fonts"),
          _at(1000, "package", "upgrade app 1 → 2", package="app",
              linked=[{"pid": 42, "name": "app", "why": "its executable /usr/bin/app belongs to package app"}])]
    f = C.correlate([_subject_finding(None, pid=42)], tl)[0]
    assert f.evidence["after_change"]["what"] == "upgrade app 1 → 2" and "minutes_before" not in f.evidence["after_change"]
    assert f.stabilize[0] == (f"Consider rolling back upgrade app 1 → 2 (changed {CH.rfc3339(1000)}; linked: its "
                              "executable /usr/bin/app belongs to package app)")
    g = C.correlate([_subject_finding(None, pid=7)], tl)[0]
    assert g.evidence == {} and g.stabilize == ["Restart it off-peak"]

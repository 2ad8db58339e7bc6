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
    assert all(set(e) == {"time", "kind", "what", "source"} for e in tl)
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


def test_correlate_attaches_change_before_onset(host, snapshot):
    tl = snapshot(only=["changes"], root=str(host), proc=str(host / "proc"), until=UNTIL) \
        .snapshot.sections["changes"].data["timeline"]
    onset = CH.rfc3339(UPGRADE_T + 121)
    out = C.correlate([_finding(onset), _finding(None)], tl)
    f = out[0]
    # Newest change before onset: the nginx.conf edit (UPGRADE_T + 30), 1.5 minutes before.
    ch = f.evidence["after_change"]
    assert ch["kind"] == "config" and ch["what"] == "/etc/nginx/nginx.conf modified" and ch["minutes_before"] == 1.5
    onset2 = CH.rfc3339(UPGRADE_T + 20)   # before the edit: the dpkg run's last step is the newest
    assert C.correlate([_finding(onset2)], tl)[0].evidence["after_change"]["what"] == "remove oldtool 0.9-3"
    assert f.stabilize[0].startswith("Consider rolling back /etc/nginx/nginx.conf modified")
    assert f.stabilize[1] == "Restart it off-peak"
    assert out[1].evidence == {} and out[1].stabilize == ["Restart it off-peak"]


def test_correlate_window_and_kinds():
    tl = [{"time": CH.rfc3339(1000), "kind": "package", "what": "upgrade nginx 1 → 2", "source": "dpkg"},
          {"time": CH.rfc3339(1500), "kind": "login", "what": "bob on pts/0", "source": "wtmp"},
          {"time": CH.rfc3339(2100), "kind": "package", "what": "after onset", "source": "dpkg"}]
    f = C.correlate([_finding(CH.rfc3339(2000))], tl)[0]
    assert f.evidence["after_change"]["what"] == "upgrade nginx 1 → 2"     # logins are not causes
    assert f.stabilize[0] == f"Consider rolling back upgrade nginx 1 → 2 (changed {CH.rfc3339(1000)}, 16.7 min before onset)"
    assert C.correlate([_finding(CH.rfc3339(1000 + 1801))], tl[:2])[0].evidence == {}   # outside the window
    assert C.correlate([_finding(CH.rfc3339(1000 + 1801))], tl, window_s=3600)[0].evidence
    assert C.correlate([_finding("garbage")], tl)[0].evidence == {}
    assert C.correlate([_finding(CH.rfc3339(2000))], None)[0].stabilize == ["Restart it off-peak"]


def test_correlate_unit_is_a_cause_not_a_rollback():
    tl = [{"time": CH.rfc3339(1000), "kind": "unit", "what": "nginx.service started", "source": "journal"}]
    f = C.correlate([_finding(CH.rfc3339(1060))], tl)[0]
    assert f.stabilize[0].startswith("Consider whether nginx.service started")

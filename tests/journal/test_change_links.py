"""Change correlation from real journal unit events and a fixture dpkg.log (issue 11): the change
linked to the finding (same unit / cgroup) is chosen over a newer unrelated one, and a finding
nothing links to gets no rollback at all."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import journalgen
import pytest

from hostdiag.analysis import correlate as C
from hostdiag.collectors import changes as CH
from hostdiag.core.model import Finding

STARTED = "39f53479d3a045ac8e11786248231fbf"


def unit_event(unit: str) -> dict:
    return {"MESSAGE": f"Started {unit}.", "MESSAGE_ID": STARTED, "UNIT": unit, "PRIORITY": 6,
            "_TRANSPORT": "journal", "SYSLOG_IDENTIFIER": "systemd", "_PID": 1}


@pytest.fixture(scope="module")
def timeline(tmp_path_factory):
    why = journalgen.available()
    if why:
        pytest.skip(why)
    d = tmp_path_factory.mktemp("units")
    end = time.time() - 120
    journalgen.write_journal(str(d / "system.journal"),
                             [(end - 900, unit_event("app.service")), (end - 120, unit_event("other.service"))])
    root = d / "root"
    (root / "var/log").mkdir(parents=True)
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(end - 30))
    (root / "var/log/dpkg.log").write_text(f"{stamp} upgrade fonts-font-awesome:all 4.7 5.0\n")
    (d / "proc").mkdir()
    p = subprocess.run([sys.executable, "-m", "hostdiag", "snapshot", "--json", "--window", "0", "--only", "changes",
                        "--journal-dir", str(d), "--root", str(root), "--proc-root", str(d / "proc"),
                        "--until", f"{end + 60:.0f}"],
                       capture_output=True, env=dict(os.environ, PYTHONDONTWRITEBYTECODE="1"), timeout=90)
    doc = json.loads(p.stdout)
    return doc["sections"]["changes"]["data"]["timeline"], end


def finding(since: float, **subject) -> Finding:
    return Finding(id="memory.cgroup_near_limit", category="memory", severity="critical", title="t",
                   subject=subject, since=CH.rfc3339(since), stabilize=["Restart the biggest process"])


def test_unit_events_carry_their_unit(timeline):
    tl, _ = timeline
    units = {e["unit"] for e in tl if e["kind"] == "unit"}
    assert units == {"app.service", "other.service"}, tl


def test_the_linked_unit_wins_over_newer_unrelated_changes(timeline):
    tl, end = timeline
    f = C.correlate([finding(end, cgroup="/system.slice/app.service")], tl)[0]
    ch = f.evidence["after_change"]
    assert ch["what"] == "app.service started" and ch["minutes_before"] == 15.0
    assert "app.service" in ch["link"] and f.stabilize[0].startswith("Consider whether app.service started")


def test_unrelated_only_gets_no_rollback(timeline):
    tl, end = timeline
    f = C.correlate([finding(end, cgroup="/system.slice/db.service")], tl)[0]
    assert f.evidence["unrelated_change"]["what"] == "upgrade fonts-font-awesome 4.7 → 5.0"
    assert f.evidence["unrelated_change"]["note"] == "unrelated by anything but time"
    assert f.stabilize == ["Restart the biggest process"]

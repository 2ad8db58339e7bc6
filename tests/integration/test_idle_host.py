"""An idle, healthy host gets no warning or critical finding: a false alarm at 3 AM costs trust.

Runs first in the session (conftest), before fault tests raise load and pressure averages.
"""
import pytest

from support import cli_json


@pytest.mark.first
def test_idle_host_has_no_warning_or_critical():
    doc, code = cli_json("--window", "2", "--interval", "0.5")
    loud = [(f["id"], f["title"]) for f in doc["findings"] if f["severity"] in ("warning", "critical")]
    assert loud == [], loud
    assert code == 0
    assert doc["headline"]["severity"] == "ok"

"""Never an all-clear that hides how little was seen: run as nobody with `--only files,sockets`
(every fd table of a root process unreadable), nothing to act on was found, and the Condition
said only "No warning or critical condition found." above a Need line about root."""
from __future__ import annotations

import pytest

from hostdiag.analysis.headline import headline
from hostdiag.core.model import Section
from support import IS_ROOT, snapshot_as_nobody


@pytest.mark.skipif(not IS_ROOT, reason="needs root to drop to nobody")
def test_nothing_found_while_partly_blind_says_so_in_the_condition(snapshot):
    snapshot(only=["files", "sockets"])   # as root first: the stdlib lives under /root, unreadable to nobody
    doc = snapshot_as_nobody("files,sockets")
    statuses = {k: s["status"] for k, s in doc["sections"].items()}
    assert statuses == {"files": "partial", "sockets": "partial"}, statuses
    h = doc["headline"]
    if h["severity"] != "ok":
        pytest.skip(f"this host has something to act on as nobody: {h['condition']}")
    assert h["condition"] == ("No warning or critical condition found in what could be read "
                              "(2 of 2 collectors partial or unavailable: files, sockets)."), h
    assert "run as root" in h["need"]


def test_nothing_found_with_everything_seen_is_a_plain_all_clear():
    h = headline([], [], {"memory": Section("memory", "ok")})
    assert (h.severity, h.condition) == ("ok", "No warning or critical condition found.")

"""User log patterns against hostile log lines: every pattern search must be time-bounded, so a
snapshot with a slow archetype still ends with a report (`timeout -s KILL` only guards the test).
Journal files are real (systemd-journal-remote, tests/journal/journalgen.py)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "journal"))
import journalgen  # noqa: E402

from hostdiag import catalog  # noqa: E402

ARCHETYPE = """\
id = "site.slow_pattern"
kind = "log"
title = "A site pattern"
owner = "site"
category = "disk"
severity = "warning"
transport = "kernel"
pattern = '{pattern}'
impact = "x"
verify = "true"
stabilize = ["x"]
runbook = "https://runbooks.example/x"

[[examples]]
line = "ab cd X"
"""

# Small bounded repeats side by side over the same characters: no repeat is unbounded, yet the
# stdlib engine tries every split between them at every start position, ~n^3 per line.
ADJACENT = r"\w{0,500}\s{0,2}\w{0,500}\s{0,2}\w{0,500}X"


@pytest.mark.parametrize("pattern", [ADJACENT, r"(?P<a>[a-z]{1,300})(?P<b>\w{0,300})(?P<c>\w{0,300})!"])
def test_adjacent_overlapping_repeats_are_not_run_unbounded(pattern):
    assert not catalog.bounded(pattern)        # so they run on the `regex` engine, with its timeout


@pytest.mark.parametrize("pattern", [r"(?P<dev>[^()\s]{1,64})\): (?P<x>\d{1,10}) (?P<y>\w{0,32})",
                                     r"(?:\S{0,64}:)?(?P<port>\d{1,5})\. x", r"a{0,9}b{0,9}c"])
def test_separated_or_disjoint_repeats_stay_on_the_fast_engine(pattern):
    assert catalog.pattern_problem(pattern) is None and catalog.bounded(pattern)


def test_shipped_patterns_stay_on_the_fast_engine():
    cat = catalog.load()
    assert cat.log_patterns() and all(catalog.bounded(p.data["pattern"]) for p in cat.log_patterns())


def test_slow_site_pattern_on_long_lines_still_ends_the_snapshot(tmp_path):
    why = journalgen.available()
    if why:
        pytest.skip(why)
    cat = tmp_path / "catalog"
    cat.mkdir()
    (cat / "site.slow_pattern.toml").write_text(ARCHETYPE.format(pattern=ADJACENT))
    jdir = tmp_path / "journal"
    jdir.mkdir()
    now = time.time()
    journalgen.write_journal(str(jdir / "t.journal"), [(now - 60 + i, journalgen.kernel("a" * 3000)) for i in range(20)])
    p = subprocess.run(["timeout", "-s", "KILL", "40", sys.executable, "-m", "hostdiag", "snapshot", "--json",
                        "--only", "journal", "--window", "0", "--catalog", str(cat), "--journal-dir", str(jdir)],
                       capture_output=True, text=True, timeout=90, env=dict(os.environ, PYTHONDONTWRITEBYTECODE="1"))
    assert p.returncode in (0, 1, 2), f"rc={p.returncode} (137: the guard had to kill it) {p.stderr[-2000:]}"
    sec = json.loads(p.stdout)["sections"]["journal"]
    assert sec["data"]["entries"] == 20       # every line was matched, on the timed engine

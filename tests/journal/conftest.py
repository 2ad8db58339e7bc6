"""Journal files generated at test time (never committed: even 20 entries make an 8 MiB file)."""
from __future__ import annotations

import os
import sys
import time

import pytest

sys.path.insert(0, os.path.dirname(__file__))
import journalgen  # noqa: E402

def _need_remote():
    why = journalgen.available()
    if why:
        pytest.skip(why)


@pytest.fixture(scope="session")
def incident_dir(tmp_path_factory):
    """A journal with 30 minutes of chatter, an app.service error burst and an OOM kill, ending 10 min ago."""
    _need_remote()
    d = tmp_path_factory.mktemp("incident")
    end = time.time() - 600
    journalgen.write_journal(str(d / "system.journal"), journalgen.incident(end))
    return d, end


@pytest.fixture(scope="session")
def big_dir(tmp_path_factory):
    """120,000 entries over the last hour (bound tests)."""
    _need_remote()
    d = tmp_path_factory.mktemp("big")
    now = time.time()
    journalgen.write_journal(str(d / "big.journal"), journalgen.bulk(now - 3600, now - 1, 120_000))
    return d, now

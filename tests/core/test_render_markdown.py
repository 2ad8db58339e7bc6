"""Markdown for chat and postmortems: host text cannot become a link (GFM linkify turns bare
URLs, www. names and e-mail addresses into links), and catalog ids are escaped wherever shown."""
from __future__ import annotations

import re
import types

from hostdiag import analysis
from hostdiag.core.model import SCHEMA_VERSION, Finding, Host, Section, Snapshot
from hostdiag.core.thresholds import Thresholds
from hostdiag.render import Env, render
from hostdiag.render.markdown import defang

HOSTILE = "GET http://evil.example/x https://evil.example www.evil.example mailto:a@b.example ops@evil.example"
BAD_ID = "user.[click](http://evil.example)`\x1b[2J"


def _report():
    snap = Snapshot(schema_version=SCHEMA_VERSION, host=Host("h", "6.1", "Debian", 2, None, None, 0, "t"),
                    collected_at="2026-11-29T04:13:00+00:00", window_s=0.0, interval_s=0.0,
                    sections={"journal": Section("journal", "partial", HOSTILE, data={"top": HOSTILE},
                                                 blind_spots=[HOSTILE])}, series={})
    f = Finding(id=BAD_ID, category="journal", severity="warning", title=HOSTILE, impact=HOSTILE,
                subject={"unit": HOSTILE}, verify="journalctl -u x")
    return analysis.build(snap, [types.SimpleNamespace(NAME="journal", findings=lambda s, t: [f])], Thresholds({}))


def test_urls_in_host_text_are_defanged_in_every_markdown_view():
    for full in (False, True):
        out = render(_report(), "markdown", Env(), full=full)
        # outside code spans nothing linkify would take: no scheme, no www., no bare address
        prose = re.sub(r"(`+).*?\1", "", out)
        assert not re.search(r"(?i)\b(https?|ftp)://|\bwww\.|mailto:|\w@\w", prose), prose
        assert "hxxp://evil.example" in out


def test_defang_keeps_the_text_readable():
    assert defang("see https://a.example and www.b.example") == "see hxxps://a.example and www[.]b.example"
    assert defang("ops@evil.example") == "ops[at]evil.example"


def test_catalog_id_is_escaped_wherever_rendered():
    rep = _report()
    for fmt in ("markdown", "plain", "terminal"):
        for full in (False, True):
            out = render(rep, fmt, Env(True, False, 100), full=full)
            body = re.sub(r"\x1b\[[0-9;]*m", "", out) if fmt == "terminal" else out
            assert "\x1b[2J" not in body, fmt
            if fmt == "markdown":   # inside a code span a link is text; outside it must be escaped
                prose = re.sub(r"(`+).*?\1", "", out)
                assert "](http" not in prose and "[click](" not in prose, prose

"""Hostile host text (ANSI/OSC escapes, rich markup, invalid UTF-8, 100 KB strings) through every
renderer, by the real path: collector data -> analysis.build (sanitises) -> render."""
from __future__ import annotations

import json
import re
import types

from hypothesis import HealthCheck, given, settings, strategies as st

from hostdiag import analysis
from hostdiag.core.model import SCHEMA_VERSION, Finding, Host, Section, Series, Snapshot
from hostdiag.core.thresholds import Thresholds
from hostdiag.render import Env, render

SGR = re.compile(r"\x1b\[[0-9;]*m")  # rich's own colour codes; nothing else may reach the terminal
NASTY = ["\x1b]0;pwned\x07", "\x1b[2J", "\x9b31m", "[bold red]x[/]", "[link=file:///etc/passwd]x",
         "\udcff\udcfe", "`|*_#<script>", "\r\n2. CRITICAL fake.finding", "\u202eevil", "x" * 100_000]
hostile = st.one_of(st.sampled_from(NASTY), st.text(max_size=200),
                    st.binary(max_size=64).map(lambda b: b.decode("utf-8", "surrogateescape")))


def make_report(name: str, cmdline: str, path: str):
    snap = Snapshot(
        schema_version=SCHEMA_VERSION,
        host=Host(name, "6.1", "Debian", 2, None, None, 0, "test"),
        collected_at="2026-11-23T00:00:00+00:00", window_s=1.0, interval_s=1.0,
        sections={"processes": Section("processes", "partial", f"cannot read {path}",
                                       data={"top": [{"pid": 1, "name": name, "cmdline": cmdline}],
                                             name: {"k": name}, "note": cmdline},
                                       blind_spots=[f"cannot read {path}"])},
        series={"processes.count": Series("processes.count", "count", [0, 1], [1, 2])},
    )
    module = types.SimpleNamespace(NAME="processes", findings=lambda sec, th: [Finding(
        id="processes.test", category="processes", severity="critical", title=f"{name} is on fire",
        subject={"pid": 1, "name": name}, evidence={"cmdline": cmdline, name: 1},
        verify=f"ls -l {path}", stabilize=[f"restart {name}", f"Do not delete {path}"], impact=cmdline)])
    return analysis.build(snap, [module], Thresholds({}))


def _no_escapes(text: str, fmt: str):
    body = SGR.sub("", text) if fmt == "terminal" else text
    assert "\x1b" not in body and "\x9b" not in body and "\x07" not in body and "\r" not in body
    assert "\u202e" not in body
    body.encode("utf-8")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=hostile, cmdline=hostile, path=hostile)
def test_every_renderer_is_safe(name, cmdline, path):
    rep = make_report(name, cmdline, path)
    for fmt in ("plain", "markdown", "terminal", "json"):
        out = render(rep, fmt, Env(stdout_isatty=True, width=100))
        _no_escapes(out, fmt)
        if fmt == "json":
            doc = json.loads(out)
            assert doc["findings"][0]["subject"]["pid"] == 1
        if fmt == "plain":
            assert all(len(line) <= 80 for line in out.splitlines())


def test_markup_is_shown_literally_not_interpreted():
    rep = make_report("[bold red]evil[/]", "[link=file:///x]click[/link]", "/tmp/[red]x")
    term = SGR.sub("", render(rep, "terminal", Env(True, False, 120)))
    assert "[bold red]evil[/]" in term and "[link=file:///x]click" in term
    assert "[bold red]evil[/]" in render(rep, "plain")
    md = render(rep, "markdown")
    assert "\\[bold red\\]evil\\[/\\]" in md  # escaped for markdown, visible as typed


def test_fake_report_line_cannot_be_injected():
    rep = make_report("svc\n2. CRITICAL injected.finding: fake", "x", "/p")
    out = render(rep, "plain")
    assert not any(line.startswith("2. CRITICAL injected") for line in out.splitlines())

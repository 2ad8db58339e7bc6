"""The terminal view at 80 and 120 columns: identifiers (PIDs, ports, devices, mounts, times to
the second) are never cut, a table too wide drops whole columns and says which, wrapped text
keeps its hanging indent, and long host strings are clipped with their length shown."""
from __future__ import annotations

import re
import types

import pytest

from hostdiag import analysis
from hostdiag.core.model import SCHEMA_VERSION, Finding, Host, Section, Snapshot
from hostdiag.core.thresholds import Thresholds
from hostdiag.render import Env, render

SGR = re.compile(r"\x1b\[[0-9;]*m")
CMD = "/usr/bin/java -Xmx8g " + " ".join(f"-Dprop{i}=value{i}" for i in range(400))   # ~6 KB command line
TIME = "2026-11-29T04:12:33+00:00"
ROWS = [{"pid": 1804417, "name": "java", "port": 18080, "side": "server", "count": 300, "not_accepted": 2,
         "device": "nvme0n1p12", "mount": "/var/lib/docker/overlay2", "since": TIME, "cmdline": CMD},
        {"pid": 1804418, "name": "nginx", "port": 44321, "side": "client", "count": 7, "not_accepted": 0,
         "device": "dm-12", "mount": "/srv/data-archive", "since": TIME, "cmdline": "nginx: worker"}]


def _report():
    snap = Snapshot(schema_version=SCHEMA_VERSION, host=Host("web-01", "6.1", "Debian", 2, None, None, 0, "t"),
                    collected_at="2026-11-29T04:13:00+00:00", window_s=5.0, interval_s=1.0,
                    sections={"sockets": Section("sockets", "ok", data={"close_wait": ROWS, "note": CMD})}, series={})
    finding = Finding(id="sockets.close_wait_leak", category="sockets", severity="warning",
                      title="300 sockets in CLOSE_WAIT held by java (pid 1804417) on its port 18080 " * 2,
                      subject={"pid": 1804417, "port": 18080}, evidence={"cmdline": CMD}, since=TIME,
                      verify="ss -tanp state close-wait '( sport = :18080 )'",
                      stabilize=["Restart the holder off-peak after draining it from the load balancer " * 3])
    module = types.SimpleNamespace(NAME="sockets", findings=lambda sec, th: [finding])
    return analysis.build(snap, [module], Thresholds({}))


@pytest.mark.parametrize("width", [80, 120])
def test_identifiers_are_never_cut(width):
    out = SGR.sub("", render(_report(), "terminal", Env(True, False, width), full=True))
    lines = out.splitlines()
    assert all(len(x) <= width for x in lines), max(lines, key=len)
    table = out[out.index("\nclose_wait"):]
    hidden = re.search(r"\(columns hidden: ([^;]*);", " ".join(table.split()))
    hidden = hidden.group(1).split(", ") if hidden else []
    header = table.splitlines()[1 if not hidden else 2 + ("see --json)" not in table.splitlines()[1])]
    for key in ("pid", "port", "side", "device", "mount", "since"):
        if key in hidden:
            continue
        assert key in header.split(), (key, header)
        for r in ROWS:   # shown: whole, never "180…"
            assert re.search(rf"(?<![\w/-]){re.escape(str(r[key]))}(?![\w/-])", table), (key, r[key])
    assert "pid" not in hidden and "port" not in hidden
    assert "…" not in "".join(x for x in lines if "1804417" in x and "18080" in x)
    if width == 80:
        assert hidden and "cmdline" in hidden        # something had to go, and it says what
    else:
        assert TIME in table


@pytest.mark.parametrize("width", [80, 120])
def test_wrapped_text_keeps_its_hanging_indent(width):
    out = SGR.sub("", render(_report(), "terminal", Env(True, False, width), full=True))
    lines = out.splitlines()
    i = next(n for n, x in enumerate(lines) if x.lstrip().startswith("stabilize"))
    col = lines[i].index("•")
    assert lines[i + 1].startswith(" " * col) and lines[i + 1].strip()     # the option wrapped under itself


def test_long_host_strings_are_clipped_with_their_length_everywhere():
    rep = _report()
    for fmt in ("plain", "markdown", "terminal"):
        out = " ".join(render(rep, fmt, Env(True, False, 120), full=True).split())
        # the length shown is of the text as sanitised (hostdiag.core.sanitize caps host strings first)
        assert CMD[:200] not in out and re.search(r"… \[\d{4} chars\]", out), fmt
    assert CMD[:3000] in render(rep, "json")           # JSON keeps what the sanitiser kept


def test_default_view_is_short_and_full_is_not():
    rep = _report()
    brief = SGR.sub("", render(rep, "terminal", Env(True, False, 80), full=False))
    assert "1804417" in brief and "ss -tanp state close-wait '( sport = :18080 )'" in brief
    assert "close_wait" not in brief.replace("close-wait", "") and len(brief.splitlines()) <= 50

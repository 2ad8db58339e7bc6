"""End-to-end golden output (node_exporter's e2e-output.txt): the real CLI, run on a fixture
host with a known incident, compared with checked-in files. A diff in review shows what a
change did to the report.

    pytest tests/golden --update-golden      (or UPDATE_GOLDEN=1) rewrites the files

Only what cannot be pinned is normalised: times, durations, the version and the euid. Every
host fact comes from the tree (hostname, kernel, boot, CPUs: see runner.host_info), and the
collectors are limited to those that read nothing but the tree (cpu still asks os.cpu_count();
disk statvfs()es real mounts; changes reads "now").
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
from support import FIXTURES, cli

GOLDEN = Path(__file__).resolve().parent
# scenario -> the collectors whose output depends only on the tree
SCENARIOS = {"web_closewait": "memory,files,sockets", "forkstorm_io": "io,processes"}
TIME = "<time>"


def _args(scenario: str) -> list[str]:
    # relative to the fixture: host paths are wrapped with the text, so an absolute path would
    # make the output depend on where the checkout lives (CI's differs from ours)
    return ["snapshot", "--window", "0", "--only", SCENARIOS[scenario], "--proc-root", "proc",
            "--sys-root", "sys", "--root", "."]


def _run(scenario: str, *fmt: str) -> str:
    env = {"HOSTDIAG_SIGNATURES": "", "NO_COLOR": "1", "COLUMNS": "80"}
    p = cli(*_args(scenario), *fmt, env=env, cwd=FIXTURES / scenario)
    assert p.returncode in (0, 1, 2) and not p.stderr, p.stderr
    assert str(FIXTURES) not in p.stdout, "an absolute fixture path leaked into the report"
    return p.stdout


def normalise_json(text: str) -> str:
    doc = json.loads(text)
    doc["host"].update(euid=0, hostdiag_version="<version>")
    doc.update(collected_at=TIME, duration_s=0.0, timings={})
    for sec in doc["sections"].values():
        sec["duration_s"] = 0.0
    for s in doc["series"].values():   # one tick at window 0: offsets are clock noise
        s["t0"], s["t"] = TIME, [0.0 for _ in s["t"]]
    return json.dumps(doc, indent=2, sort_keys=False, ensure_ascii=False) + "\n"


def normalise_plain(text: str, collected_at: str) -> str:
    text = text.replace(collected_at, TIME)
    text = re.sub(r", as uid \d+ \(not root\)", "", text)
    return re.sub(r"(?m)^(\[\w+\] \w+), \d+\.\d\ds$", r"\1, 0.00s", text)


@pytest.fixture
def update(request) -> bool:
    return request.config.getoption("--update-golden") or os.environ.get("UPDATE_GOLDEN") == "1"


def _check(outputs: dict[Path, str], update: bool) -> None:
    missing = [p for p in outputs if not p.exists()]
    for path, got in outputs.items():
        if update or path in missing:
            path.write_text(got)
    if missing and not update:
        pytest.fail(f"{', '.join(p.name for p in missing)} missing: written now; review and commit")
    for path, got in outputs.items():
        assert got == path.read_text(), f"{path.name} differs: review the diff, then run pytest --update-golden"


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_golden(scenario, update):
    raw = _run(scenario, "--json")
    collected_at = json.loads(raw)["collected_at"]
    outputs = {GOLDEN / f"{scenario}.json": normalise_json(raw)}
    for name, args in ((f"{scenario}.txt", ("--plain", "--full")), (f"{scenario}.default.txt", ("--plain",))):
        plain = _run(scenario, *args)
        # --plain ran a moment later: its own collection time is in its header
        m = re.search(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00", plain)
        outputs[GOLDEN / name] = normalise_plain(plain, m.group(0) if m else collected_at)
    _check(outputs, update)


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_default_view_fits_one_screen(scenario):
    """The five-second read: several faults, still one screen at 80 columns, status block first,
    the most urgent finding first with the command that verifies it."""
    text = _run(scenario, "--plain")
    lines = text.splitlines()
    assert len(lines) <= 50, len(lines)
    assert all(len(x) <= 80 for x in lines)
    assert lines[3].startswith("STATUS: ") and "Condition:" in text and "Need:" in text
    doc = json.loads(_run(scenario, "--json"))
    first = next(f for f in doc["findings"] if f["severity"] != "info")
    i = text.index("FINDINGS")
    assert text.index(first["title"][:40], i) < text.index("2. ", i)
    assert "EVIDENCE" not in text and "--full" in text

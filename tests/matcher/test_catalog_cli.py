"""lint/test against broken catalogs (exact error lines) and the `signatures match` CLI."""
from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from hostdiag.cli import app

runner = CliRunner()

GOOD = '''id = "{id}"
title = "t"
owner = "me"
shapes = ["{shape}"]
metrics = ["{metric}"]
looks_like = "x"
likely_causes = ["a"]
first_checks = ["b"]
stabilize = ["c"]
runbook = "https://runbooks.example/x"

[[examples]]
values = {values}
'''
STAIRS = "[1, 1, 1, 1, 1, 1, 1, 1, 5, 5, 5, 5, 5, 5, 5, 5, 9, 9, 9, 9, 9, 9, 9, 9]"
RAMP = "[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20]"


def run(*args, env=None):
    return runner.invoke(app, ["signatures", *args], env={"HOSTDIAG_SIGNATURES": "", **(env or {})})


def write(d, name, text):
    p = d / name
    p.write_text(text)
    return p


def test_shipped_catalog_lints_and_tests_clean():
    r = run("lint")
    assert r.exit_code == 0, r.output
    r = run("test")
    assert r.exit_code == 0, r.output


def test_lint_reports_exact_lines(tmp_path):
    bad_syntax = write(tmp_path, "a.bad.toml", 'id = "a.bad"\ntitle = "x\n')
    wrong_types = write(tmp_path, "b.types.toml",
                        GOOD.format(id="b.types", shape="ramp", metric="*", values=RAMP)
                        .replace('owner = "me"', "owner = 3").replace('shapes = ["ramp"]', 'shapes = ["wiggle"]')
                        .replace('looks_like = "x"', 'looks_like = "x"\ncolour = "red"')
                        + "colour = \"red\"\n")
    no_runbook = write(tmp_path, "c.norunbook.toml",
                       GOOD.format(id="c.norunbook", shape="ramp", metric="*", values='[1, 2, "x"]')
                       .replace('runbook = "https://runbooks.example/x"\n', ""))
    write(tmp_path, "d.dup.toml", GOOD.format(id="d.dup", shape="ramp", metric="*", values=RAMP))
    dup = write(tmp_path, "e.dup.toml", GOOD.format(id="d.dup", shape="ramp", metric="*", values=RAMP))
    log = write(tmp_path, "kernel.x.toml", '''id = "kernel.x"
kind = "log"
title = "t"
owner = "o"
category = "memory"
severity = "loud"
pattern = '(?P<pid>\\d+'
verify = "v"
stabilize = ["s"]
runbook = "https://r"

[[examples]]
line = "x"
''')
    r = run("lint", str(tmp_path))
    assert r.exit_code == 1
    lines = r.output.strip().splitlines()
    want = {
        f"{bad_syntax}:2: Illegal character '\\n'",
        f"{wrong_types}:3: 'owner' must be a string, not int",
        f"{wrong_types}:4: unknown shape 'wiggle' (known: stair_step, ramp, cliff_drop, flatline, oscillating, spike_then_settle, plateau_under_peak)",
        f"{wrong_types}:7: unknown field 'colour' for kind='shape'",
        f"{wrong_types}:15: example 1: unknown key 'colour'",
        f"{no_runbook}:1: missing required field 'runbook'",
        f"{no_runbook}:12: example 1: values[2] is not a number: 'x'",
        f"{dup}:1: duplicate id 'd.dup' (also in {tmp_path / 'd.dup.toml'})",
        f"{dup}:1: id 'd.dup' does not match the file name (expected d.dup.toml)",
        f"{log}:6: severity must be critical, warning or info",
        f"{log}:7: pattern does not compile: missing ), unterminated subpattern at position 0",
    }
    got = {ln for ln in lines if not ln.endswith(" files")}
    assert got == want, "\n".join(sorted(got ^ want))


def test_test_reports_example_matching_the_wrong_archetype(tmp_path):
    # claims a ramp, but its example is a staircase: shape.stair_step wins
    p = write(tmp_path, "foo.wrong.toml",
              GOOD.format(id="foo.wrong", shape="ramp", metric="foo.bytes", values=STAIRS))
    r = run("test", str(p))
    assert r.exit_code == 1
    assert r.output.splitlines()[0] == (
        f"{p}:12: example 1: best match is shape.stair_step (stair_step 0.85), not foo.wrong; "
        "foo.wrong did not match (shapes ramp)")
    ok = write(tmp_path, "foo.right.toml",
               GOOD.format(id="foo.right", shape="stair_step", metric="foo.bytes", values=STAIRS))
    r = run("test", str(ok))
    assert r.exit_code == 0, r.output


def test_test_checks_log_examples(tmp_path):
    p = write(tmp_path, "kernel.y.toml", '''id = "kernel.y"
kind = "log"
title = "t"
owner = "o"
category = "memory"
severity = "critical"
pattern = 'Killed process (?P<pid>\\d+)'
verify = "v"
stabilize = ["s"]
runbook = "https://r"

[[examples]]
line = "Killed process 12 (x)"
expect = { pid = "13" }

[[examples]]
line = "nothing here"
''')
    r = run("test", str(p))
    assert r.exit_code == 1
    assert r.output.splitlines()[:2] == [
        f"{p}:12: example 1: group 'pid' is '12', expected '13'",
        f"{p}:16: example 2: line does not match the pattern",
    ]


def test_user_catalog_adds_an_archetype_without_code(tmp_path):
    write(tmp_path, "queue.backlog.toml",
          GOOD.format(id="queue.backlog", shape="ramp", metric="queue.depth", values=RAMP))
    csv = tmp_path / "s.csv"
    csv.write_text("value\n" + "\n".join(str(x) for x in range(1, 40)) + "\n")
    r = run("match", str(csv), "--metric", "queue.depth", "--json", "--catalog", str(tmp_path))
    assert json.loads(r.output)["matches"][0]["signature"] == "queue.backlog"
    r = run("match", str(csv), "--metric", "queue.depth", "--json", env={"HOSTDIAG_SIGNATURES": str(tmp_path)})
    assert json.loads(r.output)["matches"][0]["signature"] == "queue.backlog"
    r = run("list", "--catalog", str(tmp_path))
    assert "queue.backlog" in r.output


def _series(shape="stair_step", n=200):
    from corpus import make
    return make(shape, np.random.default_rng(2), n=n, noise=0.02, scale=1e6, offset=1e7)


@pytest.mark.parametrize("fmt", ["csv_epoch", "csv_iso", "csv_values", "json", "stdin"])
def test_match_formats(tmp_path, fmt):
    import datetime as dt
    t, v, _ = _series()
    p = tmp_path / "s.txt"
    if fmt == "csv_epoch":
        p.write_text("timestamp,value\n" + "".join(f"{a},{b}\n" for a, b in zip(t, v)))
    elif fmt == "csv_iso":
        iso = [dt.datetime.fromtimestamp(a, dt.timezone.utc).isoformat().replace("+00:00", "Z") for a in t]
        p.write_text("timestamp,value\n" + "".join(f"{a},{b}\n" for a, b in zip(iso, v)))
    elif fmt == "csv_values":
        p.write_text("".join(f"{b}\n" for b in v))
    else:
        p.write_text(json.dumps({"timestamps": t, "values": v}))
    if fmt == "stdin":
        r = runner.invoke(app, ["signatures", "match", "-", "--json"], input=p.read_text())
    else:
        r = run("match", str(p), "--json")
    assert r.exit_code == 0, r.output
    ms = json.loads(r.output)["matches"]
    assert ms[0]["shape"] == "stair_step" and ms[0]["signature"] == "shape.stair_step"
    assert set(ms[0]) == {"shape", "signature", "score", "start", "end", "why"}
    assert [m["score"] for m in ms] == sorted((m["score"] for m in ms), reverse=True)
    if fmt in ("csv_epoch", "csv_iso", "json"):
        assert t[0] <= ms[0]["start"] <= ms[0]["end"] <= t[-1]


def test_match_text_output_and_steady_and_errors(tmp_path):
    p = tmp_path / "s.csv"
    t, v, _ = _series("cliff_drop")
    p.write_text("timestamp,value\n" + "".join(f"{a},{b}\n" for a, b in zip(t, v)))
    r = run("match", str(p), "--metric", "network.rx_bytes")
    assert r.exit_code == 0
    assert r.output.startswith("1. ") and "network.traffic_cliff" in r.output and "check: " in r.output
    steady = tmp_path / "steady.json"
    steady.write_text(json.dumps({"values": (100 + np.random.default_rng(0).normal(0, 1, 300)).tolist()}))
    r = run("match", str(steady), "--json")
    assert json.loads(r.output) == {"matches": []}
    short = tmp_path / "short.csv"
    short.write_text("value\n1\n2\n3\n")
    r = run("match", str(short), "--json")
    assert json.loads(r.output)["matches"] == [] and "too short" in json.loads(r.output)["note"]
    bad = tmp_path / "bad.csv"
    bad.write_text("timestamp,value\nyesterday,3\n")
    r = run("match", str(bad))
    assert r.exit_code == 2 and "line 2: not a timestamp" in r.output


def test_show_and_list():
    r = run("show", "memory.leak_stair_step")
    assert r.exit_code == 0 and "runbook: https://" in r.output and "example 1:" in r.output
    assert run("show", "nope.nothing").exit_code == 1
    r = run("list")
    assert "shape.ramp" in r.output and "files.fd_leak" in r.output

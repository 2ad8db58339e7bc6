"""lint/test against broken catalogs (exact error lines) and the `signatures match` CLI."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from hostdiag import catalog
from hostdiag.cli import app
from support import cli

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


# ---------------------------------------------------------------------------- issue 8: safe catalogs

LOG = '''id = "{id}"
kind = "log"
title = "Payment gateway unreachable"
owner = "team-pay"
category = "network"
severity = "critical"
pattern = '{pattern}'
subject = ["gw"]
verify = "{verify}"
stabilize = ["Fail over to the standby gateway"]
runbook = "https://runbooks.example/pay"

[[examples]]
line = "payment gateway gw1 unreachable"
'''


def log_entry(eid="app.pay", pattern=r"payment gateway (?P<gw>\S{1,64}) unreachable", verify="ping -c1 {gw}"):
    return LOG.format(id=eid, pattern=pattern, verify=verify)


@pytest.mark.parametrize("pattern,why", [
    (r"(?P<gw>(a+)+)$", "nested quantifiers"),
    (r"(?P<gw>(?:\s+\w+)*) unreachable", "nested quantifiers"),
    (r"(?P<gw>(?:a|ab)*)c", "same character"),
])
def test_lint_rejects_backtracking_patterns_with_file_line(tmp_path, pattern, why):
    p = write(tmp_path, "app.pay.toml", log_entry(pattern=pattern))
    r = run("lint", str(p))
    assert r.exit_code == 1
    assert any(ln.startswith(f"{p}:7: pattern can backtrack catastrophically") and why in ln
               for ln in r.output.splitlines()), r.output


def test_lint_rejects_placeholder_inside_quotes_and_unknown_group(tmp_path):
    p = write(tmp_path, "app.pay.toml", log_entry(verify="ss -ltn 'sport = :{gw}'   # and {port}"))
    r = run("lint", str(p))
    assert r.exit_code == 1
    assert f"{p}:9: verify: placeholder {{gw}} is inside quotes: put it outside so its value is quoted as one word" in r.output
    assert f"{p}:9: placeholder {{port}} is not a named group of the pattern" in r.output
    ok = write(tmp_path / "..", "app.pay.toml", log_entry())
    assert run("lint", str(ok)).exit_code == 0


def test_override_of_a_shipped_id_is_said_in_lint_and_list(tmp_path):
    oom = (Path(catalog.__file__).parent.parent / "signatures" / "kernel.oom_kill.toml").read_text()
    p = write(tmp_path, "kernel.oom_kill.toml", oom.replace("severity = \"critical\"", "severity = \"warning\""))
    r = run("lint", "--catalog", str(tmp_path))
    assert r.exit_code == 0, r.output
    assert f"note: {p}:1: overrides shipped kernel.oom_kill" in r.output
    cat = catalog.load([str(tmp_path)])
    assert cat.notes == [f"{p}: overrides shipped kernel.oom_kill"]
    assert cat.entries["kernel.oom_kill"].data["severity"] == "warning"


def test_show_did_you_mean_escapes_ids(tmp_path):
    write(tmp_path, "evil.toml", log_entry(eid="app.pay\\u001b]0;pwned\\u0007"))   # TOML escapes: ESC, BEL
    r = run("show", "pay", "--catalog", str(tmp_path))
    assert r.exit_code == 1
    assert "\x1b" not in r.output and "\x07" not in r.output and "\\x1b]0;pwned\\x07" in r.output


def test_catalog_load_skips_fifo_device_huge_and_too_many_files(tmp_path):
    """Real FIFOs, a symlink to /dev/zero, a 2-million-value file and 10,000 files: each skipped and said."""
    d = tmp_path / "cat"
    d.mkdir()
    os.mkfifo(d / "a.toml")                          # no writer: a blocking open would hang forever
    os.symlink("/dev/zero", d / "b.toml")            # 1.7 GB then MemoryError before
    with open(d / "c.toml", "w") as f:               # 2 million example values (~14 MB)
        f.write('id = "c"\n[[examples]]\nvalues = [' + ", ".join(["1.5"] * 2_000_000) + "]\n")
    write(d, "d.ok.toml", GOOD.format(id="d.ok", shape="ramp", metric="*", values=RAMP))
    # Real CLI in a subprocess, bounded by the test: a hang fails the test instead of the suite.
    p = cli("signatures", "list", "--catalog", str(d), timeout=30)
    assert p.returncode == 1                         # broken files are named and make the exit 1
    assert p.stdout.startswith("ID ") and "d.ok" in p.stdout
    assert f"{d / 'a.toml'}:1: not a regular file" in p.stderr
    assert f"{d / 'b.toml'}:1: not a regular file" in p.stderr
    assert f"{d / 'c.toml'}:1: " in p.stderr and "per-file cap" in p.stderr
    lint = cli("signatures", "lint", str(d), timeout=30)
    assert lint.returncode == 1 and f"{d / 'a.toml'}:1: not a regular file" in lint.stdout

    many = tmp_path / "many"
    many.mkdir()
    for i in range(10_000):
        (many / f"m{i:05d}.toml").write_text(f'id = "m{i:05d}"\n')
    cat = catalog.load([str(many)])
    assert len([e for e in cat.entries if e.startswith("m0")]) == catalog.MAX_FILES
    assert any(f"{10_000 - catalog.MAX_FILES} catalog files not read (over the {catalog.MAX_FILES}-file cap)" in e
               for e in cat.errors), cat.errors[-3:]


def test_shipped_catalog_reads_from_a_zipapp(tmp_path):
    """importlib.resources Traversables, not filesystem paths: `signatures list` works from a zip."""
    import zipfile

    root = Path(catalog.__file__).parent.parent
    z = tmp_path / "hostdiag.pyz"
    with zipfile.ZipFile(z, "w") as zf:
        for sub, dest in (("hostdiag", "hostdiag"), ("collectors", "hostdiag/collectors"),
                          ("signatures", "hostdiag/signatures")):
            for f in (root / sub).rglob("*"):
                if f.is_file() and "__pycache__" not in f.parts:
                    zf.write(f, f"{dest}/{f.relative_to(root / sub)}")
    code = ("import sys, hostdiag.signatures as s; assert '.pyz' in s.__file__, s.__file__; "
            "sys.argv = ['hostdiag', 'signatures', 'list', '--kind', 'log']; "
            "from hostdiag.cli import main; main()")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                       env=dict(os.environ, PYTHONPATH=str(z), PYTHONDONTWRITEBYTECODE="1"), cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert "kernel.oom_kill" in p.stdout and not p.stderr


def test_readme_documents_every_schema_field():
    """signatures/README.md's field tables are catalog.schema_markdown(): they cannot drift."""
    text = (Path(catalog.__file__).parent.parent / "signatures" / "README.md").read_text()
    block = text.split("<!-- schema:begin -->\n", 1)[1].split("<!-- schema:end -->", 1)[0]
    assert block == catalog.schema_markdown(), "regenerate the table: see signatures/README.md"
    for f in catalog.FIELDS:
        assert f"| `{f.name}` |" in block


def test_shipped_patterns_are_bounded_and_user_stars_get_the_timed_engine():
    """Shipped log patterns have only small bounded repeats: they run on re (cheap per line); a
    pattern with * or + runs on `regex` with the per-line timeout."""
    for p in catalog.load().log_patterns():
        assert catalog.bounded(p.data["pattern"]), p.id
    assert not catalog.bounded(r"foo.*bar") and not catalog.bounded(r"(a+)+$")
    assert catalog.bounded(r"foo.{0,10}bar(?P<n>\d{1,5})")
    search, _ = catalog.compile_search(r"(x+x+)+y")
    with pytest.raises(TimeoutError):
        search("x" * 5000)


def test_lint_rejects_angle_bracket_placeholders(tmp_path):
    """`cat /sys/fs/cgroup/<unit>/memory.current` pasted as root is `< unit > /memory.current`:
    with a file ./unit present, bash creates /memory.current. Placeholders are {name}."""
    d = tmp_path / "cat"
    d.mkdir()
    body = GOOD.format(id="user.angle", shape="stair_step", metric="memory.used_bytes", values=STAIRS)
    (d / "user.angle.toml").write_text(body.replace('first_checks = ["b"]',
                                                    'first_checks = ["cat /sys/fs/cgroup/<unit>/memory.current"]'))
    r = run("lint", str(d))
    assert r.exit_code != 0 and "<unit> is a shell redirection" in r.output, r.output


def test_match_prints_no_unfilled_placeholder(tmp_path):
    """`signatures match` has no subject: it printed `grep ... /proc/{pid}/status` and
    `cat /sys/fs/cgroup/<unit>/memory.current` as commands to run."""
    import re
    import shlex

    p = tmp_path / "s.csv"
    p.write_text("".join(f"{i * 60},{1e9 + (i // 20) * 2e8}\n" for i in range(120)))
    r = run("match", str(p), "--metric", "processes.rss_bytes")
    assert r.exit_code == 0 and "memory.leak_stair_step" in r.output, r.output
    checks = [ln.split("check: ", 1)[1] for ln in r.output.splitlines() if "check: " in ln]
    assert checks
    for c in checks:
        assert not re.search(r"\{[A-Za-z_]\w*\}|<[A-Za-z_]\w*>", c), c
        shlex.split(c, comments=True)


def test_shipped_commands_have_no_angle_placeholders():
    from hostdiag.core import shell

    entries = catalog.load().entries.values()
    assert entries
    for e in entries:
        for k in ("verify", "first_checks"):
            v = e.data.get(k)
            for t in [v] if isinstance(v, str) else v or []:
                assert shell.problem(t) is None, (e.id, t)
# ---- the catalog uses what is sampled (issue 11) ------------------------------------------------
from hostdiag import collectors as _collectors                       # noqa: E402
from hostdiag.matcher.lint import sampled_problems                    # noqa: E402

def test_shipped_catalog_names_only_sampled_metrics():
    from hostdiag.matcher.lint import lint_paths
    errs, _, _ = lint_paths([], shipped=True, sampled=_collectors.sampled_metrics())
    assert errs == []


def test_sampled_metrics_come_from_units_and_declared_series():
    m = _collectors.sampled_metrics()
    assert "memory.available_bytes" in m["memory"] and "disk.inodes_used" in m["disk"]
    assert "journal.errors_per_min" in m["journal"]            # added in collect(): declared by METRICS


def test_lint_flags_unsampled_metrics_with_file_and_line(tmp_path):
    sampled = {"memory": ["memory.available_bytes"], "disk": ["disk.used_bytes"]}
    text = GOOD.format(id="memory.x", shape="ramp", metric="memory.used_bytes", values=RAMP)
    data = catalog.parse_text("memory.x.toml", text)[0]
    errs, notes = sampled_problems("memory.x.toml", data, text, sampled)
    assert errs == ["memory.x.toml:5: metric 'memory.used_bytes' is not sampled by any collector "
                    "(see `hostdiag collectors`; a metric must be one the snapshot samples)"]
    ok = GOOD.format(id="d.x", shape="ramp", metric="disk.used_bytes[mount=/var*]", values=RAMP)
    assert sampled_problems("d.x.toml", catalog.parse_text("d.x.toml", ok)[0], ok, sampled) == ([], [])
    # a collector this build lacks is a note; a site's own metric in a user catalog is a note too
    net = GOOD.format(id="n.x", shape="ramp", metric="network.rx_bytes*", values=RAMP)
    assert sampled_problems("n.x.toml", catalog.parse_text("n.x.toml", net)[0], net, sampled)[0] == []
    own = GOOD.format(id="q.x", shape="ramp", metric="queue.depth", values=RAMP)
    e, n = sampled_problems("q.x.toml", catalog.parse_text("q.x.toml", own)[0], own, sampled, strict=False)
    assert e == [] and "only `signatures match`" in n[0]
    assert sampled_problems("q.x.toml", catalog.parse_text("q.x.toml", own)[0], own, sampled)[0]


def test_lint_command_passes_the_collectors_metrics(tmp_path):
    p = write(tmp_path, "memory.y.toml", GOOD.format(id="memory.y", shape="ramp", metric="memory.used_bytes",
                                                      values=RAMP))
    r = run("lint", str(p))
    assert r.exit_code == 1 and "metric 'memory.used_bytes' is not sampled" in r.output


def test_shipped_templates_use_fill_placeholders():
    import re
    for f in Path(catalog.__file__).resolve().parent.parent.joinpath("signatures").glob("*.toml"):
        text = f.read_text()
        body = "\n".join(ln for ln in text.splitlines() if not ln.startswith("pattern"))
        assert not re.search(r"<(unit|port|iface|pid)>", body), f

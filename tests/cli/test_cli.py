"""The CLI as a user meets it: a real subprocess, exit statuses, formats, usage errors."""
from __future__ import annotations

import json
import sys

import pytest

from support import cli

JSON_KEYS = {"schema_version", "host", "collected_at", "window_s", "findings", "sections", "blind_spots"}


def test_version():
    p = cli("--version")
    assert p.returncode == 0 and p.stdout.startswith("hostdiag ")


def test_json_has_documented_keys_and_every_collector_section():
    from hostdiag import collectors

    p = cli("snapshot", "--window", "0", "--json")
    assert p.returncode in (0, 1, 2), p.stderr
    doc = json.loads(p.stdout)
    assert JSON_KEYS <= set(doc)
    assert set(collectors.ALL) <= set(doc["sections"])
    for name, sec in doc["sections"].items():
        assert sec["status"] in ("ok", "partial", "unavailable"), name
        if sec["status"] != "ok":
            assert sec["reason"], name
            assert any(b["collector"] == name for b in doc["blind_spots"])
    ranks = [{"critical": 2, "warning": 1, "info": 0}[f["severity"]] for f in doc["findings"]]
    assert ranks == sorted(ranks, reverse=True)


@pytest.mark.parametrize("spec,code", [
    ("cpu.load_per_core=1000,2000", 0),   # nothing near: exit 0
    ("cpu.load_per_core=0,1000", 1),      # warning
    ("cpu.load_per_core=0,0", 2),         # critical
])
def test_exit_status_follows_worst_finding(spec, code):
    p = cli("snapshot", "--window", "0", "--only", "cpu", "-t", spec, "-t", "cpu.psi_some_avg10=1000,2000")
    assert p.returncode == code, p.stdout + p.stderr


def test_plain_is_chosen_when_not_a_tty():
    p = cli("snapshot", "--window", "0", "--only", "cpu")
    assert "\x1b[" not in p.stdout and "Condition:" in p.stdout
    assert all(len(line) <= 80 for line in p.stdout.splitlines())


def test_markdown_output():
    p = cli("snapshot", "--window", "0", "--only", "cpu", "--markdown")
    assert p.stdout.startswith("## hostdiag: ") and "- **Condition:**" in p.stdout


@pytest.mark.parametrize("args", [
    ["snapshot", "--only", "nosuch"],
    ["snapshot", "-t", "nosuch.threshold=1"],
    ["snapshot", "--window", "-1"],
    ["snapshot", "--json", "--plain"],
    ["snapshot", "--since", "yesterday-ish"],
    ["nosuchcommand"],
])
def test_usage_errors_exit_2_with_a_message(args):
    p = cli(*args)
    assert p.returncode == 2
    assert p.stderr.strip()


def test_internal_error_exits_3(monkeypatch, capsys):
    """A bug outside the collectors (here: report building, forced to fail) is exit 3, not a traceback."""
    from hostdiag import cli as cli_mod
    from hostdiag.commands import snapshot as cmd

    def boom(*a, **k):
        raise RuntimeError("forced failure for the test")

    monkeypatch.setattr(cmd, "run", boom)
    monkeypatch.setattr(sys, "argv", ["hostdiag", "snapshot", "--window", "0"])
    with pytest.raises(SystemExit) as e:
        cli_mod.main()
    assert e.value.code == 3
    assert "internal error: RuntimeError: forced failure" in capsys.readouterr().err


def test_output_file(tmp_path):
    out = tmp_path / "r.md"
    p = cli("snapshot", "--window", "0", "--only", "cpu", "--markdown", "-o", str(out))
    assert p.stdout == "" and out.read_text().startswith("## hostdiag")


def test_collectors_and_thresholds_listings():
    from hostdiag import collectors

    p = cli("collectors")
    assert p.returncode == 0 and all(n in p.stdout for n in collectors.ALL)
    p = cli("thresholds")
    assert p.returncode == 0 and "cpu.busy_pct" in p.stdout


def test_output_refused_before_sampling(tmp_path):
    """A bad --output costs nothing: refused in one line with exit 2, before the window runs."""
    import time

    existing = tmp_path / "r.txt"
    existing.write_text("old")
    link = tmp_path / "l"
    link.symlink_to(existing)
    for target, why in [(existing, "--force"), (link, "symbolic link"), (tmp_path, "directory"),
                        (tmp_path / "no" / "r", "does not exist"), ("/proc/sys/kernel/domainname", "/proc")]:
        t = time.monotonic()
        p = cli("snapshot", "--window", "30", "-o", str(target))
        assert p.returncode == 2 and why in p.stderr and p.stdout == "", (target, p.stderr)
        assert time.monotonic() - t < 20                # did not sample the 30 s window
    assert existing.read_text() == "old"
    p = cli("snapshot", "--window", "0", "--only", "cpu", "--plain", "-o", str(existing), "--force")
    assert p.returncode in (0, 1, 2) and existing.read_text().startswith("hostdiag snapshot")
    assert oct(existing.stat().st_mode & 0o777) == oct(0o600)


def test_output_dash_is_stdout(tmp_path):
    p = cli("snapshot", "--window", "0", "--only", "cpu", "--plain", "-o", "-", cwd=tmp_path)
    assert p.stdout.startswith("hostdiag snapshot") and not (tmp_path / "-").exists()

"""packaging/prometheus/: the example rules load (`promtool check rules`) and fire on exactly the
conditions they name (`promtool test rules` on synthetic series)."""
from __future__ import annotations

import subprocess
from pathlib import Path

from promtools import PROMTOOL, need_prometheus

HERE = Path(__file__).resolve().parent
RULES = HERE.parents[1] / "packaging" / "prometheus" / "hostdiag.rules.yml"
pytestmark = need_prometheus


def test_promtool_check_rules():
    p = subprocess.run([PROMTOOL, "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "SUCCESS" in p.stdout


def test_promtool_unit_tests_of_the_rules():
    p = subprocess.run([PROMTOOL, "test", "rules", "hostdiag.rules.test.yml"], cwd=HERE,
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stdout + p.stderr

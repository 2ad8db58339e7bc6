"""Every package under hostdiag/ is in pyproject's explicit list: an editable install hides a
missing one, but the wheel, the .deb and the pyz would ship without it."""
from __future__ import annotations

import sys
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[2]


def test_every_package_is_listed():
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "hostdiag").rglob("__init__.py")}
    assert found - listed == set(), "add these to [tool.setuptools] packages"
    assert {"hostdiag.collectors", "hostdiag.signatures"} <= listed

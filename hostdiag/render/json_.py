"""--json: the whole snapshot and findings; keys documented in the README."""
from __future__ import annotations

import json


def render(report, env=None, *, top: int = 5) -> str:
    # ensure_ascii: every control or non-ASCII character is a \u escape, safe in any terminal.
    return json.dumps(report.to_dict(), indent=2, ensure_ascii=True, default=str) + "\n"

"""The signature catalog: reviewed data files, one entry per TOML file, parsed safely.

Shipped entries live in signatures/ (installed as hostdiag.signatures); user catalogs come
from `--catalog DIR` and $HOSTDIAG_SIGNATURES (os.pathsep-separated) and are laid on top:
a user entry with a shipped id replaces it. Two kinds share the format:
  kind = "shape" (default)  a failure archetype matched against series (issue: matcher)
  kind = "log"              a log/kernel-event pattern matched against log lines (journal)
A file that does not parse never takes the others down: it becomes an error string
("file:line: message"), reported by `signatures lint` and as a blind spot in snapshot.
"""
from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - 3.10
    import tomli as tomllib

ENV_VAR = "HOSTDIAG_SIGNATURES"


@dataclass
class Entry:
    id: str
    kind: str
    data: dict
    path: str


@dataclass
class Catalog:
    entries: dict[str, Entry] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)   # "file:line: message"

    def of_kind(self, kind: str) -> list[Entry]:
        return [e for e in self.entries.values() if e.kind == kind]


def shipped_dir() -> Path:
    from importlib.resources import files

    return Path(str(files("hostdiag.signatures")))


def catalog_dirs(extra=()) -> list[Path]:
    env = [p for p in os.environ.get(ENV_VAR, "").split(os.pathsep) if p]
    return [shipped_dir(), *map(Path, env), *map(Path, extra)]


def parse_file(path: Path) -> tuple[dict | None, str | None]:
    """(data, None) or (None, 'file:line: message')."""
    try:
        with open(path, "rb") as f:
            return tomllib.load(f), None
    except tomllib.TOMLDecodeError as e:
        m = re.search(r"\(at line (\d+)", str(e))
        return None, f"{path}:{m.group(1) if m else 1}: {re.sub(r' ?[(]at line.*', '', str(e))}"
    except (OSError, UnicodeDecodeError) as e:
        return None, f"{path}:1: cannot read: {e}"


def load(extra_dirs=()) -> Catalog:
    cat = Catalog()
    for d in catalog_dirs(extra_dirs):
        if not d.is_dir():
            if d != shipped_dir():
                cat.errors.append(f"{d}:1: catalog directory not found")
            continue
        seen_here: dict[str, Path] = {}
        for path in sorted(d.glob("*.toml")):
            data, err = parse_file(path)
            if err:
                cat.errors.append(err)
                continue
            eid = data.get("id")
            if not isinstance(eid, str) or not eid:
                cat.errors.append(f"{path}:1: missing string field 'id'")
                continue
            if eid in seen_here:
                cat.errors.append(f"{path}:1: duplicate id {eid!r} (also in {seen_here[eid]})")
                continue
            seen_here[eid] = path
            cat.entries[eid] = Entry(eid, str(data.get("kind", "shape")), data, str(path))
    return cat

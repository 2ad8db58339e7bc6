"""The package's import graph, read from the source with ast (function-level imports included):
every unit imports only units of a lower layer, so no two folders import each other.

    core (+ the hostdiag root: __version__)      nothing above it
    catalog, logs                                core
    matcher, collectors, history, packets        core, catalog, logs (sources of series and findings)
    analysis                                     core, matcher (and catalog)
    render                                       core, analysis types
    bundle, export                               the above (features the commands wire up)
    commands, cli                                anything
"""
from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
LAYER = {"hostdiag": 0, "core": 0, "catalog": 1, "logs": 1, "matcher": 2, "collectors": 2,
         "analysis": 3, "render": 4, "bundle": 5, "history": 2, "packets": 2, "export": 5,
         "commands": 6, "cli": 7, "__main__": 8, "signatures": 0}
NEW_UNIT_LAYER = 1   # a new top-level package or module: may use core only until placed above


def _unit(module: str) -> str:
    """'hostdiag.core.model' -> 'core'; 'hostdiag.catalog' -> 'catalog'; 'hostdiag' -> 'hostdiag'."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "hostdiag"


def _sources():
    for p in sorted((REPO / "hostdiag").rglob("*.py")):
        rel = p.relative_to(REPO).with_suffix("")
        mod = ".".join(rel.parts)
        yield p, mod[: -len(".__init__")] if mod.endswith(".__init__") else mod, p.name == "__init__.py"
    for p in sorted((REPO / "collectors").glob("*.py")):
        mod = "hostdiag.collectors" + ("" if p.stem == "__init__" else "." + p.stem)
        yield p, mod, p.name == "__init__.py"


def _imports(path: Path, module: str, is_pkg: bool):
    """Absolute names of the hostdiag modules (or attributes) a file imports."""
    tree = ast.parse(path.read_text(), str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names if a.name.split(".")[0] == "hostdiag")
        elif isinstance(node, ast.ImportFrom):
            if node.level:   # relative: resolve against this module's package
                base = module.split(".") if is_pkg else module.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                src = ".".join(base + ([node.module] if node.module else []))
            else:
                src = node.module or ""
            if src.split(".")[0] != "hostdiag":
                continue
            if src == "hostdiag":   # `from hostdiag import catalog` names a module (or __version__)
                yield from (f"hostdiag.{a.name}" if not a.name.startswith("__") else "hostdiag" for a in node.names)
            else:
                yield src


def edges() -> set[tuple[str, str, str]]:
    out = set()
    for path, mod, is_pkg in _sources():
        src = _unit(mod)
        for target in _imports(path, mod, is_pkg):
            dst = _unit(target)
            if dst != src:
                out.add((src, dst, f"{path.relative_to(REPO)} imports {target}"))
    return out


def test_the_graph_is_read():
    """The parser sees the imports we know exist (a test that cannot fail is a defect)."""
    pairs = {(s, d) for s, d, _ in edges()}
    assert {("analysis", "core"), ("analysis", "matcher"), ("collectors", "core"), ("commands", "analysis"),
            ("render", "core"), ("core", "hostdiag")} <= pairs


def test_no_upward_imports():
    bad = [why for s, d, why in edges() if LAYER.get(d, NEW_UNIT_LAYER) >= LAYER.get(s, NEW_UNIT_LAYER)
           and d != "hostdiag"]
    assert not bad, "imports against the layering:\n" + "\n".join(sorted(bad))


def test_no_two_units_import_each_other():
    pairs = {(s, d) for s, d, _ in edges()}
    mutual = sorted({tuple(sorted(p)) for p in pairs if (p[1], p[0]) in pairs})
    assert not mutual, mutual


def test_core_imports_nothing_above_it():
    assert not [why for s, d, why in edges() if s == "core" and d not in ("core", "hostdiag")]

"""Worst per-line cost of every kind="log" pattern in a catalog on adversarial 8 KB lines.

    .venv/bin/python benchmarks/bench_regex.py [--catalog DIR] [--engine regex|re] [--json]

Adversarial lines (each 8 KB, the matcher's line cap): runs of one character ('a', ' ', '0', '[',
'(', ':'), near-misses built from the pattern's own literal words and from each example line
(prefixes tiled, the line with a long tail), so that a pattern that backtracks per start position
or across nested repeats shows it. Each (pattern, line) is timed as the best of 3 searches; the
report is each pattern's worst line, and the catalog's worst. Target (issue 8): <= 1 ms each.
By default each pattern runs on the engine the journal collector picks (catalog.compile_search):
the stdlib engine for patterns with only small bounded repeats, else `regex` with a per-line
timeout. `--engine re|regex` forces one (`re` on the old catalog is the "before" of issue 8).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

LINE = 8192


def tile(s: str, n: int = LINE) -> str:
    return (s * (n // max(1, len(s)) + 1))[:n] if s else ""


def adversarial(pattern: str, examples: list[str]) -> list[tuple[str, str]]:
    out = [(f"{ch!r}*8K", tile(ch)) for ch in ("a", " ", "0", "[", "(", ":", "x[1]: ")]
    for w in set(re.findall(r"[A-Za-z][A-Za-z /:_,-]{3,}", pattern)):
        out.append((f"tile({w[:20]!r})", tile(w)))
        out.append((f"tile({w[:20]!r}+' ')", tile(w + " ")))
    for i, ex in enumerate(examples):
        for k in (len(ex) // 4, len(ex) // 2, len(ex) - 1):
            if k > 0:
                out.append((f"ex{i}[:{k}] tiled", tile(ex[:k])))
        out.append((f"ex{i}+tail", (ex + " " + "a" * LINE)[:LINE]))
        out.append((f"ex{i} no spaces", tile(ex.replace(" ", ""))))
    return out


def cost(search, line: str, repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        search(line)
        best = min(best, time.perf_counter() - t)
    return best


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--catalog", action="append", default=[])
    ap.add_argument("--engine", choices=("auto", "regex", "re"), default="auto",
                    help="auto: what the journal collector uses (catalog.compile_search)")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    from hostdiag import catalog

    cat = catalog.load(a.catalog)
    rows = []
    for e in sorted(cat.of_kind("log"), key=lambda e: e.id):
        pat = e.data.get("pattern")
        if not isinstance(pat, str):
            continue
        search = (catalog.compile_search(pat)[0] if a.engine == "auto" else
                  catalog.compile_pattern(pat).search if a.engine == "regex" else re.compile(pat).search)
        exs = [x["line"] for x in e.data.get("examples") or [] if isinstance(x, dict) and isinstance(x.get("line"), str)]
        worst, worst_line = 0.0, ""
        for name, line in adversarial(pat, exs):
            c = cost(search, line)
            if c > worst:
                worst, worst_line = c, name
        rows.append({"id": e.id, "worst_ms": round(worst * 1000, 3), "line": worst_line})
    rows.sort(key=lambda r: -r["worst_ms"])
    top = rows[0] if rows else {"worst_ms": 0}
    if a.json:
        print(json.dumps({"engine": a.engine, "line_bytes": LINE, "worst_ms": top["worst_ms"], "patterns": rows}))
        return
    print(f"engine {a.engine}, {LINE}-byte adversarial lines, best of 3 per line, worst line per pattern:")
    for r in rows:
        print(f"  {r['worst_ms']:8.3f} ms  {r['id']:28s} {r['line']}")
    print(f"worst: {top['worst_ms']:.3f} ms (target <= 1 ms)")


if __name__ == "__main__":
    main()

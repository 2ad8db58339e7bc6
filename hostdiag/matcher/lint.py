"""Validate catalog files (schema, both kinds) and run their examples.

lint_paths(paths) -> list of "file:line: message"; run_examples(cat) -> same format.
Schema checks need no numpy; only example runs (and the "too short" check) import the matcher.
tomllib keeps no positions, so lines are found by scanning the text for `key =` and
`[[examples]]` headers: good enough to put an editor on the right line.
"""
from __future__ import annotations

import datetime as _dt
import os
import re
from pathlib import Path

from hostdiag import catalog as _catalog
from hostdiag.core import shell
from hostdiag.matcher import SHAPES, glob_re

CATEGORIES = {"cpu", "memory", "io", "disk", "files", "sockets", "network", "processes",
              "journal", "changes"}
SEVERITIES = set(_catalog.SEVERITIES)
MIN_EXAMPLE_POINTS = 8

# The schema is hostdiag.catalog.FIELDS (also the source of signatures/README.md's field table).
_STR, _LSTR, _DICT, _LDICT, _BOOL = _catalog.STR, _catalog.LSTR, _catalog.TABLE, _catalog.LTABLE, _catalog.BOOL
THRESHOLD_KEYS = set(_catalog.THRESHOLD_KEYS)
SEEN_KEYS = _catalog.SEEN_KEYS
SHAPE_EXAMPLE_KEYS = set(_catalog.EXAMPLE_FIELDS["shape"])
LOG_EXAMPLE_KEYS = set(_catalog.EXAMPLE_FIELDS["log"])


class _Lines:
    """Line lookup in one file's text."""

    def __init__(self, text: str):
        self.lines = text.splitlines()
        self.tables = [i + 1 for i, ln in enumerate(self.lines) if re.match(r"\s*\[\[\s*examples\s*\]\]", ln)]

    def key(self, key: str, start: int = 1) -> int:
        rx = re.compile(rf"\s*{re.escape(key)}\s*=")
        for i in range(start - 1, len(self.lines)):
            if rx.match(self.lines[i]):
                return i + 1
        return start

    def example(self, i: int, key: str | None = None) -> int:
        if i < len(self.tables):
            start = self.tables[i]
            return self.key(key, start + 1) if key else start
        return self.key("examples")


def _type_ok(kind: str, val) -> bool:
    if kind == _STR:
        return isinstance(val, str)
    if kind == _LSTR:
        return isinstance(val, list) and all(isinstance(x, str) for x in val)
    if kind == _catalog.DATE:
        return isinstance(val, (str, _dt.date))
    if kind == _DICT:
        return isinstance(val, dict)
    if kind == _LDICT:
        return isinstance(val, list) and all(isinstance(x, dict) for x in val)
    if kind == _BOOL:
        return isinstance(val, bool)
    return True


def _num(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def parse_timestamp(x) -> float:
    """Epoch seconds from a number, an ISO-8601 string or a TOML datetime."""
    if _num(x):
        return float(x)
    if isinstance(x, _dt.datetime):
        d = x
    elif isinstance(x, str):
        s = x.strip()
        try:
            return float(s)
        except ValueError:
            pass
        d = _dt.datetime.fromisoformat(s[:-1] + "+00:00" if s.endswith(("Z", "z")) else s)
    else:
        raise ValueError(f"not a timestamp: {x!r}")
    if d.tzinfo is None:
        d = d.replace(tzinfo=_dt.timezone.utc)
    return d.timestamp()


def example_series(ex: dict) -> tuple[list | None, list]:
    """(timestamps or None, values) of a shape example; ValueError if it does not parse."""
    vals = ex.get("values")
    if not isinstance(vals, list) or not vals:
        raise ValueError("'values' must be a non-empty list of numbers")
    for j, x in enumerate(vals):
        if not (_num(x) or (isinstance(x, str) and x.lower() in ("nan", "null"))):
            raise ValueError(f"values[{j}] is not a number: {x!r}")
    v = [float(x) if _num(x) else None for x in vals]
    ts = ex.get("timestamps")
    if ts is None:
        return None, v
    if not isinstance(ts, list) or len(ts) != len(vals):
        raise ValueError(f"'timestamps' must be a list as long as 'values' ({len(vals)})")
    try:
        return [parse_timestamp(x) for x in ts], v
    except ValueError as e:
        raise ValueError(f"timestamps: {e}") from None


def default_metric(data: dict, ex: dict) -> str | None:
    """The metric an example stands for: its own `metric`, else the archetype's first literal one."""
    if isinstance(ex.get("metric"), str):
        return ex["metric"]
    for p in data.get("metrics") or []:
        if isinstance(p, str) and "*" not in p and "?" not in p:
            return p
    return None


def lint_data(path: str, data: dict, text: str) -> list[str]:
    """Schema errors of one parsed file."""
    L = _Lines(text)
    errs: list[str] = []

    def err(line: int, msg: str):
        errs.append(f"{path}:{line}: {msg}")

    kind = data.get("kind", "shape")
    if kind not in ("shape", "log"):
        err(L.key("kind"), f"kind must be 'shape' or 'log', not {kind!r}")
        return errs
    fields, required = _catalog.fields(kind), _catalog.required(kind)
    for k in data:
        if k not in fields:
            err(L.key(k), f"unknown field {k!r} for kind={kind!r}")
    for k in required:
        if k not in data:
            err(1, f"missing required field {k!r}")
    for k, t in fields.items():
        if k in data and not _type_ok(t, data[k]):
            err(L.key(k), f"{k!r} must be a {t}, not {type(data[k]).__name__}")
        elif k in data and k in required and t in (_STR, _LSTR) and not data[k]:
            err(L.key(k), f"{k!r} is empty")
    eid = data.get("id")
    if isinstance(eid, str) and Path(path).stem != eid:
        err(L.key("id"), f"id {eid!r} does not match the file name (expected {eid}.toml)")
    rb = data.get("runbook")
    if isinstance(rb, str) and rb and not re.match(r"(https?://|/|\./)", rb):
        err(L.key("runbook"), f"runbook must be a URL or a path, not {rb!r}")
    seen = data.get("seen_before")
    if _type_ok(_LDICT, seen) and seen is not None:
        for i, item in enumerate(seen):
            for k, v in item.items():
                if k not in SEEN_KEYS:
                    err(L.key("seen_before"), f"seen_before[{i}]: unknown key {k!r}")
                elif not _type_ok(SEEN_KEYS[k], v):
                    err(L.key("seen_before"), f"seen_before[{i}].{k} must be a {SEEN_KEYS[k]}")
            if "incident" not in item:
                err(L.key("seen_before"), f"seen_before[{i}]: missing 'incident'")
    for k in ("verify", "first_checks", "stabilize"):
        v = data.get(k)
        for t in ([v] if isinstance(v, str) else v if isinstance(v, list) else []):
            why = isinstance(t, str) and k != "stabilize" and shell.problem(t)
            if why:
                err(L.key(k), f"{k}: {why}")
    exs = data.get("examples")
    if isinstance(exs, list) and not exs and "examples" in data:
        err(L.key("examples"), "'examples' is empty: every entry needs at least one")
    if kind == "shape":
        errs += _lint_shape(path, data, L)
    else:
        errs += _lint_log(path, data, L)
    return errs


def _lint_shape(path: str, data: dict, L: _Lines) -> list[str]:
    errs = []
    if isinstance(data.get("shapes"), list):
        for s in data["shapes"]:
            if isinstance(s, str) and s not in SHAPES:
                errs.append(f"{path}:{L.key('shapes')}: unknown shape {s!r} (known: {', '.join(SHAPES)})")
    th = data.get("thresholds")
    if isinstance(th, dict):
        for k, v in th.items():
            line = L.key(k, L.key("thresholds"))
            if k not in THRESHOLD_KEYS:
                errs.append(f"{path}:{line}: thresholds: unknown key {k!r} (known: {', '.join(sorted(THRESHOLD_KEYS))})")
            elif k == "direction" and v not in ("up", "down", "any"):
                errs.append(f"{path}:{line}: thresholds.direction must be 'up', 'down' or 'any'")
            elif k != "direction" and not _num(v):
                errs.append(f"{path}:{line}: thresholds.{k} must be a number")
            elif k == "min_score" and not 0 <= v <= 1:
                errs.append(f"{path}:{line}: thresholds.min_score must be within 0..1")
    for i, ex in enumerate(data.get("examples") or []):
        if not isinstance(ex, dict):
            continue
        for k in ex:
            if k not in SHAPE_EXAMPLE_KEYS:
                errs.append(f"{path}:{L.example(i, k)}: example {i + 1}: unknown key {k!r}")
        try:
            _, v = example_series(ex)
        except ValueError as e:
            key = "timestamps" if str(e).startswith("time") else "values"
            errs.append(f"{path}:{L.example(i, key)}: example {i + 1}: {e}")
            continue
        if sum(x is not None for x in v) < MIN_EXAMPLE_POINTS:
            errs.append(f"{path}:{L.example(i, 'values')}: example {i + 1}: fewer than "
                        f"{MIN_EXAMPLE_POINTS} values: too short to judge")
        if "counter" in ex and not isinstance(ex["counter"], bool):
            errs.append(f"{path}:{L.example(i, 'counter')}: example {i + 1}: counter must be true or false")
        if "metric" in ex and not isinstance(ex["metric"], str):
            errs.append(f"{path}:{L.example(i, 'metric')}: example {i + 1}: metric must be a string")
    return errs


def _lint_log(path: str, data: dict, L: _Lines) -> list[str]:
    errs = []
    if isinstance(data.get("category"), str) and data["category"] not in CATEGORIES:
        errs.append(f"{path}:{L.key('category')}: unknown category {data['category']!r} "
                    f"(known: {', '.join(sorted(CATEGORIES))})")
    if isinstance(data.get("severity"), str) and data["severity"] not in SEVERITIES:
        errs.append(f"{path}:{L.key('severity')}: severity must be critical, warning or info")
    if isinstance(data.get("transport"), str) and data["transport"] != "kernel":
        errs.append(f"{path}:{L.key('transport')}: transport must be 'kernel' (or omitted)")
    rx = None
    if isinstance(data.get("pattern"), str):
        try:
            re.compile(data["pattern"])   # the stdlib's messages are the clearer ones
            rx = _catalog.compile_pattern(data["pattern"])
        except Exception as e:  # re.error, regex.error and friends
            errs.append(f"{path}:{L.key('pattern')}: pattern does not compile: {e}")
        else:
            why = _catalog.pattern_problem(data["pattern"])
            if why:
                errs.append(f"{path}:{L.key('pattern')}: pattern can backtrack catastrophically: {why}")
    if rx is not None and isinstance(data.get("subject"), list):
        for g in data["subject"]:
            if g not in rx.groupindex:
                errs.append(f"{path}:{L.key('subject')}: subject {g!r} is not a named group of the pattern")
    if rx is not None and isinstance(data.get("verify"), str):
        for name in shell.placeholders(data["verify"]):
            if name not in rx.groupindex and name != "cgroup":
                errs.append(f"{path}:{L.key('verify')}: placeholder {{{name}}} is not a named group of the pattern")
    for i, ex in enumerate(data.get("examples") or []):
        if not isinstance(ex, dict):
            continue
        for k in ex:
            if k not in LOG_EXAMPLE_KEYS:
                errs.append(f"{path}:{L.example(i, k)}: example {i + 1}: unknown key {k!r}")
        if not isinstance(ex.get("line"), str):
            errs.append(f"{path}:{L.example(i, 'line')}: example {i + 1}: 'line' must be a string")
        exp = ex.get("expect")
        if exp is not None and not (isinstance(exp, dict) and all(isinstance(x, str) for x in exp.values())):
            errs.append(f"{path}:{L.example(i, 'expect')}: example {i + 1}: 'expect' must be a table of strings")
    return errs


def files_of(paths) -> list[Path]:
    out: list[Path] = []
    for p in map(Path, paths):
        out += sorted(p.glob("*.toml")) if p.is_dir() else [p]
    return out


def sampled_problems(path: str, data: dict, text: str, sampled: dict[str, list[str]],
                     strict: bool = True) -> tuple[list[str], list[str]]:
    """(errors, notes): each `metrics` glob of a shape entry must cover a metric some collector
    samples. `sampled` is {collector: ["<collector>.<metric>", ...]} (passed in by the command: the
    matcher does not import collectors). A glob's [labels] are host values and not checked; a
    glob for a collector this build does not have is a note, not an error (catalogs outlive builds).
    Not `strict` (a user's catalog), a glob outside hostdiag's namespaces ('queue.depth', for
    `signatures match` on a site's own series) is a note; one inside them is still an error."""
    if data.get("kind", "shape") != "shape" or not isinstance(data.get("metrics"), list):
        return [], []
    L = _Lines(text)
    line = L.key("metrics")
    names = [m for ms in sampled.values() for m in ms]
    errs, notes = [], []
    for pat in data["metrics"]:
        if not isinstance(pat, str) or pat == "*":
            continue
        bare = pat.split("[", 1)[0]
        rx = glob_re(bare)
        if any(rx.match(m) for m in names):
            continue
        prefix = bare.split(".", 1)[0]
        if "." in bare and not any(c in prefix for c in "*?") and prefix in CATEGORIES and prefix not in sampled:
            notes.append(f"{path}:{line}: metric {pat!r}: collector {prefix!r} is not in this build")
            continue
        if not strict and prefix not in CATEGORIES:
            notes.append(f"{path}:{line}: metric {pat!r} is not one hostdiag samples: only `signatures match` "
                         "on your own series can match it")
            continue
        errs.append(f"{path}:{line}: metric {pat!r} is not sampled by any collector "
                    "(see `hostdiag collectors`; a metric must be one the snapshot samples)")
    for i, ex in enumerate(data.get("examples") or []):
        m = ex.get("metric") if isinstance(ex, dict) else None
        if isinstance(m, str) and not any(glob_re(p.split("[", 1)[0]).match(m.split("[", 1)[0])
                                          for p in data["metrics"] if isinstance(p, str)):
            errs.append(f"{path}:{L.example(i, 'metric')}: example metric {m!r} is not one of the entry's metrics")
    return errs, notes


def lint_paths(paths, *, shipped: bool = False,
               sampled: dict[str, list[str]] | None = None) -> tuple[list[str], int, list[str]]:
    """(errors, files checked, notes) for these files/directories (and the shipped catalog first
    if `shipped`). Files are read with the catalog's bounds. An id defined twice in one directory
    is an error; an id from an earlier directory (the shipped catalog) is an override: a note.
    With `sampled` ({collector: metrics}), shape metrics must be sampled ones (sampled_problems)."""
    errs: list[str] = []
    notes: list[str] = []
    ids: dict[str, tuple[str, bool]] = {}   # id -> (path, shipped)
    files = _catalog.read_files(paths, shipped=shipped)
    for f in files:
        if f.error:
            errs.append(f.error)
            continue
        data, e = _catalog.parse_text(f.path, f.text)
        if e:
            errs.append(e)
            continue
        errs += lint_data(f.path, data, f.text)
        if sampled is not None:
            e2, n2 = sampled_problems(f.path, data, f.text, sampled, strict=f.shipped)
            errs += e2
            notes += n2
        eid = data.get("id")
        if isinstance(eid, str):
            prev = ids.get(eid)
            line = _Lines(f.text).key("id")
            if prev and os.path.dirname(prev[0]) == os.path.dirname(f.path):
                errs.append(f"{f.path}:{line}: duplicate id {eid!r} (also in {prev[0]})")
                continue
            if prev:
                notes.append(f"{f.path}:{line}: overrides {'shipped ' if prev[1] else ''}{eid}"
                             + ("" if prev[1] else f" from {prev[0]}"))
            ids[eid] = (f.path, f.shipped)
    return errs, len(files), notes


def run_examples(cat, only_files=None) -> tuple[list[str], int]:
    """Run every example against the whole catalog: (failures, examples run)."""
    from hostdiag.matcher import match

    fails: list[str] = []
    n = 0
    wanted = {str(Path(p).resolve()) for p in only_files} if only_files is not None else None
    for e in sorted(cat.entries.values(), key=lambda e: e.path):
        if wanted is not None and str(Path(e.path).resolve()) not in wanted:
            continue
        L = _Lines(e.text)
        for i, ex in enumerate(e.data.get("examples") or []):
            if not isinstance(ex, dict):
                continue
            n += 1
            where = f"{e.path}:{L.example(i)}: example {i + 1}"
            if e.kind == "log":
                fails += _run_log_example(where, e.data, ex)
                continue
            try:
                t, v = example_series(ex)
            except ValueError as err:
                fails.append(f"{where}: {err}")
                continue
            metric = default_metric(e.data, ex)
            got = match(t, v, metric=metric, counter=bool(ex.get("counter")), catalog=cat)
            mine = [m for m in got if m.signature == e.id]
            if not got:
                fails.append(f"{where}: matched nothing (steady), expected {e.id}")
            elif got[0].signature != e.id:
                best = got[0]
                tail = (f"; {e.id} scored {mine[0].score:.2f}" if mine
                        else f"; {e.id} did not match (shapes {', '.join(e.data.get('shapes') or [])})")
                fails.append(f"{where}: best match is {best.signature or best.shape} "
                             f"({best.shape} {best.score:.2f}), not {e.id}{tail}")
    return fails, n


def _run_log_example(where: str, data: dict, ex: dict) -> list[str]:
    try:
        rx = _catalog.compile_pattern(data.get("pattern") or "")
    except Exception as err:  # regex.error and friends
        return [f"{where}: pattern does not compile: {err}"]
    line = ex.get("line")
    try:
        m = rx.search(line[:_catalog.MAX_MATCH_CHARS], timeout=_catalog.LINE_TIMEOUT_S) if isinstance(line, str) else None
    except TimeoutError:
        return [f"{where}: the pattern took over {_catalog.LINE_TIMEOUT_S * 1000:g} ms on this line"]
    if not m:
        return [f"{where}: line does not match the pattern"]
    out = []
    for k, want in (ex.get("expect") or {}).items():
        got = m.groupdict().get(k)
        if got != want:
            out.append(f"{where}: group {k!r} is {got!r}, expected {want!r}")
    return out

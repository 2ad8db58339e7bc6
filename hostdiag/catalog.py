"""The signature catalog: reviewed data files, one entry per TOML file, read with bounds.

Shipped entries live in signatures/ (installed as hostdiag.signatures, read through
importlib.resources so a zipapp works); user catalogs come from $HOSTDIAG_SIGNATURES
(os.pathsep-separated) and `--catalog DIR`, laid on top in that order: a user entry with a
shipped id replaces it, and that is said ("overrides shipped kernel.oom_kill") in `notes`.
Two kinds share the format (the fields are in FIELDS, the one schema load, lint and
signatures/README.md use):
  kind = "shape" (default)  a failure archetype matched against series (hostdiag.matcher)
  kind = "log"              a log/kernel-event pattern matched against log lines (journal)
A file that does not parse, is not a regular file or is over a cap never takes the others
down: it becomes an error string ("file:line: message"), reported by `signatures lint` and
as a blind spot in snapshot.

Load once per command (`load(dirs)`, or `for_context(ctx)`) and pass the Catalog down.
"""
from __future__ import annotations

import os
import re
import stat
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from hostdiag.core import isolate

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - 3.10
    import tomli as tomllib

ENV_VAR = "HOSTDIAG_SIGNATURES"
KINDS = ("shape", "log")
SEVERITIES = ("critical", "warning", "info")

# Bounds: a catalog dir is user input. Over a cap, a file is skipped and named in `errors`.
MAX_FILE_BYTES = 1 << 20      # per file; the largest shipped file is ~3 KB
MAX_TOTAL_BYTES = 16 << 20    # all files together
MAX_FILES = 1000              # per load; the shipped catalog has ~30
LOAD_TIMEOUT_S = 3.0          # reading + parsing, checked between files
# Log patterns: lines are cut to this before matching (kernel events are at the start), and
# one search may take this long before it is abandoned (the `regex` engine's timeout).
MAX_MATCH_CHARS = 8192
LINE_TIMEOUT_S = 0.05

# ---------------------------------------------------------------------------- schema

STR, LSTR, TABLE, LTABLE, DATE, BOOL, NUM = (
    "string", "list of strings", "table", "list of tables", "date", "boolean", "number")
BOTH = ("shape", "log")


class Field(NamedTuple):
    name: str
    type: str
    kinds: tuple[str, ...]        # which kinds may have it
    required: tuple[str, ...]     # which kinds must have it
    help: str


FIELDS: tuple[Field, ...] = (
    Field("id", STR, BOTH, BOTH, "unique id, `area.name`; the file is named `<id>.toml`. "
          "A user file with a shipped id replaces the shipped entry (reported as an override)"),
    Field("kind", STR, BOTH, ("log",), "`shape` (default) or `log`"),
    Field("title", STR, BOTH, BOTH, "one line a responder reads first; becomes the finding title"),
    Field("owner", STR, BOTH, BOTH, "team or person who reviews changes to this entry"),
    Field("shapes", LSTR, ("shape",), ("shape",),
          "shape names this archetype covers: stair_step, ramp, cliff_drop, flatline, oscillating, "
          "spike_then_settle, plateau_under_peak"),
    Field("metrics", LSTR, ("shape",), ("shape",),
          "metric globs (`*` and `?` only) the archetype applies to, e.g. `disk.used_bytes`; `*` = any"),
    Field("thresholds", TABLE, ("shape",), (),
          "optional gates: `min_score` (0..1), `direction` (up|down|any), `min_change_pct`"),
    Field("category", STR, ("log",), ("log",),
          "finding category: cpu, memory, io, disk, files, sockets, network, processes, journal, changes"),
    Field("severity", STR, ("log",), ("log",), "critical, warning or info: the finding's severity"),
    Field("transport", STR, ("log",), (), "`kernel` to match kernel messages only"),
    Field("unit", STR, ("log",), (), "only lines from this systemd unit or syslog identifier"),
    Field("pattern", STR, ("log",), ("log",),
          "regular expression searched in each line (first 8 KB); named groups `(?P<pid>...)` become "
          "evidence. No nested quantifiers (`(a+)+`) or overlapping alternatives under a star: lint "
          "rejects them, and a search over 50 ms is abandoned"),
    Field("subject", LSTR, ("log",), (),
          "named groups that identify one incident (e.g. pid, name): one finding per distinct subject"),
    Field("impact", STR, ("log",), (), "what breaks for users; the finding's impact line"),
    Field("looks_like", STR, ("shape",), ("shape",), "what the graph looks like, in words"),
    Field("likely_causes", LSTR, BOTH, ("shape",), "what usually causes it, most likely first"),
    Field("verify", STR, ("log",), ("log",),
          "one command that confirms it; `{group}` placeholders (outside quotes) are filled from the "
          "match, shell-quoted"),
    Field("first_checks", LSTR, BOTH, ("shape",),
          "commands to run first; `{pid}`-style placeholders are filled shell-quoted, and a line whose "
          "placeholder has no value is dropped"),
    Field("stabilize", LSTR, BOTH, BOTH, "what to do to stop the bleeding, safest first"),
    Field("avoid", LSTR, BOTH, (), "tempting actions that make it worse (shown as `Do not: ...`)"),
    Field("runbook", STR, BOTH, BOTH, "URL or path of the runbook"),
    Field("seen_before", LTABLE, BOTH, (),
          "past incidents: tables of `incident` (required), `date`, `broke`, `fixed`"),
    Field("examples", LTABLE, BOTH, BOTH,
          "test cases `hostdiag signatures test` runs: each must match this entry best (see below)"),
)

EXAMPLE_FIELDS: dict[str, dict[str, tuple[str, str]]] = {
    "shape": {"values": (LSTR.replace("strings", "numbers"), "the series (NaN/\"null\" for gaps); at least 8 values"),
              "timestamps": ("list", "epoch seconds or ISO-8601, as long as values (default: equally spaced)"),
              "metric": (STR, "the metric the example stands for (default: the first literal of `metrics`)"),
              "counter": (BOOL, "values are a monotonic counter: match its rate"),
              "note": (STR, "why this example is here")},
    "log": {"line": (STR, "a real log line that must match `pattern`"),
            "expect": (TABLE, "named groups and the exact strings they must capture"),
            "note": (STR, "why this example is here")},
}
THRESHOLD_KEYS = ("min_score", "direction", "min_change_pct")
SEEN_KEYS = {"incident": STR, "date": DATE, "broke": STR, "fixed": STR}


def fields(kind: str) -> dict[str, str]:
    """{field name: type} allowed for this kind."""
    return {f.name: f.type for f in FIELDS if kind in f.kinds}


def required(kind: str) -> tuple[str, ...]:
    return tuple(f.name for f in FIELDS if kind in f.required)


# ---------------------------------------------------------------------------- data


@dataclass
class Entry:
    id: str
    kind: str
    data: dict
    path: str
    text: str = ""          # the file's text (lint finds line numbers in it)
    shipped: bool = False


class LogPattern(NamedTuple):
    """A kind="log" entry, compiled once per catalog."""

    id: str
    rx: object              # the compiled pattern (re or regex)
    bounded_search: object  # rx.search with its time bound (see compile_search)
    transport: str | None
    unit: str | None
    subject: tuple[str, ...]
    data: dict

    def search(self, text: str) -> dict | None:
        """Named groups of the first match in the line's first MAX_MATCH_CHARS, else None.

        Raises TimeoutError when the search takes longer than LINE_TIMEOUT_S.
        """
        m = self.bounded_search(text[:MAX_MATCH_CHARS])
        if not m:
            return None
        return {k: v for k, v in m.groupdict().items() if v is not None}


@dataclass
class Catalog:
    entries: dict[str, Entry] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)   # "file:line: message": skipped files
    notes: list[str] = field(default_factory=list)    # "file: overrides shipped ID": used, but said
    _log: list[LogPattern] | None = field(default=None, repr=False)

    def of_kind(self, kind: str) -> list[Entry]:
        return [e for e in self.entries.values() if e.kind == kind]

    def log_patterns(self) -> list[LogPattern]:
        """The kind="log" entries compiled (once); an entry that cannot be used goes to errors."""
        if self._log is None:
            self._log = []
            for e in self.of_kind("log"):
                p, err = compile_log(e)
                if err:
                    self.errors.append(err)
                else:
                    self._log.append(p)
        return self._log


def regex_engine() -> str | None:
    """None when log patterns run with a per-line time bound, else why not (said as a blind spot)."""
    try:
        import regex  # noqa: F401
        return None
    except ImportError:
        return ("the regex package is not installed (pip install regex or apt-get install python3-regex): "
                "log patterns with unbounded repeats run without a per-line time bound")


def compile_pattern(text: str):
    """A log pattern compiled with the `regex` engine (for its timeout); an exception on bad syntax."""
    try:
        import regex  # lazy: 8 ms import, only when logs are matched
    except ImportError:   # a C extension: a zipapp or a bare host may lack it; regex_engine() says so
        return re.compile(text)
    return regex.compile(text)


def compile_search(text: str):
    """search(line) -> match or None, bounded: the stdlib engine for a bounded() pattern (work per
    start position is capped by the pattern itself; 25x cheaper than a timed call), else `regex`
    with LINE_TIMEOUT_S (raises TimeoutError). Returns (search, compiled pattern)."""
    if bounded(text):
        rx = re.compile(text)
        return rx.search, rx
    rx = compile_pattern(text)
    if isinstance(rx, re.Pattern):   # no regex package
        return rx.search, rx
    import functools

    return functools.partial(rx.search, timeout=LINE_TIMEOUT_S), rx


def compile_log(e: Entry) -> tuple[LogPattern | None, str | None]:
    d = e.data
    missing = [k for k in required("log") if k not in d]
    if missing:
        return None, f"{e.path}:1: kind=log entry lacks {', '.join(missing)}"
    if d["severity"] not in SEVERITIES:
        return None, f"{e.path}:1: severity must be critical, warning or info"
    if not isinstance(d["pattern"], str):
        return None, f"{e.path}:1: pattern must be a string"
    try:
        search, rx = compile_search(d["pattern"])
    except Exception as err:  # re.error, regex.error, and its internal errors on odd syntax
        return None, f"{e.path}:1: bad pattern: {err}"
    subj = d.get("subject") or ()
    return LogPattern(e.id, rx, search, d.get("transport"), d.get("unit"), tuple(map(str, subj)), d), None


# ---------------------------------------------------------------------------- regex safety
# A backtracking engine goes exponential (or quadratic per start position) when one stretch of
# text can be split between repeats in many ways: a repeat inside an unbounded repeat, `(a+)+`,
# or alternatives under a star that can start with the same character, `(a|ab)*`. The `regex`
# engine's timeout bounds the damage at run time; lint keeps such patterns out of the catalog.
# A pattern with only small bounded repeats and no trap runs on the faster stdlib engine.

def _parse(pattern: str):
    try:
        import re._parser as sre  # 3.11+
        from re import _constants as C
    except ImportError:  # pragma: no cover - 3.10
        import sre_constants as C  # type: ignore[no-redef]
        import sre_parse as sre  # type: ignore[no-redef]
    try:
        tree = sre.parse(pattern)
    except (re.error, RecursionError, OverflowError):
        return None, C
    return (tree.data if hasattr(tree, "data") else tree), C


# \d, \s, \w as sets for overlap tests: ASCII, plus one stand-in each for their non-ASCII members
# (-1 a non-ASCII digit, also a word character; -2 a non-ASCII letter; -3 a non-ASCII space).
_DIGITS = set(range(48, 58)) | {-1}
_SPACES = {9, 10, 11, 12, 13, 28, 29, 30, 31, 32, -3}
_WORD = _DIGITS | set(range(65, 91)) | set(range(97, 123)) | {95, -2}


def _categories() -> dict:
    try:
        from re import _constants as C
    except ImportError:  # pragma: no cover - 3.10
        import sre_constants as C  # type: ignore[no-redef]
    return {C.CATEGORY_DIGIT: _DIGITS, C.CATEGORY_SPACE: _SPACES, C.CATEGORY_WORD: _WORD}


_CATEGORIES = _categories()


def _first(items, C) -> set | None:
    """Characters the sequence can start with; None = any or unknown (treated as overlapping)."""
    for op, av in items:
        if op in (C.AT,) or op in (C.ASSERT, C.ASSERT_NOT):
            continue
        if op == C.LITERAL:
            return {av}
        if op == C.IN:
            out: set = set()
            for iop, iav in av:
                if iop == C.LITERAL:
                    out.add(iav)
                elif iop == C.RANGE and iav[1] - iav[0] < 512:
                    out.update(range(iav[0], iav[1] + 1))
                elif iop == C.CATEGORY and iav in _CATEGORIES:
                    out |= _CATEGORIES[iav]
                else:
                    return None
            return out
        if op == C.SUBPATTERN:
            return _first(av[-1], C)
        if op in (C.MAX_REPEAT, C.MIN_REPEAT):
            return _first(av[2], C) if av[0] > 0 else None
        if op == C.BRANCH:
            out = set()
            for alt in av[1]:
                f = _first(alt, C)
                if f is None:
                    return None
                out |= f
            return out
        return None
    return None   # empty: matches the empty string


def _empty(items, C) -> bool:
    """The sequence can match the empty string (unknown counts as not)."""
    for op, av in items:
        if op in (C.AT, C.ASSERT, C.ASSERT_NOT) or (op in (C.MAX_REPEAT, C.MIN_REPEAT) and av[0] == 0):
            continue
        if op == C.SUBPATTERN and _empty(av[-1], C):
            continue
        if op == C.BRANCH and any(_empty(alt, C) for alt in av[1]):
            continue
        return False
    return True


def _side_by_side(items, C) -> bool:
    """Two repeats, with only optional items between them, that can match the same characters
    (\\w{0,500}\\s{0,2}\\w{0,500}): the engine tries every split of a run between them at every
    start position, n^2 or n^3 steps per line although every repeat is small. Groups are inlined."""
    def flat(items):
        for op, av in items:
            yield from flat(av[-1]) if op == C.SUBPATTERN else [(op, av)]

    open_: list = []    # earlier repeats that only optional items separate from here
    for op, av in flat(items):
        inner = (av[2] if op in (C.MAX_REPEAT, C.MIN_REPEAT) else av[1] if op in (C.ASSERT, C.ASSERT_NOT)
                 else None)
        if inner is not None and _side_by_side(inner, C) or \
                op == C.BRANCH and any(_side_by_side(alt, C) for alt in av[1]):
            return True
        if op in (C.MAX_REPEAT, C.MIN_REPEAT) and av[1] > 1:
            b = _first(av[2], C)
            if any(a is None or b is None or a & b for a in map(lambda r: _first(r[2], C), open_)):
                return True
            open_ = [*open_, av] if av[0] == 0 else [av]
        elif not _empty([(op, av)], C):
            open_ = []
    return False


def bounded(pattern: str) -> bool:
    """Every repeat has a small upper bound ({0,64}, not * or +) and the pattern has no
    backtracking trap: the work per start position is bounded, so the stdlib engine is safe."""
    items, C = _parse(pattern)
    if items is None or pattern_problem(pattern) or _side_by_side(items, C):
        return False

    def ok(items) -> bool:
        for op, av in items:
            if op in (C.MAX_REPEAT, C.MIN_REPEAT):
                if av[1] == C.MAXREPEAT or av[1] > 1024 or not ok(av[2]):
                    return False
            elif op == C.BRANCH:
                if not all(ok(alt) for alt in av[1]):
                    return False
            elif op == C.SUBPATTERN:
                if not ok(av[-1]):
                    return False
            elif op in (C.ASSERT, C.ASSERT_NOT):
                if not ok(av[1]):
                    return False
            elif op in (C.GROUPREF, C.GROUPREF_EXISTS):
                return False
        return True
    return ok(items)


def pattern_problem(pattern: str) -> str | None:
    """Why this pattern can backtrack catastrophically, or None. Judged on the `re` parse tree."""
    tree, C = _parse(pattern)
    if tree is None:
        return None   # the regex engine accepted it; syntax re cannot read is not judged here

    repeats = (C.MAX_REPEAT, C.MIN_REPEAT)

    def walk(items, star: bool) -> str | None:
        for op, av in items:
            if op in repeats:
                lo, hi, sub = av
                if star and hi > 1:
                    return "a repeat inside an unbounded repeat (nested quantifiers, like (a+)+)"
                unbounded = hi == C.MAXREPEAT or hi > 64
                why = walk(sub, star or unbounded)
                if why:
                    return why
            elif op == C.BRANCH:
                if star:
                    seen: set = set()
                    for alt in av[1]:
                        f = _first(alt, C)
                        if f is None or f & seen:
                            return "alternatives under a repeat that can start with the same character (like (a|ab)*)"
                        seen |= f
                for alt in av[1]:
                    why = walk(alt, star)
                    if why:
                        return why
            elif op == C.SUBPATTERN:
                why = walk(av[-1], star)
                if why:
                    return why
            elif op in (C.ASSERT, C.ASSERT_NOT):
                why = walk(av[1], star)
                if why:
                    return why
        return None

    return walk(tree, False)


# ---------------------------------------------------------------------------- reading


class File(NamedTuple):
    path: str
    text: str | None        # None when it could not be read (then `error` says why)
    error: str | None
    shipped: bool


# The Debian package's place for local archetypes (kept through upgrades, like any /etc file).
SITE_DIR = "/etc/hostdiag/signatures.d"


def user_dirs(extra=()) -> list[Path]:
    """User catalog directories: /etc/hostdiag/signatures.d if present, $HOSTDIAG_SIGNATURES,
    then --catalog, in that order (a later one overrides an earlier one's id, and says so)."""
    site = [Path(SITE_DIR)] if os.path.isdir(SITE_DIR) else []
    env = [p for p in os.environ.get(ENV_VAR, "").split(os.pathsep) if p]
    return [*site, *map(Path, env), *map(Path, extra)]


def _shipped_files():
    """The shipped catalog as importlib.resources Traversables (works from a zipapp too)."""
    from importlib.resources import files

    root = files("hostdiag.signatures")
    return sorted((t for t in root.iterdir() if t.name.endswith(".toml")), key=lambda t: t.name)


class _Budget:
    def __init__(self):
        self.files = 0
        self.bytes = 0
        self.end = time.monotonic() + LOAD_TIMEOUT_S
        self.skipped: list[str] = []   # paths not read because a count or time cap was hit


def _read_user_file(path: str, budget: _Budget) -> File:
    """One user file, read only if it is a regular file within the caps (never blocks: O_NONBLOCK)."""
    def bad(msg):
        return File(path, None, f"{path}:1: {msg}", False)
    try:
        st = os.stat(path)   # follows a symlink: what matters is what it points at
    except OSError as e:
        return bad(f"cannot read: {e.strerror}")
    if not stat.S_ISREG(st.st_mode):
        return bad("not a regular file (FIFO, device, socket or directory): skipped")
    if st.st_size > MAX_FILE_BYTES:
        return bad(f"{st.st_size} bytes, over the {MAX_FILE_BYTES >> 20} MB per-file cap: skipped")
    if budget.bytes + st.st_size > MAX_TOTAL_BYTES:
        return bad(f"catalog total over {MAX_TOTAL_BYTES >> 20} MB: skipped")
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | getattr(os, "O_NOCTTY", 0))
    except OSError as e:
        return bad(f"cannot read: {e.strerror}")
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):   # swapped after the stat
            return bad("not a regular file: skipped")
        chunks, left = [], MAX_FILE_BYTES + 1
        while left > 0 and (b := os.read(fd, min(left, 1 << 16))):
            chunks.append(b)
            left -= len(b)
    except OSError as e:
        return bad(f"cannot read: {e.strerror}")
    finally:
        os.close(fd)
    raw = b"".join(chunks)
    if len(raw) > MAX_FILE_BYTES:
        return bad(f"over the {MAX_FILE_BYTES >> 20} MB per-file cap: skipped")
    budget.bytes += len(raw)
    try:
        return File(path, raw.decode("utf-8"), None, False)
    except UnicodeDecodeError as e:
        return bad(f"not UTF-8: {e}")


def _toml_in(d: Path) -> list[str]:
    with os.scandir(d) as it:
        return sorted(e.path for e in it if e.name.endswith(".toml"))


def read_files(paths=(), *, shipped: bool = True, budget: _Budget | None = None) -> list[File]:
    """Catalog files, bounded: the shipped ones (if `shipped`), then each path (a dir or a file)."""
    budget = budget or _Budget()
    out: list[File] = []
    if shipped:
        for t in _shipped_files():
            out.append(File(str(t), t.read_bytes().decode("utf-8", "replace"), None, True))
    for p in map(Path, paths):
        if why := isolate.answers(str(p)):
            out.append(File(str(p), None, f"{p}:1: {why}", False))
            continue
        try:
            names = _toml_in(p) if p.is_dir() else [str(p)]
        except OSError as e:
            out.append(File(str(p), None, f"{p}:1: cannot list: {e.strerror}", False))
            continue
        if not p.is_dir() and not p.exists():
            out.append(File(str(p), None, f"{p}:1: catalog directory or file not found", False))
            continue
        for name in names:
            if budget.files >= MAX_FILES or time.monotonic() >= budget.end:
                budget.skipped.append(name)
                continue
            budget.files += 1
            out.append(_read_user_file(name, budget))
    if budget.skipped:
        why = (f"over the {MAX_FILES}-file cap" if budget.files >= MAX_FILES
               else f"catalog loading took over {LOAD_TIMEOUT_S:g}s")
        out.append(File(budget.skipped[0], None, f"{budget.skipped[0]}:1: {len(budget.skipped)} catalog "
                        f"files not read ({why}), this one first", False))
    return out


def parse_text(path: str, text: str) -> tuple[dict | None, str | None]:
    """(data, None) or (None, 'file:line: message')."""
    try:
        return tomllib.loads(text), None
    except tomllib.TOMLDecodeError as e:
        m = re.search(r"\(at line (\d+)", str(e))
        return None, f"{path}:{m.group(1) if m else 1}: {re.sub(r' ?[(]at line.*', '', str(e))}"
    except RecursionError:
        return None, f"{path}:1: nested too deeply"


def load(extra_dirs=()) -> Catalog:
    """The shipped catalog plus $HOSTDIAG_SIGNATURES and `extra_dirs`, each file bounded."""
    cat = Catalog()
    seen_in: dict[str, dict[str, str]] = {}    # per directory: id -> path (duplicates within one dir)
    for f in read_files(user_dirs(extra_dirs)):
        if f.error:
            cat.errors.append(f.error)
            continue
        data, err = parse_text(f.path, f.text)
        if err:
            cat.errors.append(err)
            continue
        eid = data.get("id")
        if not isinstance(eid, str) or not eid:
            cat.errors.append(f"{f.path}:1: missing string field 'id'")
            continue
        here = seen_in.setdefault(os.path.dirname(f.path), {})
        if eid in here:
            cat.errors.append(f"{f.path}:1: duplicate id {eid!r} (also in {here[eid]})")
            continue
        here[eid] = f.path
        old = cat.entries.get(eid)
        if old is not None:
            cat.notes.append(f"{f.path}: overrides {'shipped ' if old.shipped else ''}{eid}"
                             + ("" if old.shipped else f" from {old.path}"))
        kind = data.get("kind", "shape")
        cat.entries[eid] = Entry(eid, kind if isinstance(kind, str) else str(kind), data, f.path, f.text, f.shipped)
    return cat


def for_context(ctx) -> Catalog:
    """The Context's catalog: the one the command loaded, else loaded once from ctx.catalog_dirs."""
    if ctx.catalog is None:
        object.__setattr__(ctx, "catalog", load(ctx.catalog_dirs))   # frozen Context: set once, here only
    return ctx.catalog


def schema_markdown() -> str:
    """The field tables of signatures/README.md, generated from FIELDS (a test keeps them equal)."""
    def req(f: Field) -> str:
        return ", ".join(f"{k}" for k in f.required) or "no"
    rows = ["| field | type | kinds | required for | meaning |", "|---|---|---|---|---|"]
    rows += [f"| `{f.name}` | {f.type} | {', '.join(f.kinds)} | {req(f)} | {f.help} |" for f in FIELDS]
    for kind, ex in EXAMPLE_FIELDS.items():
        rows += ["", f"`[[examples]]` of a {kind} entry:", "", "| key | type | meaning |", "|---|---|---|"]
        rows += [f"| `{k}` | {t} | {h} |" for k, (t, h) in ex.items()]
    return "\n".join(rows) + "\n"

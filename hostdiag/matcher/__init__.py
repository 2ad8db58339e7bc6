"""The signature matcher: name the shape of a series and map shape + metric to an archetype.

Public API (numpy is imported on the first call, never at package import):

    from hostdiag import catalog
    from hostdiag.matcher import match, analyse

    cat = catalog.load()                       # once; pass it to every match() call
    matches = match(t, v, metric="memory.available_bytes", counter=False, catalog=cat)
    for m in matches:                          # best first; [] = steady / too short / constant
        m.shape        # "stair_step" | "ramp" | "cliff_drop" | "flatline" | "oscillating"
                       # | "spike_then_settle" | "plateau_under_peak"
        m.signature    # archetype id ("memory.leak_stair_step", "shape.ramp") or None
        m.score        # 0..1, calibrated: about that share of matches at that score were right
                       # on the labelled real-metric corpus; only >= MIN_SCORE (0.5) is returned
        m.start, m.end # the interval where the shape holds, in the units of t
        m.why          # one line with numbers: "3 steps of +180M each, 12 min apart, no recovery"
        m.title, m.first_checks, m.stabilize, m.avoid, m.runbook   # from the archetype
        m.facts        # direction (+1/-1/0), change, slope_per_s, period_s, level_before/after
        m.to_dict()    # {"shape","signature","score","start","end","why"} for JSON

- t: timestamps (epoch or monotonic seconds; any order, irregular, gaps fine) or None for
  equally spaced points; v: numbers, None or NaN for missing samples. Lengths 5..100,000+.
- counter=True: v is a monotonically increasing counter (cpu.busy_s): it is turned into
  per-second rates first and intervals where it went backwards (reset, wrap) are dropped.
- metric: the snapshot metric name ("sockets.close_wait") or series key with labels
  ("disk.used_bytes[mount=/var/log]"). An archetype's `metrics` globs (* and ? only; [ and ]
  are literal) are tried against the key and against the bare name. Without a metric only
  the generic shape.* archetypes apply.
- analyse(t, v, counter=...) -> Analysis(status "ok"|"too_short"|"constant", note, hits, points,
  all_scores, explain) when you want the reason for "no match" ("too short to judge: 5 usable
  points (need 8)") or every detector's features and verdict (explain; `match --explain`).
- Before matching a host metric, ask hostdiag.matcher.metrics.worth_matching(key, unit, values):
  load averages, PSI averages and idle counters make shapes of their own, and a shape must clear
  a minimum effect in the metric's unit (numpy-free, cheap).

Ranking: by score; at equal score a metric-specific archetype beats a generic one, and a more
specific metric pattern beats a looser one. Archetype `thresholds` (all optional):
min_score (0..1), direction ("up" | "down" | "any"), min_change_pct (|change| / |level before|).
"""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field

SHAPES = ("stair_step", "ramp", "cliff_drop", "flatline", "oscillating", "spike_then_settle",
          "plateau_under_peak")
MIN_SCORE = 0.5
GENERIC = "*"


@dataclass
class Match:
    shape: str
    signature: str | None
    score: float
    start: float
    end: float
    why: str
    title: str | None = None
    first_checks: list = field(default_factory=list)
    stabilize: list = field(default_factory=list)
    avoid: list = field(default_factory=list)
    runbook: str | None = None
    facts: dict = field(default_factory=dict)

    def checks(self, subject: dict | None = None) -> list[str]:
        """first_checks with {name} filled from the subject (each value one shell word); a line
        with a placeholder the subject cannot fill is dropped, never printed half-filled."""
        from hostdiag.core import shell

        return [c for c in (shell.fill(x, subject or {}) for x in self.first_checks if isinstance(x, str)) if c]

    def to_dict(self) -> dict:
        """The JSON fields of `signatures match --json`."""
        d = asdict(self)
        return {k: d[k] for k in ("shape", "signature", "score", "start", "end", "why")}


def glob_re(pattern: str) -> re.Pattern:
    """A metric glob: * and ? are wildcards, everything else (including [ ]) is literal."""
    return re.compile("".join(".*" if ch == "*" else "." if ch == "?" else re.escape(ch)
                              for ch in pattern) + r"\Z")


def metric_matches(pattern: str, metric: str | None) -> bool:
    """Does this archetype metric glob cover the metric (key with labels, or bare name)?"""
    if pattern == GENERIC:
        return True
    if not metric:
        return False
    rx = glob_re(pattern)
    return bool(rx.match(metric) or ("[" in metric and rx.match(metric.split("[", 1)[0])))


def _specificity(pattern: str) -> int:
    return -1 if pattern == GENERIC else len(pattern.replace("*", "").replace("?", ""))


def _passes(th: dict, hit) -> bool:
    if hit.score < float(th.get("min_score", 0)):
        return False
    d = th.get("direction", "any")
    sign = hit.facts.get("direction", 0)
    if d == "up" and sign < 0 or d == "down" and sign > 0:
        return False
    pct = th.get("min_change_pct")
    if pct is not None:
        before, change = hit.facts.get("level_before"), hit.facts.get("change")
        if before is None or change is None:
            return False
        if before != 0 and abs(change) / abs(before) * 100 < float(pct):
            return False
    return True


_DEFAULT_CATALOG = None


def _default_catalog():
    global _DEFAULT_CATALOG
    if _DEFAULT_CATALOG is None:
        from hostdiag import catalog

        _DEFAULT_CATALOG = catalog.load()
    return _DEFAULT_CATALOG


def archetypes_for(hit, metric: str | None, cat) -> list[tuple[int, object]]:
    """[(specificity, entry)] of the shape archetypes that fit this hit, most specific first."""
    out = []
    for e in cat.of_kind("shape"):
        d = e.data
        if hit.shape not in (d.get("shapes") or []):
            continue
        pats = [p for p in (d.get("metrics") or []) if isinstance(p, str) and metric_matches(p, metric)]
        if not pats:
            continue
        th = d.get("thresholds") or {}
        if isinstance(th, dict) and not _passes(th, hit):
            continue
        out.append((max(_specificity(p) for p in pats), e))
    out.sort(key=lambda x: (-x[0], x[1].id))
    return out


def _to_match(hit, entry) -> Match:
    d = entry.data if entry else {}
    return Match(hit.shape, entry.id if entry else None, hit.score, hit.start, hit.end, hit.why,
                 d.get("title"), list(d.get("first_checks") or []), list(d.get("stabilize") or []),
                 list(d.get("avoid") or []), d.get("runbook"), dict(hit.facts))


def match(t, v, *, metric: str | None = None, counter: bool = False, catalog=None) -> list[Match]:
    """Ranked matches for one series (best first); [] means steady, constant or too short."""
    return match_analysis(analyse(t, v, counter=counter), metric=metric, catalog=catalog)


def match_analysis(an, *, metric: str | None = None, catalog=None) -> list[Match]:
    """Attach archetypes to an Analysis' shape hits and rank them."""
    cat = catalog if catalog is not None else _default_catalog()
    ranked = []
    for hit in an.hits:
        cands = archetypes_for(hit, metric, cat)
        specific = [(s, e) for s, e in cands if s >= 0]
        chosen = specific or cands[:1] or [(-2, None)]
        for spec, entry in chosen:
            ranked.append((-hit.score, -spec, entry.id if entry else "", _to_match(hit, entry)))
    ranked.sort(key=lambda r: r[:3])
    return [r[3] for r in ranked]


def analyse(t, v, *, counter: bool = False):
    """Shape analysis without archetypes: Analysis(status, note, hits, points)."""
    from hostdiag.matcher import shapes

    return shapes.analyse(t, v, counter=counter)

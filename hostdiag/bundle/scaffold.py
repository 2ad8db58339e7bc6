"""`hostdiag signatures new ID --from-bundle FILE --series KEY` (or `--from-csv FILE`): from the
postmortem back into the catalog.

Writes ID.toml: the shape the matcher sees in the incident's own series, its metric, the
incident under seen_before, and the series (trimmed to the matched interval) as examples, plus
TODO text for causes and fix. Before writing, the examples are run against the catalog with the
new entry in it, so the file passes `signatures lint` and `signatures test` as written.

Specificity: an archetype for a labelled series covers every value of its labels
(`processes.fds[pid=*]`), which is more specific than a shipped `processes.fds` entry. For an
unlabelled metric a shipped archetype already covers (memory.available_bytes), the two would tie
and the id order would decide; the scaffold then also covers the metric labelled with the
incident (`memory.available_bytes[incident=*]`) and uses that label in its examples, and says
so: the responder decides what makes the new archetype different (thresholds, a narrower metric).
"""
from __future__ import annotations

import datetime as dt
import json
import re

from hostdiag.core.sanitize import clean

ID_RX = re.compile(r"^[a-z0-9_]+(\.[a-z0-9_]+)+$")
MAX_EXAMPLE_POINTS = 240
MARGIN = 0.25               # of the matched interval's length, kept on each side of it


class ScaffoldError(ValueError):
    """Why no scaffold was written; one line for the user."""


def _toml_str(s: str) -> str:
    # A JSON string is a valid TOML basic string for the characters json.dumps emits (ASCII, \\uXXXX).
    return json.dumps(str(s), ensure_ascii=True)


def _toml_list(xs) -> str:
    return "[" + ", ".join(_toml_str(x) for x in xs) + "]"


def _num(x: float) -> str:
    if x == int(x) and abs(x) < 1e15:
        return str(int(x))
    return repr(round(float(x), 6))


def series_from_bundle(raw, key: str) -> tuple[dict, dict]:
    """(series dict from snapshot.json, incident info) from a bundle stream; verifies it first."""
    from hostdiag.bundle.verify import verify

    res = verify(raw, keep=lambda n: n == "snapshot.json")
    if not res.ok:
        raise ScaffoldError("bundle does not verify: " + "; ".join(res.problems[:3]))
    try:
        doc = json.loads(res.members["snapshot.json"])
    except (KeyError, ValueError):
        raise ScaffoldError("bundle has no readable snapshot.json") from None
    series = doc.get("series") or {}
    if key not in series:
        near = [k for k in series if key.split("[")[0] in k][:8]
        raise ScaffoldError(f"no series {key!r} in the bundle" + (f"; there is: {', '.join(near)}" if near else
                                                                  f"; {len(series)} series, e.g. {', '.join(list(series)[:5])}"))
    man = res.manifest or {}
    start = (man.get("collection") or {}).get("start") or doc.get("collected_at") or ""
    info = {"incident": man.get("incident") or "unknown-incident",
            "date": start[:10] if re.match(r"\d{4}-\d\d-\d\d", start) else None,
            "broke": ((doc.get("headline") or {}).get("condition") or "")[:160]}
    return series[key], info


def _example_window(t: list[float], v: list, start: float, end: float) -> tuple[list, list]:
    span = max(end - start, 1e-9)
    lo, hi = start - MARGIN * span, end + MARGIN * span
    pts = [(a, b) for a, b in zip(t, v) if a is not None and lo <= a <= hi]
    if len([p for p in pts if p[1] is not None]) < 8:
        pts = list(zip(t, v))
    step = max(1, -(-len(pts) // MAX_EXAMPLE_POINTS))
    pts = pts[::step]
    return [round(a - pts[0][0], 3) for a, _ in pts], [b for _, b in pts]


def _wins(cat, eid: str, data: dict, t, v, metric: str, counter: bool) -> tuple[bool, str]:
    from hostdiag.catalog import Catalog, Entry
    from hostdiag.matcher import match

    trial = Catalog(entries={**cat.entries, eid: Entry(eid, "shape", data, "<new>")}, errors=[])
    got = match(t, v, metric=metric, counter=counter, catalog=trial)
    if not got:
        return False, "matched nothing"
    return got[0].signature == eid, f"{got[0].signature or got[0].shape} ({got[0].shape} {got[0].score:.2f})"


def build(eid: str, t: list | None, v: list, *, metric: str, counter: bool, labels: dict, incident: dict,
          catalog) -> tuple[str, list[str]]:
    """(TOML text, notes). Raises ScaffoldError when the series has no shape to encode."""
    from hostdiag.matcher import analyse

    if not ID_RX.match(eid):
        raise ScaffoldError(f"id {eid!r}: use lowercase dotted words, e.g. memory.batch_leak")
    if eid in catalog.entries:
        raise ScaffoldError(f"id {eid!r} already exists in the catalog ({catalog.entries[eid].path})")
    if t is None:
        t = [float(i) for i in range(len(v))]
    an = analyse(t, v, counter=counter)
    if not an.hits:
        raise ScaffoldError(f"the series has no shape to encode: {an.note} ({an.points} points)")
    hit = an.hits[0]
    bare = metric.split("[", 1)[0]
    pattern = bare + ("[" + ",".join(f"{k}=*" for k in sorted(labels)) + "]" if labels else "")
    ex_metric = metric
    ex_t, ex_v = _example_window(t, v, hit.start, hit.end)
    direction = hit.facts.get("direction", 0)
    data = {"id": eid, "kind": "shape", "shapes": [hit.shape], "metrics": [pattern],
            "thresholds": {"direction": "up" if direction > 0 else "down" if direction < 0 else "any"}}
    notes = []
    ok, best = _wins(catalog, eid, data, ex_t, ex_v, ex_metric, counter)
    if not ok:
        ex_t, ex_v = _example_window(t, v, min(t), max(t))    # the whole series, not just the interval
        ok, best = _wins(catalog, eid, data, ex_t, ex_v, ex_metric, counter)
    if not ok and not labels:
        data["metrics"] = [pattern, f"{bare}[incident=*]"]
        ex_metric = f"{bare}[incident={incident['incident']}]"
        ok, best = _wins(catalog, eid, data, ex_t, ex_v, ex_metric, counter)
        if ok:
            notes.append(f"{bare} is already covered by a catalog archetype at the same specificity: "
                         f"the examples use the metric {ex_metric} so this entry is the most specific for them; "
                         "decide what sets this archetype apart (thresholds, a narrower metric)")
    if not ok:
        raise ScaffoldError(f"the series' best match would still be {best}: the shape is already encoded there "
                            "(hostdiag signatures show ID), or tighten the new entry by hand")
    seen = [f"incident = {_toml_str(incident['incident'])}"]
    if incident.get("date"):
        seen.append(f"date = {incident['date']}")
    seen.append(f"broke = {_toml_str(incident.get('broke') or 'TODO: what broke')}")
    seen.append('fixed = "TODO: what fixed it"')
    th = data["thresholds"]
    inc = incident["incident"]
    title = f"TODO: {bare} {hit.shape.replace('_', ' ')} as in {inc}"
    lines = [
        f"# Scaffold from {clean(inc)} by `hostdiag signatures new`: fill in every TODO,",
        "# then run `hostdiag signatures lint` and `hostdiag signatures test` on this file.",
        f"id = {_toml_str(eid)}",
        'kind = "shape"',
        f"title = {_toml_str(title)}",
        'owner = "TODO-team"',
        f"shapes = {_toml_list(data['shapes'])}",
        f"metrics = {_toml_list(data['metrics'])}",
        f"thresholds = {{ direction = {_toml_str(th['direction'])} }}",
        f"looks_like = {_toml_str(inc + ': ' + hit.why)}",
        'likely_causes = ["TODO: the cause found in the postmortem"]',
        f"first_checks = {_toml_list([f'hostdiag signatures match SERIES.csv --metric {bare}'])}",
        'stabilize = ["TODO: what stabilized it"]',
        'avoid = ["TODO: what made it worse, or did not help"]',
        f"runbook = {_toml_str('https://runbooks.example/' + eid)}",
        "seen_before = [",
        "    { " + ", ".join(seen) + " },",
        "]",
        "",
        "[[examples]]",
        f"note = {_toml_str(f'the {metric} series of {inc}, trimmed to the matched interval')}",
        f"metric = {_toml_str(ex_metric)}",
    ]
    if counter:
        lines.append("counter = true")
    lines.append("timestamps = [" + ", ".join(_num(x) for x in ex_t) + "]")
    lines.append("values = [" + ", ".join("nan" if x is None else _num(x) for x in ex_v) + "]")
    return "\n".join(lines) + "\n", notes


def run(eid: str, *, from_bundle: str | None, from_csv: str | None, series_key: str | None, metric: str | None,
        incident: str | None, counter: bool, out_dir: str, catalog_dirs=()) -> tuple[str, list[str]]:
    """Write DIR/ID.toml (0600, never over an existing file); return (path, notes)."""
    import os
    import sys

    from hostdiag import catalog as catalog_mod
    from hostdiag.core.safeio import write_file

    if bool(from_bundle) == bool(from_csv):
        raise ScaffoldError("give exactly one of --from-bundle FILE or --from-csv FILE")
    if from_bundle:
        if not series_key:
            raise ScaffoldError("--from-bundle needs --series KEY (a key of the snapshot's series, e.g. memory.available_bytes)")
        raw = sys.stdin.buffer if from_bundle == "-" else open(from_bundle, "rb")
        with raw:
            s, info = series_from_bundle(raw, series_key)
        t0 = s.get("t0") or 0.0
        t = [t0 + x for x in s.get("t") or []]
        v = s.get("v") or []
        counter = bool(s.get("counter")) or counter
        labels = s.get("labels") or {}
        metric = series_key
        if incident:
            info["incident"] = incident
    else:
        from hostdiag.matcher.series_io import read_series

        with open(from_csv, encoding="utf-8") as f:
            t, v = read_series(f.read(4 << 20))
        metric = metric or series_key
        if not metric:
            raise ScaffoldError("--from-csv needs --metric NAME (what the series is, e.g. memory.available_bytes)")
        labels = dict(re.findall(r"([\w.-]+)=([^,\]]*)", metric.split("[", 1)[1])) if "[" in metric else {}
        info = {"incident": incident or "unknown-incident", "date": dt.date.today().isoformat(), "broke": None}
    cat = catalog_mod.load(list(catalog_dirs))
    text, notes = build(eid, t, v, metric=metric, counter=counter, labels=labels, incident=info, catalog=cat)
    path = write_file(os.path.join(out_dir, f"{eid}.toml"), text.encode("utf-8"))
    return path, notes

"""`signatures match --prometheus`: the matcher over every series of a Prometheus range query.

One range query (POST /api/v1/query_range, urllib only); each returned series is matched on
its own and named by its host (`instance`, else `host`/`hostname`/`node`, else its labels).
Errors are PromError with a one-line reason: unreachable server, HTTP error, bad query,
a result that is not a matrix, a body over MAX_BODY.
"""
from __future__ import annotations

import json
import math
import os
import re
import time
import urllib.error
import urllib.parse
import urllib.request

HOST_LABELS = ("instance", "host", "hostname", "node")
TOKEN_ENV = "HOSTDIAG_PROM_TOKEN"
MAX_BODY = 256 << 20          # 1,000 series x 360 points is ~15 MB of JSON
MAX_TOKEN = 16 << 10
_DUR = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
_UNIT = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


class PromError(Exception):
    """Prometheus could not answer the query; str() is the one-line reason."""


def parse_duration(s: str) -> float:
    """'6h', '1m', '1h30m', '90s', '15' (seconds) -> seconds; ValueError otherwise."""
    s = str(s).strip()
    try:
        x = float(s)
    except ValueError:
        parts = _DUR.findall(s)
        if not parts or "".join(a + b for a, b in parts) != s:
            raise ValueError(f"not a duration: {s!r} (e.g. 6h, 1m, 1h30m, 90s)") from None
        x = sum(float(a) * _UNIT[b] for a, b in parts)
    if not math.isfinite(x) or x <= 0:
        raise ValueError(f"not a positive duration: {s!r}")
    return x


def read_token(path: str | None) -> str | None:
    """The bearer token from a file (first line), else $HOSTDIAG_PROM_TOKEN, else None."""
    if path:
        try:
            with open(path, "rb") as f:
                tok = f.read(MAX_TOKEN).decode("utf-8", "replace").strip().splitlines()
        except OSError as e:
            raise PromError(f"--bearer-token-file {path}: {e.strerror or e}") from None
        return tok[0].strip() if tok else None
    return os.environ.get(TOKEN_ENV, "").strip() or None


def query_range(url: str, query: str, *, range_s: float, step_s: float, end: float | None = None,
                token: str | None = None, timeout: float = 30.0) -> list[dict]:
    """[{"metric": {labels}, "values": [[t, "v"], ...]}] for the last range_s seconds."""
    if not re.match(r"https?://", url):
        raise PromError(f"{url}: not an http(s) URL")
    end = time.time() if end is None else end
    body = urllib.parse.urlencode({"query": query, "start": f"{end - range_s:.3f}", "end": f"{end:.3f}",
                                   "step": f"{step_s:g}", "timeout": f"{timeout:g}s"}).encode()
    req = urllib.request.Request(url.rstrip("/") + "/api/v1/query_range", data=body, method="POST",
                                 headers={"Content-Type": "application/x-www-form-urlencoded",
                                          "Accept": "application/json", "User-Agent": "hostdiag"})
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            raw = r.read(MAX_BODY + 1)
    except urllib.error.HTTPError as e:    # 400/422: bad query; Prometheus explains in the body
        raw = e.read(1 << 16)
        try:
            msg = json.loads(raw).get("error") or raw.decode("utf-8", "replace")
        except (ValueError, AttributeError):
            msg = raw.decode("utf-8", "replace")[:300] or e.reason
        kind = "bad query" if e.code in (400, 422) else f"HTTP {e.code}"
        raise PromError(f"Prometheus at {url}: {kind}: {str(msg).strip()[:300]}") from None
    except urllib.error.URLError as e:
        raise PromError(f"cannot reach Prometheus at {url}: {e.reason}") from None
    except (TimeoutError, OSError) as e:
        raise PromError(f"cannot reach Prometheus at {url}: {e}") from None
    if len(raw) > MAX_BODY:
        raise PromError(f"Prometheus at {url}: answer larger than {MAX_BODY >> 20} MiB; narrow the query or raise --step")
    try:
        doc = json.loads(raw)
    except ValueError:
        raise PromError(f"{url}: not a Prometheus API answer (no JSON); is this the server's base URL?") from None
    if not isinstance(doc, dict) or doc.get("status") != "success":
        raise PromError(f"Prometheus at {url}: {doc.get('error') if isinstance(doc, dict) else 'bad answer'}")
    data = doc.get("data") or {}
    if data.get("resultType") != "matrix":
        raise PromError(f"Prometheus at {url}: expected a range (matrix) result, got {data.get('resultType')!r}")
    return list(data.get("result") or [])


def host_of(labels: dict) -> str:
    for k in HOST_LABELS:
        if labels.get(k):
            return str(labels[k])
    rest = {k: v for k, v in labels.items() if k != "__name__"}
    return ",".join(f"{k}={v}" for k, v in sorted(rest.items())) or str(labels.get("__name__", "?"))


def metric_of(labels: dict) -> str | None:
    """hostdiag's own textfile names map back to catalog metrics: hostdiag_memory_available_bytes
    -> memory.available_bytes; anything else matches the generic shape archetypes only."""
    name = str(labels.get("__name__", ""))
    if name.startswith("hostdiag_") and name.count("_") >= 2:
        cat, rest = name[len("hostdiag_"):].split("_", 1)
        return f"{cat}.{rest}"
    return None


def _arrays(np, pts):
    """Prometheus [[t, "v"], ...] -> float arrays; NaN/Inf (and anything unreadable) become NaN,
    which the matcher treats as a missing sample. Vectorised: 1,000 x 360 points in ~0.1 s."""
    try:
        a = np.array(pts, dtype=float).reshape(-1, 2)
    except (TypeError, ValueError):     # a malformed point: go one by one
        a = np.array([[_num(p[0] if len(p) > 0 else None), _num(p[1] if len(p) > 1 else None)] for p in pts],
                     dtype=float).reshape(-1, 2)
    t, v = a[:, 0], a[:, 1]
    keep = np.isfinite(t)
    t, v = t[keep], v[keep]
    v[~np.isfinite(v)] = np.nan
    return t, v


def _num(x) -> float:
    try:
        return float(x)
    except (TypeError, ValueError):
        return math.nan


def match_fleet(result: list[dict], *, catalog, metric: str | None = None, counter: bool = False,
                top: int = 3) -> list[dict]:
    """One row per series: {host, labels, points, matches: [Match.to_dict()+title]}; rows with a
    match first, by best score, then host."""
    import numpy as np

    from hostdiag.matcher import match

    rows = []
    for s in result:
        labels = {str(k): str(v) for k, v in (s.get("metric") or {}).items()}
        pts = s.get("values") or []
        t, v = _arrays(np, pts)
        ms = match(t, v, metric=metric or metric_of(labels), counter=counter, catalog=catalog) if len(t) >= 2 else []
        rows.append({"host": host_of(labels), "labels": labels, "points": len(t),
                     "matches": [{**m.to_dict(), "title": m.title} for m in ms[:top]]})
    rows.sort(key=lambda r: (not r["matches"], -(r["matches"][0]["score"] if r["matches"] else 0), r["host"]))
    return rows


def _when(x: float) -> str:
    import datetime as dt

    return dt.datetime.fromtimestamp(x, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def cli_run(url, query, range_, step, token_file, timeout, metric, counter, as_json, cat, clean) -> int:
    """The command body: print the ranked table (or JSON); return the exit status (2 on error).
    `clean` keeps host/label text (it comes from the servers) off the terminal as control codes."""
    import sys

    def fail(msg: str) -> int:
        print(clean(f"hostdiag: {msg}"), file=sys.stderr)
        return 2

    if not url or not query:
        return fail("--prometheus URL and --query PROMQL go together")
    try:
        import numpy  # noqa: F401 - the shape analysis needs it; the light pyz does not carry it
    except ImportError:
        return fail("signatures: unavailable: numpy not in this build (install python3-numpy, or pip install numpy)")
    try:
        range_s, step_s = parse_duration(range_), parse_duration(step)
        token = read_token(token_file)
        result = query_range(url, query, range_s=range_s, step_s=step_s, token=token, timeout=timeout)
    except (ValueError, PromError) as e:
        return fail(str(e))
    for err in cat.errors:
        print(clean(f"warning: catalog entry skipped: {err}"), file=sys.stderr)
    rows = match_fleet(result, catalog=cat, metric=metric, counter=counter)
    hit = [r for r in rows if r["matches"]]
    if as_json:
        print(json.dumps({"query": query, "series": len(rows), "matched": len(hit), "hosts": rows}))
        return 0
    if not rows:
        print(clean(f"no series: the query returned nothing over the last {range_}"))
        return 0
    print(clean(f"{len(hit)} of {len(rows)} series match an archetype ({query}, last {range_}, step {step})"))
    w = max(12, min(40, max(len(r["host"]) for r in hit))) if hit else 12
    for i, r in enumerate(hit, 1):
        m = r["matches"][0]
        extra = {k: v for k, v in r["labels"].items() if k not in ("__name__", *HOST_LABELS)}
        lab = (" {" + ",".join(f"{k}={v}" for k, v in sorted(extra.items())) + "}") if extra else ""
        print(clean(f"{i:3d}. {r['host'][:40]:{w}s} {m['score']:.2f} {m['shape']:18s} {m['signature'] or '-'}{lab}"))
        print(clean(f"     {_when(m['start'])} .. {_when(m['end'])}: {m['why']}"))
    steady = len(rows) - len(hit)
    if steady:
        print(clean(f"{steady} series steady, constant or too short: no archetype"))
    return 0

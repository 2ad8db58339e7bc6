"""A Report as a node_exporter textfile (Prometheus text exposition format 0.0.4).

Only Report.to_dict() keys are used: findings, series, sections, collected_at. Everything is
`hostdiag_`-prefixed and in base units (seconds, bytes, ratios 0..1). Labels stay low
cardinality: a finding is (id, severity, category), never a pid or free text; a series whose
labels are not in LABELS (a pid, a command) is left out. The file is replaced atomically
(temporary name in the same directory, then rename) so node_exporter never reads half a file.
"""
from __future__ import annotations

import math
import os
import re

from hostdiag.core import safeio
from hostdiag.core.units import parse_rfc3339

SEVERITIES = ("critical", "warning", "info")
LABELS = frozenset({"device", "mount", "cpu", "state", "interface", "iface", "fstype", "unit"})
FILENAME = "hostdiag.prom"
# hostdiag unit -> (name suffix, factor to the base unit)
_UNITS = {"seconds": ("_seconds", 1.0), "bytes": ("_bytes", 1.0), "percent": ("_ratio", 0.01),
          "pages": ("_pages", 1.0)}


def _name(s: str) -> str:
    s = re.sub(r"[^a-zA-Z0-9_]", "_", s)
    return "_" + s if s[:1].isdigit() else s


_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029]")


def _escape(v) -> str:
    """Label value: \\, \" and newline escaped per the format; other control characters dropped
    (a raw CR or line separator would split the line for some readers)."""
    return _CONTROL.sub("", str(v)).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(d: dict, redact=str) -> str:
    return "{" + ",".join(f'{k}="{_escape(redact(str(v)))}"' for k, v in d.items()) + "}" if d else ""


def _num(x: float) -> str:
    return repr(float(x)) if math.isfinite(x) else ("NaN" if math.isnan(x) else ("+Inf" if x > 0 else "-Inf"))


def series_name(metric: str, unit: str, counter: bool) -> tuple[str, float]:
    """'cpu.busy_s' seconds counter -> ('hostdiag_cpu_busy_seconds_total', 1.0)."""
    base = _name(metric.replace(".", "_"))
    suffix, factor = _UNITS.get(unit, ("", 1.0))
    if suffix == "_seconds" and base.endswith("_s"):
        base = base[:-2]
    if suffix and not base.endswith(suffix):
        base += suffix
    if not counter:  # _count/_sum/_bucket/_total are reserved for histograms, summaries and counters
        base = re.sub(r"_(count|sum|bucket|total)$", "", base) or base
    return "hostdiag_" + base + ("_total" if counter else ""), factor


class _Families:
    """Samples grouped per metric name (the format wants each family contiguous, once)."""

    def __init__(self, redact=str):
        self.fams: dict[str, tuple[str, str, dict]] = {}
        self.redact = redact

    def add(self, name: str, kind: str, help_: str, labels: dict, value: float) -> None:
        fam = self.fams.setdefault(name, (kind, help_, {}))
        fam[2].setdefault(_labels(labels, self.redact), value)   # first wins: duplicate samples break the file

    def text(self) -> str:
        out = []
        for name, (kind, help_, samples) in self.fams.items():
            out.append(f"# HELP {name} {help_}")
            out.append(f"# TYPE {name} {kind}")
            out += [f"{name}{lab} {_num(v)}" for lab, v in samples.items()]
        return "\n".join(out) + "\n"


def render(doc: dict, *, redact=str) -> str:
    """The textfile for one report (Report.to_dict()). `redact(str) -> str` runs on every label
    value: the file is 0644 and ends up in a shared Prometheus, and a mount path can hold a
    secret (/mnt/db_password=...); `hostdiag capture` passes the bundle's redactor."""
    fams = _Families(redact)
    ts = parse_rfc3339(doc.get("collected_at"))
    if ts is not None:
        fams.add("hostdiag_last_run_timestamp_seconds", "gauge", "When the last hostdiag run collected (epoch seconds).",
                 {}, ts)
    counts = dict.fromkeys(SEVERITIES, 0)
    for f in doc.get("findings") or []:
        sev = f.get("severity") if f.get("severity") in counts else "info"
        counts[sev] += 1
    for sev in SEVERITIES:
        fams.add("hostdiag_findings", "gauge", "Findings of the last run by severity.", {"severity": sev}, counts[sev])
    for f in doc.get("findings") or []:
        fams.add("hostdiag_finding", "gauge", "A finding of the last run (1 while present).",
                 {"id": f.get("id", ""), "severity": f.get("severity", ""), "category": f.get("category", "")}, 1)
    for name, sec in sorted((doc.get("sections") or {}).items()):
        st = sec.get("status", "unavailable")
        for s in ("ok", "partial", "unavailable"):
            fams.add("hostdiag_collector_status", "gauge", "Collector status of the last run (1 = current status).",
                     {"collector": name, "status": s}, 1 if s == st else 0)
    for s in (doc.get("series") or {}).values():
        labels = s.get("labels") or {}
        if any(k not in LABELS for k in labels):
            continue
        last = next((x for x in reversed(s.get("v") or []) if x is not None), None)
        if last is None:
            continue
        name, factor = series_name(s["metric"], s.get("unit", ""), bool(s.get("counter")))
        kind = "counter" if s.get("counter") else "gauge"
        fams.add(name, kind, f"hostdiag series {s['metric']} ({s.get('unit', '')}), last sample.",
                 {k: labels[k] for k in sorted(labels)}, float(last) * factor)
    return fams.text()


def write(directory: str | os.PathLike, doc: dict, *, filename: str = FILENAME, redact=str) -> str:
    """Replace DIRECTORY/hostdiag.prom atomically with the report's textfile; return its path.

    0644 (node_exporter reads it as another user); never through a link, never under
    /proc, /sys or /dev; the temporary name ends in .tmp, which the collector ignores.
    """
    data = render(doc, redact=redact).encode("utf-8")
    target = safeio.check_target(os.path.join(os.fspath(directory), filename), force=True)
    tmp = safeio._tmp_name(target)
    fd = os.open(tmp, safeio._CREATE, 0o644)
    try:
        os.fchmod(fd, 0o644)           # whatever the umask: the collector must read it
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        safeio._publish(tmp, target, force=True)
    except BaseException:
        safeio._unlink_quietly(tmp)
        raise
    return target

"""Step 2: run the series through the matcher and tie the matches to findings.

A metric-specific archetype match enriches the finding of its category (evidence, the
archetype's stabilize options) or, with no such finding, becomes an `info` finding of its own:
a graph shape alone is a hint for the responder, not an alarm. Generic shapes are only listed.
"""
from __future__ import annotations

import os
from dataclasses import replace
from urllib.parse import unquote

from hostdiag.core.model import Finding, Series, ShapeMatch
from hostdiag.core.units import MIN_POINTS

MAX_SHAPES = 10         # shapes listed in a report


def material(s: Series) -> bool:
    """Is this series worth a shape? The matcher is scale-invariant; a report must not be: the
    metric's own floor and mechanics decide (hostdiag.matcher.metrics, stdlib only: a series that
    does not qualify never imports numpy). 0.13 of load average, PSI's decaying averages or an
    idle counter at exactly 0 are not shapes."""
    from hostdiag.matcher.metrics import worth_matching

    vals = s.display_values()
    if sum(v is not None for v in vals) < MIN_POINTS:
        return False
    return worth_matching(s.key, s.unit, vals)[0]


def match_series(series: dict[str, Series], cat) -> list[ShapeMatch]:
    """The best match of each material series, archetypes before generic shapes, best first.
    Raises whatever numpy raises (ImportError, MemoryError...): the caller makes that a blind spot."""
    candidates = [(k, s) for k, s in series.items() if material(s)]
    if not candidates:
        return []
    # The matcher needs no threads; one BLAS/OpenMP thread also saves the per-thread buffers that
    # fail first under a memory limit ("OpenBLAS: Memory allocation still failed").
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, "1")
    from hostdiag.matcher import match
    from hostdiag.matcher.metrics import rule_for

    out = []
    for key, s in candidates:
        short = rule_for(key, s.unit).min_flat_s
        ms = [m for m in match(s.t, s.v, metric=key, counter=s.counter, catalog=cat)
              if not (m.shape == "flatline" and m.end - m.start < short)]
        if not ms:
            continue
        m = ms[0]
        t0 = s.t0 or 0.0
        out.append(ShapeMatch(
            series=key, metric=s.metric, labels=dict(s.labels), shape=m.shape, signature=m.signature,
            score=m.score, start=m.start, end=m.end, why=m.why, start_epoch=t0 + m.start, end_epoch=t0 + m.end,
            title=m.title, first_checks=m.first_checks, stabilize=m.stabilize, avoid=m.avoid,
            runbook=m.runbook, generic=(m.signature or "").startswith("shape.")))
    # archetypes before generic shapes; host-wide series before one process's (a dozen per-process
    # series must not push the host's own shapes out of the list); then the score
    out.sort(key=lambda d: (d.generic, "pid" in d.labels, -d.score))
    return out[:MAX_SHAPES]


MATCH_TIMEOUT_S = 15.0


def match_isolated(series: dict[str, Series], cat, timeout_s: float = MATCH_TIMEOUT_S) -> list[ShapeMatch]:
    """match_series in a forked child, so that numpy failing to import or to allocate (MemoryError,
    or OpenBLAS printing "Memory allocation still failed" and calling exit()) cannot take the
    report with it. Raises RuntimeError(reason) for the caller's blind spot. The child is our own
    and is killed if it overruns its bound (a host process is never signalled)."""
    import pickle
    import select
    import signal
    import time

    if not any(material(s) for s in series.values()):
        return []
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 0
        try:
            os.close(out_r)
            os.close(err_r)
            null = os.open(os.devnull, os.O_WRONLY)
            os.dup2(null, 1)          # never hold the report's stdout
            os.dup2(err_w, 2)         # OpenBLAS and numpy complain here: the reason
            try:
                data = pickle.dumps(("ok", match_series(series, cat)))
            except BaseException as e:  # noqa: BLE001
                lines = [x.strip() for x in str(e).splitlines() if x.strip()]
                # numpy's ImportError is a page of advice; its last part names the cause
                why = next((x for x in lines if x.startswith("Original error was")), lines[0] if lines else "")
                data = pickle.dumps(("error", f"{type(e).__name__}: {why}"))
            view = memoryview(data)
            while view:
                view = view[os.write(out_w, view):]
        except BaseException:  # noqa: BLE001
            code = 1
        os._exit(code)
    os.close(out_w)
    os.close(err_w)
    chunks, errs = [], []
    deadline = time.monotonic() + timeout_s
    open_fds = {out_r, err_r}
    # poll, not select: pipes past fd 1023 (inherited from a parent that leaked fds) made select raise
    poller = select.poll()
    for fd in open_fds:
        poller.register(fd, select.POLLIN)
    try:
        while open_fds:
            left = deadline - time.monotonic()
            if left <= 0:
                os.kill(pid, signal.SIGKILL)
                raise RuntimeError(f"shape matching overran its {timeout_s:g}s bound")
            for fd, _ in poller.poll(max(1, int(left * 1000))):
                b = os.read(fd, 1 << 16)
                if not b:
                    open_fds.discard(fd)
                    poller.unregister(fd)
                elif fd == out_r:
                    chunks.append(b)
                elif sum(map(len, errs)) < 4096:
                    errs.append(b)
    finally:
        os.close(out_r)
        os.close(err_r)
        _, status = os.waitpid(pid, 0)
    if chunks:
        kind, value = pickle.loads(b"".join(chunks))
        if kind == "ok":
            return value
        raise RuntimeError(value)
    err = b"".join(errs).decode("utf-8", "replace").strip().splitlines()
    why = err[-1] if err else f"matcher exited with status {os.waitstatus_to_exitcode(status)}"
    raise RuntimeError(why)


def finding_for(findings: list[Finding], category: str, labels: dict) -> int | None:
    """The finding a match belongs to: one about the same thing (a pid, mount, cgroup... in both),
    its own category first; a series of no one thing (host-wide), the first of its category. A
    process's fd ramp must not hand its advice to another process's RSS finding."""
    from hostdiag.analysis.urgency import NARROW_KEYS

    keys = [k for k in NARROW_KEYS if k in labels]
    if not keys:
        return next((i for i, f in enumerate(findings) if f.category == category), None)

    def same(f: Finding) -> bool:
        shared = [k for k in keys if f.subject.get(k) is not None]
        return bool(shared) and all(str(f.subject[k]) == str(labels[k]) for k in shared)

    hits = [i for i, f in enumerate(findings) if same(f)]
    return next((i for i in hits if findings[i].category == category), hits[0] if hits else None)


def attach(findings: list[Finding], shapes: list[ShapeMatch]) -> list[Finding]:
    """Findings enriched by (or added for) metric-specific archetype matches."""
    out = list(findings)
    for sh in shapes:
        if sh.generic or not sh.signature:
            continue
        category = sh.metric.split(".", 1)[0]
        note = {"signature": sh.signature, "series": sh.series, "why": sh.why}
        # disk series keys percent-encode their mount (collectors/disk._label): the finding and
        # the responder know it by its real path
        labels = {k: unquote(v) if k == "mount" else v for k, v in sh.labels.items()}
        i = finding_for(out, category, labels)
        if i is not None:
            f = out[i]
            extra = [x for x in sh.stabilize if x not in f.stabilize]
            out[i] = replace(f, evidence={**f.evidence, "shape": note}, stabilize=[*f.stabilize, *extra])
            continue
        out.append(Finding(
            id=sh.signature, category=category, severity="info",
            title=f"{sh.title or sh.shape}: {sh.why}",
            subject=labels, evidence=note,
            verify=(sh.first_checks or [""])[0],
            stabilize=[*sh.stabilize, *(f"Do not: {a}" for a in sh.avoid)],
            score=sh.score))
    return out

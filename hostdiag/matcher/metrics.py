"""What each host metric's own mechanics do to its graph, and how much movement is a shape.

The shape detectors are scale-invariant: they would call 0.13 of load average a stair-step.
A report must not. The analysis layer asks this module, per series, before matching:

    from hostdiag.matcher.metrics import rule_for, worth_matching

    ok, reason = worth_matching(series_key, unit, values)   # values: rates for counters
    if not ok:
        ...  # skip the series; `reason` is the blind-spot / debug note
    rule = rule_for(series_key)
    # rule.match False: never match this series (match its source instead, rule.source)
    # rule.mechanics: why its graph has shapes of its own, e.g. {"loadavg_5s_update"}

Stdlib only, no numpy: it runs before the matcher is imported. Keys may carry labels
("disk.used_bytes[mount=/var]"); rules are looked up by the bare metric name, then by unit.
"""
from __future__ import annotations

from dataclasses import dataclass, field

# mechanics a metric brings to its own graph
LOADAVG = "loadavg_5s_update"      # the kernel recomputes load averages every 5 s: stairs
PSI_EWMA = "psi_ewma"              # PSI avg10/60/300 are exponential averages: ramps and decays
FLAT_ZERO_OK = "flat_zero_ok"      # idle counters sit at exactly 0: not a flatline
BOUNDED_PCT = "bounded_0_100"      # a percentage pins at 100: plateau is its natural ceiling
QUANTIZED = "quantized"            # integer counts: steps of 1 are the sampling, not a shape
WRITEBACK = "writeback_bursts"     # block writes land in flushes (every 5 s, expiry 30 s): zero between


@dataclass(frozen=True)
class MetricRule:
    min_effect: float              # least max-min movement (in the series' unit) worth a shape
    unit_scale: float = 1.0        # what "1" of this unit means to a responder (for messages)
    mechanics: frozenset = field(default_factory=frozenset)
    match: bool = True             # False: its shapes are its mechanics; do not match it
    source: str | None = None      # the series to match instead, when match is False
    min_relative: float = 0.05     # and at least this share of its level (|max| or |min|)
    min_flat_s: float = 0.0        # a flatline shorter than this is the metric's cadence, not a stop


# by unit, for metrics without a rule of their own
_BY_UNIT = {
    "percent": MetricRule(5.0, 1.0, frozenset({BOUNDED_PCT})),
    "bytes": MetricRule(float(1 << 20), float(1 << 20)),
    "seconds": MetricRule(0.05),            # counters of seconds become "seconds per second"
    "count": MetricRule(2.0, 1.0, frozenset({QUANTIZED})),
    "load": MetricRule(0.5, 1.0, frozenset({LOADAVG})),
    "pages": MetricRule(64.0),
    "pages/s": MetricRule(64.0),
    "ratio": MetricRule(0.25),
}
_DEFAULT = MetricRule(0.0)

# by bare metric name (collector.field)
_RULES = {
    # load averages are a 5-second-updated EWMA of the run queue: their stairs and ramps are the
    # kernel's arithmetic; the run queue itself (procs_running) is the source to match
    "cpu.load1": MetricRule(0.5, 1.0, frozenset({LOADAVG}), match=False, source="cpu.procs_running"),
    "cpu.load5": MetricRule(0.5, 1.0, frozenset({LOADAVG}), match=False, source="cpu.procs_running"),
    "cpu.load15": MetricRule(0.5, 1.0, frozenset({LOADAVG}), match=False, source="cpu.procs_running"),
    "cpu.load_per_core": MetricRule(0.25, 1.0, frozenset({LOADAVG}), match=False, source="cpu.procs_running"),
    # PSI avgN are decaying averages of the stall counter; the `total` counter is the source
    "cpu.psi_some_avg10": MetricRule(5.0, 1.0, frozenset({PSI_EWMA}), match=False, source="cpu.psi_some_total"),
    "io.psi_some_avg10": MetricRule(5.0, 1.0, frozenset({PSI_EWMA}), match=False, source="io.psi_some_total"),
    "io.psi_full_avg10": MetricRule(5.0, 1.0, frozenset({PSI_EWMA}), match=False, source="io.psi_full_total"),
    "memory.psi_some_avg10": MetricRule(5.0, 1.0, frozenset({PSI_EWMA}), match=False, source="memory.psi_some_total"),
    "memory.psi_full_avg10": MetricRule(5.0, 1.0, frozenset({PSI_EWMA}), match=False, source="memory.psi_full_total"),
    # idle-time counters: flat at exactly 0 on a quiet host is health, not a dead producer;
    # as rates they are seconds per second, so 0.05 = 5 % of one CPU
    "cpu.iowait_s": MetricRule(0.05, 1.0, frozenset({FLAT_ZERO_OK})),
    "cpu.steal_s": MetricRule(0.05, 1.0, frozenset({FLAT_ZERO_OK})),
    "cpu.irq_s": MetricRule(0.05, 1.0, frozenset({FLAT_ZERO_OK})),
    "cpu.softirq_s": MetricRule(0.05, 1.0, frozenset({FLAT_ZERO_OK})),
    "cpu.nice_s": MetricRule(0.05, 1.0, frozenset({FLAT_ZERO_OK})),
    "cpu.procs_blocked": MetricRule(2.0, 1.0, frozenset({FLAT_ZERO_OK, QUANTIZED})),
    # a 2-CPU host idles between 1 and 3 runnable tasks: that wobble is not a shape
    "cpu.procs_running": MetricRule(4.0, 1.0, frozenset({QUANTIZED})),
    # per-process counts (processes.* series carry pid/name labels): a daemon's thread pool or fd
    # table breathing by a few is its normal life; a leak or a pile-up moves by tens
    "processes.threads": MetricRule(16.0, 1.0, frozenset({QUANTIZED})),
    "processes.fds": MetricRule(32.0, 1.0, frozenset({QUANTIZED})),
    # per-second rates that an idle host's page cache and journal flushes move by this much
    "memory.major_faults": MetricRule(100.0, 1.0, frozenset({FLAT_ZERO_OK})),
    "io.reads": MetricRule(50.0, 1.0, frozenset({FLAT_ZERO_OK})),
    "io.writes": MetricRule(50.0, 1.0, frozenset({FLAT_ZERO_OK, WRITEBACK}), min_flat_s=30.0),
    "io.read_bytes": MetricRule(float(8 << 20), float(1 << 20), frozenset({FLAT_ZERO_OK})),
    "io.write_bytes": MetricRule(float(8 << 20), float(1 << 20), frozenset({FLAT_ZERO_OK, WRITEBACK}),
                                 min_flat_s=30.0),
    "memory.swap_pages_per_s": MetricRule(64.0, 1.0, frozenset({FLAT_ZERO_OK})),
    "memory.oom_kills": MetricRule(1.0, 1.0, frozenset({FLAT_ZERO_OK, QUANTIZED})),
}


def bare(metric: str | None) -> str:
    """'disk.used_bytes[mount=/var]' -> 'disk.used_bytes'."""
    return (metric or "").split("[", 1)[0]


def rule_for(metric: str | None, unit: str | None = None) -> MetricRule:
    """The rule for a metric (by bare name, then by unit, else no floor)."""
    r = _RULES.get(bare(metric))
    if r is not None:
        return r
    return _BY_UNIT.get(unit or "", _DEFAULT)


def worth_matching(series_metric: str | None, unit: str | None, values) -> tuple[bool, str]:
    """(True, "") when a series moved enough, in its own unit and relative to its level, to
    have a shape, and its mechanics do not make the shapes themselves; else (False, why).
    `values` are the plotted values (rates for counters); None entries are ignored."""
    rule = rule_for(series_metric, unit)
    name = bare(series_metric) or "series"
    if not rule.match:
        why = ", ".join(sorted(rule.mechanics)) or "its own mechanics"
        src = f"; match {rule.source} instead" if rule.source else ""
        return False, f"{name}: not matched ({why}){src}"
    vals = [float(x) for x in values if x is not None and x == x]
    if len(vals) < 8:
        return False, f"{name}: too short to judge ({len(vals)} points)"
    lo, hi = min(vals), max(vals)
    span = hi - lo
    if FLAT_ZERO_OK in rule.mechanics and hi <= rule.min_effect:
        return False, f"{name}: at or near 0 the whole window (normal when idle)"
    if span < rule.min_effect:
        return False, f"{name}: moved {span:.3g} {unit or ''}, below the {rule.min_effect:g} that counts as a shape".replace("  ", " ")
    if span < rule.min_relative * max(abs(lo), abs(hi)):
        return False, f"{name}: moved {100 * span / max(abs(lo), abs(hi)):.1f} % of its level, below {100 * rule.min_relative:g} %"
    return True, ""

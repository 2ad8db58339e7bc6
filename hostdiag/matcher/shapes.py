"""Shape detectors: name the shape of one series (stair_step, ramp, cliff_drop, flatline,
oscillating, spike_then_settle, plateau_under_peak; steady = nothing found).

Pipeline: clean (drop NaN/None and |v| > MAX_ABS, sort, de-duplicate timestamps, counters ->
rates with resets dropped) -> put on a uniform grid of <= GRID points (bin means when longer,
linear interpolation when irregular/gappy) -> estimate the noise from first differences (robust
MAD) -> each detector scores [0, 1] on the grid -> precedence between shapes that imply each
other -> calibrate() maps the score to "share of such matches that were right". All thresholds
are relative to the series' own range and noise, so the result does not change with scale or
offset.

The detectors implement the decision rules of the labelled real-metric corpus
(shared/devseries/README.md), each as a feature that explains a label:
  stair_step   jumps of 1-3 samples (the change across 3-4 points at a breakpoint is most of the
               step) carry most of the net change; a single step up counts, at medium score
  ramp         linear R^2 >= ~0.75 with the slope significant against autocorrelated residuals,
               no jumps, no flat top (a rise-then-flat fit that beats the line)
  cliff_drop   on the running median: a sustained level (not bursts) drops by most of the range
               within a few samples and stays down
  flatline     the end of the window sits in a narrow band at the floor the bursts before it
               returned to (or exactly constant), after a head that varied repeatedly
  plateau      values pile up one-sided under the window's own maximum after a rise, or the
               variation collapses at the top, or a gradual rise levels off (medium)
  oscillating  autocorrelation at the repeat lag, noise measured cycle-to-cycle; daily and weekly
               periods are seasonality (steady)
  spike        one excursion, far outside the baseline's spread, the same baseline on both sides
`explain` on the Analysis holds every detector's features and verdict (`signatures match --explain`).

Change points come from a small vectorised binary segmentation on cumulative sums (gains kept per
position, recomputed only inside the two segments a split creates). ruptures was considered and
not used: it costs ~0.3 s of import and its Binseg/Pelt run a Python-level cost function per
candidate, far slower than this at 1,000 series/s; scipy/statsmodels were not needed either: the
robust pieces (running median, percentiles, t of a slope with an effective sample size) are a few
lines of numpy.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from hostdiag.core.units import human_duration

from hostdiag.matcher import MIN_SCORE, SHAPES  # noqa: F401  (re-exported)

GRID = 1024         # grid points: a 20-minute cycle in 5-minute samples must survive binning
MIN_POINTS = 8      # fewer usable points: "too short to judge"
KMAX = 8            # change points searched by the segmentation
MAX_ABS = 1e100     # larger magnitudes are treated as missing (as the CLI reader refuses them)


@dataclass
class ShapeHit:
    shape: str
    score: float
    start: float
    end: float
    why: str
    facts: dict = field(default_factory=dict)   # direction (+1/-1), change, slope_per_s, period_s...


@dataclass
class Analysis:
    status: str                 # "ok" | "too_short" | "constant"
    note: str                   # human reason for a non-ok status, or a summary
    hits: list[ShapeHit]        # best first, score >= MIN_SCORE
    points: int                 # usable points after cleaning
    all_scores: dict = field(default_factory=dict)   # every shape's score, for benchmarks/debugging
    explain: dict = field(default_factory=dict)      # shape -> {score, verdict, features}


# ---------------------------------------------------------------- formatting

def fmt_num(x: float) -> str:
    """Compact unit-agnostic number: 1234567 -> '1.23M', 0.00123 -> '0.00123'."""
    if x is None or not math.isfinite(x):
        return "?"
    a = abs(x)
    for div, suf in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if a >= div:
            return f"{x / div:.3g}{suf}"
    return f"{x:.3g}"


def fmt_dur(s: float, index: bool = False) -> str:
    """Seconds -> '45 s', '12 min', '3.4 h', '2.1 d' (or 'N points' for index time)."""
    return f"{s:.0f} points" if index else human_duration(s)


# Detector score -> share of matches at that score that were right on the development corpus
# (106 real windows, shared/devseries; benchmarks/bench_matcher.py prints the reliability table).
# Raw scores were under-confident in the middle: raw 0.6-0.7 was right 82 % of the time (n=11),
# 0.8-0.9 92 % (n=13), 0.9-1.0 100 % (n=60). The map is monotone and keeps 0.5 at 0.5, so the
# report threshold MIN_SCORE selects the same matches; the top is held at 0.97, not 1.0,
# because 60 right out of 60 on one corpus is not certainty on the next.
CALIBRATION = ((0.0, 0.0), (0.5, 0.5), (0.6, 0.7), (0.85, 0.85), (1.0, 0.97))


def calibrate(raw: float) -> float:
    """Piecewise-linear map of a raw detector score through CALIBRATION."""
    for (x0, y0), (x1, y1) in zip(CALIBRATION, CALIBRATION[1:]):
        if raw <= x1:
            return y0 + (y1 - y0) * (raw - x0) / (x1 - x0)
    return CALIBRATION[-1][1]


def rate_unit(span_s: float) -> tuple[float, str]:
    """(seconds per unit, unit) for quoting a rate over a window: per second under 10
    minutes, per minute up to 6 hours, per hour above (+10/s is not '36k/h' in a 30 s window)."""
    if span_s < 600:
        return 1.0, "s"
    if span_s < 6 * 3600:
        return 60.0, "min"
    return 3600.0, "h"


def explain_lines(an: "Analysis") -> list[str]:
    """`signatures match --explain`: one block per shape, best first."""
    out = [f"explain ({an.points} points, {an.status}): a shape is reported at score >= {MIN_SCORE}"]
    for shape, e in sorted(an.explain.items(), key=lambda kv: (kv[0] != "_series", -kv[1]["score"])):
        feats = ", ".join(f"{k}={v}" for k, v in e.get("features", {}).items())
        out.append(f"  {shape:18s} {e['score']:.2f}  {e['verdict']}")
        if feats:
            out.append(f"  {'':18s}       {feats}")
    return out


# ---------------------------------------------------------------- cleaning

def clean(t, v, counter: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Finite, time-sorted, unique-timestamp (t, v); counters become per-second rates."""
    if isinstance(v, np.ndarray) and v.dtype.kind == "f":
        va = v.astype(float, copy=False)
    else:
        va = np.array([np.nan if x is None else x for x in v], dtype=float)
    ta = np.arange(len(va), dtype=float) if t is None else np.asarray(
        [np.nan if x is None else x for x in t] if not isinstance(t, np.ndarray) else t, dtype=float)
    if len(ta) != len(va):
        raise ValueError(f"{len(ta)} timestamps for {len(va)} values")
    ok = np.isfinite(ta) & np.isfinite(va) & (np.abs(va) <= MAX_ABS)   # squares stay finite
    if not ok.all():
        ta, va = ta[ok], va[ok]
    if len(ta) > 1:
        dt = np.diff(ta)
        if (dt <= 0).any():
            order = np.argsort(ta, kind="stable")
            ta, va = ta[order], va[order]
            keep = np.r_[np.diff(ta) > 0, True]    # duplicate timestamps: keep the last value
            ta, va = ta[keep], va[keep]
    if counter and len(ta) > 1:
        dt, dv = np.diff(ta), np.diff(va)
        good = dv >= 0                              # a reset (or wrap) interval is dropped
        ta, va = ta[1:][good], dv[good] / dt[good]
    return ta, va


def to_grid(t: np.ndarray, v: np.ndarray, size: int = GRID) -> tuple[np.ndarray, np.ndarray]:
    """Uniform grid: bin means when longer than `size`, interpolation when irregular."""
    n = len(t)
    t0, t1 = t[0], t[-1]
    if n > size:
        idx = np.minimum(((t - t0) * (size / (t1 - t0))).astype(np.int64), size - 1)
        cnt = np.bincount(idx, minlength=size)
        sums = np.bincount(idx, v, minlength=size)
        tg = t0 + (np.arange(size) + 0.5) * ((t1 - t0) / size)
        full = cnt > 0
        if full.all():
            return tg, sums / cnt
        return tg, np.interp(tg, tg[full], sums[full] / cnt[full])   # gaps: interpolate
    tg = np.linspace(t0, t1, n)
    dt = np.diff(t)
    if dt.max() - dt.min() <= 1e-6 * (t1 - t0):
        return tg, v
    return tg, np.interp(tg, t, v)


# ---------------------------------------------------------------- helpers

def _q(a: np.ndarray, *qs: float):
    """Percentiles (linear interpolation, as np.percentile) from one sort; np.percentile's
    per-call overhead dominated the detectors at 1,000 series/s."""
    s = np.sort(a, kind="quicksort")
    n = len(s)
    out = []
    for q in qs:
        x = (n - 1) * q / 100.0
        i = int(x)
        j = min(i + 1, n - 1)
        out.append(float(s[i] + (s[j] - s[i]) * (x - i)))
    return out[0] if len(out) == 1 else out


def _csum(a: np.ndarray) -> np.ndarray:
    """[0, a0, a0+a1, ...] without np.r_'s per-call overhead."""
    out = np.empty(len(a) + 1)
    out[0] = 0.0
    np.cumsum(a, out=out[1:])
    return out


def _med(a: np.ndarray) -> float:
    return _q(a, 50)


def _lin(x: float, lo: float, hi: float) -> float:
    """0 below lo, 1 above hi, linear between."""
    return min(1.0, max(0.0, (x - lo) / (hi - lo)))


def _noise(d: np.ndarray, tol: float) -> float:
    """Robust noise sd from first differences, ignoring exactly-flat steps."""
    nz = d[np.abs(d) > tol]
    if len(nz) < 3:
        return 0.0
    return 1.4826 * _med(np.abs(nz - _med(nz))) / math.sqrt(2)


def _runs(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start and end (exclusive) indices of the True runs of a boolean array."""
    m = np.zeros(len(mask) + 2, np.int8)
    m[1:-1] = mask
    d = np.diff(m)
    return np.flatnonzero(d == 1), np.flatnonzero(d == -1)


def _binseg(y: np.ndarray, pen: float, minseg: int, kmax: int = KMAX) -> list[int]:
    """Breakpoints [0, b1, ..., N] of a piecewise-constant fit by binary segmentation.
    Split gains are kept per position and recomputed only inside the two segments a split
    creates, so the whole search costs about O(N log N) rather than O(KMAX * N)."""
    n = len(y)
    s = _csum(y)
    gain = np.full(n, -1.0)          # gain[i]: splitting i's segment at i (i in 1..n-1)

    def fill(a: int, b: int) -> None:
        i = np.arange(a + minseg, b - minseg + 1)
        if not len(i):
            gain[a + 1:b] = -1.0
            return
        la, lb = i - a, b - i
        g = (s[i] - s[a]) ** 2 / la + (s[b] - s[i]) ** 2 / lb - (s[b] - s[a]) ** 2 / (b - a)
        gain[a + 1:b] = -1.0
        gain[i] = g

    fill(0, n)
    bps = [0, n]
    for _ in range(kmax):
        k = int(np.argmax(gain))
        if gain[k] < pen:
            break
        j = bps.index(next(x for x in bps if x > k))
        a, b = bps[j - 1], bps[j]
        bps.insert(j, k)
        fill(a, k)
        fill(k, b)
        gain[k] = -1.0
    return bps


# ---------------------------------------------------------------- the analysis

class _Ctx:
    """Everything the detectors share for one series on the grid."""

    def __init__(self, tg, y, index_time):
        self.t, self.y, self.index = tg, y, index_time
        self.n = n = len(y)
        self.x = np.linspace(0.0, 1.0, n)
        self.lo, self.hi = float(y.min()), float(y.max())
        self.r = self.hi - self.lo
        self.span = float(tg[-1] - tg[0]) or 1.0
        self.tol = 1e-9 * (abs(self.hi) + abs(self.lo)) + 1e-300
        self.d = np.diff(y)
        self.sigma = max(_noise(self.d, self.tol), 0.01 * self.r)
        self.minseg = max(2, n // 40)
        self.bps = _binseg(y, 12.0 * self.sigma ** 2 * math.log(n), self.minseg)
        bp = np.asarray(self.bps)
        self.seglen = np.diff(bp)
        s = _csum(y)
        self.means = (s[bp[1:]] - s[bp[:-1]]) / self.seglen
        self.segid = np.repeat(np.arange(len(self.seglen)), self.seglen)
        # linear fit over the whole window
        xc = self.x - 0.5
        self.slope = float(xc @ (y - y.mean()) / (xc @ xc))
        yc = y - y.mean()
        syy = float(yc @ yc)
        self.r2 = float((xc @ yc) ** 2 / ((xc @ xc) * syy)) if syy > 0 else 0.0
        p1, p99 = _q(y, 1, 99)
        self.rr = max(float(p99 - p1), 0.5 * self.r)      # range without a few outliers
        self.explain: dict = {}
        self._tail = False
        self._levels = None
        self._jumps = None
        self.stairiness = 0.0

    def tail(self) -> dict | None:
        """The quiet tail: the longest end stretch that stays within a narrow band around its
        own median (<= 5 % of its points outside, so 1-3 isolated blips are allowed), and how
        the head before it compares. None when the end of the window is not quieter than the
        start, or either part is too short to compare."""
        if self._tail is not False:
            return self._tail
        y, n = self.y, self.n
        self._tail = None
        k = max(int(0.3 * n), 4)
        t_end = y[n - k:]
        m = _med(t_end)
        t10, t90 = _q(t_end, 10, 90)
        band = max(3.0 * float(t90 - t10), self.tol)
        out = np.abs(y - m) > band
        # where the band starts to hold: the best split of the outside-the-band indicator
        # (busy head, quiet tail), so sparse bursts stay in the head
        cs = _csum(out)
        i = np.arange(max(3, int(0.08 * n)), n - k + 1)
        if not len(i):
            return None
        mh, mt = cs[i] / i, (cs[n] - cs[i]) / (n - i)
        gain = np.where(mh > mt, (mh - mt) ** 2 * i * (n - i) / n, -1.0)
        s = int(i[int(np.argmax(gain))])
        if gain.max() <= 0 or (cs[n] - cs[s]) > 0.05 * (n - s) or n - s < 10:
            return None
        head, tl = y[:s], y[s:]
        h5, h10, h50, h90, h95 = _q(head, 5, 10, 50, 90, 95)
        q5, q10, q50, q90, q95, q99 = _q(tl, 5, 10, 50, 90, 95, 99)
        hs = float(h95 - h5)
        st = float(q90 - q10)
        hrun_s, hrun_e = _runs(out[:s])
        self._tail = dict(start=s, frac=(n - s) / n, level=float(q50), spread=st,
                          head_spread=hs, quiet=st / hs if hs > 0 else 1.0,
                          head_p10=float(h10), head_p50=float(h50), head_p90=float(h90),
                          head_excursions=int(len(hrun_s)),
                          head_out=float(np.mean(out[:s])),
                          quiet_d=_med(np.abs(np.diff(tl))) / max(_med(np.abs(np.diff(head))), self.tol)
                          if s > 1 else 1.0,
                          exact=float(np.mean(np.abs(tl - q50) <= self.tol)) >= 0.9,
                          up_side=float(q95 - q50), down_side=float(q50 - q5), top=float(q99))
        return self._tail

    def jumps(self, k: np.ndarray) -> np.ndarray:
        """Level change across a few points at the breakpoints after segments k: a stair's
        step shows here in full, a ramp's segment boundary only as a sliver of slope."""
        if self._jumps is None:
            y, n, w = self.y, self.n, 3
            edges = np.cumsum(self.seglen)[:-1]
            out = np.empty(len(edges))
            for j, b in enumerate(edges):
                pre, post = y[max(0, b - 1 - w):max(1, b - 1)], y[min(n - 1, b + 1):b + 1 + w]
                out[j] = _med(post) - _med(pre) if len(post) and len(pre) else 0.0
            self._jumps = out
        return self._jumps[k]

    def ts(self, i: int) -> float:
        return float(self.t[min(max(i, 0), self.n - 1)])

    def dur(self, npts: float) -> str:
        return fmt_dur(npts * self.span / max(self.n - 1, 1), self.index)

    def within_slope_ratio(self) -> float:
        """Pooled slope inside the inner segments / slope across them: ~0 for stairs, ~1 for a
        ramp. The first and last segments are left out: a ramp's flat lead-in or a stair's
        end levels would drag the ratio to 0."""
        k = len(self.seglen)
        if k >= 3:
            a, b = int(self.seglen[0]), self.n - int(self.seglen[-1])
        else:
            a, b = 0, self.n
        x, y, sid = self.x[a:b], self.y[a:b], self.segid[a:b]
        xm = np.bincount(self.segid, self.x, minlength=k) / self.seglen
        if k < 2 or xm[-1] <= xm[0]:
            return 1.0
        g = float(self.means[-1] - self.means[0]) / float(xm[-1] - xm[0])   # mean rate of change
        if g == 0:
            return 1.0
        xc = x - xm[sid]
        den = float(xc @ xc)
        return float(xc @ (y - self.means[sid])) / den / g if den > 0 else 1.0


def _medfilt(y: np.ndarray, w: int = 5) -> np.ndarray:
    """Running median: removes 1-2 sample spikes and keeps level shifts sharp."""
    if len(y) < 2 * w:
        return y
    h = w // 2
    p = np.concatenate((np.full(h, y[0]), y, np.full(h, y[-1])))
    stack = np.stack([p[k:k + len(y)] for k in range(w)])      # (w, n): sort across rows
    return np.partition(stack, h, axis=0)[h]


def _level_drop(c: _Ctx) -> ShapeHit | None:
    """cliff_drop by the corpus rule: a sustained level (noisy or flat, not bursts) falls within
    a few samples by most of the smoothed range and stays down to the end. Read on the running
    median, so a one-sample spike before the drop or blips after it do not hide the levels."""
    n = c.n
    if n < 20:
        return None
    ym = _medfilt(c.y)
    s = _csum(ym)
    i = np.arange(max(2, int(0.1 * n)), n - max(2, int(0.08 * n)))
    if not len(i):
        return None
    m1, m2 = s[i] / i, (s[n] - s[i]) / (n - i)
    gain = (m1 - m2) ** 2 * i * (n - i) / n
    b = int(i[int(np.argmax(gain))])
    pre, post = c.y[:b], c.y[b:]
    l1, l2 = _med(pre), _med(post)
    drop = l1 - l2
    p1, p99 = _q(ym, 1, 99)
    rng = float(p99 - p1)
    if drop <= 0 or rng <= 0:
        return None
    q25a, q75a = _q(pre, 25, 75)
    q25b, q75b = _q(post, 25, 75)
    spread = max(float(q75a - q25a), float(q75b - q25b), c.tol) / 1.35
    w = 3
    jump = _med(ym[max(0, b - 1 - w):max(1, b - 1)]) - _med(ym[b + 1:b + 1 + w])
    post_m = ym[b + w:]
    back = _q(post_m, 95) if len(post_m) else l2
    sustained = back <= l1 - 0.5 * drop
    established = q25a >= l2 + 0.5 * drop      # a level, not bursts
    feats = {"drop_over_range": round(drop / rng, 3), "drop_over_spread": round(drop / spread, 2),
             "sudden": round(jump / drop, 2), "sustained": sustained, "established": established,
             "at": b, "pre_shelves": round(np.subtract(*_q(ym[:b], 90, 10)) / drop, 2),
             "post_shelves": round(np.subtract(*_q(ym[b:], 90, 10)) / drop, 2)}
    c.explain["cliff_drop"] = feats
    if not (sustained and established):
        return None
    score = _lin(drop / rng, 0.35, 0.55) * _lin(drop / spread, 2, 4) * _lin(jump / drop, 0.5, 0.8)
    pct = 100.0 * drop / abs(l1) if l1 else float("inf")
    return ShapeHit("cliff_drop", score, c.ts(b), c.ts(n - 1),
                    f"dropped {fmt_num(drop)} ({pct:.0f} %) from {fmt_num(l1)} to {fmt_num(l2)} "
                    f"at once; still down {c.dur(n - b)} later",
                    {"direction": -1, "change": -drop, "level_before": l1, "level_after": l2})


def _stair_and_cliff(c: _Ctx) -> tuple[ShapeHit | None, ShapeHit | None]:
    steps = np.diff(c.means)
    if not len(steps):
        return None, None
    # a step is significant by its t statistic across the two segments it separates
    tstat = np.abs(steps) / (c.sigma * np.sqrt(1.0 / c.seglen[:-1] + 1.0 / c.seglen[1:]))
    big = (np.abs(steps) >= 0.1 * c.rr) & (tstat >= 5)
    stair = cliff = None
    # cliff: one dominant sudden drop, sustained to the end
    k = int(np.argmin(steps))
    drop = -steps[k]
    if drop >= 0.5 * c.rr:
        pre_level, post = c.means[k], c.means[k + 1:]
        b = int(np.sum(c.seglen[:k + 1]))
        pre_y, post_y = c.y[:b], c.y[b:]
        others = float(np.sum(-steps[big & (steps < 0)])) - drop
        sustained = float(post.max()) <= pre_level - 0.6 * drop
        quiet = max(float(np.std(c.y[b - c.seglen[k]:b])), float(np.std(post_y))) / drop
        frac_post, frac_pre = len(post_y) / c.n, len(pre_y) / c.n
        # the level before the drop was established, not the top of a spike
        established = _med(pre_y) >= pre_level - 0.3 * drop
        if sustained and established and frac_post >= 0.08 and frac_pre >= 0.1:
            score = (0.55 + 0.45 * _lin(drop / c.rr, 0.5, 0.8)) * (1 - 0.8 * _lin(quiet, 0.2, 0.4)) \
                * (1 - _lin(others / c.rr, 0.2, 0.5)) * _lin(drop / c.sigma, 4, 8)
            pct = 100.0 * drop / abs(pre_level) if pre_level else float("inf")
            cliff = ShapeHit("cliff_drop", score, c.ts(b), c.ts(c.n - 1),
                             f"dropped {fmt_num(drop)} ({pct:.0f} %) from {fmt_num(pre_level)} to "
                             f"{fmt_num(float(np.mean(post_y)))} at once; still down "
                             f"{c.dur(c.n - b)} later",
                             {"direction": -1, "change": -drop, "level_before": float(pre_level),
                              "level_after": float(np.mean(post_y))})
    alt = _level_drop(c)
    if alt is not None and (cliff is None or alt.score > cliff.score):
        cliff = alt
    stair2 = _sudden_steps(c, steps, tstat)
    # share of the net change made in jumps of a few points (noise-sized jumps included): a
    # ramp cut into segments has gradual boundaries, so little of its change is in jumps
    net = float(c.means[-1] - c.means[0])
    jr = c.jumps(np.arange(len(steps))) / np.where(steps == 0, 1.0, steps)
    jumpy = (np.abs(steps) >= 0.12 * c.rr) & (tstat >= 5) & (jr >= 0.6) & (np.sign(steps) == np.sign(net))
    share = float(np.sum(np.abs(steps[jumpy]))) / abs(net) if net else None
    # stairs: >= 2 sizeable level shifts the same way, flat between, no way back
    up, down = int(np.sum(big & (steps > 0))), int(np.sum(big & (steps < 0)))
    direction = 1 if up >= down else -1
    nsteps = up if direction > 0 else down
    against = up if direction < 0 else down
    net = direction * (c.means[-1] - c.means[0])
    if nsteps >= 1 and against == 0 and net >= 0.6 * c.rr:
        ratio = c.within_slope_ratio()
        bigk = np.flatnonzero(big & (np.sign(steps) == direction))
        # first/last segments must be real levels, not a sliver
        edges = np.cumsum(c.seglen)[:-1]
        level_ok = c.seglen[bigk[-1] + 1:].sum() >= 0.06 * c.n and c.seglen[:bigk[0] + 1].sum() >= 0.06 * c.n
        if level_ok:
            sizes = direction * steps[bigk]
            jf = float(np.sum(direction * c.jumps(bigk))) / float(np.sum(sizes))
            base = 0.55 if nsteps == 1 else (0.85 if nsteps == 2 else 1.0)
            # a stair changes in jumps (the level change across 3-4 points at the breakpoints
            # is most of the net change) and is flat between them; a ramp cut into segments
            # has small jumps and slopes inside the segments
            c.stairiness = (1 - _lin(ratio, 0.25, 0.45)) * _lin(jf, 0.65, 0.85)
            if share is not None:      # some jumps stand out of the noise, but carry little
                c.stairiness *= _lin(share, 0.25, 0.45)
            score = base * c.stairiness * _lin(float(tstat[bigk].min()), 5, 10)
            c.explain.setdefault("stair_step", {}).update(
                {"steps": nsteps, "jump_fraction": round(jf, 3), "within_segment_slope_ratio": round(ratio, 3)})
            # one big step that is mostly a drop is a cliff, not a stair
            if direction < 0 and nsteps == 1:
                score *= 0.5
            at = edges[bigk]
            gaps = np.diff(at)
            gap_txt = f", {c.dur(float(np.median(gaps)))} apart" if len(gaps) else ""
            stair = ShapeHit("stair_step", score, c.ts(int(at[0]) - 1), c.ts(c.n - 1),
                             f"{nsteps} step{'s' if nsteps > 1 else ''} of "
                             f"{'+' if direction > 0 else '-'}{fmt_num(float(np.median(sizes)))} each"
                             f"{gap_txt}, no recovery ({fmt_num(float(c.means[0]))} -> "
                             f"{fmt_num(float(c.means[-1]))})",
                             {"direction": direction, "change": float(c.means[-1] - c.means[0]),
                              "steps": nsteps, "level_before": float(c.means[0]),
                              "level_after": float(c.means[-1])})
    if stair2 is not None and (stair is None or stair2.score > stair.score):
        stair = stair2
    return stair, cliff


def _sudden_steps(c: _Ctx, steps: np.ndarray, tstat: np.ndarray) -> ShapeHit | None:
    """stair_step by the corpus rule: the level moves in jumps of 1-3 samples (the change
    across 3-4 points at the breakpoint is most of the step between the segment means) and the
    jumps carry most of the net change; gradual sag or decay between them is allowed (a
    sawtooth stair), a sudden jump back is not. One step down is a cliff, not a stair."""
    if not len(steps):
        return None
    ratio = c.jumps(np.arange(len(steps))) / np.where(steps == 0, 1.0, steps)
    # a jump of 1-3 samples must stand out of the point-to-point noise by itself
    # (and the short-window estimate of the jump must clear the noise it carries itself)
    big = np.abs(steps) >= np.maximum(0.12 * c.rr, 4 * c.sigma)
    sudden = big & (tstat >= 5) & (ratio >= 0.6 + 2 * c.sigma / np.maximum(np.abs(steps), c.tol))
    net = float(c.means[-1] - c.means[0])
    if not sudden.any() or abs(net) < 0.4 * c.rr:
        return None
    direction = 1 if net > 0 else -1
    k = np.flatnonzero(sudden)
    if np.any(np.sign(steps[k]) != direction):
        return None
    jsum = float(np.sum(np.abs(steps[k])))
    frac = jsum / abs(net)
    nsteps = len(k)
    edges = np.cumsum(c.seglen)[:-1][k]
    shelves = np.diff(np.r_[0, edges, c.n])
    c.explain.setdefault("stair_step", {}).update({"sudden_steps": nsteps, "jump_share_of_net": round(frac, 2),
                                     "shortest_shelf": round(float(shelves.min()) / c.n, 3)})
    if direction < 0 and nsteps == 1:
        return None
    if shelves.min() < max(0.05 * c.n, 5):
        return None
    c.stairiness = max(c.stairiness, _lin(frac, 0.5, 0.7))
    base = 0.6 if nsteps == 1 else (0.85 if nsteps == 2 else 0.95)
    score = base * _lin(frac, 0.5, 0.7)
    sizes = np.abs(steps[k])
    gaps = np.diff(edges)
    gap_txt = f", {c.dur(float(np.median(gaps)))} apart" if len(gaps) else ""
    return ShapeHit("stair_step", score, c.ts(int(edges[0]) - 1), c.ts(c.n - 1),
                    f"{nsteps} step{'s' if nsteps > 1 else ''} of "
                    f"{'+' if direction > 0 else '-'}{fmt_num(float(np.median(sizes)))} each"
                    f"{gap_txt}, no recovery ({fmt_num(float(c.means[0]))} -> {fmt_num(float(c.means[-1]))})",
                    {"direction": direction, "change": net, "steps": nsteps,
                     "level_before": float(c.means[0]), "level_after": float(c.means[-1])})


_HINGES = np.linspace(0.0, 0.65, 14)


def _ramp(c: _Ctx) -> ShapeHit | None:
    y, x, n = c.y, c.x, c.n
    u = np.maximum(0.0, x[None, :] - _HINGES[:, None])          # (H, N)
    um = u.mean(1)
    suu = np.einsum("ij,ij->i", u, u) - n * um ** 2
    yc = y - y.mean()
    syy = float(yc @ yc)
    if syy <= 0:
        return None
    suy = u @ yc
    sse = syy - suy ** 2 / suu
    h = int(np.argmin(sse))
    slope = float(suy[h] / suu[h])                              # per unit of x
    resid = math.sqrt(max(float(sse[h]), 0.0) / n)
    rise = slope * (1 - _HINGES[h])
    if abs(rise) < 0.5 * c.rr:
        return None
    direction = 1 if rise > 0 else -1
    fit = resid / c.sigma
    ratio = c.within_slope_ratio()
    # the line explains the series down to the noise, or leaves only a small wobble
    # (a daily cycle on top of a fill is still a fill)
    fit_ok = max(1 - _lin(fit, 1.4, 2.2), 1 - _lin(resid / abs(rise), 0.08, 0.15))
    score = fit_ok * _lin(ratio, 0.35, 0.7) * _lin(abs(rise) / c.sigma, 5, 10)
    # A series that ends stuck at one exact value is not rising "steadily": a long exactly
    # constant tail is a flatline after a trend, so it damps the ramp (and keeps the call
    # stable under resampling, where the line fit alone can swing either way).
    stuck = np.abs(c.d) <= c.tol
    tail = len(stuck) if stuck.all() else int(np.argmin(stuck[::-1]))
    if tail >= 0.25 * n:
        score *= 1 - tail / n
    # the corpus rule: a line explains most of the variance (R^2 >= ~0.75) and the trend is
    # significant against the noise left around it (t of the slope with the sample count
    # discounted for autocorrelated residuals), with no flat top at the end
    res = y - y.mean() - c.slope * (c.x - 0.5)
    rho1 = float(res[1:] @ res[:-1]) / float(res @ res) if float(res @ res) > 0 else 0.0
    rho1 = min(max(rho1, 0.0), 0.95)
    neff = max(3.0, n * (1 - rho1) / (1 + rho1))
    tval = math.sqrt(c.r2 * (neff - 2) / max(1e-12, 1 - c.r2))
    k = max(4, int(0.3 * n))
    xe = c.x[-k:] - c.x[-k:].mean()
    end_slope = float(xe @ (y[-k:] - y[-k:].mean()) / (xe @ xe))
    # a flat top: the end has stopped rising and the rise-then-flat fit beats the line (a
    # daily wobble can flatten the last stretch of a real ramp, but not improve that fit)
    flat_top = 1 - _lin(end_slope / c.slope, 0.15, 0.35) if c.slope != 0 else 1.0
    if flat_top > 0 and not _levels_off_fit(c)[0]:
        flat_top = 0.0
    r2score = _lin(c.r2, 0.6, 0.8) * _lin(tval, 3, 5) * (1 - flat_top) * (1 - c.stairiness) \
        * (1.0 if n >= 16 else 0.0)        # a dozen noisy points make a line too easily
    c.explain["ramp"] = {"r2": round(c.r2, 3), "t_slope": round(tval, 1), "end_slope_ratio":
                         round(end_slope / c.slope, 2) if c.slope else None,
                         "fit_over_noise": round(fit, 2), "within_segment_slope_ratio": round(ratio, 3)}
    if tail >= 0.25 * n:                       # stuck at one exact value: see above
        r2score *= 1 - tail / n
    if r2score > score:
        score, h, slope = r2score, 0, c.slope
        rise = slope
    i0 = int(round(_HINGES[h] * (n - 1)))
    per_s = slope / c.span if not c.index else slope / (n - 1)
    start_level = float(y[:max(i0, 1)].mean()) if i0 > 0 else float(y[0] + 0 * slope)
    mult, mname = (1, "point") if c.index else rate_unit(c.span)
    return ShapeHit("ramp", score, c.ts(i0), c.ts(n - 1),
                    f"{'rising' if direction > 0 else 'falling'} steadily by "
                    f"{fmt_num(per_s * mult)}/{mname} for {c.dur(n - 1 - i0)} "
                    f"({fmt_num(start_level)} -> {fmt_num(float(y[-max(1, n // 20):].mean()))})",
                    {"direction": direction, "change": rise, "slope_per_s": per_s,
                     "level_before": start_level, "level_after": float(y[-1])})


def _flat_and_plateau(c: _Ctx) -> tuple[ShapeHit | None, ShapeHit | None]:
    y, n = c.y, c.n
    flat = plateau = None
    # flatline: the longest run of exactly repeated values, where it varied before
    starts, ends = _runs(np.abs(c.d) <= c.tol)
    if len(starts):
        lens = ends - starts                      # in differences; points = lens + 1
        k = int(np.argmax(lens))
        a, b = int(starts[k]), int(ends[k]) + 1   # point indices [a, b)
        run = b - a
        others = np.delete(lens, k)
        other_max = int(others.max()) if len(others) else 0
        outside = np.r_[c.d[:max(a - 1, 0)], c.d[b:]]
        varied = float(np.mean(np.abs(outside) > c.tol)) if len(outside) else 0.0
        if run >= max(4, 0.18 * n) and a >= 0.1 * n and other_max < 0.35 * run:
            level = float(y[a])
            score = (0.6 + 0.4 * _lin(run / n, 0.12, 0.35)) * _lin(varied, 0.4, 0.7)
            if b < n - 1:
                score *= 0.85                     # it came back: a stall rather than dead
            before = y[:a]
            at_ceiling = level >= c.hi - c.tol and float(np.mean(before)) <= level - 0.3 * c.r
            if at_ceiling:
                score *= 0.6                      # clipped at the top: plateau_under_peak
            flat = ShapeHit("flatline", score, c.ts(a), c.ts(b - 1),
                            f"stuck at exactly {fmt_num(level)} for {c.dur(run - 1)} "
                            f"({100 * run / n:.0f} % of the window) after varying "
                            f"{fmt_num(float(before.min()))}..{fmt_num(float(before.max()))}",
                            {"direction": 0, "level_after": level,
                             "level_before": float(np.mean(before))})
    # flatline, not exactly constant: the end of the window sits in a narrow band at the floor
    # the bursts before it came back to, and the head varied repeatedly (not one excursion)
    T = c.tail()
    if T is not None:
        at_top = T["level"] >= T["head_p90"] - 0.05 * c.rr and T["head_p10"] <= T["level"] - 0.3 * c.rr
        floor = abs(T["head_p50"] - T["level"]) <= 0.25 * T["head_spread"] and not at_top
        fscore = (0.6 + 0.4 * _lin(T["frac"], 0.35, 0.6)) * _lin(T["frac"], 0.3, 0.35) \
            * (1 - _lin(T["quiet"], 0.1, 0.2)) \
            * (1.0 if T["head_excursions"] >= 2 else 0.0) * (1.0 if floor or T["exact"] else 0.0)
        c.explain["flatline_tail"] = {k: round(v, 4) if isinstance(v, float) else v for k, v in T.items()}
        if fscore > (flat.score if flat else 0.0):
            a = T["start"]
            before = y[:a]
            flat = ShapeHit("flatline", fscore, c.ts(a), c.ts(n - 1),
                            f"settled at {fmt_num(T['level'])} (within {fmt_num(T['spread'])}) for "
                            f"{c.dur(n - a - 1)} ({100 * T['frac']:.0f} % of the window) after varying "
                            f"{fmt_num(float(before.min()))}..{fmt_num(float(before.max()))}",
                            {"direction": 0, "level_after": T["level"], "level_before": float(np.mean(before))})
        # plateau: the end sits at the top of the window, the head's lower edge clearly below,
        # and the variation there collapsed or became one-sided (only dips below a ceiling)
        collapsed = T["quiet"] <= 0.25 and T["quiet_d"] <= 0.3     # not a stair's last shelf
        # exactly one repeated value is a stuck signal (flatline, by the corpus rule), not a ceiling
        if at_top and collapsed and T["frac"] >= 0.2 and not T["exact"]:
            pscore = 0.6 + 0.4 * _lin(T["frac"], 0.2, 0.4)
            a = T["start"]
            plateau = ShapeHit("plateau_under_peak", pscore, c.ts(a), c.ts(n - 1),
                               f"rose from {fmt_num(T['head_p10'])} and held under a ceiling of "
                               f"{fmt_num(T['top'])} for {c.dur(n - a - 1)} ({100 * T['frac']:.0f} % "
                               f"of the window), its noise collapsed",
                               {"direction": 1, "level_before": T["head_p50"], "level_after": T["level"],
                                "change": T["level"] - T["head_p50"]})
    if plateau is None:
        plateau = _pile_up(c)
    if plateau is None:
        plateau = _levels_off(c)
    if plateau is not None:
        return flat, plateau
    # plateau under peak: rose, then clipped at the ceiling with the noise squashed
    near = y >= c.hi - max(0.03 * c.r, 0.5 * c.sigma, c.tol)
    starts, ends = _runs(near)
    k = int(np.argmax(ends - starts))
    a, b = int(starts[k]), int(ends[k])
    run = b - a
    if run >= max(5, 0.1 * n) and a >= 0.1 * n:
        # noise outside the run = residual of the piecewise-constant fit (steps removed)
        res = c.y - c.means[c.segid]
        out_res = np.r_[res[:a], res[b:]]
        s_out = float(np.sqrt(np.mean(out_res ** 2))) if len(out_res) else 0.0
        s_in = float(np.std(y[a:b]))
        if s_out <= 2 * s_in or s_out <= c.tol:
            s_out = 0.0       # nothing squashed: noiseless steps, or as noisy as the rest
        before = float(np.mean(y[:max(1, a // 2)]))
        rose = (c.hi - before) / c.r
        score = (0.6 + 0.4 * _lin(run / n, 0.1, 0.3)) * (1 - _lin(s_in / s_out, 0.15, 0.4) if s_out > 0 else 0.0) \
            * _lin(rose, 0.4, 0.6)
        plateau = ShapeHit("plateau_under_peak", score, c.ts(a), c.ts(b - 1),
                           f"rose from {fmt_num(before)} and held at a ceiling of {fmt_num(c.hi)} "
                           f"for {c.dur(run - 1)} ({100 * run / n:.0f} % of the window), "
                           f"noise squashed {fmt_num(s_in)} vs {fmt_num(s_out)}",
                           {"direction": 1, "level_before": before, "level_after": c.hi,
                            "change": c.hi - before})
    return flat, plateau


def _pile_up(c: _Ctx) -> ShapeHit | None:
    """plateau_under_peak by the corpus rule: in the last 40 % of the window the values pile up
    just under a maximum they do not exceed (the window's own top), only dipping below it, and
    the window sat clearly lower before (its median or its lower edge). Steady noise scatters
    on both sides of its level; a stair's new level keeps its noise on both sides."""
    y, n = c.y, c.n
    if n < 20:
        return None
    # the tail is the last 40 %, or less when the last level the segmentation found is shorter
    # (a stair's last shelf must not be read with the shelf before it as 'dips')
    a = max(int(0.6 * n), n - int(c.seglen[-1]) if c.seglen[-1] >= 0.1 * n else int(0.6 * n))
    tl, hd = y[a:], y[:int(0.3 * n)]
    t5, t10, t50, t99 = _q(tl, 5, 10, 50, 99)
    h10, h50 = _q(hd, 10, 50)
    pile = float(np.mean(tl >= t99 - 0.03 * c.rr))
    top = _q(y, 99)
    rose = max(t50 - h50, t10 - h10) / c.rr
    c.explain["plateau_under_peak"] = {"pile_under_max": round(pile, 2), "ceiling_gap": round((t99 - t50) / c.rr, 3),
                                       "rose": round(rose, 2)}
    one_sided = t99 - t50 <= 0.5 * (t50 - t5) and t50 - t5 > 0.02 * c.rr     # it does dip
    if float(np.mean(np.abs(tl - t50) <= c.tol)) >= 0.5:
        return None                      # exactly one value: a stuck signal (flatline), not a ceiling
    if not (t99 >= top - 0.03 * c.rr and t99 - t50 <= 0.1 * c.rr and rose >= 0.3 and pile >= 0.3
            and one_sided):
        return None
    score = 0.6 + 0.4 * _lin(pile, 0.3, 0.5)
    return ShapeHit("plateau_under_peak", score, c.ts(a), c.ts(n - 1),
                    f"rose from {fmt_num(h50)} and piled up under a ceiling of {fmt_num(t99)} "
                    f"({100 * pile:.0f} % of the last {c.dur(n - a - 1)} within 3 % of the range of it), "
                    f"only dipping below",
                    {"direction": 1, "level_before": h50, "level_after": t50, "change": t50 - h50})


_X1 = np.arange(0.0, 0.51, 0.05)
_X2 = np.arange(0.2, 0.76, 0.05)
_PAIRS = np.array([(a, b) for a in _X1 for b in _X2 if b - a >= 0.15 - 1e-9])


def _levels_off_fit(c: _Ctx):
    """(fits, x1, x2, rise, i2): does 'flat, rise from x1 to x2, flat' explain the series much
    better than a line, with a real rise and a flat end? Cached: the ramp asks too."""
    if getattr(c, "_levels", None) is not None:
        return c._levels
    y, n = c.y, c.n
    c._levels = (False, 0.0, 1.0, 0.0, n - 1)
    if n < 20 or c.r2 < 0.3 or c.slope <= 0:
        return c._levels
    step = max(1, n // 256)              # the fit needs the shape, not every point
    xs, ys = c.x[::step], y[::step]
    u = np.clip(xs[None, :], _PAIRS[:, :1], _PAIRS[:, 1:])           # (P, N/step)
    uc = u - u.mean(1, keepdims=True)
    yc = ys - ys.mean()
    syy = float(yc @ yc)
    suu = np.einsum("ij,ij->i", uc, uc)
    suy = uc @ yc
    r2 = suy ** 2 / (suu * syy)
    k = int(np.argmax(r2))
    x1, x2 = (float(v) for v in _PAIRS[k])
    rise = float(suy[k] / suu[k]) * (x2 - x1)
    i2 = int(x2 * (n - 1))
    tail = y[i2:]
    xe = c.x[i2:] - c.x[i2:].mean()
    end_drift = float(xe @ (tail - tail.mean()) / (xe @ xe)) * (1 - x2) if len(tail) > 2 else 0.0
    c.explain["plateau_under_peak"] = {**c.explain.get("plateau_under_peak", {}),
                                       "levels_off_r2": round(float(r2[k]), 3), "rise_from": round(x1, 2),
                                       "flat_from": round(x2, 2),
                                       "end_drift_over_rise": round(end_drift / rise, 2) if rise else None}
    xl = xs - xs.mean()
    r2_line = float((xl @ yc) ** 2 / ((xl @ xl) * syy)) if syy > 0 else 0.0
    better = (1 - r2[k]) <= 0.5 * (1 - r2_line)
    ok = rise > 0 and r2[k] >= 0.8 and better and abs(end_drift) <= 0.15 * rise and rise >= 0.5 * c.rr
    c._levels = (bool(ok), x1, x2, rise, i2)
    return c._levels


def _levels_off(c: _Ctx) -> ShapeHit | None:
    """plateau_under_peak, the medium 'rise then level off' form: a gradual rise (not a jump:
    that is a stair) that stops and holds flat for at least the last quarter of the window,
    explained much better by rise-then-flat than by a straight line (a ramp has no flat top)."""
    y, n = c.y, c.n
    if n < 20 or c.r2 < 0.3 or c.slope == 0:
        return None
    ok, x1, x2, rise, i2 = _levels_off_fit(c)
    if not (ok and c.stairiness < 0.5):
        return None
    tail = y[i2:]
    a = int(x1 * (n - 1))
    level = float(tail.mean())
    return ShapeHit("plateau_under_peak", 0.6, c.ts(i2), c.ts(n - 1),
                    f"rose from {fmt_num(float(y[:max(a, 1)].mean()))} over {c.dur(i2 - a)} and levelled off "
                    f"at {fmt_num(level)} for the last {c.dur(n - 1 - i2)}",
                    {"direction": 1, "level_before": float(y[:max(a, 1)].mean()), "level_after": level,
                     "change": rise})


_DAY, _WEEK = 86400.0, 604800.0


def _oscillating(c: _Ctx) -> ShapeHit | None:
    n = c.n
    if n < 12:
        return None
    r = c.y - c.y.mean() - c.slope * (c.x - 0.5)
    f = np.fft.rfft(r, 2 * n)
    ac = np.fft.irfft(f.real ** 2 + f.imag ** 2)[:n]
    if ac[0] <= 0:
        return None
    ac = ac / ac[0] * (n / (n - np.arange(n)))                 # unbiased
    lim = n // 3
    neg = np.flatnonzero(ac[:lim] < 0)
    if not len(neg):
        return None
    z = int(neg[0])
    lag = z + int(np.argmax(ac[z:lim + 1]))
    if lag >= lim or lag < 2:
        return None
    rho = float(ac[lag])
    amp = float(np.std(r))
    if amp ** 2 < 0.5 * float(np.var(c.y)):
        return None                                # mostly trend: stairs/ramps detrend to a sawtooth
    period = lag * c.span / (n - 1)
    if not c.index and any(abs(period - p) <= 0.15 * p for p in (_DAY, _WEEK)):
        return None                                # daily/weekly cycle: normal periodicity
    # peak-to-trough of one cycle, robustly
    p2p = float(np.subtract(*_q(r, 95, 5)))
    # noise = what one cycle does not repeat in the next; first differences would count a fast
    # (4-6 sample) cycle itself as noise
    dl = r[lag:] - r[:-lag]
    sig = min(c.sigma, 1.4826 * _med(np.abs(dl - _med(dl))) / math.sqrt(2))
    score = _lin(rho, 0.2, 0.5) * (_lin(amp / sig, 1.5, 3.0) if sig > 0 else 1.0)
    c.explain["oscillating"] = {"autocorrelation": round(rho, 3), "lag_points": lag,
                                "amplitude_over_noise": round(amp / sig, 2) if sig > 0 else None}
    cycles = (n - 1) / lag
    return ShapeHit("oscillating", score, c.ts(0), c.ts(n - 1),
                    f"{cycles:.0f} cycles every {c.dur(lag)}, swinging {fmt_num(p2p)} peak to trough "
                    f"(autocorrelation {rho:.2f})",
                    {"direction": 0, "period_s": period, "cycles": cycles, "swing": p2p})


def _spike(c: _Ctx) -> ShapeHit | None:
    y, n = c.y, c.n
    base = _med(y)
    dev = y - base
    p = int(np.argmax(np.abs(dev)))
    amp = abs(float(dev[p]))
    if amp < 0.75 * c.r or amp <= 0:
        return None
    s = 1.0 if dev[p] > 0 else -1.0
    above = s * dev > 0.25 * amp
    starts, ends = _runs(above)
    k = int(np.searchsorted(starts, p, side="right") - 1)
    a, b = int(starts[k]), int(ends[k])
    w = b - a
    pre, post = y[:a], y[b:]
    if n < 20 or len(pre) < max(2, 0.05 * n) or len(post) < max(2, 0.1 * n):   # a baseline to judge by
        return None
    outside = s * np.concatenate((dev[:a], dev[b:]))
    second = float(outside.max()) / amp
    mpre, mpost = _med(pre), _med(post)
    settle = abs(mpost - mpre) / amp
    # the same baseline on both sides, judged against the baseline's own spread (a spike on
    # top of a level shift is a cliff or a step, however small the shift is next to the spike)
    iqr = max(float(np.subtract(*_q(np.concatenate((pre, post)), 75, 25))), c.tol) / 1.35
    own = max(float(np.subtract(*_q(pre, 75, 25))), float(np.subtract(*_q(post, 75, 25))), c.tol) / 1.35
    shift = abs(mpost - mpre) / own
    score = (1 - _lin(w / n, 0.15, 0.3)) * (1 - _lin(settle, 0.2, 0.4)) * (1 - _lin(second, 0.4, 0.6)) \
        * _lin(amp / c.sigma, 5, 10) * (1 - _lin(shift, 2.0, 4.0)) * _lin(amp / iqr, 2.5, 4)
    c.explain["spike_then_settle"] = {"width_points": w, "amplitude_over_noise": round(amp / c.sigma, 1),
                                      "baseline_shift_over_spread": round(shift, 2),
                                      "second_excursion": round(second, 2)}
    return ShapeHit("spike_then_settle", score, c.ts(a), c.ts(b - 1),
                    f"{'spiked' if s > 0 else 'dipped'} {'+' if s > 0 else '-'}{fmt_num(amp)} "
                    f"from a baseline of {fmt_num(base)} for {c.dur(max(w - 1, 1))}, "
                    f"back within {100 * settle:.0f} % of the excursion",
                    {"direction": int(s), "change": s * amp, "level_before": base,
                     "level_after": mpost})


def analyse(t, v, *, counter: bool = False) -> Analysis:
    """Score every shape on one series; hits are the shapes scoring >= MIN_SCORE, best first."""
    index_time = t is None
    ta, va = clean(t, v, counter)
    n = len(va)
    if n < MIN_POINTS:
        return Analysis("too_short", f"too short to judge: {n} usable point{'s' if n != 1 else ''}"
                        f" (need {MIN_POINTS})", [], n)
    tg, y = to_grid(ta, va)
    if float(y.max() - y.min()) <= 1e-9 * (abs(float(y.max())) + abs(float(y.min()))) + 1e-300:
        return Analysis("constant", f"constant at {fmt_num(float(y[0]))} for the whole window", [], n)
    c = _Ctx(tg, y, index_time)
    stair, cliff = _stair_and_cliff(c)
    flat, plateau = _flat_and_plateau(c)
    found = [h for h in (stair, cliff, _ramp(c), flat, _oscillating(c), _spike(c), plateau) if h]
    by = {h.shape: h for h in found}
    for h in found:
        h.score = float(min(1.0, max(0.0, h.score)))
    raw = {h.shape: h.score for h in found}
    # precedence: the more specific description wins a tie with the generic one it implies
    #   plateau_under_peak = a rise (stair/ramp) whose top is clipped
    #   flatline at the end = a drop (cliff) into a dead, exactly constant signal
    #   spike_then_settle = a rise and a drop that cancel out
    for specific, generic in (("plateau_under_peak", "stair_step"), ("plateau_under_peak", "ramp"),
                              ("plateau_under_peak", "flatline"), ("flatline", "spike_then_settle"),
                              ("flatline", "oscillating"), ("plateau_under_peak", "oscillating"),
                              ("flatline", "stair_step"), ("flatline", "ramp"),
                              ("flatline", "cliff_drop"), ("spike_then_settle", "cliff_drop"),
                              ("spike_then_settle", "stair_step")):
        if specific in by and generic in by and by[specific].score >= MIN_SCORE:
            by[generic].score = min(by[generic].score, by[specific].score - 0.05)
    scores = {s: 0.0 for s in SHAPES}
    for h in found:
        h.score = round(calibrate(max(0.0, h.score)), 3)
        scores[h.shape] = h.score
    hits = sorted((h for h in found if h.score >= MIN_SCORE), key=lambda h: -h.score)
    note = "steady: no shape above the noise" if not hits else hits[0].why
    return Analysis("ok", note, hits, n, scores, _explain(c, by, hits, raw))


_FEATURE_KEYS = {"flatline": "flatline_tail", "plateau_under_peak": "flatline_tail"}


def _explain(c: _Ctx, by: dict, hits: list, raw: dict) -> dict:
    """Per shape: score, the verdict (won / lost to X / below the bar / not found) and the
    detector's features, so a responder can see why a graph was or was not called a shape."""
    out = {}
    common = {"range": round(c.rr, 6), "noise_sd": round(c.sigma, 6), "r2": round(c.r2, 3),
              "segments": len(c.seglen)}
    for shape in SHAPES:
        h = by.get(shape)
        feats = {**(c.explain.get(shape) or {}), **(c.explain.get(_FEATURE_KEYS.get(shape, shape)) or {})}
        if h is None:
            verdict = "not found: the detector's preconditions did not hold"
            score = 0.0
        else:
            score = h.score
            if hits and hits[0] is h:
                verdict = f"won: {h.why}"
            elif h.score >= MIN_SCORE:
                verdict = f"ranked below {hits[0].shape} ({hits[0].score:.2f}): {h.why}"
            else:
                verdict = f"below {MIN_SCORE}: {h.why}"
                if raw.get(shape, 0.0) >= MIN_SCORE > h.score:
                    verdict += " (capped by a more specific shape)"
        out[shape] = {"score": round(score, 3), "verdict": verdict, "features": feats}
    out["_series"] = {"score": 1.0, "verdict": "common features", "features": common}
    return out

"""A labelled synthetic corpus: every shape x noise x length x offset/scale x gaps x counter
resets x seasonal background. Shared by the tests and benchmarks/bench_matcher.py.

Signals are built in units of the shape's amplitude (1.0), then scaled and offset, so a noise
level of 0.08 means noise sd = 8 % of the thing we want to see.
"""
from __future__ import annotations

import numpy as np

SHAPES = ("steady", "stair_step", "ramp", "cliff_drop", "flatline", "oscillating",
          "spike_then_settle", "plateau_under_peak")
STEP_S = 60.0           # one point a minute: 1,440 points = one day


def _signal(shape: str, x: np.ndarray, rng: np.random.Generator, noise: float):
    """(clean signal, noise to add, mask of points whose noise is suppressed)."""
    n = len(x)
    z = np.zeros(n)
    eps = rng.normal(0, noise, n)
    quiet = np.zeros(n, bool)
    if shape == "steady":
        # AR(1) wander; steady is judged relative to its own noise
        phi = rng.uniform(0, 0.6)
        e = rng.normal(0, 1, n)
        ar = np.empty(n)
        ar[0] = e[0]
        for i in range(1, n):
            ar[i] = phi * ar[i - 1] + e[i]
        eps = ar * np.sqrt(1 - phi ** 2) * max(noise, 0.02)
        return z, eps, quiet
    if shape == "stair_step":
        k = int(rng.integers(2, 6))
        while True:
            at = np.sort(rng.uniform(0.1, 0.88, k))
            if np.all(np.diff(at) >= 0.08):
                break
        sizes = rng.uniform(0.6, 1.4, k)
        sizes /= sizes.sum()
        for a, s in zip(at, sizes):
            z = z + s * (x >= a)
        return z, eps, quiet
    if shape == "ramp":
        h = rng.uniform(0, 0.4)
        z = np.clip((x - h) / (1 - h), 0, None)
        return z, eps, quiet
    if shape == "cliff_drop":
        a = rng.uniform(0.3, 0.85)
        low = rng.uniform(0, 0.3)
        w = rng.uniform(0, 0.01)
        z = np.where(x < a, 1.0, np.where(x < a + w, 1 - (1 - low) * (x - a) / max(w, 1e-9), low))
        return z, eps, quiet
    if shape == "flatline":
        a = rng.uniform(0.4, 0.8)
        z = np.ones(n) + 0.3 * np.sin(2 * np.pi * x * rng.uniform(0.5, 1.2) + rng.uniform(0, 6.3))
        eps = rng.normal(0, max(noise, 0.1), n)        # it was visibly alive before
        i = int(np.searchsorted(x, a))
        hold = 0.0 if rng.random() < 0.5 else float(z[i - 1] + eps[i - 1])
        z[i:] = hold
        quiet[i:] = True
        return z, eps, quiet
    if shape == "oscillating":
        # >= 8 samples per cycle (fewer is aliasing, not a shape) and never a ~24 h period,
        # which the matcher deliberately calls normal daily seasonality
        cyc = rng.uniform(4, max(5.0, min(20.0, n / 8)))
        span_h = n * STEP_S / 3600
        while abs(span_h / cyc - 24) < 0.2 * 24:
            cyc = rng.uniform(4, max(5.0, min(20.0, n / 8)))
        ph = 2 * np.pi * cyc * x + rng.uniform(0, 6.3)
        kind = rng.integers(0, 4)
        if kind == 0:
            z = 0.5 * np.sin(ph)
        elif kind == 1:
            z = 0.5 * np.sign(np.sin(ph))
        elif kind == 2:
            z = (ph / (2 * np.pi)) % 1.0
        else:                                    # spike train (cron storm)
            z = np.exp(-(((ph / (2 * np.pi)) % 1.0) / 0.08))
        return z, eps, quiet
    if shape == "spike_then_settle":
        a = rng.uniform(0.2, 0.8)
        w = max(rng.uniform(0.01, 0.06), 3.0 / n)      # visible: >= 3 samples
        kind = rng.integers(0, 3)
        if kind == 0:
            z = ((x >= a) & (x < a + w)).astype(float)
        elif kind == 1:
            z = np.clip(1 - np.abs(x - a - w / 2) / (w / 2), 0, None)
        else:
            z = np.where(x >= a, np.exp(-(x - a) / (w / 2)), 0.0)
        if rng.random() < 0.2:
            z = -z
        return z, eps, quiet
    if shape == "plateau_under_peak":
        h = rng.uniform(0.05, 0.3)
        demand = np.clip((x - h) / (1 - h), 0, None) * rng.uniform(1.5, 2.2)
        v = demand + eps
        quiet = v >= 1.0
        z = np.minimum(v, 1.0)
        return z, np.zeros(n), quiet
    raise ValueError(shape)


def make(shape: str, rng: np.random.Generator, n: int = 1440, noise: float = 0.08,
         seasonal: float = 0.0, scale: float = 1.0, offset: float = 0.0, irregular: bool = False,
         gaps: bool = False, counter: bool = False, resets: int = 1):
    """One labelled series: (t, v, counter) with v a list that may hold None."""
    t = 1.7e9 + np.arange(n) * STEP_S
    if irregular:
        t = t + rng.uniform(-0.3, 0.3, n) * STEP_S
    x = (t - t[0]) / (t[-1] - t[0])
    z, eps, quiet = _signal(shape, x, rng, noise)
    if seasonal:
        # one daily cycle (or less): normal periodicity, never a shape on its own
        # (a dead or clipped stretch stays dead or clipped)
        season = seasonal * np.sin(2 * np.pi * x * rng.uniform(0.8, 1.0) + rng.uniform(0, 6.3))
        z = np.where(quiet, z, z + season)
    sig = np.where(quiet, z, z + eps)
    v = offset + scale * sig
    if counter:
        rate = v - min(0.0, float(v.min()))     # rates are never negative
        dt = np.diff(t, prepend=t[0] - STEP_S)
        cnt = np.cumsum(rate * dt)
        for r in rng.choice(np.arange(n // 10, n - n // 10), size=resets, replace=False) if n > 20 else []:
            cnt[r:] -= cnt[r - 1]               # the process restarted: counter from ~0
        v = cnt
    vals: list = v.tolist()
    if gaps and n >= 20:
        g0 = int(rng.integers(n // 10, n - n // 4))
        gl = max(1, n // 20)
        keep = np.ones(n, bool)
        keep[g0:g0 + gl] = False
        t = t[keep]
        vals = [vals[i] for i in np.flatnonzero(keep)]
        for i in rng.choice(len(vals), size=max(1, len(vals) // 50), replace=False):
            vals[i] = None if rng.random() < 0.5 else float("nan")
    return t.tolist(), vals, counter


def corpus(seed: int = 0, per_cell: int = 3, noises=(0.03, 0.08), lengths=(60, 300, 1440),
           variants=None):
    """Yield (label, params, t, v, counter) over the grid of conditions."""
    rng = np.random.default_rng(seed)
    variants = variants or [
        dict(),
        dict(irregular=True, gaps=True),
        dict(counter=True),
        dict(seasonal=0.15),
    ]
    for shape in SHAPES:
        for noise in noises:
            for n in lengths:
                for var in variants:
                    for _ in range(per_cell):
                        scale = float(10 ** rng.uniform(-3, 9))
                        offset = float(rng.uniform(-5, 50)) * scale
                        if var.get("counter"):
                            offset = abs(offset) + 3 * scale
                        p = dict(shape=shape, n=n, noise=noise, scale=scale, offset=offset, **var)
                        t, v, c = make(shape, rng, n=n, noise=noise, scale=scale, offset=offset, **var)
                        yield shape, p, t, v, c

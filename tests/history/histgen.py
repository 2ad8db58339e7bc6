"""Synthetic capture records for store tests and the benchmark (no host data involved)."""
from __future__ import annotations

import json
import random

from hostdiag.history.record import HOST_KEYS

T0 = 1_790_000_000.0      # a fixed epoch: tests run on a controlled clock


def record(t: float, i: int = 0, *, procs: int = 25, findings: int = 2, rng: random.Random | None = None,
           title_pad: int = 0) -> dict:
    """One realistic-sized capture: every host column, 2 devices, 3 mounts, `procs` processes."""
    rng = rng or random.Random(i)
    host = {k: round(rng.uniform(0, 100), 2) for k in HOST_KEYS}
    host["memory.available_bytes"] = 8_000_000_000 - i * 1_000_000
    return {
        "t": t, "window_s": 1.0, "duration_s": 0.41,
        "host": host,
        "devices": {d: {"util_pct": rng.uniform(0, 5), "read_bps": rng.randint(0, 10 ** 6),
                        "write_bps": rng.randint(0, 10 ** 6), "r_await_ms": 0.2, "w_await_ms": 0.4}
                    for d in ("vda", "vdb")},
        "mounts": {m: {"used_bytes": 10 ** 9 + i * 4096 * (k + 1), "size_bytes": 10 ** 10, "inodes_used": 5000 + i,
                       "inodes_total": 10 ** 6} for k, m in enumerate(("/", "/var", "/srv"))},
        "procs": [{"pid": 1000 + k, "start": int(T0) - 3600 + k, "name": f"svc{k}", "cpu_pct": rng.uniform(0, 20),
                   "rss_bytes": rng.randint(10 ** 6, 10 ** 9), "fds": rng.randint(3, 300),
                   "io_bps": rng.randint(0, 10 ** 5)} for k in range(procs)],
        "ports": [("LISTEN", 22, 0), ("LISTEN", 443, rng.randint(0, 3)), ("TIME_WAIT", 443, rng.randint(0, 50))],
        "findings": [{"id": f"test.finding{k}", "severity": 1, "subject": json.dumps({"pid": 1000 + k}),
                      "title": f"finding {k} at capture {i}" + "x" * title_pad} for k in range(findings)],
    }

"""Cost of the issue-11 diagnosis passes, as ratios against a baseline measured in the same run
(medians of --repeat runs):

- sockets.tick_detail (per tick: ephemeral ports per address, CLOSE_WAIT per port) vs
  sockets.count_states (the per-tick state count it sits next to), on a synthetic /proc/net/tcp;
- the changes collector with its links (dpkg lists, exe/cgroup of every process) vs without.

    .venv/bin/python benchmarks/bench_diagnosis.py [--sockets 50000] [--repeat 9]
"""
from __future__ import annotations

import argparse
import os
import random
import statistics
import time


def med(fn, n: int) -> float:
    xs = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        xs.append(time.perf_counter() - t)
    return statistics.median(xs)


def tcp_table(n: int) -> str:
    rng = random.Random(1)
    lines = ["  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode"]
    for i in range(n):
        st = rng.choice(["01", "06", "08", "0A"])
        lines.append(f"{i:4d}: 0100007F:{rng.randint(1024, 65535):04X} 0100007F:{rng.randint(1024, 65535):04X} {st} "
                     f"00000000:00000000 00:00000000 00000000     0        0 {i} 1 0000000000000000 20 4 30 10 -1")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sockets", type=int, default=50_000)
    ap.add_argument("--repeat", type=int, default=9)
    a = ap.parse_args()
    from hostdiag.collectors import changes, sockets
    from hostdiag.core import runner
    from hostdiag.core.context import Context

    text = tcp_table(a.sockets)
    base = med(lambda: sockets.count_states(text, {}), a.repeat)
    mine = med(lambda: sockets.tick_detail((text, None), (32768, 60999)), a.repeat)
    print(f"tick_detail / count_states on {a.sockets} sockets: {mine * 1e3:.1f} / {base * 1e3:.1f} ms = {mine / base:.2f}")

    # (disk's own /proc/PID/io pass is gone: its writers' wchar rates come from the process scan)
    ctx = Context()

    def changes_run():
        return runner.run(ctx, [changes], window_s=0, interval_s=1.0).sections["changes"].duration_s
    real = changes.add_links
    with_l, without = [], []
    for _ in range(a.repeat):
        changes.add_links = real
        with_l.append(changes_run())
        changes.add_links = lambda job, tl: None
        without.append(changes_run())
    changes.add_links = real
    w, wo = statistics.median(with_l), statistics.median(without)
    print(f"changes collect with / without links: {w * 1e3:.1f} / {wo * 1e3:.1f} ms = {w / wo:.2f}")


if __name__ == "__main__":
    main()

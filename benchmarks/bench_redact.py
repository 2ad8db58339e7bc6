"""Worst per-string cost of the bundle's redaction on adversarial 8 KB strings, as a ratio to an
ordinary 8 KB log string measured in the same run.

    .venv/bin/python benchmarks/bench_redact.py [--size 8192] [--json]

Every string of a bundle goes through every rule (a journal message is capped at 8192 characters,
a cmdline at 4096 bytes, one string at redact.MAX_TEXT): a rule that backtracks per start position
turns one long line into seconds (`a.a.a.…` took 2.5 s per 8 KB line before the name rule stopped
starting after every dot). Each adversarial string tiles a fragment of a rule (a separator, a
keyword, a scheme, an audit field...) and ends with the trigger words, so the gated rules run.
Each is timed as the median of 5 runs; the report is the worst string and its ratio to the baseline.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

TILES = ["a.", "a-", "a_", "a ", "a:", "a@", "a=", "a,", "aB", "AB0", "%41", "%3D", "x://a:", "a:b@", 'password="',
         "password = ", "key=", "--password ", "mysql -p ", "curl -u a:", "smbclient -U a%", "ldapsearch -w ",
         "docker login -p ", "eyJ", "eyJa.", "AKIA", "ghp_", "xoxb-", "sk-", "AccountKey=", "a0=\"x\" ", "proctitle=41",
         "Cookie: ", "Authorization: ", "Authorization: Basic ", "-----BEGIN ", "\\x0a", "\\x0apassword", '\\"', "\\",
         "[REDACTED:x]", "\n", "\npassword = ", "Q~", "1Q~", "…[+1 chars]"]


def tile(s: str, n: int) -> str:
    return (s * (n // len(s) + 1))[:n]


def timed(fn, s: str, runs: int = 5) -> float:
    out = []
    for _ in range(runs):
        t = time.perf_counter()
        fn(s)
        out.append(time.perf_counter() - t)
    return statistics.median(out)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=8192)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    from hostdiag.bundle import redact

    r = redact.make(config=None)
    words = "nginx: worker 18 handled request 99812 in 33ms on port 8080 from /var/www/html/index.html user=bob "
    base = timed(r.text, tile(words, a.size - 16) + " pass key token")
    rows = []
    for t in TILES:
        s = tile(t, a.size - 16) + " pass key token"
        rows.append({"tile": t, "seconds": timed(r.text, s)})
    rows.sort(key=lambda x: -x["seconds"])
    res = {"size": a.size, "baseline_s": base, "worst": rows[0], "worst_ratio": rows[0]["seconds"] / base, "rows": rows}
    if a.json:
        print(json.dumps(res, indent=2))
        return
    print(f"baseline (ordinary {a.size}-char log string): {base * 1e3:.2f} ms")
    for x in rows[:10]:
        print(f"  {x['tile']!r:28} {x['seconds'] * 1e3:8.2f} ms  {x['seconds'] / base:6.1f}x")
    print(f"worst: {rows[0]['tile']!r} {res['worst_ratio']:.1f}x the baseline")


if __name__ == "__main__":
    main()

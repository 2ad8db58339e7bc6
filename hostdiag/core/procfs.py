"""Parsers for /proc formats shared by several collectors. Pure: tested on literal strings."""
from __future__ import annotations

from hostdiag.core.context import Context

PSI_ABSENT = "PSI not present: kernel < 4.20 or booted without psi=1"


def parse_psi(text: str) -> dict[str, float]:
    """'some avg10=1.50 avg60=0.20 avg300=0.00 total=12345' ->
    {'some_avg10': 1.5, ..., 'some_total_us': 12345.0}; a 'full' line likewise."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        kind, _, rest = line.partition(" ")
        if kind not in ("some", "full"):
            continue
        for kv in rest.split():
            k, _, v = kv.partition("=")
            try:
                out[f"{kind}_{'total_us' if k == 'total' else k}"] = float(v)
            except ValueError:
                continue
    return out


def read_psi(ctx: Context, resource: str) -> dict[str, float] | None:
    """PSI for cpu/memory/io, or None where the kernel has none (say PSI_ABSENT)."""
    text = ctx.read_optional(ctx.proc_path("pressure", resource))
    return parse_psi(text) if text else None


def parse_flat_kv(text: str) -> dict[str, int]:
    """'key value' per line (/proc/vmstat, cgroup memory.stat/cpu.stat/memory.events)."""
    out: dict[str, int] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2:
            try:
                out[parts[0]] = int(parts[1])
            except ValueError:
                continue
    return out

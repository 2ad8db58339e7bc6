"""A flatline must outlast the metric's own cadence. Block-device writes come in writeback
bursts (every 5 s, dirty pages expire after 30 s): seconds of zero writes between flushes are
the page cache at work, not a dead producer. Seen in a 10 s snapshot on this host with faults
running: "ingestion.flatline" on io.write_bytes for the 3 s after a flush."""
from __future__ import annotations

from hostdiag.analysis.shapes import match_series
from hostdiag.catalog import load
from hostdiag.core.model import Series

MIB = 1 << 20


def _writes(rates: list[float], dt: float = 0.5) -> Series:
    total, v = 0.0, []
    for r in rates:
        total += r * dt
        v.append(total)
    return Series("io.write_bytes", "bytes", [i * dt for i in range(len(rates))], v, {"device": "sda"},
                  counter=True, t0=1.7e9)


def _shapes(s: Series) -> list[tuple[str, str | None]]:
    return [(m.shape, m.signature) for m in match_series({s.key: s}, load())]


def test_seconds_of_quiet_between_writeback_flushes_are_not_a_flatline():
    # 10 s: steady writes with a flush burst, then 4 s at exactly 0 (the window ends before the next flush)
    rates = [30 * MIB, 28 * MIB, 31 * MIB, 29 * MIB, 30 * MIB, 32 * MIB, 29 * MIB, 30 * MIB, 31 * MIB, 30 * MIB,
             60 * MIB, 30 * MIB] + [0.0] * 9
    assert not [x for x in _shapes(_writes(rates)) if x[0] == "flatline"]


def test_a_minute_of_no_writes_after_steady_writing_is_still_a_flatline():
    rates = [30 * MIB + (i % 3) * MIB for i in range(60)] + [0.0] * 60
    assert ("flatline", "ingestion.flatline") in _shapes(_writes(rates, dt=1.0))

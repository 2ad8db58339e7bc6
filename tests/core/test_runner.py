"""The runner: time bounds, failure statuses, series and rates. Fake collector modules stand in
for resources we cannot break on demand (a hung read); they are plain objects, not mocks of psutil."""
from __future__ import annotations

import threading
import time
import types

import pytest

from hostdiag.core import runner
from hostdiag.core.context import Context, Unavailable
from hostdiag.core.model import Series


def fake(name, sample=None, collect=None, needs=()):
    m = types.SimpleNamespace(NAME=name, UNITS={"ticks": ("count", True), "level": ("count", False)},
                              NEEDS=set(needs), collect=collect or (lambda job: {"ok": True}))
    if sample:
        m.sample = sample
    return m


def test_hung_collect_costs_at_most_the_bound_and_is_a_blind_spot():
    release = threading.Event()
    m = fake("hung", collect=lambda job: release.wait(30))
    t0 = time.monotonic()
    snap = runner.run(Context(timeout_s=0.2), [m, fake("fine")], window_s=0, interval_s=1)
    elapsed = time.monotonic() - t0
    release.set()
    sec = snap.sections["hung"]
    assert sec.status == "unavailable" and "timed out after 0.2s" in sec.reason
    assert snap.sections["fine"].status == "ok"
    assert elapsed < 10  # generous: the point is that it returned at all while the call is stuck


def test_hung_sample_marks_collector_unavailable_and_skips_later_ticks():
    calls = []
    block = threading.Event()

    def sample(ctx, state):
        calls.append(1)
        block.wait(30)
        return {}

    snap = runner.run(Context(timeout_s=0.1), [fake("stuck", sample=sample)], window_s=0.2, interval_s=0.1)
    block.set()
    assert snap.sections["stuck"].status == "unavailable"
    assert len(calls) == 1  # not retried on every tick


def test_unavailable_bug_and_partial_statuses():
    def unavailable(job):
        raise Unavailable("PSI not present: kernel < 4.20")

    def bug(job):
        return {}["missing"]

    def partial(job):
        job.blind_spot("permission denied reading /proc/1/fd: run as root")
        return {"n": 1}

    snap = runner.run(Context(), [fake("a", collect=unavailable), fake("b", collect=bug), fake("c", collect=partial)],
                      window_s=0, interval_s=1)
    assert (snap.sections["a"].status, snap.sections["a"].reason) == ("unavailable", "PSI not present: kernel < 4.20")
    assert snap.sections["b"].status == "unavailable" and snap.sections["b"].reason.startswith("hostdiag bug: KeyError")
    assert snap.sections["c"].status == "partial" and "run as root" in snap.sections["c"].reason
    assert snap.sections["c"].data == {"n": 1}


def test_window_sampling_builds_series_and_rates():
    n = iter(range(100))

    def sample(ctx, state):
        i = next(n)
        return {"ticks": i * 10, "level[device=sda]": 5}

    snap = runner.run(Context(), [fake("x", sample=sample)], window_s=0.3, interval_s=0.1)
    s = snap.series["x.ticks"]
    assert s.counter and len(s.v) == 4 and s.v == [0, 10, 20, 30]
    assert s.rate() == pytest.approx(30 / (s.t[-1] - s.t[0]))
    lab = snap.series["x.level[device=sda]"]
    assert lab.labels == {"device": "sda"} and lab.metric == "x.level"


def test_window_zero_has_one_sample_and_no_rates():
    snap = runner.run(Context(), [fake("x", sample=lambda c, s: {"ticks": 7})], window_s=0, interval_s=1)
    assert snap.series["x.ticks"].v == [7] and snap.series["x.ticks"].rate() is None
    assert snap.window_s == 0


def test_counter_reset_gives_no_rate_rather_than_negative():
    s = Series("m", "count", t=[0, 1, 2], v=[100, 150, 3], counter=True)
    assert s.rate() is None
    assert s.rates() == [50.0, None]


@pytest.mark.parametrize("key,expected", [
    ("load1", ("load1", {})),
    ("read_bytes[device=sda]", ("read_bytes", {"device": "sda"})),
    ("used_bytes[mount=/var/lib]", ("used_bytes", {"mount": "/var/lib"})),
])
def test_parse_key(key, expected):
    assert runner.parse_key(key) == expected


def test_host_info_describes_the_tree_not_this_machine(tmp_path):
    from support import fixture_ctx, fixture_tree

    from hostdiag.core.runner import host_info

    root = fixture_tree(tmp_path, "web_closewait")
    h = host_info(fixture_ctx(root))
    assert (h.hostname, h.kernel, h.os, h.cpus) == ("web-01", "6.1.0-26-amd64", "Debian GNU/Linux 12 (bookworm)", 4)
    assert (h.boot_time, h.uptime_s) == ("2026-11-29T00:00:00+00:00", 93784.52)   # btime, not now - uptime
    (root / "sys/devices/system/cpu/online").write_text("0-1,4,6-7\n")
    assert host_info(fixture_ctx(root)).cpus == 5
    (root / "sys/devices/system/cpu/online").unlink()
    assert host_info(fixture_ctx(root)).cpus == 4                                  # cpu0..cpu3 in proc/stat
    for f in ("proc/sys/kernel/hostname", "proc/sys/kernel/osrelease", "proc/stat", "proc/uptime", "etc/os-release"):
        (root / f).unlink()
    h = host_info(fixture_ctx(root))   # a bare tree: unknown, never the live host's facts
    assert (h.hostname, h.kernel, h.os, h.cpus, h.boot_time, h.uptime_s) == ("?", "?", "?", None, None, None)

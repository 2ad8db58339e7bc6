"""cpu collector: /proc/stat from several kernels as literal strings, CPU count from the tree
(never from this machine), per-CPU fields, ctxt/intr rates, the one-CPU-pinned, steal and
context-switch findings on hand-built trees whose counters the test moves between ticks."""
from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support import drive, fixture_ctx, section

from hostdiag.collectors import cpu as C
from hostdiag.core.procscan import Proc, Scan
from hostdiag.core.thresholds import Thresholds

TH = Thresholds(C.THRESHOLDS)
HZ = C._HZ

# 2.6.9 (RHEL 4): 7 fields, no steal.
STAT_269 = """cpu  100 0 50 1000 10 1 2
cpu0 100 0 50 1000 10 1 2
intr 1000 50 0
ctxt 5000
btime 1100000000
processes 300
procs_running 1
procs_blocked 0
"""
# 2.6.32 (RHEL 6): 9 fields (guest).
STAT_2632 = """cpu  4705 150 1120 16250 520 20 30 5 0
cpu0 2355 75 560 8125 260 10 15 3 0
cpu1 2350 75 560 8125 260 10 15 2 0
intr 114930548 113199788 3 0 5 263 0 4 [...]
ctxt 1990473
btime 1062191376
processes 2915
procs_running 1
procs_blocked 0
"""
# 6.18 (this VM): 10 fields (guest_nice), softirq line.
STAT_618 = """cpu  13714 0 4525 103569 840 0 90 11 0 0
cpu0 4605 0 1943 54310 471 0 18 5 0 0
cpu1 9109 0 2581 49258 369 0 71 6 0 0
intr 453638 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 1 1 12 0 0 0 0 123 64
ctxt 956521
btime 1764394000
processes 20155
procs_running 3
procs_blocked 0
softirq 201066 0 59433 32 5478 3 0 12 70466 0 65642
"""


def test_parse_stat_old_kernel_has_no_steal():
    s = C.parse_stat(STAT_269)
    assert set(s["all"]) == {"user", "nice", "system", "idle", "iowait", "irq", "softirq"}
    assert s["0"]["softirq"] == 2 / HZ
    assert s["_"] == {"intr": 1000, "ctxt": 5000, "btime": 1100000000, "procs_running": 1, "procs_blocked": 0}


def test_parse_stat_2632_guest_ignored_steal_kept():
    s = C.parse_stat(STAT_2632)
    assert s["1"]["steal"] == 2 / HZ and s["all"]["user"] == 4705 / HZ
    assert "guest" not in s["all"]          # guest is already inside user
    assert s["_"]["intr"] == 114930548 and s["_"]["ctxt"] == 1990473


def test_parse_stat_618():
    s = C.parse_stat(STAT_618)
    assert sorted(k for k in s if k.isdigit()) == ["0", "1"]
    assert s["1"]["softirq"] == 71 / HZ and s["0"]["iowait"] == 471 / HZ
    assert s["_"]["procs_running"] == 3


def test_parse_stat_skips_bad_lines():
    s = C.parse_stat("cpu  1 x 3\ncpufreq 5\ncpu0 1 2 3 4\nctxt many\n")
    assert "all" not in s and "freq" not in s and s["0"]["idle"] == 4 / HZ and s["_"] == {}


@settings(deadline=None)
@given(st.text(max_size=300))
def test_parse_stat_never_raises(text):
    C.parse_stat(text)
    C.parse_cpu_list(text)


@settings(deadline=None)
@given(st.lists(st.lists(st.integers(0, 2**63), min_size=4, max_size=10), min_size=1, max_size=16),
       st.integers(0, 2**63))
def test_parse_stat_roundtrip(cpus, ctxt):
    text = "".join(f"cpu{i} " + " ".join(map(str, v)) + "\n" for i, v in enumerate(cpus)) + f"ctxt {ctxt}\n"
    s = C.parse_stat(text)
    assert C.cpu_count(None, s) == len(cpus)
    for i, v in enumerate(cpus):
        assert [s[str(i)][f] for f in C.FIELDS[:len(v)]] == [x / HZ for x in v[:8]]
    assert s["_"]["ctxt"] == ctxt


@pytest.mark.parametrize("text,n", [("0-7\n", 8), ("0\n", 1), ("0,2-3,8-11\n", 7), ("", None), ("x-1", None)])
def test_parse_cpu_list(text, n):
    assert C.parse_cpu_list(text) == n


class Host:
    """proc/{stat,loadavg} (+ sys cpu/online) with counters the test advances per CPU."""

    def __init__(self, root: Path, ncpu: int, online: str | None = None, stat_cpus: bool = True):
        self.root, self.ncpu, self.stat_cpus = root, ncpu, stat_cpus
        self.ticks = [[1000, 0, 500, 10000, 100, 0, 10, 0] for _ in range(ncpu)]
        self.ctxt = self.intr = 0
        (root / "proc").mkdir(parents=True)
        (root / "proc" / "loadavg").write_text("0.50 0.40 0.30 2/300 999\n")
        if online is not None:
            d = root / "sys" / "devices" / "system" / "cpu"
            d.mkdir(parents=True)
            (d / "online").write_text(online)
        self.write()

    def write(self):
        tot = [sum(c[i] for c in self.ticks) for i in range(8)]
        lines = ["cpu  " + " ".join(map(str, tot))]
        if self.stat_cpus:
            lines += [f"cpu{i} " + " ".join(map(str, c)) for i, c in enumerate(self.ticks)]
        lines += [f"intr {self.intr} 0 0", f"ctxt {self.ctxt}", "procs_running 2", "procs_blocked 0"]
        (self.root / "proc" / "stat").write_text("\n".join(lines) + "\n")

    def run(self, cpu: int, user=0, system=0, idle=0, softirq=0, steal=0):
        """Advance one CPU by these many ticks (HZ per second of the step)."""
        c = self.ticks[cpu]
        c[0] += user
        c[2] += system
        c[3] += idle
        c[6] += softirq
        c[7] += steal

    def second(self, busy: dict[int, dict] | None = None, ctxt=0, intr=0):
        for i in range(self.ncpu):
            self.run(i, **((busy or {}).get(i) or {"idle": HZ}))
        self.ctxt += ctxt
        self.intr += intr
        self.write()

    def proc(self, pid: int, last_cpu: int, allowed: str | None = None):
        d = self.root / "proc" / str(pid)
        d.mkdir()
        fields = ["S", "1"] + ["0"] * 34 + [str(last_cpu)] + ["0"] * 10
        (d / "stat").write_text(f"{pid} (spin) " + " ".join(fields) + "\n")
        allowed = allowed or f"0-{self.ncpu - 1}"
        (d / "status").write_text(f"Name:\tspin\nCpus_allowed:\tf\nCpus_allowed_list:\t{allowed}\n")


def go(h: Host, steps, scan=None, th=TH):
    job = drive(C, fixture_ctx(h.root), steps, scan=scan)
    sec = section(C, job)
    return sec, C.findings(sec, th)


def test_cpu_count_from_the_tree_not_this_machine(tmp_path):
    h = Host(tmp_path, 8)
    sec, _ = go(h, [h.second])
    assert sec.data["cpus"] == 8 and sec.data["load_per_core"] == round(0.5 / 8, 2)
    assert sorted(sec.data["per_cpu"], key=int) == [str(i) for i in range(8)]


def test_cpu_count_from_sys_online_when_stat_has_no_cpu_lines(tmp_path):
    h = Host(tmp_path, 8, online="0-11\n", stat_cpus=False)
    sec, _ = go(h, [h.second])
    assert sec.data["cpus"] == 12 and "CPU count" not in (sec.reason or "")


def test_cpu_count_unknown_is_a_blind_spot(tmp_path):
    h = Host(tmp_path, 4, stat_cpus=False)
    sec, fs = go(h, [h.second])
    assert sec.data["cpus"] is None and sec.data["load_per_core"] is None
    assert sec.status == "partial" and "CPU count unknown" in sec.reason


def test_per_cpu_fields_and_rates(tmp_path):
    h = Host(tmp_path, 2)
    step = lambda: h.second({0: {"user": 30, "system": 20, "softirq": 10, "idle": 40},   # noqa: E731
                             1: {"steal": 50, "idle": 50}}, ctxt=4000, intr=2000)
    sec, _ = go(h, [step, step])
    pc = sec.data["per_cpu"]
    assert pc["0"] == {"busy": 60.0, "user": 30.0, "system": 20.0, "iowait": 0.0, "irq": 0.0, "softirq": 10.0,
                       "steal": 0.0}
    assert pc["1"]["steal"] == 50.0
    assert sec.data["ctxt_per_s"] == 4000 and sec.data["intr_per_s"] == 2000


def test_one_cpu_pinned_names_the_process_on_it(tmp_path):
    h = Host(tmp_path, 4)
    h.proc(4242, last_cpu=3)
    h.proc(4343, last_cpu=0)
    scan = Scan()
    scan.procs[4242] = Proc(pid=4242, name="spin", cpu_pct=99.0, cpu_s=50.0)
    scan.procs[4343] = Proc(pid=4343, name="other", cpu_pct=20.0, cpu_s=5.0)
    step = lambda: h.second({3: {"user": HZ}})   # noqa: E731
    sec, fs = go(h, [step] * 3, scan=scan)
    (f,) = [f for f in fs if f.id == "cpu.one_cpu_pinned"]
    assert f.subject == {"cpu": 3, "pid": 4242, "name": "spin"} and f.severity == "critical"
    assert "CPU 3 100.0% busy by spin (pid 4242)" in f.title and "host average 25.0%" in f.title
    assert "top -H -p 4242" in f.verify


def test_pinned_cpu_tie_needs_evidence(tmp_path):
    h = Host(tmp_path, 4)
    h.proc(1, last_cpu=3)                   # last seen there, but 60 % of a CPU: could be anywhere
    h.proc(2, last_cpu=0, allowed="2")      # bound to CPU 2 alone (taskset -c 2) at 55 %
    scan = Scan()
    scan.procs[1] = Proc(pid=1, name="wander", cpu_pct=60.0, cpu_s=5.0)
    scan.procs[2] = Proc(pid=2, name="bound", cpu_pct=55.0, cpu_s=5.0)
    step = lambda: h.second({3: {"user": HZ}, 2: {"user": HZ}})   # noqa: E731
    sec, fs = go(h, [step] * 2, scan=scan)
    by = {f.subject["cpu"]: f for f in fs if f.id == "cpu.one_cpu_pinned"}
    assert by[3].subject == {"cpu": 3} and "user 100.0%" in by[3].title
    assert by[2].subject == {"cpu": 2, "pid": 2, "name": "bound"} and "(bound to it alone)" in by[2].title


def test_softirq_on_one_core_names_no_process(tmp_path):
    h = Host(tmp_path, 2)
    h.proc(4242, last_cpu=1)
    scan = Scan()
    scan.procs[4242] = Proc(pid=4242, name="ksoftirqd/1", cpu_pct=60.0, cpu_s=50.0)
    step = lambda: h.second({1: {"softirq": 80, "system": 17, "idle": 3}})   # noqa: E731
    sec, fs = go(h, [step] * 2, scan=scan)
    (f,) = [f for f in fs if f.id == "cpu.one_cpu_pinned"]
    assert f.subject == {"cpu": 1} and "softirq/irq 80.0%" in f.title and f.severity == "warning"


def test_pinned_not_reported_when_the_whole_host_is_saturated(tmp_path):
    h = Host(tmp_path, 2)
    step = lambda: h.second({0: {"user": HZ}, 1: {"user": HZ}})   # noqa: E731
    sec, fs = go(h, [step] * 2)
    assert [f.id for f in fs] == ["cpu.saturation"]


def test_hostdiag_is_never_the_subject(tmp_path):
    h = Host(tmp_path, 2)
    (tmp_path / "proc" / "pressure").mkdir()
    (tmp_path / "proc" / "pressure" / "cpu").write_text(
        "some avg10=70.00 avg60=10.00 avg300=1.00 total=123456\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n")
    scan = Scan()
    scan.procs[10] = Proc(pid=10, name="python3", cpu_pct=30.0, cpu_s=1.0, is_self=True)
    scan.procs[11] = Proc(pid=11, name="java", cpu_pct=10.0, cpu_s=1.0)
    sec, fs = go(h, [h.second], scan=scan)
    (f,) = fs
    assert f.id == "cpu.pressure" and f.subject == {} and f.evidence["top_consumer"] == {"pid": 11, "name": "java"}
    assert sec.data["top"][0]["self"] is True and sec.data["top"][1]["self"] is False
    assert sec.data["psi_totals_us"] == {"some_total_us": 123456.0, "full_total_us": 0.0}
    assert sec.data["irq_psi"] is None and "irq PSI not present" in sec.data["irq_psi_note"]


def test_irq_psi_read_when_present(tmp_path):
    h = Host(tmp_path, 2)
    (tmp_path / "proc" / "pressure").mkdir()
    (tmp_path / "proc" / "pressure" / "irq").write_text("full avg10=1.50 avg60=0.20 avg300=0.00 total=98765\n")
    sec, _ = go(h, [h.second])
    assert sec.data["irq_psi"] == {"full_avg10": 1.5, "full_avg60": 0.2, "full_avg300": 0.0, "full_total_us": 98765.0}


def test_steal_and_context_switch_storm(tmp_path):
    h = Host(tmp_path, 2)
    step = lambda: h.second({0: {"steal": 30, "user": 20, "idle": 50},   # noqa: E731
                             1: {"steal": 30, "user": 20, "idle": 50}}, ctxt=600_000, intr=1000)
    sec, fs = go(h, [step] * 2)
    by = {f.id: f for f in fs}
    assert set(by) == {"cpu.steal", "cpu.context_switch_storm"}
    assert by["cpu.steal"].severity == "critical" and by["cpu.steal"].evidence["steal_pct"] == 30.0
    cs = by["cpu.context_switch_storm"]
    assert cs.severity == "critical" and cs.evidence["ctxt_per_cpu_per_s"] == 300_000
    assert "600,000 context switches/s" in cs.title


def test_window_zero_has_no_rates(tmp_path):
    h = Host(tmp_path, 2)
    sec, fs = go(h, [])
    assert sec.data["per_cpu"] is None and sec.data["ctxt_per_s"] is None and fs == []


def test_parse_loadavg():
    assert C.parse_loadavg("0.50 0.40 0.30 2/300 999\n") == {"1m": 0.5, "5m": 0.4, "15m": 0.3, "runnable": 2,
                                                             "tasks": 300}
    assert C.parse_loadavg("0.50 0.40\n") is None and C.parse_loadavg("a b c 1/2 3") is None


@settings(deadline=None)
@given(st.text(max_size=100))
def test_parse_loadavg_never_raises(text):
    C.parse_loadavg(text)


def test_missing_loadavg_keeps_the_per_cpu_facts(tmp_path):
    h = Host(tmp_path, 4)
    (tmp_path / "proc" / "loadavg").unlink()
    sec, fs = go(h, [lambda: h.second({0: {"user": HZ}})])
    assert sec.status == "partial" and "loadavg missing or unreadable" in sec.reason
    assert sec.data["load"] is None and sec.data["load_per_core"] is None
    assert sec.data["cpus"] == 4 and sec.data["per_cpu"]["0"]["user"] == 100.0
    assert [f.id for f in fs] == ["cpu.one_cpu_pinned"]

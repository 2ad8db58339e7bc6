"""Ranking by urgency on one scale: the order for a mix of findings is pinned here."""
from __future__ import annotations

from hostdiag.analysis.urgency import rank, urgency
from hostdiag.core.model import Finding


def F(fid, sev, **kw):
    return Finding(id=fid, category=fid.split(".")[0], severity=sev, title=fid, **kw)


def test_order_for_a_mix_of_findings():
    mix = [
        F("memory.oom_kills_info", "info", evidence={"oom_kills_total": 2}),
        # 300 static CLOSE_WAIT sockets used to outrank 99.7 % CPU by raw score
        F("sockets.close_wait_leak", "warning", subject={"port": 8080}, evidence={"close_wait": 300}, score=300),
        F("cpu.saturation", "warning", evidence={"busy_pct": 99.7}, score=99.7),
        F("files.process_fd_exhaustion", "critical", subject={"pid": 42}, evidence={"pct": 91.0}, score=91),
        F("disk.nearly_full.var", "critical", subject={"mount": "/var"},
          evidence={"used_pct": 96.0, "time_to_full_s": 420.0}, score=96),
        F("memory.exhaustion", "critical", evidence={"available_pct": 3.0}, score=97),
        F("memory.oom_kills", "critical", evidence={"oom_kills_window": 1}, score=1.0),   # scored 1.0: was last
        F("disk.readonly_remount", "critical", subject={"mount": "/data"}, score=1.0),
        F("disk.nearly_full", "critical", subject={"mount": "/"}, evidence={"used_pct": 100.0}),
        F("files.system_exhaustion", "warning", evidence={"file_handles_pct": 91.0}),
        F("memory.cgroup_near_limit", "warning", subject={"cgroup": "/a"}, evidence={"working_set_pct": 91.0}),
        F("io.saturation", "warning", subject={"device": "sda"}, eta_s=None, limit_fraction=0.5),
        F("x.eta_far", "warning", eta_s=3 * 86400.0, limit_fraction=0.99),
    ]
    got = [f.id for f in rank(mix)]
    assert got == [
        "disk.nearly_full", "memory.oom_kills", "disk.readonly_remount",       # pinned; 100 % used first
        "disk.nearly_full.var",            # 7 min to full beats fractions with no ETA
        "memory.exhaustion",               # 97 % used, host-wide
        "files.process_fd_exhaustion",     # 91 % of one process's limit
        "cpu.saturation",                  # 99.7 % of the CPUs: above 91 % of anything
        "files.system_exhaustion",         # 91 %, host-wide ...
        "memory.cgroup_near_limit",        # ... above 91 % of one cgroup
        "io.saturation",                   # 50 %
        "sockets.close_wait_leak",         # no limit fraction known: raw 300 sockets compares with nothing
        "x.eta_far",                       # exhaustion in 3 days: the furthest imminence band
        "memory.oom_kills_info",
    ]


def test_rank_fills_the_derived_fields_and_keeps_explicit_ones():
    f = rank([F("disk.nearly_full", "warning", subject={"mount": "/"},
                evidence={"used_pct": 90.0, "time_to_full_s": 60.0})])[0]
    assert (f.eta_s, f.limit_fraction, f.host_wide) == (60.0, 0.9, False)
    g = rank([F("a.b", "warning", evidence={"used_pct": 90.0}, limit_fraction=0.1, host_wide=False)])[0]
    assert (g.limit_fraction, g.host_wide) == (0.1, False)


def test_severity_always_first():
    crit = F("a.c", "critical")
    warn = F("a.w", "warning", eta_s=0.0, limit_fraction=1.0)
    assert urgency(crit) > urgency(warn)


def test_a_limit_already_reached_is_exhausted_now_and_outranks_a_busy_host():
    cpu = F("cpu.saturation", "critical", evidence={"busy_pct": 99.8})
    fds = F("files.process_fd_exhaustion", "critical", subject={"pid": 7}, evidence={"pct": 100.0, "fds_per_s": 93.4})
    ranked = rank([cpu, fds])
    assert [f.id for f in ranked] == ["files.process_fd_exhaustion", "cpu.saturation"]
    assert ranked[0].eta_s == 0.0 and ranked[1].eta_s is None


def test_a_fully_busy_cpu_is_not_exhausted():
    cpu = rank([F("cpu.saturation", "critical", evidence={"busy_pct": 100.0})])[0]
    assert cpu.eta_s is None and cpu.limit_fraction is None     # a share of capacity, not a hard limit


def test_ranking_is_idempotent():
    mix = [F("cpu.saturation", "critical", evidence={"busy_pct": 100.0}),
           F("files.process_fd_exhaustion", "critical", subject={"pid": 7}, evidence={"pct": 100.0})]
    once = rank(mix)
    assert [f.id for f in rank(once)] == [f.id for f in once] == ["files.process_fd_exhaustion", "cpu.saturation"]


def test_an_old_oom_kill_is_history_and_a_fresh_one_is_pinned():
    """Seen: a kill 28 minutes old headed the report above a tmpfs two seconds from full."""
    from hostdiag.core.units import parse_rfc3339

    now = parse_rfc3339("2026-11-29T08:52:00+00:00")
    old = F("kernel.oom_kill", "critical", subject={"pid": 1}, since="2026-11-29T08:23:49+00:00",
            evidence={"first": "2026-11-29T08:23:49+00:00", "last": "2026-11-29T08:23:49+00:00"})
    fresh = F("journal.oom_kill", "critical", subject={"pid": 2}, evidence={"last": "2026-11-29T08:49:30+00:00"})
    disk = F("disk.nearly_full", "critical", subject={"mount": "/m"}, evidence={"used_pct": 97.0, "eta_s": 2.0})
    fds = F("files.process_fd_exhaustion", "critical", subject={"pid": 3}, evidence={"pct": 23.0, "eta_s": 79.0})
    assert [f.id for f in rank([old, disk, fds, fresh], now)] == [
        "journal.oom_kill", "disk.nearly_full", "files.process_fd_exhaustion", "kernel.oom_kill"]
    assert [f.id for f in rank([old, disk], None)] == ["kernel.oom_kill", "disk.nearly_full"]   # no clock: pinned

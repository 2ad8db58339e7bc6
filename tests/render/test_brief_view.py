"""The one-screen view, as read by an on-call responder with several faults at once (seen on this
host: a tmpfs filling, a cgroup leaking toward its limit, a process leaking fds, OOM kills): the
impact of the worst thing is on screen, no command is printed twice (findings one command
verifies are one entry), a title's own ETA is not repeated (the repeat pushed the rate past the
two-line cut), a shape whose finding is listed is not listed again, a change tied to a shape by
time alone is not cut to "began 3 min after <package>…" (the "unrelated" was the part cut off),
and the whole fits the screen."""
from __future__ import annotations

import re
import types

from hostdiag import analysis
from hostdiag.core.model import SCHEMA_VERSION, Finding, Host, Section, ShapeMatch, Snapshot
from hostdiag.core.thresholds import Thresholds
from hostdiag.render import Env, render

SGR = re.compile(r"\x1b\[[0-9;]*m")
OOM_VERIFY = "dmesg -T | grep -iE 'killed process|oom-kill'   # or: dmesg -T | grep -i oom"


def _findings(sec, th):
    return [
        Finding("kernel.oom_kill", "kernel", "critical", "Kernel OOM killer killed a process: python3 (pid 11)",
                subject={"pid": 11}, impact="the killed process lost its work", verify=OOM_VERIFY),
        Finding("kernel.oom_kill", "kernel", "critical", "Kernel OOM killer killed a process: python3 (pid 12)",
                subject={"pid": 12}, impact="the killed process lost its work", verify=OOM_VERIFY),
        Finding("files.process_fd_exhaustion", "files", "critical",
                "python3 (pid 13) has 315 of 1024 open files (30.8% of its RLIMIT_NOFILE), rising 9.13/s; "
                "its limit reached in ~78 s at this rate", subject={"pid": 13, "name": "python3"},
                evidence={"eta_s": 78}, verify="ls /proc/13/fd | wc -l"),
    ]


def _report():
    snap = Snapshot(schema_version=SCHEMA_VERSION, host=Host("vm", "6.1", "Debian", 2, None, None, 0, "test"),
                    collected_at="2026-11-29T08:20:00+00:00", window_s=5.0, interval_s=1.0,
                    sections={"files": Section("files", "ok", data={})}, series={})
    rep = analysis.build(snap, [types.SimpleNamespace(NAME="files", findings=_findings)], Thresholds({}))
    fd_ramp = ShapeMatch(series="processes.fds[name=python3,pid=13]", metric="processes.fds",
                         labels={"name": "python3", "pid": "13"}, shape="ramp", signature="files.fd_leak",
                         score=0.97, start=0, end=5, why="rising steadily by 10/s", start_epoch=0, end_epoch=5)
    other = ShapeMatch(series="disk.used_bytes[mount=/srv]", metric="disk.used_bytes", labels={"mount": "/srv"},
                       shape="ramp", signature="disk.filling", score=0.9, start=0, end=5,
                       why="rising steadily by 1M/s; began 3.2 min after remove hostdiag 0.1.0 (unrelated by anything "
                           "but time)", start_epoch=0, end_epoch=5)
    rep.shapes = [fd_ramp, other]
    return rep


def _views(rep) -> dict[str, str]:
    unescaped = re.sub(r"\\(.)", r"\1", render(rep, "markdown", full=False))   # md() escapes |, ~, ( ...
    return {"plain": render(rep, "plain", full=False), "markdown": unescaped,
            "terminal": SGR.sub("", render(rep, "terminal", Env(True, False, 100), full=False))}


def test_impact_of_the_worst_finding_is_on_screen():
    for name, out in _views(_report()).items():
        assert "Impact" in out and "the killed process lost its work" in out, name


def test_markdown_prints_the_headline_command_as_code_not_escaped_prose():
    out = render(_report(), "markdown", full=False)
    assert "- **Verify:** `dmesg -T | grep -iE 'killed process|oom-kill'   # or: dmesg -T | grep -i oom`" in out, out
    assert "\\|" not in out.split("- **Verify:**")[0].split("- **Action:**")[1], out


def test_a_command_is_printed_once_and_its_repeats_are_one_entry():
    for name, out in _views(_report()).items():
        assert out.count("grep -iE 'killed process|oom-kill'") == 1, (name, out)
        assert "(as above)" not in out, (name, out)     # the first OOM kill is the headline: no line at all
        assert "(pid 11) (+1 like it)" in out and "(pid 12)" not in out, (name, out)
        assert "more (hostdiag" not in out and "more: `hostdiag" not in out, (name, out)   # folded is not "+1 more"
        assert out.count("ls /proc/13/fd | wc -l") == 1, name


def test_a_title_with_its_eta_keeps_its_rate_and_gets_no_second_eta():
    for name, out in _views(_report()).items():
        flat = " ".join(out.split())
        assert "its limit reached in ~78 s at this rate" in flat and "exhausted in 78 s" not in flat, (name, out)


def test_a_shape_whose_finding_is_listed_is_not_listed_again():
    for name, out in _views(_report()).items():
        assert "processes.fds[name=python3,pid=13]" not in out, (name, out)
        assert "disk.used_bytes[mount=/srv]" in out, (name, out)


def test_a_change_tied_to_a_shape_by_time_alone_is_left_to_the_full_view():
    rep = _report()
    for name, out in _views(rep).items():
        assert "rising steadily by 1M/s" in out and "remove hostdiag" not in out, (name, out)
    assert "began 3.2 min after remove hostdiag 0.1.0 (unrelated by anything but time)" in " ".join(
        render(rep, "plain", full=True).split())


def _many(sec, th):
    """Eight faults of different kinds, each with a two-line title and its own command."""
    return [Finding(f"x.fault{i}", "files", "critical" if i < 4 else "warning",
                    f"fault {i}: " + "a title long enough to wrap onto a second line at eighty columns " * 1,
                    subject={"pid": 100 + i}, impact="something breaks", verify=f"ls /proc/{100 + i}/fd | wc -l",
                    stabilize=["do a thing"]) for i in range(8)]


def test_one_screen_holds_the_most_urgent_findings_at_any_height():
    snap = Snapshot(schema_version=SCHEMA_VERSION, host=Host("vm", "6.1", "Debian", 2, None, None, 0, "test"),
                    collected_at="2026-11-29T08:20:00+00:00", window_s=5.0, interval_s=1.0,
                    sections={"files": Section("files", "ok", data={})}, series={})
    rep = analysis.build(snap, [types.SimpleNamespace(NAME="files", findings=_many)], Thresholds({}))
    for height, most in ((50, 30), (30, 30), (24, 24), (12, None)):
        env = Env(True, False, 80, height)
        for out in (render(rep, "plain", env, full=False), SGR.sub("", render(rep, "terminal", env, full=False))):
            lines = out.rstrip("\n").split("\n")
            if most:
                assert len(lines) <= most, (height, out)
            assert "fault 0:" in out and ("ls /proc/101/fd" in out or not most), (height, out)   # most urgent stay
            shown = sum(f"fault {i}:" in out for i in range(8))
            assert f"+{8 - shown} more" in out and "fault 7:" not in out, (height, out)
            assert "Blind spots" in out or "BLIND SPOTS" in out, (height, out)


def test_a_memory_cgroup_check_under_a_long_path_is_printed_whole():
    """Seen: a v1 cgroup 52 characters deep printed "verify: long command: see --full" on one screen."""
    from hostdiag.core import shell

    cg = "/sys/fs/cgroup/memory/process_api/8198346f2c0174a408ab3b19c4e4054b/zr-leak"
    verify = (f"(cd {shell.quote(cg)} && head memory.usage_in_bytes memory.limit_in_bytes memory.failcnt "
              "memory.oom_control)")

    def cgroup(sec, th):
        return [Finding("memory.cgroup_near_limit", "memory", "critical", "a", verify="free -m"),
                Finding("memory.cgroup_near_limit", "memory", "critical", "cgroup near its limit", verify=verify)]

    snap = Snapshot(schema_version=SCHEMA_VERSION, host=Host("vm", "6.1", "Debian", 2, None, None, 0, "test"),
                    collected_at="2026-11-29T08:20:00+00:00", window_s=5.0, interval_s=1.0,
                    sections={"memory": Section("memory", "ok", data={})}, series={})
    rep = analysis.build(snap, [types.SimpleNamespace(NAME="memory", findings=cgroup)], Thresholds({}))
    out = render(rep, "plain", full=False)
    assert "long command" not in out and "memory.oom_control)" in out, out


def test_one_reason_is_printed_once_for_all_the_collectors_it_blinds():
    """Seen with ~5,000 processes on the host: the process scan stopped at its bound, and eight
    collectors each printed the same reason in --full and a three-line Need."""
    why = "process scan stopped at the 4s bound after 1100 processes: per-process data is incomplete"
    names = ["cpu", "memory", "io", "files"]
    snap = Snapshot(schema_version=SCHEMA_VERSION, host=Host("vm", "6.1", "Debian", 2, None, None, 0, "test"),
                    collected_at="2026-11-29T08:20:00+00:00", window_s=5.0, interval_s=1.0,
                    sections={n: Section(n, "partial", reason=why, data={}) for n in names}
                    | {"journal": Section("journal", "partial", reason="no journal", data={})}, series={})
    rep = analysis.build(snap, [], Thresholds({}))
    assert rep.headline.need == "cpu, memory, io, files, journal: partial (see Blind spots)."
    full = render(rep, "plain", full=True)
    flat = " ".join(full.split())
    assert flat.count("process scan stopped") == 1 and "- cpu, memory, io, files (partial): process scan" in flat
    assert "- journal (partial): no journal" in flat


def test_one_moment_of_change_is_one_line():
    """Seen: `apt-get purge hostdiag` was three rows (apt, dpkg remove, dpkg purge) in one second,
    all three places of the block."""
    t = "2026-11-29T08:16:08+00:00"
    timeline = [{"time": t, "kind": "package", "what": "remove hostdiag 0.1.0", "source": "/var/log/dpkg.log"},
                {"time": t, "kind": "package", "what": "purge hostdiag 0.1.0", "source": "/var/log/dpkg.log"},
                {"time": t, "kind": "apt", "what": "apt-get purge -y -q hostdiag", "source": "apt history"},
                {"time": "2026-11-29T08:11:19+00:00", "kind": "config", "what": "/etc/app.conf", "source": "mtime"}]
    snap = Snapshot(schema_version=SCHEMA_VERSION, host=Host("vm", "6.1", "Debian", 2, None, None, 0, "test"),
                    collected_at="2026-11-29T08:20:00+00:00", window_s=5.0, interval_s=1.0,
                    sections={"changes": Section("changes", "ok", data={"timeline": timeline})}, series={})
    out = render(analysis.build(snap, [], Thresholds({})), "plain", full=False)
    assert "remove hostdiag 0.1.0 (+2 at once)" in out and "purge hostdiag 0.1.0" not in out, out
    assert "/etc/app.conf" in out, out


def test_plain_on_a_narrow_terminal_uses_its_width_and_a_pipe_gets_80():
    """NO_COLOR (or TERM=dumb) on a 60-column terminal printed 80-column lines: the terminal wrapped
    them, folded commands included, and the one screen ran past its height."""
    rep = _report()
    for full in (False, True):
        narrow = render(rep, "plain", Env(True, True, 60, 50), full=full)
        assert max(map(len, narrow.splitlines())) <= 60, narrow
        piped = render(rep, "plain", Env(False, True, 60, 50), full=full)
        assert max(map(len, piped.splitlines())) > 60 and max(map(len, piped.splitlines())) <= 80

"""journal collector: parsers and kernel patterns on literal lines, analysis, findings, text fallback."""
from __future__ import annotations

import time

import pytest
from hypothesis import given, strategies as st

from hostdiag import logs
from hostdiag import catalog
from hostdiag.collectors import journal as J
from hostdiag.core.context import Context
from hostdiag.core.model import Section
from hostdiag.core.thresholds import Thresholds

def pats():
    cat = catalog.load(); p, errs = cat.log_patterns(), cat.errors
    assert not [e for e in errs if "/kernel." in e], errs
    return {x.id: x for x in p}


def k(msg, t=1000.0, prio=3):
    return logs.Entry(t, prio, msg, None, "kernel", None, "kernel")


# One real-looking line per shipped kernel event (several kernels' wording), with the subject expected.
KERNEL_LINES = [
    ("kernel.oom_kill", "Out of memory: Killed process 2112 (python3) total-vm:9000kB, anon-rss:8000kB, file-rss:0kB, shmem-rss:0kB, UID:0 pgtables:40kB oom_score_adj:0", {"pid": 2112, "name": "python3"}),
    ("kernel.oom_kill", "Killed process 31 (memhog) total-vm:100kB, anon-rss:90kB, file-rss:0kB", {"pid": 31, "name": "memhog"}),  # 4.x wording
    ("kernel.hung_task", "INFO: task postgres:9123 blocked for more than 122 seconds.", {"pid": 9123, "name": "postgres"}),
    ("kernel.io_error", "blk_update_request: I/O error, dev sdb, sector 2048 op 0x1:(WRITE) flags 0x0 phys_seg 1 prio class 0", {"device": "sdb"}),
    ("kernel.io_error", "I/O error, dev vda, sector 123 op 0x0:(READ) flags 0x80700 phys_seg 1 prio class 2", {"device": "vda"}),
    ("kernel.io_error", "Buffer I/O error on dev dm-1, logical block 52428784, async page read", {"device": "dm-1"}),
    ("kernel.fs_error", "EXT4-fs error (device nvme0n1p2): ext4_lookup:1700: inode #131074: comm nginx: deleted inode referenced: 131100", {"device": "nvme0n1p2"}),
    ("kernel.xfs_error", "XFS (sdc1): metadata I/O error in \"xfs_da_read_buf+0x1f5/0x2a0 [xfs]\" at daddr 0x1f40 len 8 error 5", {"device": "sdc1"}),
    ("kernel.fs_readonly", "EXT4-fs (sda2): Remounting filesystem read-only", {"device": "sda2"}),
    ("kernel.segfault", "myapp[4321]: segfault at 8 ip 000055d5c3a1b2c3 sp 00007ffc9d8e7f60 error 4 in myapp[55d5c3a00000+2000]", {"pid": 4321, "name": "myapp"}),
    ("kernel.nic_link_down", "igb 0000:01:00.0 eno1: igb: eno1 NIC Link is Down", {"device": "eno1"}),
    ("kernel.nic_link_up", "igb 0000:01:00.0 eno1: igb: eno1 NIC Link is Up 1000 Mbps Full Duplex, Flow Control: RX", {"device": "eno1"}),
    ("kernel.conntrack_full", "nf_conntrack: nf_conntrack: table full, dropping packet", {}),
    ("kernel.syn_flood", "TCP: request_sock_TCP: Possible SYN flooding on port 0.0.0.0:8443. Sending cookies.", {"port": 8443}),
    ("kernel.syn_flood", "TCP: Possible SYN flooding on port 80. Dropping request.  Check SNMP counters.", {"port": 80}),
    ("kernel.soft_lockup", "watchdog: BUG: soft lockup - CPU#0 stuck for 23s! [java:7777]", {"pid": 7777, "name": "java"}),
    ("kernel.mce", "mce: [Hardware Error]: Machine check events logged", {}),
    ("kernel.mce", "EDAC MC1: 3 UE memory read error on CPU_SrcID#1_Ha#0_Chan#0_DIMM#1", {"controller": "MC1"}),
]


@pytest.mark.parametrize("eid,line,subject", KERNEL_LINES)
def test_each_kernel_pattern(eid, line, subject):
    data = J.analyse([k(line)], 0, 2000, list(pats().values()))
    evs = data["kernel_events"]
    assert [e["id"] for e in evs] == [eid], evs
    assert evs[0]["subject"] == subject
    f = J.findings(Section("journal", "ok", data=data), Thresholds(J.THRESHOLDS))
    assert f[0].id == eid and f[0].since == J.rfc3339(1000.0) and f[0].subject == subject
    assert f[0].verify and f[0].stabilize


def test_catalog_examples_all_match():
    for p in pats().values():
        for ex in p.data["examples"]:
            m = p.rx.search(ex["line"])
            assert m, (p.id, ex["line"])
            for key, val in ex.get("expect", {}).items():
                assert m.group(key) == val, (p.id, key)


def test_quiet_lines_match_nothing():
    quiet = ["e1000e 0000:00:19.0 eth0: 10/100 speed: disabling TSO", "EXT4-fs (sda1): mounted filesystem with ordered data mode",
             "XFS (sda1): Mounting V5 Filesystem", "audit: type=1400 audit(1.2:3): apparmor=\"STATUS\"",
             "Killed processes are listed below", "nf_conntrack: default automatic helper assignment has been turned off"]
    data = J.analyse([k(q) for q in quiet], 0, 2000, list(pats().values()))
    assert data["kernel_events"] == []


def test_kernel_patterns_need_kernel_transport():
    e = logs.Entry(1000.0, 3, "Killed process 1 (x) total-vm:1kB", "app.service", "app", 5, "stdout")
    assert J.analyse([e], 0, 2000, list(pats().values()))["kernel_events"] == []


def test_oom_gets_cgroup_from_oom_kill_line():
    lines = [k("oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0,oom_memcg=/test,task_memcg=/test/leaf,task=hog,pid=77,uid=0", 1000),
             k("Memory cgroup out of memory: Killed process 77 (hog) total-vm:1kB", 1000.1)]
    ev = J.analyse(lines, 0, 2000, list(pats().values()))["kernel_events"][0]
    assert ev["subject"] == {"pid": 77, "name": "hog", "cgroup": "/test/leaf"}
    assert ev["evidence"]["oom_memcg"] == "/test"


def test_parse_oom_context():
    c = J.parse_oom_context("oom-kill:constraint=CONSTRAINT_NONE,nodemask=(null),cpuset=/,mems_allowed=0,global_oom,task_memcg=/user.slice,task=a,b,pid=9,uid=0")
    assert c["task_memcg"] == "/user.slice" and c["pid"] == "9" and c["task"] == "a,b"
    assert J.parse_oom_context("random") is None


def test_repeats_fold_into_one_event():
    lines = [k("INFO: task jbd2/sda1-8:312 blocked for more than 120 seconds.", 1000 + i * 120) for i in range(5)]
    evs = J.analyse(lines, 0, 2000, list(pats().values()))["kernel_events"]
    assert len(evs) == 1 and evs[0]["count"] == 5 and evs[0]["time"] == J.rfc3339(1000)


@pytest.mark.parametrize("msg,tmpl", [
    ("conn from 10.1.2.3:5555 failed after 3 tries", "conn from <ip> failed after <n> tries"),
    ("job 3f2a9c1e-1b2c-4d5e-8f90-123456789abc done", "job <uuid> done"),
    ("addr 0xdeadbeef id deadbeef01", "addr <hex> id <hex>"),
    ("v6 peer fe80::1 gone at 10:14:05", "v6 peer <ip> gone at <n>:<n>:<n>"),
    ("sda1 err 12 eth0", "sda1 err <n> eth0"),
    ("line1 7\nline2 8", "line1 <n>"),
    ("nginx.service: Main process exited", "nginx.service: Main process exited"),
])
def test_template(msg, tmpl):
    assert logs.template(msg) == tmpl


@given(st.text(max_size=400))
def test_template_never_fails(s):
    assert len(logs.template(s)) <= 300 * 6


def test_per_minute_series_and_counts():
    es = [logs.Entry(60 * m + 1, 3 if m == 2 else 6, f"x {m}") for m in range(5)]
    d = J.analyse(es, 0, 299, [])
    assert d["per_minute"]["t"] == [0, 60, 120, 180, 240]
    assert d["per_minute"]["err"] == [0, 0, 1, 0, 0]
    assert d["per_minute"]["info"] == [1, 1, 0, 1, 1]
    assert d["by_priority"] == {"err": 1, "info": 4}
    assert [x["message"] for x in d["latest"]][:2] == ["x 4", "x 3"]


def _burst_section(errs):
    minutes = [60 * i for i in range(len(errs))]
    data = {"error_burst": J.burst(errs, minutes), "unit_errors": [{"unit": "app.service", "errors": sum(errs)}],
            "top_messages": []}
    return J.findings(Section("journal", "ok", data=data), Thresholds(J.THRESHOLDS))


def test_burst_finding_and_onset():
    f = _burst_section([1, 0, 2, 1, 1, 80, 300, 150, 2, 1])
    assert len(f) == 1 and f[0].id == "journal.error_burst" and f[0].severity == "critical"
    assert f[0].since == J.rfc3339(300) and f[0].subject == {"unit": "app.service"}


@pytest.mark.parametrize("errs", [[0] * 30, [1, 2, 3, 2, 1, 4] * 5, [10] * 30, [0, 0, 19, 0]])
def test_no_burst_on_steady_or_small(errs):
    assert _burst_section(errs) == []


def test_burst_edges():
    # peak 20 (warning threshold) over baseline 1: ratio 20 (critical) -> warning overall (both must agree).
    f = _burst_section([1] * 10 + [20])
    assert [x.severity for x in f] == ["warning"]
    assert _burst_section([1] * 10 + [19]) == []


def test_parse_syslog_lines():
    e = logs.parse_syslog_line("2026-11-23T10:14:05.123456+00:00 web1 kernel: [ 12.345] Out of memory: Killed process 5 (a)", 2026)
    assert e.transport == "kernel" and e.msg.startswith("Out of memory") and e.t == pytest.approx(1795428845.123456)
    e = logs.parse_syslog_line("Nov  3 01:02:03 web1 sshd[123]: Accepted publickey for root", 2026)
    assert e.ident == "sshd" and e.pid == 123 and e.prio is None and e.transport == "syslog"
    assert logs.parse_syslog_line("garbage", 2026) is None
    assert logs.parse_syslog_line("Feb 30 01:02:03 h x: y", 2026) is None


def test_parse_kmsg():
    e = logs.parse_kmsg_record("3,1234,5000000,-;Out of memory: Killed process 9 (x)", 1000.0)
    assert e.t == 1005.0 and e.prio == 3 and e.transport == "kernel"
    assert logs.parse_kmsg_record("no semicolon", 0) is None
    assert logs.parse_kmsg_record("x,y;z", 0) is None


def _root(tmp_path, syslog=None, kmsg=None, uptime="100.0 50.0"):
    (tmp_path / "proc").mkdir()
    (tmp_path / "proc" / "uptime").write_text(uptime)
    if syslog is not None:
        (tmp_path / "var" / "log").mkdir(parents=True)
        (tmp_path / "var" / "log" / "syslog").write_text(syslog)
    if kmsg is not None:
        (tmp_path / "dev").mkdir()
        (tmp_path / "dev" / "kmsg").write_text(kmsg)
    return Context(proc=str(tmp_path / "proc"), root=str(tmp_path))


def test_text_fallback_syslog(tmp_path):
    now = time.time()
    iso = lambda t: J.rfc3339(t)  # noqa: E731
    lines = [f"{iso(now - 7200)} h app[1]: too old",
             f"{iso(now - 120)} h kernel: [ 5.0] Memory cgroup out of memory: Killed process 321 (leaky) total-vm:1kB",
             f"{iso(now - 60)} h app[1]: hello \x1b[31m"]
    ctx = _root(tmp_path, syslog="\n".join(lines) + "\n")
    rd = logs.open_journal(ctx, now - 1800, now)
    assert rd.backend == "text" and rd.source == "/var/log/syslog"
    d = J.analyse(rd.entries, now - 1800, now, list(pats().values()))
    assert d["entries"] == 2 and d["by_priority"] == {"unknown": 2}
    assert d["kernel_events"][0]["subject"] == {"pid": 321, "name": "leaky"}


def test_text_fallback_kmsg(tmp_path):
    # /proc/uptime 100 s: boot was 100 s ago; kmsg timestamps are microseconds since boot.
    kmsg = "6,1,1000000,-;Linux version 6.1\n SUBSYSTEM=x\n3,2,90000000,-;INFO: task dd:55 blocked for more than 120 seconds.\n"
    ctx = _root(tmp_path, kmsg=kmsg)
    now = time.time()
    rd = logs.open_journal(ctx, now - 1800, now)
    assert rd.source == "/dev/kmsg"
    d = J.analyse(rd.entries, now - 1800, now, list(pats().values()))
    assert d["entries"] == 2 and d["kernel_events"][0]["id"] == "kernel.hung_task"
    assert d["by_priority"] == {"err": 1, "info": 1}


def test_collect_text_fallback_blind_spot(tmp_path, snapshot):
    now = time.time()
    _root(tmp_path, syslog=f"{J.rfc3339(now - 30)} h app[1]: hello\n")
    rep = snapshot(only=["journal"], proc=str(tmp_path / "proc"), root=str(tmp_path))
    sec = rep.snapshot.sections["journal"]
    assert sec.status == "partial" and "no journal" in sec.reason
    assert sec.data["backend"] == "text" and sec.data["entries_read"] == 1


def test_collect_nothing_readable(tmp_path, snapshot):
    _root(tmp_path)
    rep = snapshot(only=["journal"], proc=str(tmp_path / "proc"), root=str(tmp_path))
    sec = rep.snapshot.sections["journal"]
    assert sec.status == "partial" and "nothing to read" in sec.reason
    assert not [f for f in rep.findings if f.severity != "info"]


def test_missing_journal_path(snapshot, tmp_path):
    rep = snapshot(only=["journal"], journal_path=str(tmp_path / "nope"))
    sec = rep.snapshot.sections["journal"]
    assert sec.status == "unavailable" and "no such journal" in sec.reason


def test_since_after_until(snapshot):
    rep = snapshot(only=["journal"], since=2000.0, until=1000.0)
    assert rep.snapshot.sections["journal"].status == "unavailable"


def test_bad_catalog_entry_is_a_blind_spot(tmp_path, monkeypatch, snapshot):
    (tmp_path / "app.bad.toml").write_text('id = "app.bad"\nkind = "log"\ntitle = "x"\npattern = "("\n')
    (tmp_path / "broken.toml").write_text('id = "broken\n')
    monkeypatch.setenv("HOSTDIAG_SIGNATURES", str(tmp_path))
    cat = catalog.load(); pats_, errs = cat.log_patterns(), cat.errors
    assert any("app.bad" in e and "lacks" in e for e in errs) and any("broken.toml" in e for e in errs)
    assert "kernel.oom_kill" in {p.id for p in pats_}


def test_user_pattern_for_a_unit(tmp_path, monkeypatch):
    (tmp_path / "app.db_down.toml").write_text('''
id = "app.db_down"
kind = "log"
title = "App lost its database"
owner = "team-app"
category = "network"
severity = "warning"
unit = "app.service"
pattern = 'connection to (?P<host>\\S+) refused'
subject = ["host"]
verify = "journalctl -u app.service -g refused"
stabilize = ["Check the database"]
runbook = "https://runbooks.example/app"
[[examples]]
line = "connection to db1 refused"
''')
    monkeypatch.setenv("HOSTDIAG_SIGNATURES", str(tmp_path))
    es = [logs.Entry(1000, 3, "connection to db1 refused", "app.service", "app", 5, "stdout"),
          logs.Entry(1001, 3, "connection to db2 refused", "other.service", "other", 6, "stdout")]
    p = catalog.load().log_patterns()
    d = J.analyse(es, 0, 2000, p)
    assert [(e["id"], e["subject"]) for e in d["kernel_events"]] == [("app.db_down", {"host": "db1"})]
    f = J.findings(Section("journal", "ok", data=d), Thresholds(J.THRESHOLDS))
    assert f[0].id == "app.db_down" and f[0].severity == "warning" and f[0].category == "network"
    assert f[0].title == "App lost its database: host db1" and f[0].stabilize == ["Check the database"]


def test_live_host_runs(snapshot):
    """On this machine (no journald, maybe no syslog): a status and a reason, never a crash."""
    rep = snapshot(only=["journal"])
    sec = rep.snapshot.sections["journal"]
    assert sec.status in ("ok", "partial") and sec.data["backend"]
    assert not [f for f in rep.findings if f.id == "journal.error_burst"]


def test_run_bounded_reasons(tmp_path):
    p, err = logs.run_bounded(["/nonexistent/journalctl"], 1)
    assert p is None and "127" in err
    (tmp_path / "notexec").write_text("x")
    (tmp_path / "notexec").chmod(0o644)
    p, err = logs.run_bounded([str(tmp_path / "notexec")], 1)
    assert p is None and "126" in err
    p, err = logs.run_bounded(["sleep", "5"], 0.1)
    assert p.wait(timeout=5) != 0 and getattr(p, "_hostdiag_timed_out", False)
    p.stdout.close(); p.stderr.close()



# ---------------------------------------------------------------------------- issues 7 and 8

import json  # noqa: E402
import shlex  # noqa: E402
from datetime import datetime, timezone  # noqa: E402

from support import cli  # noqa: E402

USER_LOG = """
id = "app.pay_down"
kind = "log"
title = "Payment gateway unreachable"
owner = "team-pay"
category = "network"
severity = "critical"
pattern = 'payment gateway (?P<gw>\\S{1,64}) unreachable'
subject = ["gw"]
verify = "ping -c1 {gw}"
stabilize = ["Fail over to the standby gateway", "Tell #payments"]
avoid = ["restarting the app: it only drops the queue"]
runbook = "https://runbooks.example/pay"
[[examples]]
line = "payment gateway gw1 unreachable"
"""


def syslog_root(tmp_path, lines, until):
    """A --root with /var/log/syslog holding these messages (rsyslog ISO format), 1 s apart up to `until`."""
    log = tmp_path / "root" / "var" / "log"
    log.mkdir(parents=True)
    with open(log / "syslog", "w") as f:
        for i, msg in enumerate(lines):
            t = datetime.fromtimestamp(until - len(lines) + i, timezone.utc).isoformat()
            f.write(f"{t} host app[42]: {msg}\n")
    (tmp_path / "proc").mkdir()
    return tmp_path / "root"


def journal_cli(root, until, *extra, timeout=60):
    p = cli("snapshot", "--json", "--window", "0", "--only", "journal", "--root", str(root),
            "--proc-root", str(root.parent / "proc"), "--since", f"{until - 600:.0f}", "--until", f"{until:.0f}",
            *extra, timeout=timeout)
    assert p.returncode in (0, 1, 2), p.stderr
    return json.loads(p.stdout)


def test_user_log_archetype_through_catalog_flag_keeps_its_own_fields(tmp_path):
    """Issue 7's bug: through --catalog a critical log archetype came out a warning, titled with its
    id, with the default verify and no stabilize. Real CLI, real text log; a hostile gateway name."""
    cat = tmp_path / "cat"
    cat.mkdir()
    (cat / "app.pay_down.toml").write_text(USER_LOG)
    until = time.time() - 60
    root = syslog_root(tmp_path, ["payment gateway gw1;id>>PWNED;# unreachable"], until)
    doc = journal_cli(root, until, "--catalog", str(cat))
    f = next(f for f in doc["findings"] if f["id"] == "app.pay_down")
    assert f["severity"] == "critical" and f["category"] == "network"
    assert f["title"] == "Payment gateway unreachable: gw gw1;id>>PWNED;#"
    assert shlex.split(f["verify"]) == ["ping", "-c1", "gw1;id>>PWNED;#"]
    assert f["stabilize"] == ["Fail over to the standby gateway", "Tell #payments",
                              "Do not: restarting the app: it only drops the queue"]
    assert f["evidence"]["runbook"] == "https://runbooks.example/pay"


def test_catastrophic_user_pattern_is_bounded(tmp_path):
    """Issue 8: `(a+)+$` and `(x+x+)+y` over 8 KB lines of 'aaaa…!' kept the process busy 31 s. Now each
    search is abandoned after catalog.LINE_TIMEOUT_S, the pattern is dropped after 3, and it is said."""
    cat = tmp_path / "cat"
    cat.mkdir()
    for eid, pat in (("user.nested", "(?P<a>(a+)+$)"), ("user.nested2", "(?P<a>(x+x+)+y)")):
        (cat / f"{eid}.toml").write_text(USER_LOG.replace("app.pay_down", eid).replace(
            "'payment gateway (?P<gw>\\S{1,64}) unreachable'", f"'{pat}'").replace('subject = ["gw"]', "")
            .replace("ping -c1 {gw}", "true"))
    until = time.time() - 60
    root = syslog_root(tmp_path, ["a" * 8000 + "!", "x" * 8000] * 200, until)
    # The subprocess timeout is the bound's witness: without it this run took minutes.
    doc = journal_cli(root, until, "--catalog", str(cat), "--timeout", "5", timeout=60)
    sec = doc["sections"]["journal"]
    assert sec["status"] == "partial" and sec["data"]["entries"] == 400, sec.get("reason")
    spots = " ".join(b["reason"] if isinstance(b, dict) else str(b) for b in doc["blind_spots"]) + (sec.get("reason") or "")
    assert "user.nested2 timed out on 3 line(s)" in spots and "dropped for the rest of the window" in spots


def test_override_of_shipped_id_is_a_blind_spot(tmp_path, snapshot):
    cat = tmp_path / "cat"
    cat.mkdir()
    (cat / "kernel.oom_kill.toml").write_text(USER_LOG.replace("app.pay_down", "kernel.oom_kill"))
    root = syslog_root(tmp_path, ["hello"], time.time() - 60)
    rep = snapshot(only=["journal"], root=str(root), proc=str(root.parent / "proc"), catalog_dirs=(str(cat),))
    assert f"signature catalog: {cat / 'kernel.oom_kill.toml'}: overrides shipped kernel.oom_kill" in \
        rep.snapshot.sections["journal"].reason


@pytest.mark.parametrize("kind", ["empty_dir", "not_a_journal_dir", "not_a_journal_file", "fifo"])
def test_journal_path_that_is_no_journal_is_unavailable(tmp_path, snapshot, kind):
    import os
    p = tmp_path / "j"
    if kind == "empty_dir":
        p.mkdir()
    elif kind == "not_a_journal_dir":
        p.mkdir()
        (p / "system.journal").write_text("not a journal\n")
    elif kind == "not_a_journal_file":
        p.write_text("hello\n")
    else:
        os.mkfifo(p)
    sec = snapshot(only=["journal"], journal_path=str(p)).snapshot.sections["journal"]
    assert sec.status == "unavailable" and str(p) in sec.reason, (sec.status, sec.reason)


def test_text_reader_says_what_the_tail_cap_left_unread(tmp_path, monkeypatch, snapshot):
    """1,000 in-window lines of 10 KB with the tail cap at 1 MB: the older ~900 are named, not silent."""
    import hostdiag.logs.backends as B
    monkeypatch.setattr(B, "MAX_TEXT_BYTES", 1 << 20)
    until = time.time() - 60
    root = syslog_root(tmp_path, ["x" * 10_000] * 1000, until)
    rep = snapshot(only=["journal"], root=str(root), proc=str(root.parent / "proc"), since=until - 3600, until=until)
    sec = rep.snapshot.sections["journal"]
    assert sec.data["entries"] < 110
    assert "/var/log/syslog: only its last 1 MB were read" in sec.reason and "(about 9" in sec.reason


@given(st.text(min_size=1, max_size=30).filter(lambda s: "\n" not in s and "\r" not in s))
def test_error_burst_verify_quotes_the_unit(unit):
    d = {"error_burst": {"peak_per_min": 500, "baseline_per_min": 1.0, "ratio": 500.0,
                         "onset": "2026-11-23T10:14:00+00:00", "peak_at": "2026-11-23T10:15:00+00:00"},
         "unit_errors": [{"unit": unit, "errors": 500}], "top_messages": []}
    f = J.findings(Section("journal", "ok", data=d), Thresholds(J.THRESHOLDS))[0]
    first, alt = f.verify.split("   # or: ")
    assert shlex.split(first.split(" | ")[0]) == ["journalctl", "-p", "err", "--since", "2026-11-23T10:14:00+00:00",
                                                 "-o", "short-iso"]
    argv = shlex.split(alt) if not J.re.search(r"[\x00-\x1f\x7f]", unit) else None
    if argv is not None:
        assert argv[2] == unit and argv[:2] in (["journalctl", "-u"], ["journalctl", "-t"]) or unit == "kernel"

"""The capture store through its API, on a controlled clock: bounds, migrations, reads, refusals."""
from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import stat

import pytest
from histgen import T0, record

from hostdiag.history import record as recmod
from hostdiag.history.store import (APP_ID, MIGRATIONS, SCHEMA_VERSION, History, Store, StoreError, StoreRefused,
                                    default_path, match_keys)


def sizes(path) -> int:
    return sum(os.path.getsize(p) for p in (path, f"{path}-wal") if os.path.exists(p))


def digest(path) -> str:
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def test_created_private_and_reads_back(tmp_path):
    path = tmp_path / "new" / "deeper" / "h.db"
    st = Store.open(str(path))
    st.append(record(T0, 0))
    st.close()
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(path.parent).st_mode) == 0o700
    with History.open_ro(str(path)) as h:
        assert h.span() == (T0, T0, 1)
        assert h.version == SCHEMA_VERSION
        [s] = h.series("memory.available_bytes")
        assert s.t0 == T0 and s.v == [8_000_000_000]
        assert "disk.used_bytes[mount=/var]" in h.keys() and "io.util_pct[device=vda]" in h.keys()


def test_age_retention_on_controlled_clock(tmp_path):
    path = str(tmp_path / "h.db")
    st = Store.open(path, max_age_s=3600)
    for i in range(180):                       # 3 h of one capture a minute
        st.append(record(T0 + 60 * i, i))
        first, last, n = st.span()
        assert last - first <= 3600, f"capture {i}: the store held {last - first} s"
    st.close()
    with History.open_ro(path) as h:
        first, last, n = h.span()
        assert (first, last, n) == (T0 + 60 * 119, T0 + 60 * 179, 61)
        # dimension rows of expired captures go too: only processes that still have samples
        assert h.conn.execute("SELECT count(*) FROM proc").fetchone()[0] == 25
        assert h.conn.execute("SELECT min(t) FROM proc_sample").fetchone()[0] == int((T0 + 60 * 119) * 1000)


def test_size_cap_never_exceeded(tmp_path):
    path = str(tmp_path / "h.db")
    cap = 1024 * 1024
    st = Store.open(path, max_bytes=cap)
    counts = []
    for i in range(400):
        st.append(record(T0 + 60 * i, i, procs=40, title_pad=300))
        assert sizes(path) <= cap, f"capture {i}: store {sizes(path)} bytes > cap {cap}"
        counts.append(st.span()[2])
    st.close()
    assert counts[-1] < 400, "the cap never forced an expiry: the test proves nothing"
    assert counts[-1] > 50, "the cap should still hold many captures"
    with History.open_ro(path) as h:
        assert h.span()[1] == T0 + 60 * 399     # the newest is always kept
        assert h.conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_lowering_the_cap_shrinks_the_file(tmp_path):
    path = str(tmp_path / "h.db")
    st = Store.open(path, max_bytes=4 * 1024 * 1024)
    for i in range(350):
        st.append(record(T0 + 60 * i, i, procs=40, title_pad=2000))
    st.close()
    big = sizes(path)
    assert big > 1024 * 1024
    st = Store.open(path, max_bytes=1024 * 1024)
    st.append(record(T0 + 60 * 350, 350))
    st.close()
    assert sizes(path) <= 1024 * 1024 < big


def _v1_store(path: str) -> None:
    """A store as schema v1 wrote it (the first shipped schema), with one capture in it."""
    c = sqlite3.connect(path, isolation_level=None)
    c.execute("PRAGMA auto_vacuum = INCREMENTAL")
    c.execute("PRAGMA journal_mode = WAL")
    c.execute(f"PRAGMA application_id = {APP_ID}")
    for stmt in MIGRATIONS[0]:
        c.execute(stmt)
    c.execute("PRAGMA user_version = 1")
    t = int(T0 * 1000)
    c.execute('INSERT INTO capture(t, window_s, "cpu.busy_pct", "memory.available_bytes") VALUES (?, 1, 42, 123)', (t,))
    c.execute("INSERT INTO mount(path) VALUES ('/')")
    c.execute("INSERT INTO mount_sample VALUES (?, 1, 100, 1000, 5, 50)", (t,))
    c.execute("INSERT INTO proc(pid, start, name, first_t) VALUES (7, 1, 'old', ?)", (t,))
    c.execute("INSERT INTO proc_sample VALUES (?, 1, 5, 10, 3, 0)", (t,))
    c.execute("INSERT INTO finding(fid, subject) VALUES ('x.y', '{}')")
    c.execute("INSERT INTO finding_sample VALUES (?, 1, 2, 'old finding')", (t,))
    c.close()


@pytest.mark.parametrize("start", range(SCHEMA_VERSION))
def test_migrations_from_every_earlier_version(tmp_path, start):
    path = str(tmp_path / "h.db")
    if start == 1:
        _v1_store(path)
    st = Store.open(path)                      # v0 (new file) or v1 -> current
    assert st.version == SCHEMA_VERSION
    st.append(record(T0 + 60, 1))
    st.close()
    with History.open_ro(path) as h:
        assert h.version == SCHEMA_VERSION
        assert h.span()[2] == (2 if start == 1 else 1)
        assert h.series("sockets.established")[0].v[-1] is not None      # a v2 column
        assert h.series("io.util_pct[device=vda]")[0].v                    # a v2 table
        if start == 1:
            [busy] = h.series("cpu.busy_pct")
            assert busy.v[0] == 42 and busy.t0 == T0
            assert h.series("sockets.established")[0].v[0] is None        # absent in v1, not 0
            assert h.process_series("old", "rss_bytes")[0].v == [10240]
            assert [s.fid for s in h.finding_spans()][0] == "x.y"


def test_newer_schema_is_refused(tmp_path):
    path = str(tmp_path / "h.db")
    Store.open(path).close()
    c = sqlite3.connect(path)
    c.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    c.commit()
    c.close()
    with pytest.raises(StoreError, match="newer"):
        Store.open(path)


def test_process_followed_across_pid_reuse(tmp_path):
    path = str(tmp_path / "h.db")
    st = Store.open(path)
    for i in range(6):
        rec = record(T0 + 60 * i, i, procs=1)
        # the same pid 4242 is "java" for 3 captures, then a new "java" reuses the pid
        rec["procs"] = [{"pid": 4242, "start": int(T0) + (0 if i < 3 else 200), "name": "java", "cpu_pct": 1.0,
                         "rss_bytes": (i + 1) * 1024 * 1024, "fds": 10 + i, "io_bps": 0}]
        st.append(rec)
    st.close()
    with History.open_ro(path) as h:
        by_pid = h.process_series(4242, "rss_bytes")
        assert [len(s.v) for s in by_pid] == [3, 3]
        assert by_pid[0].labels["start"] != by_pid[1].labels["start"]
        assert by_pid[1].v == [4 * 1048576, 5 * 1048576, 6 * 1048576]
        assert len(h.process_series("ja*", "fds")) == 2
        with pytest.raises(ValueError):
            h.process_series("java", "nonsense")


def test_finding_spans_and_since_when(tmp_path):
    path = str(tmp_path / "h.db")
    st = Store.open(path)
    present = [0, 1, 1, 1, 0, 0, 1, 1]
    for i, p in enumerate(present):
        rec = record(T0 + 60 * i, i, findings=0)
        if p:
            rec["findings"] = [{"id": "files.fd_leak", "severity": 1 + (i == 7), "subject": json.dumps({"pid": 9}),
                                "title": f"fds {100 + i}"}]
        st.append(rec)
    st.close()
    with History.open_ro(path) as h:
        spans = h.finding_spans()
        assert [(s.start, s.end, s.captures) for s in spans] == [
            (T0 + 60, T0 + 240, 3), (T0 + 360, None, 2)]
        assert spans[1].severity == "critical" and spans[1].title == "fds 107"
        assert h.since_when("files.fd_leak", {"pid": 9}) == T0 + 360
        assert h.since_when("files.fd_leak", {"pid": 10}) is None
        # a range that ends inside the first span leaves it open
        assert h.finding_spans(until=T0 + 150)[0].end is None


def test_diff_between_captures(tmp_path):
    path = str(tmp_path / "h.db")
    st = Store.open(path)
    a = record(T0, 0, procs=3)
    b = record(T0 + 60, 1, procs=3)
    b["procs"] = b["procs"][1:] + [{"pid": 5555, "start": int(T0), "name": "new", "rss_bytes": 1, "cpu_pct": 0}]
    b["ports"] = [("LISTEN", 22, 0), ("LISTEN", 8080, 0), ("TIME_WAIT", 443, 900)]
    a["ports"] = [("LISTEN", 22, 0), ("LISTEN", 443, 0), ("TIME_WAIT", 443, 5)]
    b["mounts"].pop("/srv")
    b["findings"] = [{"id": "new.one", "severity": 2, "subject": "{}", "title": "began"}]
    a["host"]["sockets.close_wait"], b["host"]["sockets.close_wait"] = 1, 40
    st.append(a)
    st.append(b)
    st.close()
    with History.open_ro(path) as h:
        d = h.diff(T0 + 10, T0 + 3600)           # nearest at-or-before each time
    assert (d["t1"], d["t2"]) == (T0, T0 + 60)
    assert [p["name"] for p in d["processes_appeared"]] == ["new"]
    assert [p["name"] for p in d["processes_vanished"]] == ["svc0"]
    assert d["listening_opened"] == [8080] and d["listening_closed"] == [443]
    assert {"state": "TIME_WAIT", "port": 443, "before": 5, "after": 900} in d["ports"]
    assert d["socket_states"]["sockets.close_wait"] == {"before": 1, "after": 40}
    assert d["mounts_removed"] == ["/srv"] and d["mounts_added"] == []
    assert [f["id"] for f in d["findings_began"]] == ["new.one"]
    assert {f["id"] for f in d["findings_cleared"]} == {"test.finding0", "test.finding1"}


def test_duplicate_capture_time_refused_cleanly(tmp_path):
    st = Store.open(str(tmp_path / "h.db"))
    st.append(record(T0, 0))
    with pytest.raises(StoreError, match="already stored"):
        st.append(record(T0, 1))
    assert st.span()[2] == 1
    st.close()


def test_live_captures_in_one_millisecond_take_the_next_free_one(tmp_path):
    """A timer's capture and one by hand, started together, can read the same millisecond."""
    st = Store.open(str(tmp_path / "h.db"))
    st.append(record(T0, 0))
    st.append(record(T0 + 0.001, 1))
    assert st.append(record(T0, 2), next_free=True)["t"] == pytest.approx(T0 + 0.002)
    assert st.span()[2] == 3
    st.close()


def test_read_only_open_creates_nothing(tmp_path):
    path = tmp_path / "h.db"
    st = Store.open(str(path))
    st.append(record(T0, 0))
    st.close()
    before = sorted(os.listdir(tmp_path))
    assert before == ["h.db"], "the writer left its -wal/-shm behind"
    h = History.open_ro(str(path))
    h.series("cpu")
    h.finding_spans()
    assert sorted(os.listdir(tmp_path)) == before
    h.close()
    with pytest.raises(StoreError, match="no history store"):
        History.open_ro(str(tmp_path / "absent.db"))
    assert sorted(os.listdir(tmp_path)) == before


def test_read_only_open_with_wal_left_by_a_writer_notes_it(tmp_path):
    path = str(tmp_path / "h.db")
    st = Store.open(path)
    st.append(record(T0, 0))
    st.conn.execute("PRAGMA wal_autocheckpoint = 0")
    st.conn.execute("BEGIN IMMEDIATE")
    st.conn.execute("INSERT INTO capture(t) VALUES (?)", (int(T0 * 1000) + 60000,))
    st.conn.execute("COMMIT")                      # committed in the WAL, not yet checkpointed
    names = sorted(os.listdir(tmp_path))
    with History.open_ro(path) as h:
        assert h.notes and "interrupted" in h.notes[0]
        assert h.span()[2] == 1                    # the immutable reader sees the checkpointed part
    assert sorted(os.listdir(tmp_path)) == names
    st.close()


def test_foreign_and_corrupt_files_refused_and_untouched(tmp_path):
    text = tmp_path / "notes.db"
    text.write_text("my precious notes\n" * 100)
    foreign = tmp_path / "other.db"
    c = sqlite3.connect(foreign)
    c.execute("CREATE TABLE accounts(x)")
    c.execute("INSERT INTO accounts VALUES (1)")
    c.commit()
    c.close()
    corrupt = tmp_path / "corrupt.db"
    st = Store.open(str(corrupt))
    for i in range(50):
        st.append(record(T0 + 60 * i, i))
    st.close()
    raw = bytearray(corrupt.read_bytes())
    raw[4096:] = bytes((i * 7 + 3) & 0xFF for i in range(len(raw) - 4096))   # every page but the header
    corrupt.write_bytes(raw)
    badheader = tmp_path / "badheader.db"
    badheader.write_bytes(b"SQLite format 3\x00" + b"\x00\x03" + os.urandom(4000))
    for p, why in ((text, "not a hostdiag store"), (foreign, "another application"), (corrupt, "corrupt"),
                   (badheader, "corrupt")):
        before = digest(p)
        with pytest.raises(StoreRefused, match=why):
            s = Store.open(str(p))
            s.append(record(T0 + 999999, 1))
        assert digest(p) == before, f"{p.name} was modified"
        with pytest.raises(StoreError):
            with History.open_ro(str(p)) as h:
                h.series("cpu.busy_pct")
                h.finding_spans()
        assert digest(p) == before


def test_unsafe_paths_refused(tmp_path):
    target = tmp_path / "real.db"
    target.write_bytes(b"")
    link = tmp_path / "link.db"
    link.symlink_to(target)
    for p in (str(link), "/proc/self/history.db", "/dev/shm/../../dev/x.db", str(tmp_path)):
        with pytest.raises(StoreRefused):
            Store.open(p)
    dlink = tmp_path / "dirlink"
    dlink.symlink_to(tmp_path)
    with pytest.raises(StoreRefused):
        Store.open(str(dlink / "h.db"))        # the store's own directory is a link


def test_default_path():
    assert default_path({"HOSTDIAG_STORE": "/x/y.db"}, 0) == "/x/y.db"
    assert default_path({}, 0) == "/var/lib/hostdiag/history.db"
    assert default_path({"XDG_STATE_HOME": "/home/u/.st"}, 1000) == "/home/u/.st/hostdiag/history.db"
    assert default_path({"HOME": "/home/u"}, 1000) == "/home/u/.local/state/hostdiag/history.db"


def test_match_keys():
    keys = ["cpu.busy_pct", "cpu.load1", "disk.used_bytes[mount=/]", "disk.used_bytes[mount=/var]", "cpuset.x"]
    assert match_keys(keys, "cpu") == ["cpu.busy_pct", "cpu.load1"]
    assert match_keys(keys, "disk.used_bytes") == keys[2:4]
    assert match_keys(keys, "*mount=/var*") == [keys[3]]
    assert match_keys(keys, "cpu.load1") == ["cpu.load1"]


def test_record_from_report_json_only():
    """from_report reads JSON keys only; no scan -> the union of the JSON top tables."""
    doc = {"window_s": 1.0, "duration_s": 0.5, "findings": [{"id": "a.b", "severity": "warning",
                                                             "subject": {"pid": 1}, "title": "t"}],
           "sections": {
               "cpu": {"status": "ok", "data": {"total_pct": {"busy": 50.123}, "load": {"1m": 2},
                                                "top": [{"pid": 5, "name": "x", "cpu_pct": 9.5}]}},
               "memory": {"status": "ok", "data": {"top_rss": [{"pid": 5, "name": "x", "rss_bytes": 100},
                                                               {"pid": 6, "name": "y", "rss_bytes": 50}]}},
               "sockets": {"status": "ok", "data": {"states": {"ESTABLISHED": 3},
                                                    "listeners": [{"port": 22, "queue": 1}],
                                                    "time_wait_by_port": [{"port": 80, "count": 4}]}},
               "journal": {"status": "partial", "data": {"by_priority": {"err": 6, "info": 100},
                                                         "since": "2026-01-01T00:00:00Z",
                                                         "until": "2026-01-01T00:02:00Z"}},
               "disk": {"status": "unavailable", "data": {"filesystems": [{"mount": "/"}]}},
           }}
    rec = recmod.from_report(doc, T0)
    assert rec["host"]["cpu.busy_pct"] == 50.123 and rec["host"]["cpu.load1"] == 2
    assert rec["host"]["sockets.established"] == 3 and rec["host"]["sockets.close_wait"] == 0
    assert rec["host"]["memory.available_bytes"] is None            # absent is None, never 0
    assert rec["host"]["journal.errors_per_min"] == 3.0
    assert rec["mounts"] == {}                                      # unavailable section: nothing
    assert {(p["pid"], p.get("cpu_pct"), p.get("rss_bytes")) for p in rec["procs"]} == {(5, 9.5, 100), (6, None, 50)}
    assert rec["ports"] == [("LISTEN", 22, 1), ("TIME_WAIT", 80, 4)]
    assert rec["findings"] == [{"id": "a.b", "severity": 1, "subject": '{"pid": 1}', "title": "t"}]


def test_top_processes_union():
    procs = [{"pid": i, "start": 1, "cpu_pct": 0.0 if i > 2 else i, "rss_bytes": i * 10, "fds": None, "io_bps": 0}
             for i in range(1, 50)]
    top = recmod.top_processes(procs, 5)
    assert {p["pid"] for p in top} == {1, 2, 45, 46, 47, 48, 49}


def test_enrich_for_the_snapshot(tmp_path):
    """The calls the analysis layer will make: since-when, multi-hour trend and ETA, never raising."""
    from hostdiag.history.enrich import describe, finding_history, open_for_snapshot, trend

    assert open_for_snapshot(str(tmp_path / "absent.db")) == (None, None)        # not set up: nothing to say
    bad = tmp_path / "bad.db"
    bad.write_text("junk")
    h, note = open_for_snapshot(str(bad))
    assert h is None and "not a hostdiag store" in note
    path = str(tmp_path / "h.db")
    st = Store.open(path)
    for i in range(60):                           # 6 h, one capture per 6 min: /var fills, pid 1003 leaks fds
        rec = record(T0 + 360 * i, i, procs=5, findings=0)
        rec["mounts"]["/var"]["used_bytes"] = 10 ** 9 + i * 10 ** 7
        rec["procs"][3]["fds"] = 180 + i
        if i >= 40:
            rec["findings"] = [{"id": "files.fd_leak", "severity": 1, "subject": json.dumps({"pid": 1003, "name": "svc3"}, sort_keys=True),
                                "title": "fds"}]
        st.append(rec)
    st.close()
    h, note = open_for_snapshot(path)
    assert note is None
    fd = {"id": "files.fd_leak", "category": "files", "subject": {"pid": 1003, "name": "svc3"}, "evidence": {"limit": 256}}
    info = finding_history(h, fd, now=T0 + 360 * 60)
    assert info["since"] == T0 + 360 * 40
    tr = info["trend"]
    assert (tr["first"], tr["last"]) == (180, 239) and tr["per_hour"] == pytest.approx(10)
    assert tr["eta_s"] == pytest.approx(17 / 10 * 3600)
    assert describe(info) == "process.fds of svc3 (pid 1003) 180 → 239 over 5.9 h, ~10/h, limit 256 in 102 min"
    disk = finding_history(h, {"id": "disk.filling", "subject": {"mount": "/var"}}, now=T0 + 360 * 60)
    assert disk["since"] is None and disk["trend"]["per_hour"] == pytest.approx(10 ** 8)
    assert disk["trend"]["eta_s"] == pytest.approx((10 ** 10 - (10 ** 9 + 59 * 10 ** 7)) / 10 ** 8 * 3600)
    assert trend(None) is None and finding_history(None, fd) is None
    h.close()

"""`hostdiag history`: summary, timeline, export in the format `signatures match` reads, --diff;
and a real process whose RSS grows in steps, followed across captures on an injected clock."""
from __future__ import annotations

import json
import subprocess
import sys

from histgen import T0, record
from support import cli

from hostdiag.history.store import History, Store
from hostdiag.matcher.series_io import read_series


def _store(tmp_path, n=30):
    path = str(tmp_path / "h.db")
    st = Store.open(path)
    for i in range(n):
        rec = record(T0 + 60 * i, i, procs=3, findings=0)
        rec["host"]["memory.available_bytes"] = 8e9 - i * 1e8
        if 10 <= i < 20:
            rec["findings"] = [{"id": "files.fd_leak", "severity": 1, "subject": json.dumps({"pid": 1001}),
                                "title": f"svc1 holds {100 + i} fds"}]
        if i == n - 1:
            rec["procs"].append({"pid": 666, "start": int(T0), "name": "evil\x1b[31mname", "rss_bytes": 10 ** 9})
        st.append(rec)
    st.close()
    return path


def hist(path, *args, now=None):
    return cli("history", "--store", path, *args, env={"HOSTDIAG_NOW": str(now or T0 + 60 * 30)})


def test_summary_sparklines_and_timeline(tmp_path):
    path = _store(tmp_path)
    p = hist(path)
    assert p.returncode == 0, p.stderr
    out = p.stdout
    assert "30 captures" in out and "range" in out
    line = next(x for x in out.splitlines() if x.strip().startswith("memory.available_bytes"))
    assert "█" in line and "▁" in line and "last 4.7 GiB" in line
    assert "files.fd_leak [pid=1001]" in out
    start, cleared = T0 + 600, T0 + 1200
    from hostdiag.core.units import rfc3339
    assert rfc3339(start) in out and f"cleared {rfc3339(cleared)}" in out and "10 captures" in out
    assert "\x1b" not in out
    # --since narrows: 10 minutes back from "now" holds captures 20..29 and no finding
    p = hist(path, "--since", "10m")
    assert ": 10 captures" in p.stdout and "findings timeline: none in range" in p.stdout


def test_json_and_csv_export_read_by_signatures_match(tmp_path):
    path = _store(tmp_path)
    p = hist(path, "--metric", "memory.available_bytes", "--json")
    assert p.returncode == 0, p.stderr
    ts, vs = read_series(p.stdout)
    assert len(vs) == 30 and vs[0] == 8e9 and vs[-1] == 8e9 - 29e8
    assert ts[1] - ts[0] == 60
    p2 = hist(path, "--metric", "memory.available_bytes", "--csv")
    ts2, vs2 = read_series(p2.stdout)
    assert (ts2, vs2) == (ts, vs)
    f = tmp_path / "avail.json"
    f.write_text(p.stdout)
    m = cli("signatures", "match", str(f), "--metric", "memory.available_bytes", "--json")
    assert m.returncode in (0, 1, 2), m.stderr
    shapes = {x.get("shape") for x in json.loads(m.stdout)["matches"]}
    assert "ramp" in shapes, m.stdout
    # several series: a list of documents, each readable on its own
    many = json.loads(hist(path, "--metric", "disk.used_bytes*", "--json").stdout)["series"]
    assert [d["metric"] for d in many] == ["disk.used_bytes[mount=/]", "disk.used_bytes[mount=/srv]",
                                           "disk.used_bytes[mount=/var]"]
    assert read_series(json.dumps(many[0]))[1][0] == 10 ** 9


def test_diff_command(tmp_path):
    path = _store(tmp_path)
    p = hist(path, "--diff", str(T0 + 60 * 28), str(T0 + 60 * 29))
    assert p.returncode == 0, p.stderr
    assert "processes appeared:\n  evil" in p.stdout and "\x1b" not in p.stdout
    d = json.loads(hist(path, "--diff", str(T0 + 60 * 12), "1m", "--json").stdout)
    assert [f["id"] for f in d["findings_cleared"]] == ["files.fd_leak"]


def test_missing_store_is_one_line_and_creates_nothing(tmp_path):
    p = cli("history", "--store", str(tmp_path / "nope" / "h.db"))
    assert p.returncode == 3 and len(p.stderr.strip().splitlines()) == 1 and "no history store" in p.stderr
    assert not (tmp_path / "nope").exists()
    p = hist(_store(tmp_path), "--metric", "no.such.metric", "--json")
    assert p.returncode == 3 and "no series matches" in p.stderr


_GROWER = """
import sys, time
blocks = []
for line in sys.stdin:            # one step per line read
    blocks.append(bytearray(40 * 1024 * 1024))
    for i in range(0, len(blocks[-1]), 4096):
        blocks[-1][i] = 1          # touch every page: RSS, not just VSZ
    print("ok", flush=True)
"""


def test_real_process_rss_stair_step_followed_across_captures(tmp_path):
    """A real child grows 40 MiB per step; 8 real captures on an injected 10-minute clock."""
    path = str(tmp_path / "h.db")
    child = subprocess.Popen([sys.executable, "-c", _GROWER], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             text=True)
    try:
        for i in range(8):
            if i % 2 == 0:            # a step every other capture: a stair, not a ramp
                child.stdin.write("grow\n")
                child.stdin.flush()
                assert child.stdout.readline().strip() == "ok"
            p = cli("capture", "--store", path, "--window", "0", env={"HOSTDIAG_NOW": str(T0 + 600 * i)})
            assert p.returncode == 0, p.stderr
    finally:
        child.kill()                  # our own child, by its Popen handle
        child.wait()
    with History.open_ro(path) as h:
        [s] = h.process_series(child.pid, "rss_bytes")
        assert s.labels["pid"] == str(child.pid) and s.labels["name"].startswith("python")
        assert len(s.v) == 8 and s.t[-1] == 4200
        steps = [round((b - a) / 2 ** 20) for a, b in zip(s.v, s.v[1:])]
        assert [x >= 35 for x in steps] == [False, True, False, True, False, True, False], steps
        assert s.slope() > 0
    out = cli("history", "--store", path, "--process", str(child.pid), "--metric", "rss_bytes", "--json",
              env={"HOSTDIAG_NOW": str(T0 + 4800)})
    assert read_series(out.stdout)[1] == s.v


def test_crafted_store_rows_are_a_clear_refusal_not_an_internal_error(tmp_path):
    """A store someone edited (a finding subject that is not JSON, a 20 MB title with escapes)
    once ended `history` with "internal error: JSONDecodeError" (exit 3 with a traceback-ish
    message) after reading the whole title into memory."""
    import sqlite3

    path = _store(tmp_path)
    c = sqlite3.connect(path)
    t = c.execute("SELECT max(t) FROM capture").fetchone()[0]
    c.execute("INSERT INTO finding(fid, subject) VALUES ('x.y', 'not json')")
    fid = c.execute("SELECT max(id) FROM finding").fetchone()[0]
    c.execute("INSERT INTO finding_sample(t, finding, severity, title) VALUES (?, ?, 2, ?)",
              (t, fid, "\x1b[31mT" * 4_000_000))
    c.commit()
    c.close()
    r = hist(path)
    assert r.returncode == 3, r.stderr
    assert "internal error" not in r.stderr and "unreadable" in r.stderr and path in r.stderr, r.stderr

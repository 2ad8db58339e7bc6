"""hostdiag's node_exporter textfile: format, low-cardinality labels, atomic safe writes, and a
real node_exporter reading it (and flagging a malformed file)."""
from __future__ import annotations

import os
import re
import stat
import subprocess

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from promtools import PROMTOOL, get, need_node_exporter, start_node_exporter, stop

from hostdiag.core.safeio import UnsafePath
from hostdiag.export import textfile


def doc(findings=(), series=None, sections=None):
    return {"collected_at": "2026-11-29T05:00:00+00:00", "findings": list(findings),
            "series": series or {}, "sections": sections or {"memory": {"status": "ok"}, "journal": {"status": "partial"}}}


def finding(fid="memory.pressure", sev="critical", cat="memory", **kw):
    return {"id": fid, "severity": sev, "category": cat, "title": "free text 12345 /tmp/x", "subject": {"pid": 4242}, **kw}


def samples(text: str) -> dict[str, float]:
    return {ln.rsplit(" ", 1)[0]: float(ln.rsplit(" ", 1)[1]) for ln in text.splitlines() if ln and not ln.startswith("#")}


def test_findings_counts_timestamp_and_no_free_text():
    text = textfile.render(doc([finding(), finding(), finding("io.pressure", "warning", "io")]))
    s = samples(text)
    assert s["hostdiag_last_run_timestamp_seconds"] == 1795928400.0
    assert s['hostdiag_findings{severity="critical"}'] == 2 and s['hostdiag_findings{severity="info"}'] == 0
    # two findings with the same (id, severity, category) are one series: a duplicate breaks the file
    assert s['hostdiag_finding{id="memory.pressure",severity="critical",category="memory"}'] == 1
    assert text.count("hostdiag_finding{") == 2
    assert "4242" not in text and "free text" not in text
    assert s['hostdiag_collector_status{collector="journal",status="partial"}'] == 1
    assert s['hostdiag_collector_status{collector="journal",status="ok"}'] == 0


def test_series_in_base_units_and_high_cardinality_labels_dropped():
    series = {
        "cpu.busy_s": {"metric": "cpu.busy_s", "unit": "seconds", "counter": True, "labels": {}, "v": [1.0, 2.5]},
        "cpu.psi_some_avg10": {"metric": "cpu.psi_some_avg10", "unit": "percent", "counter": False, "labels": {}, "v": [50.0, None]},
        "memory.available_bytes": {"metric": "memory.available_bytes", "unit": "bytes", "counter": False, "labels": {}, "v": [7.0]},
        "disk.used_bytes[mount=/var]": {"metric": "disk.used_bytes", "unit": "bytes", "counter": False,
                                        "labels": {"mount": "/var"}, "v": [9.0]},
        "files.fds[pid=1]": {"metric": "files.fds", "unit": "count", "counter": False, "labels": {"pid": "1"}, "v": [3.0]},
        "io.in_flight[device=sda]": {"metric": "io.in_flight", "unit": "count", "counter": False,
                                     "labels": {"device": "sda"}, "v": [None, None]},
    }
    text = textfile.render(doc(series=series))
    s = samples(text)
    assert s["hostdiag_cpu_busy_seconds_total"] == 2.5
    assert "# TYPE hostdiag_cpu_busy_seconds_total counter" in text
    assert s["hostdiag_cpu_psi_some_avg10_ratio"] == 0.5
    assert s["hostdiag_memory_available_bytes"] == 7.0
    assert s['hostdiag_disk_used_bytes{mount="/var"}'] == 9.0
    assert "files_fds" not in text and "in_flight" not in text   # a pid label; no value at all


@pytest.mark.skipif(not PROMTOOL, reason="promtool not installed (apt-get install prometheus; .ci/run does)")
def test_promtool_accepts_a_real_snapshot():
    from support import cli_json

    d, _ = cli_json("--window", "1", "--interval", "0.5")
    p = subprocess.run([PROMTOOL, "check", "metrics"], input=textfile.render(d), capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stdout + p.stderr


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=40), st.text(max_size=20))
def test_label_values_round_trip(fid, cat):
    """Any id/category text (quotes, backslashes, newlines) stays one well-formed line; other
    control characters are dropped."""
    line = next(ln for ln in textfile.render(doc([finding(fid, "warning", cat)])).split("\n")
                if ln.startswith("hostdiag_finding{"))
    m = re.fullmatch(r'hostdiag_finding\{id="((?:[^"\\]|\\.)*)",severity="warning",category="((?:[^"\\]|\\.)*)"\} 1\.0', line)
    assert m, line
    unesc = lambda x: re.sub(r"\\(.)", lambda g: {"n": "\n"}.get(g.group(1), g.group(1)), x)
    keep = lambda x: re.sub(r"[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029]", "", x)
    assert (unesc(m.group(1)), unesc(m.group(2))) == (keep(fid), keep(cat))


def test_write_is_atomic_0644_and_replaces(tmp_path):
    path = textfile.write(tmp_path, doc([finding()]))
    assert path == str(tmp_path / "hostdiag.prom")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o644
    textfile.write(tmp_path, doc())
    assert 'hostdiag_findings{severity="critical"} 0.0' in open(path).read()
    assert os.listdir(tmp_path) == ["hostdiag.prom"]         # no temporary left behind


def test_write_refuses_a_symlink_and_proc(tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("keep")
    d = tmp_path / "tf"
    d.mkdir()
    (d / "hostdiag.prom").symlink_to(victim)
    with pytest.raises(UnsafePath, match="symbolic link"):
        textfile.write(d, doc())
    assert victim.read_text() == "keep"
    with pytest.raises(UnsafePath, match="/proc"):
        textfile.write("/proc/self", doc())


@need_node_exporter
def test_node_exporter_scrapes_it_and_flags_a_malformed_file(tmp_path):
    textfile.write(tmp_path, doc([finding()]))
    proc, url = start_node_exporter(tmp_path)
    try:
        body = get(url)
        assert 'hostdiag_finding{category="memory",id="memory.pressure",severity="critical"} 1' in body
        assert 'hostdiag_findings{severity="critical"} 2' not in body
        assert re.search(r"^node_textfile_scrape_error 0$", body, re.M)
        (tmp_path / "broken.prom").write_text("hostdiag_oops{unterminated=\"x} 1\n")
        body = get(url)
        assert re.search(r"^node_textfile_scrape_error 1$", body, re.M)
    finally:
        stop(proc)


def test_label_values_are_redacted():
    """The textfile is 0644 and lands in a shared Prometheus: a mount named
    /mnt/db_password=... carried the secret into it."""
    from hostdiag.bundle import redact
    from hostdiag.export import textfile

    doc = {"series": {"k": {"metric": "disk.used_bytes", "unit": "bytes", "labels": {
        "mount": "/tmp/m/db_password%3DMountPw5ecret99"}, "t": [1.0], "v": [5.0]}, "k2": {
        "metric": "disk.used_bytes", "unit": "bytes", "labels": {"mount": "/srv/data"}, "t": [1.0], "v": [7.0]}}}
    out = textfile.render(doc, redact=redact.make().text)
    assert "MountPw5ecret99" not in out and 'mount="/tmp/m/db_password' in out, out
    assert 'hostdiag_disk_used_bytes{mount="/srv/data"} 7.0' in out, out

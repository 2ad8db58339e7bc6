"""The analysis layer: Snapshot in, Report out, the Snapshot left as collected."""
from __future__ import annotations

import copy
import json
import types
from dataclasses import asdict

from hostdiag import analysis, catalog
from hostdiag.core.model import SCHEMA_VERSION, Finding, Host, Section, Series, ShapeMatch, Snapshot
from hostdiag.core.thresholds import Thresholds
from hostdiag.render import render
from hostdiag.render import layout

ESC = "\x1b]0;pwned\x07"


def _snap() -> Snapshot:
    n = 24
    return Snapshot(
        schema_version=SCHEMA_VERSION,
        host=Host("web" + ESC, "6.1", "Debian", 2, None, None, 0, "test"),
        collected_at="2026-11-23T00:00:00+00:00", window_s=23.0, interval_s=1.0,
        sections={"memory": Section("memory", "ok", data={"note": "x" + ESC}),
                  "sockets": Section("sockets", "ok", data={"n": 1}),
                  "changes": Section("changes", "ok", data={"timeline": [
                      {"time": "2026-11-23T00:00:00+00:00", "kind": "package", "what": "upgrade app 1 -> 2",
                       "source": "dpkg"}]})},
        # a stair-step fall of available memory: the memory.available_falling archetype
        series={"memory.available_bytes": Series("memory.available_bytes", "bytes", [float(i) for i in range(n)],
                                                 [8e9 - (i // 6) * 1e9 for i in range(n)], t0=1795910400.0)},
    )


def _mod(name, fn):
    return types.SimpleNamespace(NAME=name, findings=fn)


def _boom(sec, th):
    raise KeyError("oops" + ESC)


def _leak(sec, th):
    return [Finding("memory.leak", "memory", "warning", "leak in " + sec.data["note"],
                    since="2026-11-23T00:05:00+00:00", stabilize=["restart it"], score=1.0)]


def test_build_leaves_the_snapshot_as_collected():
    snap = _snap()
    before = copy.deepcopy(asdict(snap))
    rep = analysis.build(snap, [_mod("memory", _leak), _mod("sockets", _boom)], Thresholds({}),
                         catalog=catalog.load(()))
    assert asdict(snap) == before
    # The report holds cleaned, annotated copies.
    assert ESC not in rep.snapshot.host.hostname and ESC in snap.host.hostname
    assert rep.snapshot.sections["sockets"].status == "partial"
    assert "findings failed: hostdiag bug: KeyError" in rep.snapshot.sections["sockets"].reason
    assert snap.sections["sockets"].status == "ok" and snap.sections["sockets"].blind_spots == []
    assert [b.collector for b in rep.blind_spots] == ["sockets"]


def test_steps_shape_correlate_rank_headline():
    rep = analysis.build(_snap(), [_mod("memory", _leak)], Thresholds({}), catalog=catalog.load(()))
    (m,) = [s for s in rep.shapes if s.signature == "memory.available_falling"]
    assert isinstance(m, ShapeMatch) and m.series == "memory.available_bytes" and not m.generic
    f = rep.findings[0]
    assert f.id == "memory.leak" and f.evidence["shape"]["signature"] == "memory.available_falling"
    # 5 min after the upgrade, but nothing else ties them: shown, never a rollback (issue 11)
    assert f.evidence["unrelated_change"]["what"] == "upgrade app 1 -> 2"
    assert f.stabilize[0] == "restart it"
    assert ESC not in f.title and rep.headline.severity == "warning"
    assert rep.headline.condition.startswith("leak in x")


def test_shapes_json_keeps_its_keys():
    rep = analysis.build(_snap(), [], Thresholds({}), catalog=catalog.load(()))
    doc = json.loads(render(rep, "json"))
    assert list(doc["shapes"][0]) == ["series", "metric", "labels", "shape", "signature", "score", "start", "end",
                                      "why", "start_epoch", "end_epoch", "title", "first_checks", "stabilize",
                                      "avoid", "runbook", "generic"]
    # No finding for the memory category: the archetype becomes an info finding of its own.
    assert [(f.id, f.severity) for f in rep.findings] == [("memory.available_falling", "info")]


def test_extra_series_are_matched_and_win_over_the_snapshot_key():
    snap = _snap()
    flat = copy.deepcopy(snap.series["memory.available_bytes"])
    flat.v = [8e9] * len(flat.v)
    assert analysis.build(snap, [], Thresholds({}), catalog=catalog.load(()),
                          extra_series={flat.key: flat}).shapes == []


def test_layout_is_the_report_order():
    rep = analysis.build(_snap(), [_mod("memory", _leak)], Thresholds({}), catalog=catalog.load(()))
    assert [type(b) for b in layout.layout(rep)] == list(layout.ORDER)
    no_changes = analysis.build(_snap(), [], Thresholds({}))
    no_changes.snapshot.sections.pop("changes")
    assert [type(b).__name__ for b in layout.layout(no_changes)] == ["Header", "Findings", "Evidence", "BlindSpots"]


def test_every_renderer_styles_every_block():
    from hostdiag.render import markdown, plain, terminal

    for mod in (plain, markdown, terminal):
        assert set(mod.STYLERS) == set(layout.ORDER), mod.__name__


def test_need_asks_for_root_only_when_root_would_help():
    from hostdiag.analysis.headline import _need
    from hostdiag.core.model import BlindSpot

    assert _need([BlindSpot("files", "partial", "fd tables of 3 processes not readable: run as root to see x")]) \
        == "run as root to see files fully (see Blind spots)."
    assert _need([BlindSpot("sockets", "partial", "listen backlogs ... unknown for a --proc-root"),
                  BlindSpot("io", "partial", "/proc/PID/io of 2 processes not readable even as root: gone")]) \
        == "sockets, io: partial (see Blind spots)."


def test_generic_shapes_are_listed_only_beside_trouble_of_their_category():
    """A quiet host's graphs wiggle (a shell's own commands spike forks and CPU): a shape with no
    archetype is listed only where its category has a warning or critical finding."""
    snap = _snap()
    n = 24
    snap.series = {"cpu.forks": Series("cpu.forks", "count", [float(i) for i in range(n)],
                                       [5.0] * 10 + [400.0] + [5.0] * (n - 11), t0=1795910400.0)}
    snap.sections["cpu"] = Section("cpu", "ok")
    cat = catalog.load()
    quiet = analysis.build(snap, [], Thresholds({}), catalog=cat)
    assert [m for m in quiet.shapes if m.generic] == []
    busy = analysis.build(snap, [_mod("cpu", lambda sec, th: [Finding("cpu.x", "cpu", "warning", "t")])],
                          Thresholds({}), catalog=cat)
    assert any(m.generic and m.series == "cpu.forks" for m in busy.shapes), busy.shapes


def test_a_shape_that_began_after_a_change_says_so():
    """The memory stair-step starts at the window's start; a package upgrade two minutes before it
    is named in the shape's text, marked as tied by time alone (nothing links the two)."""
    snap = _snap()
    t0 = snap.series["memory.available_bytes"].t0
    from hostdiag.core.units import rfc3339

    snap.sections["changes"] = Section("changes", "ok", data={"timeline": [
        {"time": rfc3339(t0 - 120), "kind": "package", "what": "upgrade app 1 -> 2", "source": "dpkg"}]})
    rep = analysis.build(snap, [], Thresholds({}), catalog=catalog.load())
    m = [s for s in rep.shapes if s.series == "memory.available_bytes"]
    assert m and "min after upgrade app 1 -> 2 (unrelated by anything but time)" in m[0].why, m

"""An archetype match enriches the finding about the same thing. Seen on this host with two faults
at once: python3 pid A leaking fds, python3 pid B leaking RSS; the fd ramp of A (series
processes.fds[pid=A], archetype files.fd_leak) gave B's RSS finding the advice "restart the holder
off-peak after capturing what its fds point at" and "raise the fd limit only as a stopgap"."""
from __future__ import annotations

from dataclasses import replace

from hostdiag.analysis.shapes import attach
from hostdiag.core.model import Finding, ShapeMatch


def _match(series, metric, labels, signature, stabilize):
    return ShapeMatch(series=series, metric=metric, labels=labels, shape="ramp", signature=signature, score=0.97,
                      start=0.0, end=5.0, why="rising steadily", start_epoch=0.0, end_epoch=5.0,
                      stabilize=stabilize)


FD = _match("processes.fds[name=python3,pid=200]", "processes.fds", {"name": "python3", "pid": "200"},
            "files.fd_leak", ["raise the fd limit only as a stopgap"])
RSS = Finding("processes.rss_growth", "processes", "critical", "python3 (pid 100) RSS +3.0 MiB/s",
              subject={"pid": 100, "name": "python3"}, stabilize=["Capture a heap profile"])
FDS = Finding("files.process_fd_exhaustion", "files", "critical", "python3 (pid 200) has 300 of 1024 open files",
              subject={"pid": 200, "name": "python3"}, stabilize=["Check what the fds are"])


def test_a_process_match_goes_to_the_finding_about_that_process():
    rss, fds = attach([RSS, FDS], [FD])
    assert rss.stabilize == ["Capture a heap profile"] and "shape" not in rss.evidence
    assert fds.evidence["shape"]["signature"] == "files.fd_leak"
    assert fds.stabilize == ["Check what the fds are", "raise the fd limit only as a stopgap"]


def test_with_no_finding_about_that_process_the_match_is_its_own_hint():
    out = attach([RSS], [FD])
    assert out[0] == RSS
    assert out[1].id == "files.fd_leak" and out[1].severity == "info" and out[1].subject["pid"] == "200"


def test_a_host_wide_match_still_enriches_its_category():
    host = _match("files.file_handles", "files.file_handles", {}, "files.fd_leak", ["x"])
    (fds,) = attach([FDS], [host])
    assert fds.evidence["shape"]["series"] == "files.file_handles"


def test_a_mount_with_special_characters_is_matched_by_its_real_path():
    """Disk series keys percent-encode the mount; the disk finding names the real path. A hostile
    mount's filling shape became a second finding with '%24%28touch' in its subject."""
    mount = "/srv/m $(touch X) 'q"
    full = Finding("disk.nearly_full", "disk", "critical", "full", subject={"mount": mount})
    sh = _match("disk.used_bytes[mount=/srv/m %24%28touch X%29 %27q]", "disk.used_bytes",
                {"mount": "/srv/m %24%28touch X%29 %27q"}, "disk.filling", ["rotate logs"])
    (f,) = attach([full], [sh])
    assert f.evidence["shape"]["signature"] == "disk.filling" and f.subject == {"mount": mount}
    other = replace(full, subject={"mount": "/elsewhere"})
    out = attach([other], [sh])
    assert out[1].subject == {"mount": mount}

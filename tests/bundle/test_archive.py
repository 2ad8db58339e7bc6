"""The archive format: one-pass writing, verification against tampering, hostile archives refused."""
from __future__ import annotations

import gzip
import io
import json
import os
import tarfile
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hostdiag.bundle import archive
from hostdiag.bundle.verify import verify

ROOT = "hostdiag-bundle_h_INC-1_20260101T000000Z"
BODY = [("snapshot.json", b'{"a": 1}\n'), ("report.txt", b"hello\n" * 500), ("journal.jsonl", b'{"m": "x"}\n' * 300)]


def make(members=BODY, zstd=False) -> bytes:
    out = io.BytesIO()
    w = archive.Writer(out, ROOT, zstd=zstd, mtime=1_700_000_000)
    for n, d in members:
        w.add(n, d)
    w.finish({"incident": "INC-1"})
    return out.getvalue()


def members_of(blob: bytes) -> list[tuple[str, bytes]]:
    with tarfile.open(fileobj=io.BytesIO(blob), mode="r:*") as t:
        return [(m.name, t.extractfile(m).read()) for m in t.getmembers()]


def pack(members, *, raw_tar=False, infos=()) -> bytes:
    """A .tar.gz of (name, bytes) members plus prepared TarInfos (links etc.), as an attacker writes it."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        for n, d in members:
            ti = tarfile.TarInfo(n)
            ti.size = len(d)
            t.addfile(ti, io.BytesIO(d))
        for ti in infos:
            t.addfile(ti)
    return buf.getvalue() if raw_tar else gzip.compress(buf.getvalue())


def check(blob: bytes):
    return verify(io.BytesIO(blob))


def test_round_trip_ok_gzip_and_stream():
    blob = make()
    assert blob[:2] == b"\x1f\x8b"
    res = check(blob)
    assert res.ok, res.problems
    assert res.checked == 3
    names = [n for n, _ in members_of(blob)]
    assert names[-2:] == [f"{ROOT}/manifest.json", f"{ROOT}/manifest.sha256"]
    man = json.loads(dict(members_of(blob))[f"{ROOT}/manifest.json"])
    assert [m["name"] for m in man["members"]] == [n for n, _ in BODY]
    assert all(len(m["sha256"]) == 64 for m in man["members"])


def test_zstd_round_trip():
    pytest.importorskip("zstandard")
    blob = make(zstd=True)
    assert blob[:4] == b"\x28\xb5\x2f\xfd"
    assert check(blob).ok


def _rebuild(fn) -> bytes:
    ms = members_of(make())
    return pack(fn(ms))


def test_flip_a_byte_in_a_member():
    def flip(ms):
        n, d = ms[1]
        ms[1] = (n, d[:10] + bytes([d[10] ^ 1]) + d[11:])
        return ms
    res = check(_rebuild(flip))
    assert not res.ok and any("report.txt: SHA-256 mismatch" in p for p in res.problems)


def test_flip_a_byte_in_the_compressed_stream():
    blob = bytearray(make())
    blob[len(blob) // 2] ^= 0x40
    res = check(bytes(blob))
    assert not res.ok


@pytest.mark.parametrize("zstd", [False, True])
@pytest.mark.parametrize("cut", [0.3, 0.7, 0.95])
def test_truncated(cut, zstd):
    if zstd:
        pytest.importorskip("zstandard")
    blob = make(zstd=zstd)
    res = check(blob[: int(len(blob) * cut)])
    assert not res.ok
    assert any("truncated" in p or "manifest" in p for p in res.problems), res.problems


def test_truncated_just_before_the_gzip_trailer():
    blob = make()
    res = check(blob[:-4])            # only the ISIZE of the gzip trailer is missing
    assert not res.ok and any("truncated" in p for p in res.problems), res.problems


def test_added_member():
    res = check(_rebuild(lambda ms: ms[:-2] + [(f"{ROOT}/extra.txt", b"planted")] + ms[-2:]))
    assert not res.ok and any("added member not in the manifest: extra.txt" in p for p in res.problems)


def test_removed_member():
    res = check(_rebuild(lambda ms: [m for m in ms if not m[0].endswith("report.txt")]))
    assert not res.ok and any("missing member: report.txt" in p for p in res.problems)


def test_edited_manifest():
    def edit(ms):
        out = []
        for n, d in ms:
            if n.endswith("manifest.json"):
                doc = json.loads(d)
                doc["incident"] = "INC-9999"
                d = json.dumps(doc).encode()
            out.append((n, d))
        return out
    res = check(_rebuild(edit))
    assert not res.ok and any("manifest.json changed" in p for p in res.problems)


def test_edited_manifest_and_its_hash_caught_by_expect():
    """Rewriting both the manifest and its hash passes the self-check; --expect (the hash printed
    when the bundle was made) still catches it."""
    good = check(make()).manifest_sha256

    def forge(ms):
        out = []
        for n, d in ms:
            if n.endswith("manifest.json"):
                doc = json.loads(d)
                doc["incident"] = "INC-9999"
                d = json.dumps(doc).encode()
                h = __import__("hashlib").sha256(d).hexdigest()
            if n.endswith("manifest.sha256"):
                d = f"{h}  manifest.json\n".encode()
            out.append((n, d))
        return out
    blob = _rebuild(forge)
    assert check(blob).ok
    res = verify(io.BytesIO(blob), expect=good)
    assert not res.ok and any("not the expected" in p for p in res.problems)


def test_reordered_members():
    res = check(_rebuild(lambda ms: [ms[1], ms[0], *ms[2:]]))
    assert not res.ok and any("reordered" in p for p in res.problems)
    res = check(_rebuild(lambda ms: [*ms[:-2], ms[-1], ms[-2]]))
    assert not res.ok and any("reordered" in p or "changed" in p for p in res.problems)


def test_appended_data_refused():
    blob = make() + gzip.compress(b"A" * 5000)
    res = check(blob)
    assert not res.ok


# ---------------------------------------------------------------- hostile archives

@pytest.mark.parametrize("name", ["../../etc/cron.d/evil", "/etc/passwd", f"{ROOT}/../x", f"{ROOT}/a/../../b",
                                  "evil\\..\\x", f"{ROOT}/sub/deeper.txt"])
def test_traversal_and_odd_names_refused(name):
    res = check(pack([(name, b"x")]))
    assert res.hostile and not res.ok
    assert "refused" in res.problems[0]


@pytest.mark.parametrize("kind", [tarfile.SYMTYPE, tarfile.LNKTYPE, tarfile.CHRTYPE, tarfile.DIRTYPE, tarfile.FIFOTYPE])
def test_links_and_special_files_refused(kind):
    ti = tarfile.TarInfo(f"{ROOT}/snapshot.json")
    ti.type = kind
    ti.linkname = "/etc/shadow" if kind in (tarfile.SYMTYPE, tarfile.LNKTYPE) else ""
    res = check(pack([], infos=[ti]))
    assert res.hostile and "regular files only" in res.problems[0]


def _zeros_gz(n_mib: int) -> bytes:
    """gzip of n MiB of zeros built from concatenated gzip members (cheap to make, ~1000:1)."""
    one = gzip.compress(b"\0" * (1 << 20), 9)
    return one * n_mib


# The bounds are lowered for these tests: the pytest process stays small (later tests compare
# process RSS), and a bound hit at 4 MiB is the same code path as at 2 GiB.


def test_gzip_bomb_stops_at_the_decompressed_bound(monkeypatch):
    monkeypatch.setattr(archive, "MAX_TOTAL", 4 << 20)
    hdr = tarfile.TarInfo(f"{ROOT}/snapshot.json")
    hdr.size = 3 << 20                        # claims less than the bound...
    head = gzip.compress(hdr.tobuf(tarfile.PAX_FORMAT))
    blob = head + _zeros_gz(64)               # ...then 64 MiB of zeros follow
    assert len(blob) < 200_000
    res = check(blob)
    assert not res.ok
    assert res.hostile or any("truncated" in p or "bomb" in p for p in res.problems), res.problems


def test_gzip_bomb_many_members(monkeypatch):
    monkeypatch.setattr(archive, "MAX_TOTAL", 2 << 20)
    res = check(pack([(f"{ROOT}/m{i}.bin", b"\0" * (256 << 10)) for i in range(20)]))
    assert res.hostile and "bomb" in res.problems[0]


def test_member_claiming_huge_size_refused():
    hdr = tarfile.TarInfo(f"{ROOT}/snapshot.json")
    hdr.size = 50 << 30
    res = check(gzip.compress(hdr.tobuf(tarfile.PAX_FORMAT)) + _zeros_gz(1))
    assert res.hostile and "bound" in res.problems[0]


def test_too_many_members_refused(monkeypatch):
    monkeypatch.setattr(archive, "MAX_MEMBERS", 50)
    res = check(pack([(f"{ROOT}/m{i}.txt", b"x") for i in range(60)]))
    assert res.hostile and "members" in res.problems[0]


def test_not_an_archive():
    res = check(b"hello, this is not a bundle\n" * 10)
    assert not res.ok
    res = check(zlib.compress(b"x" * 100))
    assert not res.ok


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(min_size=1, max_size=40),
                 st.lists(st.sampled_from(["..", ".", "", "top", "a.json", "x\\..", "..a", "a..b", "~", "\0"]),
                          min_size=1, max_size=4).map("/".join)))
def test_accepted_names_never_escape(name):
    try:
        inner = archive.check_name(name)
    except archive.HostileArchive:
        return
    top, rest = name.split("/")
    assert rest == inner and not name.startswith("/") and ".." not in name.split("/")
    assert os.path.normpath(os.path.join("/x", name)).startswith(f"/x/{top}/")


def test_writer_refuses_unsafe_and_reserved_names():
    w = archive.Writer(io.BytesIO(), ROOT)
    for bad in ("../x", "a/b", "manifest.json", ".hidden", ""):
        with pytest.raises((ValueError, archive.HostileArchive)):
            w.add(bad, b"x")


def test_zstd_bomb_is_read_in_bounded_steps(monkeypatch):
    """zstd's decompressobj has no output cap: 64 KiB of RLE blocks once became ~2 GiB in one call
    (a 60 KB .tar.zst took >60 s and 3.9 GB RSS in `bundle verify`). Now no single step holds more
    than tens of MiB, and the bound is hit as for gzip."""
    zstandard = pytest.importorskip("zstandard")
    import tracemalloc

    monkeypatch.setattr(archive, "MAX_TOTAL", 4 << 20)
    hdr = tarfile.TarInfo(f"{ROOT}/snapshot.json")
    hdr.size = 3 << 20
    c = zstandard.ZstdCompressor(level=1).compressobj()
    blob = c.compress(hdr.tobuf(tarfile.PAX_FORMAT))
    zeros = b"\0" * (1 << 20)
    for _ in range(512):
        blob += c.compress(zeros)
    blob += c.flush()
    assert len(blob) < 1 << 20
    tracemalloc.start()
    try:
        res = check(blob)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert not res.ok and (res.hostile or any("bomb" in p or "truncated" in p for p in res.problems)), res.problems
    assert peak < 128 << 20, f"peak {peak >> 20} MiB while refusing a bomb"


def test_member_held_in_memory_is_bounded(monkeypatch):
    """show keeps snapshot.json in memory: a 1.9 MB .tar.gz holding 1.9 GiB of it took 3.9 GB RSS."""
    monkeypatch.setattr(archive, "MAX_KEPT", 1 << 20)
    blob = pack([(f"{ROOT}/snapshot.json", b"\0" * (2 << 20))])
    res = verify(io.BytesIO(blob), keep=lambda n: n == "snapshot.json")
    assert res.hostile and "memory" in res.problems[0], res.problems
    assert check(blob).problems == [] or "memory" not in check(blob).problems[0]   # not kept: only hashed

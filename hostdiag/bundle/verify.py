"""`hostdiag bundle verify`: every member's size and SHA-256 against the manifest, and the
manifest against its own hash. Reports tampering, truncation, added, missing and reordered
members and a changed manifest; refuses hostile archives. Works on a pipe (stdin)."""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

from hostdiag.bundle.archive import (FORMAT, MANIFEST, MANIFEST_HASH, MAX_MANIFEST, HostileArchive,
                                     read_members)


@dataclass
class Result:
    ok: bool = False
    problems: list[str] = field(default_factory=list)
    manifest: dict | None = None
    manifest_sha256: str | None = None
    members: dict[str, bytes] = field(default_factory=dict)   # the held members' bytes
    hostile: bool = False
    checked: int = 0


def verify(raw, *, keep=lambda name: False, expect: str | None = None) -> Result:
    """Read a bundle stream once; hold `keep(name)` members (and the manifest) in memory."""
    res = Result()
    seen: list[tuple[str, int, str]] = []
    man_bytes = man_hash_bytes = None
    try:
        for name, size, digest, data, _root in read_members(
                raw, keep=lambda n: n in (MANIFEST, MANIFEST_HASH) or keep(n)):
            if name == MANIFEST:
                if size > MAX_MANIFEST:
                    raise HostileArchive(f"{MANIFEST} is {size} bytes: over the {MAX_MANIFEST >> 20} MiB bound")
                man_bytes = data
            elif name == MANIFEST_HASH:
                man_hash_bytes = data
            elif data is not None:
                res.members[name] = data
            seen.append((name, size, digest))
    except HostileArchive as e:
        res.hostile = True
        res.problems.append(f"refused: {e}")
        return res
    except EOFError as e:
        res.problems.append(f"truncated or corrupt: {e}")
    if man_bytes is None:
        res.problems.append(f"no {MANIFEST}: not a hostdiag bundle, or it was cut before the manifest")
        return res
    got = hashlib.sha256(man_bytes).hexdigest()
    res.manifest_sha256 = got
    if man_hash_bytes is None:
        res.problems.append(f"no {MANIFEST_HASH}: the manifest's own hash is missing")
    else:
        want = man_hash_bytes.decode("ascii", "replace").split()[:1]
        if want != [got]:
            res.problems.append(f"{MANIFEST} changed: its SHA-256 is {got}, {MANIFEST_HASH} says {want[0] if want else 'nothing'}")
    if expect and expect.lower() != got:
        res.problems.append(f"{MANIFEST} SHA-256 is {got}, not the expected {expect}")
    try:
        man = json.loads(man_bytes)
        listed = man["members"]
        assert isinstance(listed, list) and all(isinstance(m, dict) for m in listed)
    except (ValueError, KeyError, TypeError, AssertionError):
        res.problems.append(f"{MANIFEST} is not valid bundle JSON")
        return res
    res.manifest = man
    if man.get("format") != FORMAT:
        res.problems.append(f"unknown bundle format {man.get('format')!r} (expected {FORMAT})")
    body = [(n, s, d) for n, s, d in seen if n not in (MANIFEST, MANIFEST_HASH)]
    by_name = {n: (s, d) for n, s, d in body}
    want_names = [m.get("name") for m in listed]
    for m in listed:
        n = m.get("name")
        if n not in by_name:
            res.problems.append(f"missing member: {n}")
            continue
        s, d = by_name[n]
        res.checked += 1
        if s != m.get("size"):
            res.problems.append(f"{n}: size {s}, manifest says {m.get('size')} (tampered or truncated)")
        elif d != m.get("sha256"):
            res.problems.append(f"{n}: SHA-256 mismatch (tampered)")
    for n, _, _ in body:
        if n not in want_names:
            res.problems.append(f"added member not in the manifest: {n}")
    if len(body) != len({n for n, _, _ in body}):
        res.problems.append("a member name appears twice")
    present = [n for n, _, _ in body if n in want_names]
    if present != [n for n in want_names if n in by_name]:
        res.problems.append("members are not in the manifest's order (reordered)")
    tail = [n for n, _, _ in seen[-2:]]
    if tail != [MANIFEST, MANIFEST_HASH] and man_hash_bytes is not None:
        res.problems.append(f"{MANIFEST} and {MANIFEST_HASH} must be the last two members (reordered)")
    res.ok = not res.problems
    return res

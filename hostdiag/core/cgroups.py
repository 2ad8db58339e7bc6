"""Bounded, read-only walks of the cgroup tree (v2 unified, v1 per-controller, or hybrid).

Only the first few levels are walked and at most MAX_CGROUPS directories: a host running
thousands of containers must not make a snapshot slow.
"""
from __future__ import annotations

import os

from hostdiag.core.procfs import parse_flat_kv

MAX_DEPTH = 4
MAX_CGROUPS = 1000
# v1 controller directory for a file prefix; "cpu,cpuacct" is how most distros mount it.
_V1 = {"cpu": ("cpu,cpuacct", "cpu"), "memory": ("memory",), "pids": ("pids",), "io": ("blkio",)}


def roots(ctx, controller: str) -> list[tuple[int, str]]:
    """[(version, path)] of the hierarchies where `controller`'s files live."""
    base = ctx.sys_path("fs", "cgroup")
    out = []
    if os.path.exists(os.path.join(base, "cgroup.controllers")):
        return [(2, base)]  # pure v2
    unified = os.path.join(base, "unified")
    if os.path.exists(os.path.join(unified, "cgroup.controllers")):
        out.append((2, unified))
    for d in _V1.get(controller, ()):
        p = os.path.join(base, d)
        if os.path.isdir(p):
            out.append((1, p))
            break
    return out


def walk(ctx, controller: str):
    """Yield (version, cgroup path like '/system.slice/nginx.service', absolute dir)."""
    seen = 0
    for version, root in roots(ctx, controller):
        stack = [(root, 0)]
        while stack:
            d, depth = stack.pop()
            seen += 1
            if seen > MAX_CGROUPS:
                return
            rel = "/" + os.path.relpath(d, root) if d != root else "/"
            yield version, rel.replace("/./", "/"), d
            if depth >= MAX_DEPTH:
                continue
            try:
                with os.scandir(d) as it:
                    subs = [e.path for e in it if e.is_dir(follow_symlinks=False)]
            except OSError:
                continue
            stack.extend((s, depth + 1) for s in sorted(subs, reverse=True))


def read_all(ctx, filename: str) -> dict[str, dict[str, int]]:
    """{cgroup path: parsed 'key value' file} for every cgroup that has `filename`."""
    out = {}
    for _version, rel, d in walk(ctx, filename.split(".", 1)[0]):
        text = ctx.read_optional(os.path.join(d, filename), 1 << 16)
        if text:
            out[rel] = parse_flat_kv(text)
    return out


def read_value(path: str) -> int | None:
    """A single-number cgroup file ('max' -> None, as unlimited)."""
    try:
        with open(path) as f:
            v = f.read().strip()
    except OSError:
        return None
    return int(v) if v.isdigit() else None

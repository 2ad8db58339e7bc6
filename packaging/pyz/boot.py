"""Start-up of hostdiag.pyz: load compiled extensions from memory, then run the CLI.

zipimport cannot load an extension module, and unpacking one to disk would write on the host
being diagnosed (and fail on a full or read-only /tmp). So each extension's bytes are copied
from the archive into an anonymous memory file (os.memfd_create) and loaded by the normal
ExtensionFileLoader from /proc/self/fd/N. Nothing touches a filesystem. The index
(_hostdiag_ext/index.json, written by packaging/build-pyz) maps machine -> module -> member.
"""
from __future__ import annotations

import importlib.machinery
import importlib.util
import json
import os
import sys
import zipfile

STAGE = r'''import os,sys,runpy
b=sys.stdin.buffer.read();f=os.memfd_create("hostdiag.pyz");v=memoryview(b)
while v:v=v[os.write(f,v):]
p="/proc/self/fd/%d"%f;sys.argv[0]=p;sys.stdin=open(os.devnull);runpy.run_path(p,run_name="__main__")'''


class Unavailable:
    """This machine has no build in the archive: say so when psutil's module is wanted."""

    def __init__(self, reason: str):
        self.reason = reason

    def find_spec(self, fullname, path=None, target=None):
        if fullname == "psutil._psutil_linux":
            raise ImportError(f"hostdiag.pyz: {self.reason}")
        return None


class MemfdExtensions:
    """A meta-path finder for the extension modules this archive carries for this machine."""

    def __init__(self, archive: str, members: dict[str, str]):
        self.archive = archive
        self.members = members
        self.fds: list[int] = []            # kept open: the mapping outlives the import

    def find_spec(self, fullname, path=None, target=None):
        member = self.members.get(fullname)
        if member is None:
            return None
        with zipfile.ZipFile(self.archive) as z:
            data = z.read(member)
        fd = os.memfd_create(f"hostdiag:{fullname}", os.MFD_CLOEXEC)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        self.fds.append(fd)
        where = f"/proc/self/fd/{fd}"
        return importlib.util.spec_from_file_location(
            fullname, where, loader=importlib.machinery.ExtensionFileLoader(fullname, where))


def install(archive: str) -> str | None:
    """Put the finder first on sys.meta_path and this version's bytecode first on sys.path;
    return a reason if this machine has no build (psutil's import then raises it)."""
    try:
        with zipfile.ZipFile(archive) as z:
            index = json.loads(z.read("_hostdiag_ext/index.json"))
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as e:
        problem = f"cannot read the archive's extension index: {e}"
        sys.meta_path.insert(0, Unavailable(problem))
        return problem
    if sys.implementation.cache_tag in index.get("pyc", ()):
        sys.path.insert(0, f"{archive}/_pyc/{sys.implementation.cache_tag}")
    machine = os.uname().machine
    if not index.get("machines"):
        return None           # built with --machines none: the host's own psutil is used
    members = index.get("machines", {}).get(machine)
    if members is None:
        problem = f"no compiled modules for {machine} in this archive (built for {', '.join(index.get('machines', {}))})"
        sys.meta_path.insert(0, Unavailable(problem))
        return problem
    sys.meta_path.insert(0, MemfdExtensions(archive, members))
    return None


def main() -> None:
    if sys.argv[1:2] == ["--print-stage"]:
        print(STAGE)
        return
    archive = os.path.dirname(os.path.abspath(__file__))      # .../hostdiag.pyz/_hostdiag_boot.py
    if sys.version_info < (3, 10):
        sys.exit(f"hostdiag: needs Python 3.10 or newer (this is {sys.version.split()[0]})")
    install(archive)
    from hostdiag.cli import main as cli_main

    cli_main()

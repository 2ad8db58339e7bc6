"""The bundle archive: written in one streaming pass, read back with hostile-archive limits.

Writing: `tarfile` in stream mode ('w|'), compressed by gzip (stdlib) or zstd (the optional
`zstandard` package), into any file object: stdout for `-o -` (nothing touches the disk) or
a safeio.ExclusiveFile. Each member is hashed as it is written; `manifest.json` (every member
with size and SHA-256) comes last but one, and `manifest.sha256` (the manifest's own hash)
last, so a changed manifest is caught too. That is integrity, not authenticity: someone who
rewrites both can forge a bundle, so `bundle` prints the manifest hash on stderr for the
incident channel and `bundle verify --expect` checks it.

Reading (verify, show): only regular files with plain relative names under one top folder;
no links, devices, `..` or absolute names; at most MAX_MEMBERS members; decompressed bytes
bounded by MAX_TOTAL, whatever the headers claim (a gzip bomb stops at the bound).
"""
from __future__ import annotations

import hashlib
import io
import json
import re
import tarfile
import time
import zlib

MANIFEST = "manifest.json"
MANIFEST_HASH = "manifest.sha256"
FORMAT = "hostdiag-bundle/1"
MAX_MEMBERS = 1000
MAX_TOTAL = 2 << 30           # decompressed bytes read from any bundle
MAX_MANIFEST = 16 << 20
MAX_KEPT = 256 << 20          # one member held in memory (snapshot.json for show): RAM, not just disk
# zstd's decompressobj has no output bound: one 128 KiB RLE block costs 4 input bytes, so 64 KiB
# of input can become 2 GiB at once. Feeding it this much at a time bounds one call to ~32 MiB.
_ZSTD_IN = 1 << 10
TAR_OVERHEAD = 1024           # header block + worst-case padding, per member (for --max-size)
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$")


class HostileArchive(ValueError):
    """The archive breaks a safety rule (traversal, link, bomb...): refused, never extracted."""


def safe_component(s: str, fallback: str = "x") -> str:
    """A file-name-safe version of host text (hostname, incident id) for member and file names."""
    out = re.sub(r"[^A-Za-z0-9._+-]+", "_", s).strip("._-")[:64]
    return out or fallback


def check_name(name: str, root: str | None = None) -> str:
    """The member's name below the top folder, or HostileArchive."""
    if "\\" in name or "\0" in name or name.startswith("/") or not name:
        raise HostileArchive(f"member name {name!r}: absolute or not a plain name")
    parts = name.split("/")
    if any(p in ("", ".", "..") for p in parts):
        raise HostileArchive(f"member name {name!r}: path traversal ('..', '.' or empty component)")
    if len(parts) != 2 or not _NAME.match(parts[0]) or not _NAME.match(parts[1]):
        raise HostileArchive(f"member name {name!r}: expected TOPFOLDER/NAME with plain characters")
    if root is not None and parts[0] != root:
        raise HostileArchive(f"member name {name!r}: outside the bundle folder {root!r}")
    return parts[1]


# ---------------------------------------------------------------------------- writing

class _Counting:
    """Counts the compressed bytes that reach the real output (for the summary line)."""

    def __init__(self, f):
        self.f, self.n = f, 0

    def write(self, b) -> int:
        self.n += len(b)
        return self.f.write(b)

    def flush(self):
        if hasattr(self.f, "flush"):
            self.f.flush()


def zstd_available() -> bool:
    try:
        import zstandard  # noqa: F401
        return True
    except ImportError:
        return False


class Writer:
    """Stream members into a .tar.gz / .tar.zst; call finish(manifest) once at the end."""

    def __init__(self, out, root: str, *, zstd: bool = False, mtime: float | None = None):
        self.root = root
        self.mtime = int(mtime if mtime is not None else time.time())
        self.members: list[dict] = []
        self._raw = _Counting(out)
        if zstd:
            import zstandard

            self._zw = zstandard.ZstdCompressor(level=6).stream_writer(self._raw, closefd=False)
            self._tar = tarfile.open(fileobj=self._zw, mode="w|", format=tarfile.PAX_FORMAT)
        else:
            # 'w|gz' in 3.11 takes no compresslevel and uses 9 (~3x slower than 6 for ~1% smaller):
            # the same one-pass stream, with gzip around 'w|'.
            import gzip

            self._zw = gzip.GzipFile(fileobj=self._raw, mode="wb", compresslevel=6, mtime=self.mtime)
            self._tar = tarfile.open(fileobj=self._zw, mode="w|", format=tarfile.PAX_FORMAT)

    @property
    def compressed_bytes(self) -> int:
        return self._raw.n

    def _put(self, name: str, data: bytes) -> str:
        check_name(f"{self.root}/{name}", self.root)
        ti = tarfile.TarInfo(f"{self.root}/{name}")
        ti.size, ti.mtime, ti.mode, ti.type = len(data), self.mtime, 0o600, tarfile.REGTYPE
        ti.uid = ti.gid = 0
        ti.uname = ti.gname = ""
        self._tar.addfile(ti, io.BytesIO(data))
        return hashlib.sha256(data).hexdigest()

    def add(self, name: str, data: bytes) -> None:
        if name in (MANIFEST, MANIFEST_HASH) or any(m["name"] == name for m in self.members):
            raise ValueError(f"member {name!r} is reserved or already written")
        self.members.append({"name": name, "size": len(data), "sha256": self._put(name, data)})

    def finish(self, manifest: dict) -> str:
        """Write the manifest (with the member list) and its hash; return the manifest's SHA-256."""
        doc = dict(manifest, format=FORMAT, members=self.members)
        body = (json.dumps(doc, indent=2, ensure_ascii=False, default=str) + "\n").encode("utf-8")
        digest = self._put(MANIFEST, body)
        self._put(MANIFEST_HASH, f"{digest}  {MANIFEST}\n".encode())
        self._tar.close()
        self._zw.close()      # gzip trailer / zstd frame end; closefd=False leaves `out` open
        self._raw.flush()
        return digest


# ---------------------------------------------------------------------------- reading

class _Bounded(io.RawIOBase):
    """Decompress a gzip/zstd/plain stream lazily, never yielding more than `limit` bytes."""

    def __init__(self, raw, limit: int | None = None):
        self.raw, self.limit, self.total = raw, MAX_TOTAL if limit is None else limit, 0
        self.buf, self.pos = b"", 0
        head = raw.read(4)
        self.kind = "gzip" if head[:2] == b"\x1f\x8b" else "zstd" if head == b"\x28\xb5\x2f\xfd" else "tar"
        self._pending = head
        self._zin = b""          # zstd input not yet fed to the decompressor
        self._eof = False
        if self.kind == "gzip":
            self._d = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif self.kind == "zstd":
            try:
                import zstandard
            except ImportError:
                raise HostileArchive("a .tar.zst bundle needs the zstandard package (pip install zstandard)") from None
            self._d = zstandard.ZstdDecompressor().decompressobj()
        else:
            self._d = None
        self.complete = self.kind == "tar"    # compressed stream ended cleanly (CRC checked)

    def readable(self) -> bool:
        return True

    def _more(self, want: int) -> bytes:
        gz = self.kind == "gzip"
        while True:
            if gz and self._d.eof and self._d.unused_data:
                # another gzip member follows (cat a.gz b.gz is valid gzip): keep decoding it
                chunk = self._d.unused_data
                self._d = zlib.decompressobj(16 + zlib.MAX_WBITS)
                self.complete = False
            elif gz and self._d.unconsumed_tail:
                chunk = self._d.unconsumed_tail
            elif self._zin:
                chunk, self._zin = self._zin[:_ZSTD_IN], self._zin[_ZSTD_IN:]
            else:
                chunk = self._pending or self.raw.read(1 << 16)
                self._pending = b""
                if not chunk:
                    self._eof = True
                    if self._d is not None and not self.complete:
                        raise EOFError("compressed stream ends early: the bundle is truncated")
                    return b""
                if gz and self._d.eof:     # bytes after the last member's end: appended junk
                    if chunk.strip(b"\0"):
                        self._d = zlib.decompressobj(16 + zlib.MAX_WBITS)
                        self.complete = False
                    else:
                        continue
            if self._d is None:
                return chunk
            try:
                if gz:
                    out = self._d.decompress(chunk, max(want, 1 << 16))
                    self.complete = self._d.eof
                else:
                    if len(chunk) > _ZSTD_IN:
                        chunk = memoryview(chunk)       # slices without copying
                        chunk, self._zin = chunk[:_ZSTD_IN], chunk[_ZSTD_IN:]
                    out = self._d.decompress(chunk)
                    self.complete = bool(getattr(self._d, "eof", False))
            except zlib.error as e:
                raise EOFError(f"corrupt compressed data: {e}") from None
            except Exception as e:  # noqa: BLE001 - zstandard.ZstdError
                raise EOFError(f"corrupt compressed data: {e}") from None
            if out:
                return out

    def readinto(self, b) -> int:
        want = len(b)
        while self.pos >= len(self.buf) and not self._eof:
            self.buf, self.pos = self._more(want), 0
            if not self.buf and self._eof:
                break
        if self.pos >= len(self.buf):
            return 0
        n = min(want, len(self.buf) - self.pos)
        b[:n] = self.buf[self.pos:self.pos + n]     # an offset, not buf[n:]: no copy of a big block per read
        self.pos += n
        self.total += n
        if self.total > self.limit:
            raise HostileArchive(f"decompresses to more than {self.limit >> 20} MiB: refusing (decompression bomb?)")
        return n


def read_members(raw, *, limit: int | None = None, max_members: int | None = None, keep=lambda name: True):
    """Yield (name, size, sha256, data or None) for each member of a bundle stream, in order.
    `keep(name)` says which members' bytes to hold in memory. Raises HostileArchive or EOFError."""
    limit = MAX_TOTAL if limit is None else limit          # module globals at call time (tests lower them)
    max_members = MAX_MEMBERS if max_members is None else max_members
    stream = io.BufferedReader(_Bounded(raw, limit), 1 << 16)
    try:
        tar = tarfile.open(fileobj=stream, mode="r|")
    except tarfile.ReadError as e:
        raise EOFError(f"not a tar archive or truncated: {e}") from None
    root = None
    n = 0
    try:
        for ti in tar:
            n += 1
            if n > max_members:
                raise HostileArchive(f"more than {max_members} members: refusing")
            if root is None:
                root = ti.name.split("/", 1)[0]
            name = check_name(ti.name, root)
            if not ti.isreg():
                kind = "symlink" if ti.issym() else "hard link" if ti.islnk() else "directory" if ti.isdir() else "special file"
                raise HostileArchive(f"member {ti.name!r} is a {kind}: bundles hold regular files only")
            if ti.size > limit:
                raise HostileArchive(f"member {ti.name!r} claims {ti.size} bytes: over the {limit >> 20} MiB bound")
            held = [] if keep(name) else None
            if held is not None and ti.size > MAX_KEPT:
                raise HostileArchive(f"member {ti.name!r} claims {ti.size} bytes: over the {MAX_KEPT >> 20} MiB "
                                     "bound for a member read into memory")
            f = tar.extractfile(ti)
            h = hashlib.sha256()
            got = 0
            while True:
                chunk = f.read(1 << 16)
                if not chunk:
                    break
                got += len(chunk)
                h.update(chunk)
                if held is not None:
                    held.append(chunk)
            if got != ti.size:
                raise EOFError(f"member {name!r} is cut short ({got} of {ti.size} bytes): the bundle is truncated")
            yield name, ti.size, h.hexdigest(), (b"".join(held) if held is not None else None), root
    except tarfile.ReadError as e:
        raise EOFError(f"tar stream broken: {e}") from None
    except tarfile.HeaderError as e:  # pragma: no cover - ReadError subclass in most versions
        raise EOFError(f"bad tar header: {e}") from None
    # After tar's end marker only zero padding may follow, then the compressed stream's own end
    # (its CRC): anything else is data appended to the bundle, a stream cut short raises EOFError.
    while True:
        chunk = stream.read(1 << 16)
        if not chunk:
            break
        if chunk.strip(b"\0"):
            raise HostileArchive("data after the end of the tar archive: something was appended to the bundle")
    if not stream.raw.complete:
        raise EOFError("compressed stream ends early: the bundle is truncated")

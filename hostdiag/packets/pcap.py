"""Classic pcap files in and out, with struct (the format is 24 + 16 bytes of headers).

Kept out of scapy on purpose: --pcap-out writes from the hot path, and --pcap-in must be fast
and deterministic; scapy reads ~7,600 packets/s here. Output goes through safeio only.
"""
from __future__ import annotations

import os
import stat
import struct

from hostdiag.core import isolate
from hostdiag.core.safeio import ExclusiveFile

LINKTYPE_ETHERNET, LINKTYPE_RAW, LINKTYPE_SLL, LINKTYPE_IPV4, LINKTYPE_IPV6, LINKTYPE_SLL2 = 1, 101, 113, 228, 229, 276
_MAGIC_US, _MAGIC_NS = 0xA1B2C3D4, 0xA1B23C4D
MAX_PCAP_BYTES = 2 << 30


class PcapError(ValueError):
    """Not a pcap we can read; the message says why."""


class PcapWriter:
    """Ethernet pcap; raw-IP frames get a synthetic Ethernet header so one file holds all."""

    def __init__(self, path: str, snap: int = 1500):
        self._f = ExclusiveFile(path)
        self._f.write(struct.pack("<IHHiIII", _MAGIC_US, 2, 4, 0, 0, snap, LINKTYPE_ETHERNET))
        self.count = 0

    def write(self, ts: float, frame, linklayer: bool) -> None:
        data = bytes(frame)
        if not linklayer and data:
            data = b"\0" * 12 + (b"\x86\xdd" if data[0] >> 4 == 6 else b"\x08\x00") + data
        sec = int(ts)
        self._f.write(struct.pack("<IIII", sec, int((ts - sec) * 1e6), len(data), len(data)) + data)
        self.count += 1

    def close(self) -> None:
        self._f.close()

    def abort(self) -> None:
        self._f.abort()


def read_pcap(path: str, budget: int):
    """Yield (ts, frame bytes, linklayer) for at most `budget` records.

    Frames are returned Ethernet-framed or raw IP: Linux cooked (SLL/SLL2) headers are swapped
    for a 14-byte Ethernet header with the same protocol."""
    if why := isolate.answers(path):
        raise PcapError(why)
    try:   # the header, in the prober: a file whose reads hang (dead NFS/FUSE) is named, not waited on
        isolate.read(path, 24, isolate.PATH_PROBE_S)
    except TimeoutError:
        raise PcapError(f"{path} did not answer within {isolate.PATH_PROBE_S:g}s (hung NFS/FUSE mount?)") from None
    except OSError:
        pass     # the open below says what is wrong
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC)
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            raise PcapError(f"{path}: not a regular file")
        head = f.read(24)
        if len(head) < 24:
            raise PcapError(f"{path}: too short for a pcap header")
        for endian in "<>":
            magic = struct.unpack(endian + "I", head[:4])[0]
            if magic in (_MAGIC_US, _MAGIC_NS):
                break
        else:
            if head[:4] == b"\x0a\x0d\x0d\x0a":
                raise PcapError(f"{path}: pcapng is not supported; convert with `editcap -F pcap`")
            raise PcapError(f"{path}: not a pcap file")
        div = 1e6 if magic == _MAGIC_US else 1e9
        linktype = struct.unpack(endian + "I", head[20:24])[0] & 0xFFFF
        if linktype not in (LINKTYPE_ETHERNET, LINKTYPE_RAW, LINKTYPE_SLL, LINKTYPE_IPV4, LINKTYPE_IPV6, LINKTYPE_SLL2):
            raise PcapError(f"{path}: link type {linktype} is not supported")
        rec = struct.Struct(endian + "IIII")
        n = 0
        total = 24
        while n < budget:
            h = f.read(16)
            if len(h) < 16:
                return
            sec, frac, incl, _orig = rec.unpack(h)
            if incl > 262144:
                raise PcapError(f"{path}: corrupt record {n + 1} ({incl} bytes)")
            total += 16 + incl
            if total > MAX_PCAP_BYTES:
                return
            data = f.read(incl)
            if len(data) < incl:
                return
            n += 1
            ts = sec + frac / div
            if linktype == LINKTYPE_ETHERNET:
                yield ts, data, True
            elif linktype == LINKTYPE_SLL and len(data) >= 16:
                yield ts, b"\0" * 12 + data[14:16] + data[16:], True
            elif linktype == LINKTYPE_SLL2 and len(data) >= 20:
                yield ts, b"\0" * 12 + data[0:2] + data[20:], True
            else:
                yield ts, data, False

"""A passive capture: one raw AF_PACKET socket with the classic BPF program from bpf.py.

Chosen by measurement (shared/TESTBED.md, benchmarks/bench_packets.py): scapy's sniffer caught
~3 % of a loopback burst; a raw socket with an in-kernel filter and a large receive buffer keeps
up at 50k packets/s on one core. The socket is opened with protocol 0 (receives nothing), the
filter is attached, and only then bound to ETH_P_ALL, so no unfiltered frame is ever queued
(for all interfaces at once, the few frames queued before the filter are drained unread).
Never promiscuous unless asked (PACKET_ADD_MEMBERSHIP/PACKET_MR_PROMISC, dropped on close).
"""
from __future__ import annotations

import ctypes
import select
import socket
import struct
import time
from dataclasses import dataclass, field

from hostdiag.packets import bpf

SOL_PACKET = 263
PACKET_ADD_MEMBERSHIP, PACKET_MR_PROMISC = 1, 1
PACKET_STATISTICS = 6
PACKET_IGNORE_OUTGOING = 23
SO_ATTACH_FILTER = 26
SO_RCVBUFFORCE = 33
ETH_P_ALL = 0x0003
RCVBUF = 64 << 20            # 64 MiB: ~5 s of 50k small packets even if analysis stalls
ETHERNET_LIKE = {1, 772}     # ARPHRD_ETHER, ARPHRD_LOOPBACK (both carry an Ethernet header)
TICK_S = 1.0


class CaptureUnavailable(Exception):
    """No capture possible (no privilege, no such interface); the message is the blind spot."""


@dataclass
class CaptureStats:
    received: int = 0            # frames read from the socket
    kernel_packets: int = 0      # frames the filter accepted (PACKET_STATISTICS tp_packets)
    kernel_drops: int = 0        # of those, dropped because the buffer was full
    budget_hit: bool = False
    duration_s: float = 0.0
    ifaces: list[str] = field(default_factory=list)
    promisc: bool = False
    rcvbuf: int = 0


def iface_index(name: str) -> int:
    try:
        return socket.if_nametoindex(name)
    except OSError:
        raise ValueError(f"--iface: no such interface: {name}") from None


def open_socket(flt: bpf.Filter, ifaces: list[str] | None, promisc: bool = False,
                rcvbuf: int = RCVBUF) -> tuple[socket.socket, int]:
    """The filtered packet socket and its receive buffer size; CaptureUnavailable if impossible."""
    idx = [iface_index(n) for n in ifaces] if ifaces else None
    lo = next((i for i, n in socket.if_nameindex() if n == "lo"), None)
    bound = ifaces[0] if ifaces and len(ifaces) == 1 else ""
    try:
        # Bound: protocol 0 receives nothing until bind, after the filter is attached. Unbound (all
        # interfaces; Python cannot bind to ifindex 0): frames queued before the filter are drained.
        s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0 if bound else socket.htons(ETH_P_ALL))
    except PermissionError:
        raise CaptureUnavailable("unavailable: needs root or CAP_NET_RAW") from None
    except OSError as e:
        raise CaptureUnavailable(f"unavailable: cannot open a packet socket: {e.strerror}") from None
    try:
        if bound == "lo":
            # on a bound loopback socket the kernel drops our own copies before the filter runs
            s.setsockopt(SOL_PACKET, PACKET_IGNORE_OUTGOING, 1)
            prog = bpf.compile_filter(flt, idx, None)
        else:
            prog = bpf.compile_filter(flt, idx, lo)
        code = bpf.pack(prog)
        buf = ctypes.create_string_buffer(code, len(code))
        fprog = struct.pack("HL", len(prog), ctypes.addressof(buf))
        s.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)
        try:
            s.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, rcvbuf)
        except OSError:             # no CAP_NET_ADMIN: capped by net.core.rmem_max
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        if bound:
            s.bind((bound, ETH_P_ALL))
        else:
            s.setblocking(False)
            try:
                for _ in range(1 << 20):
                    s.recv(1)
            except BlockingIOError:
                pass
        if promisc:
            for i in idx or [i for i, _ in socket.if_nameindex()]:
                s.setsockopt(SOL_PACKET, PACKET_ADD_MEMBERSHIP, struct.pack("iHH8s", i, PACKET_MR_PROMISC, 0, b""))
        s.getsockopt(SOL_PACKET, PACKET_STATISTICS, 8)     # reading resets the kernel's counters
        return s, s.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
    except BaseException:
        s.close()
        raise


def capture(seconds: float, flt: bpf.Filter, ifaces: list[str] | None, budget: int, on_frame,
            promisc: bool = False, tick=None) -> CaptureStats:
    """Read frames for `seconds` or until `budget` frames; on_frame(ts, iface, memoryview, linklayer).

    tick() is called about once a second (the socket-table sampler)."""
    sock, rcvbuf = open_socket(flt, ifaces, promisc)
    st = CaptureStats(ifaces=list(ifaces or ["(all)"]), promisc=promisc, rcvbuf=rcvbuf)
    buf = bytearray(bpf.DNS_SNAP + 64)
    mv = memoryview(buf)
    recv = sock.recvfrom_into
    clock = time.time
    t_start = time.monotonic()
    end = t_start + seconds
    next_tick = t_start + TICK_S
    n = 0
    poller = select.poll()
    poller.register(sock.fileno(), select.POLLIN)
    sock.setblocking(False)
    try:
        while n < budget:
            now = time.monotonic()
            if now >= end:
                break
            if tick is not None and now >= next_tick:
                tick()
                next_tick = now + TICK_S
            if not poller.poll(max(1, min(int((end - now) * 1000), 200))):
                continue
            while n < budget:
                try:
                    size, addr = recv(buf)
                except BlockingIOError:
                    break
                n += 1
                on_frame(clock(), addr[0], mv[:size], addr[3] in ETHERNET_LIKE)
                if n & 1023 == 0 and time.monotonic() >= end:
                    break
        st.duration_s = time.monotonic() - t_start
        tp_packets, tp_drops = struct.unpack("II", sock.getsockopt(SOL_PACKET, PACKET_STATISTICS, 8))
        # what was already queued when the window closed belongs to the window: read it too
        while n < min(budget, tp_packets - tp_drops):
            try:
                size, addr = recv(buf)
            except BlockingIOError:
                break
            n += 1
            on_frame(clock(), addr[0], mv[:size], addr[3] in ETHERNET_LIKE)
        st.budget_hit = n >= budget
        st.received = n
        st.kernel_packets = tp_packets
        st.kernel_drops = tp_drops
    finally:
        sock.close()
    return st

"""Header parsing with struct: Ethernet/VLAN, IPv4, IPv6, TCP, UDP, ICMP, ICMPv6.

The hot path: one call per captured frame, returning a flat tuple (no objects) or None for
anything that is not IP or is too short. Never raises on any input (property-tested).
Addresses stay as raw bytes (4 or 16) until a finding prints them.

Pkt = (family, proto, src, dst, sport, dport, flags, seq, ack, win, plen, iplen, l4off)
  family 4 or 6; proto 6/17/1/58, or 0 for a non-first fragment or an unknown protocol;
  sport/dport are ICMP type/code for ICMP; plen is the L4 payload length taken from the IP
  header (the frame is cut at the snap length); l4off is the L4 header's offset in the frame.
"""
from __future__ import annotations

import socket
import struct

TCP, UDP, ICMP, ICMP6 = 6, 17, 1, 58
FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10

_H = struct.Struct("!H").unpack_from
_IP4 = struct.Struct("!BxHxxHxB2x4s4s").unpack_from    # vihl, totlen, frag, proto, src, dst
_IP6 = struct.Struct("!4xHBx16s16s").unpack_from       # plen, next header, src, dst
_TCP = struct.Struct("!HHIIBBH").unpack_from            # sport, dport, seq, ack, off, flags, win
_UDP = struct.Struct("!HHH").unpack_from
_ICMP = struct.Struct("!BB").unpack_from
_EXT6 = {0, 43, 60, 51}                                 # hop-by-hop, routing, dest options, AH
_VLAN = {0x8100, 0x88A8, 0x9100}


def parse_frame(buf, linklayer: bool = True):
    """Parse one frame (Ethernet-framed, or raw IP when linklayer is False)."""
    try:
        if not linklayer:
            return parse_ip(buf, 0)
        off = 12
        et = _H(buf, off)[0]
        while et in _VLAN:
            off += 4
            et = _H(buf, off)[0]
        if et == 0x0800 or et == 0x86DD:
            return parse_ip(buf, off + 2)
        return None
    except (struct.error, IndexError):
        return None


def parse_ip(buf, off: int):
    """Parse an IPv4/IPv6 packet starting at `off`; None if it is neither or too short."""
    try:
        v = buf[off] >> 4
        if v == 4:
            vihl, iplen, frag, proto, src, dst = _IP4(buf, off)
            hl = (vihl & 15) * 4
            if hl < 20:
                return None
            if frag & 0x1FFF:           # a non-first fragment carries no L4 header
                return (4, 0, src, dst, 0, 0, 0, 0, 0, 0, 0, iplen, 0)
            l4 = off + hl
            l4len = iplen - hl
            family = 4
        elif v == 6:
            plen6, proto, src, dst = _IP6(buf, off)
            iplen = plen6 + 40
            l4 = off + 40
            for _ in range(4):          # a few extension headers, then give up
                if proto in _EXT6:
                    nxt, ln = buf[l4], buf[l4 + 1]
                    step = (ln + 2) * 4 if proto == 51 else (ln + 1) * 8
                elif proto == 44:       # fragment header: only the first fragment has ports
                    nxt = buf[l4]
                    if _H(buf, l4 + 2)[0] & 0xFFF8:
                        return (6, 0, src, dst, 0, 0, 0, 0, 0, 0, 0, iplen, 0)
                    step = 8
                else:
                    break
                proto = nxt
                l4 += step
            l4len = iplen - (l4 - off)
            family = 6
        else:
            return None
        if proto == TCP:
            sport, dport, seq, ack, doff, flags, win = _TCP(buf, l4)
            return (family, TCP, src, dst, sport, dport, flags, seq, ack, win,
                    max(0, l4len - (doff >> 4) * 4), iplen, l4)
        if proto == UDP:
            sport, dport, ulen = _UDP(buf, l4)
            return (family, UDP, src, dst, sport, dport, 0, 0, 0, 0, max(0, ulen - 8), iplen, l4)
        if proto == ICMP or proto == ICMP6:
            typ, code = _ICMP(buf, l4)
            return (family, proto, src, dst, typ, code, 0, 0, 0, 0, max(0, l4len - 8), iplen, l4)
        return (family, 0, src, dst, 0, 0, 0, 0, 0, 0, 0, iplen, 0)
    except (struct.error, IndexError):
        return None


def addr(b: bytes) -> str:
    """Raw 4/16-byte address to text."""
    return socket.inet_ntop(socket.AF_INET if len(b) == 4 else socket.AF_INET6, b)


def endpoint(b: bytes, port: int) -> str:
    """'10.0.0.1:80' or '[fd00::1]:80'."""
    a = addr(b)
    return f"[{a}]:{port}" if len(b) == 16 else f"{a}:{port}"

"""The --filter grammar and a classic-BPF assembler for it (no libpcap, no tcpdump -dd).

Grammar (deliberately small):  TERM [or TERM]...   with TERM = `port N` | `host ADDR`
(ADDR an IPv4 or IPv6 address; `,` works like `or`). A packet passes when any term matches its
source or destination. ICMP and ICMPv6 always pass: an unreachable or fragmentation-needed
message is about a flow of interest but carries that flow's ports inside its payload.

The program runs in the kernel on every frame of a SOCK_RAW packet socket. It loads relative to
the network header (SKF_NET_OFF), so VLAN tags and raw-IP devices need no special case, and uses
the ancillary loads for the interface index, packet type and EtherType. It returns the snap length:
128 bytes (headers only), DNS (UDP port 53) 1500 so the rcode and question can be read, 0 drops.
Loopback frames we send ourselves are dropped (PACKET_OUTGOING on lo): lo shows each packet twice.
IPv6 ports are read right after the fixed header (packets with extension headers fail port terms).
"""
from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass, field

# classic BPF opcodes (linux/filter.h)
LD_W_ABS, LD_H_ABS, LD_B_ABS = 0x20, 0x28, 0x30
LD_H_IND = 0x48
LDX_B_MSH = 0xB1
JEQ_K, JSET_K, JGT_K = 0x15, 0x45, 0x25
RET_K = 0x06
SKF_AD_OFF = -0x1000
AD_PROTOCOL, AD_PKTTYPE, AD_IFINDEX = 0, 4, 8
NET = -0x100000                 # SKF_NET_OFF
PACKET_OUTGOING = 4
SNAP, DNS_SNAP = 128, 1500
MAX_TERMS = 16


@dataclass(frozen=True)
class Filter:
    ports: frozenset[int] = frozenset()
    hosts: frozenset[bytes] = frozenset()      # packed 4- or 16-byte addresses
    text: str = ""

    @property
    def empty(self) -> bool:
        return not self.ports and not self.hosts

    def matches(self, pkt) -> bool:
        """The same decision as the BPF program, for --pcap-in (parse.py tuples)."""
        if self.empty:
            return True
        family, proto, src, dst, sport, dport = pkt[:6]
        if proto in (1, 58):
            return True
        if src in self.hosts or dst in self.hosts:
            return True
        return proto in (6, 17) and (sport in self.ports or dport in self.ports)


def parse_filter(text: str | None) -> Filter:
    """'port 443 or host 10.0.0.1' -> Filter; ValueError with a one-line reason otherwise."""
    if not text or not text.strip():
        return Filter()
    words = text.replace(",", " or ").split()
    ports: set[int] = set()
    hosts: set[bytes] = set()
    i = 0
    while i < len(words):
        if i and words[i] == "or":
            i += 1
        if i + 1 >= len(words):
            raise ValueError(f"--filter: expected 'port N' or 'host ADDR' at {' '.join(words[i:])!r}")
        kind, val = words[i].lower(), words[i + 1]
        if kind == "port":
            if not val.isdigit() or not 0 < int(val) < 65536:
                raise ValueError(f"--filter: bad port {val!r}")
            ports.add(int(val))
        elif kind == "host":
            try:
                hosts.add(ipaddress.ip_address(val).packed)
            except ValueError:
                raise ValueError(f"--filter: bad address {val!r} (names are not resolved)") from None
        else:
            raise ValueError(f"--filter: unknown term {kind!r} (use 'port N' or 'host ADDR', joined by 'or')")
        i += 2
        if i < len(words) and words[i] != "or":
            raise ValueError(f"--filter: expected 'or' before {words[i]!r}")
    if len(ports) + len(hosts) > MAX_TERMS:
        raise ValueError(f"--filter: at most {MAX_TERMS} terms")
    return Filter(frozenset(ports), frozenset(hosts), text.strip())


@dataclass
class Asm:
    """Forward-only labels, resolved to 8-bit relative jumps (classic BPF cannot jump back)."""

    ins: list[list] = field(default_factory=list)
    labels: dict[str, int] = field(default_factory=dict)

    def op(self, code: int, k: int = 0, jt: str | int = 0, jf: str | int = 0) -> None:
        self.ins.append([code, jt, jf, k])

    def label(self, name: str) -> None:
        if name in self.labels:
            raise ValueError(f"label {name} defined twice")
        self.labels[name] = len(self.ins)

    def assemble(self) -> list[tuple[int, int, int, int]]:
        out = []
        for i, (code, jt, jf, k) in enumerate(self.ins):
            rel = []
            for j in (jt, jf):
                if isinstance(j, str):
                    off = self.labels[j] - i - 1
                    if not 0 <= off <= 255:
                        raise ValueError("filter too long for classic BPF jumps")
                    j = off
                rel.append(j)
            out.append((code, rel[0], rel[1], k & 0xFFFFFFFF))
        if not out or out[-1][0] != RET_K:
            raise ValueError("program must end in ret")
        return out


def compile_filter(flt: Filter, ifindexes: list[int] | None = None, lo_index: int | None = None,
                   snap: int = SNAP, dns_snap: int = DNS_SNAP) -> list[tuple[int, int, int, int]]:
    """Build the program: [(code, jt, jf, k)], ready for pack()."""
    a = Asm()
    if ifindexes or lo_index is not None:
        a.op(LD_W_ABS, SKF_AD_OFF + AD_IFINDEX)
    if ifindexes:
        for idx in ifindexes:
            a.op(JEQ_K, idx, "if_ok", 0)
        a.op(RET_K, 0)
    a.label("if_ok")
    if lo_index is not None:
        a.op(JEQ_K, lo_index, 0, "proto")
        a.op(LD_W_ABS, SKF_AD_OFF + AD_PKTTYPE)
        a.op(JEQ_K, PACKET_OUTGOING, "drop", "proto")
    a.label("proto")
    a.op(LD_H_ABS, SKF_AD_OFF + AD_PROTOCOL)
    a.op(JEQ_K, 0x0800, "v4", 0)
    a.op(JEQ_K, 0x86DD, "v6", "drop")
    for fam in (4, 6):
        proto_off, src_off, alen, icmp = (9, 12, 4, 1) if fam == 4 else (6, 8, 16, 58)
        a.label(f"v{fam}")
        a.op(LD_B_ABS, NET + proto_off)
        a.op(JEQ_K, icmp, "small", 0)
        if flt.empty:
            a.op(JEQ_K, 17, f"snap{fam}", "small")
        else:
            hosts = [h for h in flt.hosts if len(h) == alen]
            for side in (0, alen):                      # source, then destination
                for hi, h in enumerate(hosts):
                    words = struct.unpack(f"!{alen // 4}I", h)
                    nxt = f"h{fam}_{side}_{hi}"
                    for wi, w in enumerate(words):
                        a.op(LD_W_ABS, NET + src_off + side + 4 * wi)
                        last = wi == len(words) - 1
                        a.op(JEQ_K, w, f"snap{fam}" if last else 0, nxt)
                    a.label(nxt)
            if flt.ports:
                if fam == 4:
                    a.op(LD_H_ABS, NET + 6)
                    a.op(JSET_K, 0x1FFF, "drop", 0)
                a.op(LD_B_ABS, NET + proto_off)          # A held an address word
                a.op(JEQ_K, 6, f"p{fam}", 0)
                a.op(JEQ_K, 17, f"p{fam}", "drop")
                a.label(f"p{fam}")
                if fam == 4:
                    a.op(LDX_B_MSH, NET)
                for off in (0, 2):                      # source port, then destination port
                    a.op(LD_H_IND, NET + off) if fam == 4 else a.op(LD_H_ABS, NET + 40 + off)
                    for p in sorted(flt.ports):
                        a.op(JEQ_K, p, f"snap{fam}", 0)
            a.op(RET_K, 0)
        # accepted: DNS gets the long snap length, everything else headers only
        a.label(f"snap{fam}")
        if fam == 4:
            a.op(LD_H_ABS, NET + 6)
            a.op(JSET_K, 0x1FFF, "small", 0)
        a.op(LD_B_ABS, NET + proto_off)
        a.op(JEQ_K, 17, 0, "small")
        if fam == 4:
            a.op(LDX_B_MSH, NET)
            a.op(LD_H_IND, NET)
            a.op(JEQ_K, 53, "big", 0)
            a.op(LD_H_IND, NET + 2)
        else:
            a.op(LD_H_ABS, NET + 40)
            a.op(JEQ_K, 53, "big", 0)
            a.op(LD_H_ABS, NET + 42)
        a.op(JEQ_K, 53, "big", "small")
    a.label("drop")
    a.op(RET_K, 0)
    a.label("small")
    a.op(RET_K, snap)
    a.label("big")
    a.op(RET_K, dns_snap)
    return a.assemble()


def pack(prog: list[tuple[int, int, int, int]]) -> bytes:
    """struct sock_filter[] bytes (u16 code, u8 jt, u8 jf, u32 k)."""
    return b"".join(struct.pack("HBBI", *ins) for ins in prog)

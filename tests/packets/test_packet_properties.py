"""Property tests: the header parser never raises, and the assembled BPF program decides exactly
like Filter.matches (run through a small classic-BPF interpreter written here from the kernel's
semantics; the real kernel runs the same programs in test_netns.py)."""
from __future__ import annotations

import ipaddress
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hostdiag.packets import bpf
from hostdiag.packets.parse import parse_frame, parse_ip

NET_AT = 14          # Ethernet frames: the network header follows the 14-byte MAC header


@given(st.binary(max_size=200), st.booleans())
@settings(max_examples=3000)
def test_parser_never_raises(data, ll):
    r = parse_frame(data, ll)
    assert r is None or (len(r) == 13 and r[0] in (4, 6))


@given(st.binary(min_size=0, max_size=80))
@settings(max_examples=2000)
def test_parser_on_ip_like_bytes(tail):
    for head in (b"\x45\x00", b"\x60\x00", b"\x4f\x00", b"\x46\x00\x00\x10"):
        r = parse_ip(b"\0" * 12 + b"\x08\x00" + head + tail, 14)
        assert r is None or len(r) == 13


def run_bpf(prog, frame: bytes, ifindex=2, pkttype=0) -> int:
    """Classic BPF as the kernel runs it on a SOCK_RAW packet socket (the subset bpf.py emits)."""
    a = x = 0
    pc = 0
    eth = struct.unpack_from("!H", frame, 12)[0]

    def load(off, size):
        if off <= bpf.SKF_AD_OFF + 0x100 and off >= bpf.SKF_AD_OFF:
            return {bpf.AD_PROTOCOL: eth, bpf.AD_PKTTYPE: pkttype, bpf.AD_IFINDEX: ifindex}[off - bpf.SKF_AD_OFF]
        if off < 0:
            off = off - bpf.NET + NET_AT
        if off + size > len(frame):
            raise IndexError
        return int.from_bytes(frame[off:off + size], "big")

    for _ in range(len(prog)):
        code, jt, jf, k = prog[pc]
        kk = k - (1 << 32) if k & 0x80000000 else k
        try:
            if code == bpf.RET_K:
                return k
            if code in (bpf.LD_W_ABS, bpf.LD_H_ABS, bpf.LD_B_ABS):
                a = load(kk, {bpf.LD_W_ABS: 4, bpf.LD_H_ABS: 2, bpf.LD_B_ABS: 1}[code])
            elif code == bpf.LD_H_IND:
                a = load(kk + x, 2)
            elif code == bpf.LDX_B_MSH:
                x = (load(kk, 1) & 0xF) * 4
            elif code in (bpf.JEQ_K, bpf.JSET_K):
                hit = a == k if code == bpf.JEQ_K else bool(a & k)
                pc += jt if hit else jf
            else:
                raise AssertionError(f"unexpected opcode {code:#x}")
        except IndexError:
            return 0            # the kernel drops a packet whose load runs past its end
        pc += 1
    raise AssertionError("ran off the end")


ports = st.integers(1, 65535)
v4 = st.ip_addresses(v=4)
v6 = st.ip_addresses(v=6)


@st.composite
def frames(draw):
    fam = draw(st.sampled_from([4, 6]))
    proto = draw(st.sampled_from([6, 17, 1 if fam == 4 else 58, 47]))
    src, dst = (draw(v4), draw(v4)) if fam == 4 else (draw(v6), draw(v6))
    sport, dport = draw(ports), draw(st.one_of(ports, st.just(53)))
    l4 = struct.pack("!HH", sport, dport) + b"\0" * 16
    if fam == 4:
        frag = draw(st.sampled_from([0, 0, 0, 0x2000, 100]))
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(l4), 0, frag, 64, proto, 0, src.packed, dst.packed)
        et = b"\x08\x00"
    else:
        ip = struct.pack("!IHBB16s16s", 0x60000000, len(l4), proto, 64, src.packed, dst.packed)
        et = b"\x86\xdd"
    return b"\0" * 12 + et + ip + l4


@st.composite
def filters(draw):
    terms = draw(st.lists(st.one_of(ports.map(lambda p: f"port {p}"),
                                    st.one_of(v4, v6).map(lambda a: f"host {a}")), max_size=6))
    return bpf.parse_filter(" or ".join(terms))


def expected(flt, frame: bytes) -> bool:
    """The documented rule, from the raw header fields: ICMP always; a host term on either
    address; a port term on either port of an unfragmented (first-fragment) TCP/UDP packet."""
    if frame[12:14] == b"\x08\x00":
        proto, frag = frame[23], struct.unpack_from("!H", frame, 20)[0] & 0x1FFF
        src, dst, l4 = frame[26:30], frame[30:34], 34
        icmp = proto == 1
    else:
        proto, frag = frame[20], 0
        src, dst, l4 = frame[22:38], frame[38:54], 54
        icmp = proto == 58
    if flt.empty or icmp or src in flt.hosts or dst in flt.hosts:
        return True
    sport, dport = struct.unpack_from("!HH", frame, l4)
    return proto in (6, 17) and not frag and bool({sport, dport} & flt.ports)


@given(filters(), st.lists(frames(), min_size=1, max_size=8), st.data())
@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
def test_bpf_program_agrees_with_python_matcher(flt, fs, data):
    prog = bpf.compile_filter(flt, None, None)
    assert prog[-1][0] == bpf.RET_K and all(0 <= ins[1] <= 255 and 0 <= ins[2] <= 255 for ins in prog)
    for frame in fs:
        # terms from the filter turn up in packets often enough to test the accepting paths
        pkt = parse_frame(frame)
        if pkt is not None and data.draw(st.booleans()) and not flt.empty:
            if flt.ports:
                p = sorted(flt.ports)[0]
                frame = frame[:-20] + struct.pack("!H", p) + frame[-18:]
            elif flt.hosts:
                h = sorted(flt.hosts)[0]
                if (len(h) == 4) == (frame[12:14] == b"\x08\x00"):
                    off = 14 + (12 if len(h) == 4 else 8)
                    frame = frame[:off] + h + frame[off + len(h):]
            pkt = parse_frame(frame)
        verdict = run_bpf(prog, frame)
        assert (verdict > 0) == expected(flt, frame), (flt, frame.hex(), pkt, verdict)
        if pkt is not None and pkt[1] != 0 and verdict:
            assert flt.matches(pkt)          # the Python matcher (--pcap-in) agrees where it can see ports
            is_dns = pkt[1] == 17 and 53 in (pkt[4], pkt[5])
            assert verdict == (bpf.DNS_SNAP if is_dns else bpf.SNAP)


def test_bpf_interface_and_loopback_rules():
    frame = b"\0" * 12 + b"\x08\x00" + struct.pack("!BBHHHBBH4s4s", 0x45, 0, 28, 0, 0, 64, 17, 0,
                                                    b"\x0a\0\0\1", b"\x0a\0\0\2") + struct.pack("!HHHH", 1, 2, 8, 0)
    prog = bpf.compile_filter(bpf.Filter(), [3, 5], 1)
    assert run_bpf(prog, frame, ifindex=3) == bpf.SNAP
    assert run_bpf(prog, frame, ifindex=4) == 0
    prog = bpf.compile_filter(bpf.Filter(), None, 1)
    assert run_bpf(prog, frame, ifindex=1, pkttype=bpf.PACKET_OUTGOING) == 0     # lo's second copy
    assert run_bpf(prog, frame, ifindex=1, pkttype=0) == bpf.SNAP


@pytest.mark.parametrize("bad", ["port", "port 0", "port 70000", "host nosuch.example", "tcp", "port 1 port 2",
                                 " or ".join(f"port {p}" for p in range(1, 20))])
def test_filter_grammar_rejects(bad):
    with pytest.raises(ValueError, match="--filter"):
        bpf.parse_filter(bad)


def test_filter_grammar_accepts():
    f = bpf.parse_filter("port 443 or host 10.0.0.1, host fd00::1")
    assert f.ports == {443} and f.hosts == {ipaddress.ip_address("10.0.0.1").packed, ipaddress.ip_address("fd00::1").packed}


def _eth_ip4(proto: int, l4: bytes) -> bytes:
    return (b"\0" * 12 + b"\x08\x00" + struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(l4), 0, 0, 64, proto, 0,
                                                    b"\x0a\0\0\x01", b"\x0a\0\0\x02") + l4)


def _eth_ip6(nh: int, l4: bytes) -> bytes:
    return b"\0" * 12 + b"\x86\xdd" + struct.pack("!IHBB16s16s", 0x60000000, len(l4), nh, 64, b"\1" * 16, b"\2" * 16) + l4


@given(st.sampled_from([(4, 1, 3), (4, 1, 11), (6, 58, 1), (6, 58, 2), (4, 6, 0), (4, 17, 0), (6, 6, 0)]),
       st.integers(0, 255), st.binary(max_size=80))
@settings(max_examples=3000)
def test_analyzer_never_raises(shape, code, tail):
    """Whatever arrives on the wire (a 38-byte ICMP frag-needed from anyone once ended the whole
    `packets` run with exit 3), the analysis and the findings built from it do not raise."""
    from hostdiag.packets.findings import build
    from hostdiag.packets.flows import Analyzer

    fam, proto, typ = shape
    l4 = (bytes([typ, code]) + tail) if proto in (1, 58) else tail
    frame = _eth_ip4(proto, l4) if fam == 4 else _eth_ip6(proto, l4)
    an = Analyzer(0.0)
    an.add(0.5, "eth0", frame, True)
    an.add(0.6, "eth0", frame, True)
    an.finish(1.0)
    build(an, None, 1.0)

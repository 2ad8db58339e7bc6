"""Deterministic analysis of pcaps the tests write with scapy: each condition is built packet by
packet, so the counts are exact (no timing, no kernel)."""
from __future__ import annotations

import pytest

from hostdiag.commands.packets import Options, run
from hostdiag.core.context import Context
from hostdiag.packets import scapyload

sd = scapyload.load()
if sd is None:
    pytest.skip("scapy not installed (pip install -e '.[test]')", allow_module_level=True)
from scapy.layers.inet import ICMP, IP, TCP, UDP  # noqa: E402
from scapy.layers.inet6 import IPv6  # noqa: E402
from scapy.layers.l2 import Ether  # noqa: E402
from scapy.utils import wrpcap  # noqa: E402

A, B = "10.9.0.1", "10.9.0.2"
A6, B6 = "fd00:9::1", "fd00:9::2"


def analyse(tmp_path, pkts, keep_time=False, **kw):
    """Write pkts (10 ms apart unless keep_time) as an Ethernet pcap and analyse it."""
    frames = []
    for i, p in enumerate(pkts):
        e = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") / p   # explicit: no ARP/ND lookups
        e.time = p.time if keep_time else 1_700_000_000.0 + i * 0.01
        frames.append(e)
    path = tmp_path / "t.pcap"
    wrpcap(str(path), frames)
    return run(Options(pcap_in=str(path), **kw), Context())


def ids(r):
    return [f.id for f in r.findings]


def bulk(src, dst, sport, dport, seq0, n, size=1000, ip=IP):
    """n in-order data segments from src plus one ACK each from dst."""
    out = []
    for i in range(n):
        s = (seq0 + i * size) & 0xFFFFFFFF
        out.append(ip(src=src, dst=dst) / TCP(sport=sport, dport=dport, flags="A", seq=s, ack=1) / (b"x" * size))
        out.append(ip(src=dst, dst=src) / TCP(sport=dport, dport=sport, flags="A", seq=1, ack=(s + size) & 0xFFFFFFFF, window=500))
    return out


def test_clean_bulk_has_no_findings(tmp_path):
    r = analyse(tmp_path, bulk(A, B, 40000, 80, 1000, 50))
    assert r.findings == [] and r.status == "ok"
    assert r.summary["top_talkers"][0]["dst"] == f"{B}:80"


def test_retransmits_counted_across_sequence_wrap(tmp_path):
    seq0 = 0xFFFFFFFF - 20_000             # wraps after ~20 segments
    pkts = bulk(A, B, 40000, 80, seq0, 60)
    resent = [p for p in pkts[::2][25:35]]  # 10 old segments (after the wrap) sent again
    r = analyse(tmp_path, pkts + [p.copy() for p in resent])
    f = [x for x in r.findings if x.id == "packets.tcp_retransmits"]
    assert len(f) == 1 and f[0].evidence["retransmits"] == 10
    assert f[0].subject["peer"] == f"{B}:80" or f[0].subject["address"] == B


def test_no_false_retransmits_at_wrap(tmp_path):
    r = analyse(tmp_path, bulk(A, B, 40000, 80, 0xFFFFFFFF - 5_500, 40))
    assert "packets.tcp_retransmits" not in ids(r)


def test_mid_stream_start_counts_nothing_before_baseline(tmp_path):
    # capture starts mid-flow: the first segment seen is "behind" nothing; later old data is counted
    pkts = bulk(A, B, 40000, 80, 500_000, 30)
    r = analyse(tmp_path, pkts)
    assert "packets.tcp_retransmits" not in ids(r)
    # the same flow where the first packet we see is a retransmission of older data: not countable
    first = IP(src=A, dst=B) / TCP(sport=40000, dport=80, flags="A", seq=400_000, ack=1) / (b"x" * 1000)
    r = analyse(tmp_path, [first] + pkts + [p.copy() for p in pkts[::2][:6]])
    f = [x for x in r.findings if x.id == "packets.tcp_retransmits"]
    assert f and f[0].evidence["retransmits"] == 6


def test_ipv6_retransmits_and_dup_acks(tmp_path):
    pkts = bulk(A6, B6, 40000, 443, 1, 40, ip=IPv6)
    lost = pkts[20]
    dup = [IPv6(src=B6, dst=A6) / TCP(sport=443, dport=40000, flags="A", seq=1, ack=lost[TCP].seq, window=500)
           for _ in range(12)]
    r = analyse(tmp_path, pkts[:20] + pkts[22:40] + [pkts[19]] + dup + [lost.copy() for _ in range(6)])
    got = {f.id: f for f in r.findings}
    assert "packets.tcp_retransmits" in got
    assert got["packets.tcp_retransmits"].subject["address"] == B6
    assert got["packets.tcp_retransmits"].evidence["dup_acks_back"] >= 12


def test_zero_window(tmp_path):
    pkts = bulk(A, B, 40000, 80, 1, 10)
    pkts += [IP(src=B, dst=A) / TCP(sport=80, dport=40000, flags="A", seq=1, ack=10_001, window=0) for _ in range(4)]
    r = analyse(tmp_path, pkts)
    f = [x for x in r.findings if x.id == "packets.tcp_zero_window"]
    assert len(f) == 1 and f[0].subject["receiver"] == f"{B}:80" and f[0].evidence["zero_window"] == 4


def test_resets_and_unanswered_syns(tmp_path):
    pkts = []
    for i in range(8):   # refused: SYN then RST|ACK from the closed port
        pkts.append(IP(src=A, dst=B) / TCP(sport=41000 + i, dport=9, flags="S", seq=100))
        pkts.append(IP(src=B, dst=A) / TCP(sport=9, dport=41000 + i, flags="RA", seq=0, ack=101))
    for i in range(3):   # dropped: SYN retried, never answered
        for _ in range(3):
            pkts.append(IP(src=A, dst=B) / TCP(sport=42000 + i, dport=81, flags="S", seq=7))
    r = analyse(tmp_path, pkts)
    got = {f.id: f for f in r.findings}
    rst = got["packets.tcp_resets"]
    assert rst.subject["peer"] == f"{B}:9" and rst.evidence["refused"] == 8
    assert "port 9" in rst.verify and rst.verify.startswith("tcpdump -ni any ")
    syn = got["packets.syn_unanswered"]
    assert syn.subject["peer"] == f"{B}:81" and syn.evidence["attempts"] == 3 and syn.evidence["syns"] == 9


def test_dns_rcodes_and_slow_answers(tmp_path):
    from scapy.layers.dns import DNS, DNSQR

    pkts = []
    t = 1_700_000_000.0
    for i, (name, rcode, delay) in enumerate([("gone.example.", 3, 0.01)] * 6 + [("broken.example.", 2, 0.01)] * 2
                                              + [("ok.example.", 0, 0.9)]):
        q = IP(src=A, dst=B) / UDP(sport=50000 + i, dport=53) / DNS(id=i, rd=1, qd=DNSQR(qname=name))
        a = IP(src=B, dst=A) / UDP(sport=53, dport=50000 + i) / DNS(id=i, qr=1, rcode=rcode, qd=DNSQR(qname=name))
        q.time, a.time = t + i, t + i + delay
        pkts += [q, a]
    r = analyse(tmp_path, pkts, keep_time=True)
    got = {f.id: f for f in r.findings}
    nx = got["packets.dns_nxdomain"]
    assert nx.subject["server"] == B and nx.evidence["count"] == 6 and "gone.example." in nx.evidence["names"]
    assert nx.verify == f"dig @{B} gone.example."
    assert got["packets.dns_servfail"].evidence["count"] == 2
    assert got["packets.dns_slow"].evidence["slow"] == 1
    assert any(d["rcode"] == "name-error" for d in nx.evidence["dissected"])


def test_hostile_dns_name_is_quoted_in_verify(tmp_path):
    from scapy.layers.dns import DNS, DNSQR

    evil = "x;rm -rf /.$(id).example."
    pkts = []
    for i in range(5):
        pkts.append(IP(src=A, dst=B) / UDP(sport=50000 + i, dport=53) / DNS(id=i, qd=DNSQR(qname=evil)))
        pkts.append(IP(src=B, dst=A) / UDP(sport=53, dport=50000 + i) / DNS(id=i, qr=1, rcode=3, qd=DNSQR(qname=evil)))
    r = analyse(tmp_path, pkts)
    f = [x for x in r.findings if x.id == "packets.dns_nxdomain"][0]
    assert f.verify == f"dig @{B} 'x;rm -rf /.$(id).example.'"


def test_icmp_frag_needed(tmp_path):
    inner = IP(src=A, dst=B) / TCP(sport=40000, dport=443, flags="A", seq=5)
    pkts = [IP(src="10.9.0.254", dst=A) / ICMP(type=3, code=4, nexthopmtu=1400) / bytes(inner)[:28]]
    r = analyse(tmp_path, pkts)
    f = [x for x in r.findings if x.id == "packets.icmp_frag_needed"][0]
    assert f.subject["peer"] == f"{B}:443" and f.evidence["mtu"] == 1400
    assert f.verify == f"tracepath -n {B}"


def test_filter_applies_to_pcap_and_budget_is_reported(tmp_path):
    pkts = bulk(A, B, 40000, 80, 1, 20) + bulk(A, B, 40001, 8080, 1, 20)
    r = analyse(tmp_path, pkts, filter="port 8080")
    assert [t["dst"] for t in r.summary["top_talkers"]] == [f"{B}:8080", f"{A}:40001"]
    r = analyse(tmp_path, pkts, budget=10)
    assert r.stats["frames"] == 10 and any(b.startswith("sampled:") for b in r.blind_spots)
    sec = r.section()
    assert sec.name == "packets" and sec.status == "partial" and sec.reason.startswith("sampled: first 10")


def test_flatline_on_interface_series(tmp_path):
    pkts = []
    t = 1_700_000_000.0
    for i in range(200):                     # 50 packets/s for 4 s, then silence until 8 s
        p = IP(src=A, dst=B) / UDP(sport=5000, dport=6000) / b"x"
        p.time = t + i * 0.02
        pkts.append(p)
    last = IP(src=A, dst=B) / UDP(sport=5000, dport=6001)
    last.time = t + 8.0
    r = analyse(tmp_path, pkts + [last], keep_time=True)
    f = [x for x in r.findings if x.id == "packets.iface_flatline"]
    assert f and f[0].subject["iface"] == "pcap" and f[0].evidence["quiet_s"] >= 3
    s = r.series["packets.captured_packets[iface=pcap]"]
    assert s.counter and s.v[-1] == 201


def test_bad_pcap_is_a_blind_spot(tmp_path):
    p = tmp_path / "x.pcap"
    p.write_bytes(b"not a pcap at all, not at all")
    r = run(Options(pcap_in=str(p)), Context())
    assert r.status == "unavailable" and "not a pcap" in r.blind_spots[0]


def test_cli_plain_and_json_escape_wire_text(tmp_path):
    """Names on the wire are hostile: the terminal sees escapes, never a raw ESC; exit status follows severity."""
    import json

    from scapy.layers.dns import DNS, DNSQR

    from support import cli

    evil = "\x1b]0;pwned\x07.example."
    pkts = []
    for i in range(5):
        pkts.append(IP(src=A, dst=B) / UDP(sport=50000 + i, dport=53) / DNS(id=i, qd=DNSQR(qname=evil)))
        pkts.append(IP(src=B, dst=A) / UDP(sport=53, dport=50000 + i) / DNS(id=i, qr=1, rcode=2, qd=DNSQR(qname=evil)))
    analyse(tmp_path, pkts)
    path = str(tmp_path / "t.pcap")
    p = cli("packets", "--pcap-in", path)
    assert p.returncode == 2, p.stderr                      # SERVFAIL on every answer: critical
    assert "SERVFAIL" in p.stdout and "\x1b" not in p.stdout and "\\x1b" in p.stdout
    p = cli("packets", "--pcap-in", path, "--json")
    doc = json.loads(p.stdout)
    assert "\x1b" not in p.stdout and doc["findings"][0]["id"] == "packets.dns_servfail"
    assert cli("packets", "--filter", "port nine").returncode == 2


def test_many_lossy_flows_give_a_bounded_number_of_findings(tmp_path):
    pkts = []
    for k in range(14):
        flow = bulk(A, B, 41000 + k, 80, 1, 8)
        pkts += flow + [p.copy() for p in flow[::2][:6]]
    r = analyse(tmp_path, pkts)
    f = [x for x in r.findings if x.id == "packets.tcp_retransmits"]
    assert len(f) == 10 and f[0].evidence["more_like_this"] == 4

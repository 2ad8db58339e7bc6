"""Real traffic in two network namespaces joined by veth pairs; hostdiag captures in the client
namespace while the faults happen. Private 10.77.x addresses, inside namespaces this test made.

One 5-second capture sees all scenarios at once (each judged by its own test):
- a client hammering a closed port on the server (RSTs);
- a client whose SYNs to port 81 are dropped (tc classic BPF on the server's ingress);
- a bulk transfer to port 5001 across ~20 % random loss (tc BPF `ld rand`, as shared/TESTBED.md:
  no sch_netem in this kernel);
- a DNS responder (scapy) answering NXDOMAIN and SERVFAIL;
- a local receiver on port 5002 that stops reading (zero window);
- UDP traffic on a second veth pair that stops after ~1.5 s (flatline).
"""
from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import time

import pytest

from support import HOSTDIAG, IS_ROOT

pytestmark = [pytest.mark.root, pytest.mark.slow,
              pytest.mark.skipif(not IS_ROOT or shutil.which("ip") is None or shutil.which("tc") is None,
                                 reason="needs root, ip and tc (netns + veth)")]

CAPTURE_S = 5


def sh(*args, check=True):
    return subprocess.run(args, capture_output=True, text=True, check=check, timeout=30)


def tc_drop_prog(port: int, loss: float | None) -> str:
    """cls_bpf bytecode (offsets from the MAC header): TCP to `port`, then (optionally) ld rand."""
    thr = int((1 - loss) * 0xFFFFFFFF) if loss is not None else 0
    return ",".join(["9", "48 0 0 23", "21 0 6 6", "177 0 0 14", "72 0 0 16", f"21 0 3 {port}",
                     "32 0 0 4294963256", f"37 0 1 {thr}", "6 0 0 4294967295", "6 0 0 0"])


SERVER = r"""
import socket, sys, threading, time
from hostdiag.packets import scapyload
dns = scapyload.load()
A = sys.argv[1]
def sink():
    l = socket.socket(); l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); l.bind((A, 5001)); l.listen(8)
    while True:
        c, _ = l.accept()
        threading.Thread(target=lambda c=c: [c.recv(1 << 16) for _ in iter(int, 1)], daemon=True).start()
go = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); go.bind((A, 5003))
def zero_window_sender():           # starts when the client says so: inside the capture window
    go.recv(16)
    s = socket.create_connection((sys.argv[2], 5002))
    s.setblocking(False)
    while True:
        try: s.send(b"z" * 65536)
        except BlockingIOError: time.sleep(0.01)
def resolver():
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind((A, 53))
    while True:
        data, peer = u.recvfrom(2048)
        q = dns.DNS(data)
        name = q.qd[0].qname.decode()
        rcode = 3 if name.startswith("nx") else 2 if name.startswith("sf") else 0
        u.sendto(bytes(dns.DNS(id=q.id, qr=1, rcode=rcode, qd=q.qd)), peer)
for f in (sink, zero_window_sender, resolver):
    threading.Thread(target=f, daemon=True).start()
print("ready", flush=True)
time.sleep(60)
"""

CLIENT = r"""
import socket, sys, threading, time
S, F_SRC, F_DST, RUN = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
end = time.time() + RUN
held = []
def hammer():                       # connect() to a closed port, again and again
    while time.time() < end:
        c = socket.socket()
        try: c.connect((S, 9))
        except OSError: pass
        c.close(); time.sleep(0.05)
def dropped():                      # attempts that stay in SYN-SENT (SYNs dropped by tc)
    for _ in range(3):
        c = socket.socket(); c.setblocking(False); held.append(c)
        try: c.connect((S, 81))
        except BlockingIOError: pass
def bulk():
    s = socket.create_connection((S, 5001)); held.append(s)
    while time.time() < end:
        s.sendall(b"b" * 65536)
def resolve():
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.settimeout(1); held.append(u)
    for i in range(12):
        name = (f"nx{i}.example" if i % 3 else f"sf{i}.example").encode()
        q = b"\x12" + bytes([i]) + b"\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00"
        q += b"".join(bytes([len(x)]) + x for x in name.split(b".")) + b"\x00\x00\x01\x00\x01"
        u.sendto(q, (S, 53))
        try: u.recv(2048)
        except OSError: pass
        time.sleep(0.2)
def flatline():                     # 200 packets/s on the second pair for 1.5 s, then nothing
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind((F_SRC, 0))
    stop = time.time() + 1.5
    while time.time() < stop:
        u.sendto(b"f" * 100, (F_DST, 7000)); time.sleep(0.005)
socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b"go", (S, 5003))
for f in (hammer, dropped, bulk, resolve, flatline):
    threading.Thread(target=f, daemon=True).start()
print("ready", flush=True)
time.sleep(RUN + 1)
"""

RECEIVER = r"""
import socket, sys, time
l = socket.socket(); l.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
l.bind((sys.argv[1], 5002)); l.listen(1)
print("ready", flush=True)
c, _ = l.accept()                   # and never read
time.sleep(60)
"""


def _spawn(ns, code, *args):
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    p = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-c", code, *args],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    line = p.stdout.readline()
    assert line.strip() == "ready", p.stderr.read() if p.poll() is not None else line
    return p


def _wait_for_packet_socket(ns, timeout=20.0):
    """/proc/net/packet of the namespace lists packet sockets: hostdiag's is the only one there."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if len(sh("ip", "netns", "exec", ns, "cat", "/proc/net/packet").stdout.splitlines()) > 1:
            time.sleep(0.2)             # filter attached and bound happen right after socket()
            return
        time.sleep(0.05)
    raise AssertionError("hostdiag never opened its packet socket")


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    tag = secrets.token_hex(3)
    cns, sns = f"hdpc{tag}", f"hdps{tag}"
    vc, vs, fc, fs = f"hpc{tag}", f"hps{tag}", f"hfc{tag}", f"hfs{tag}"
    procs = []
    sh("ip", "netns", "add", cns)
    sh("ip", "netns", "add", sns)
    try:
        for a, b, net in ((vc, vs, "10.77.1"), (fc, fs, "10.77.2")):
            sh("ip", "link", "add", a, "type", "veth", "peer", "name", b)
            sh("ip", "link", "set", a, "netns", cns)
            sh("ip", "link", "set", b, "netns", sns)
            sh("ip", "-n", cns, "addr", "add", f"{net}.1/24", "dev", a)
            sh("ip", "-n", sns, "addr", "add", f"{net}.2/24", "dev", b)
            sh("ip", "-n", cns, "link", "set", a, "up")
            sh("ip", "-n", sns, "link", "set", b, "up")
        for ns in (cns, sns):
            sh("ip", "-n", ns, "link", "set", "lo", "up")
        sh("ip", "netns", "exec", sns, "tc", "qdisc", "add", "dev", vs, "clsact")
        for port, loss, pref in ((81, None, "1"), (5001, 0.2, "2")):
            r = sh("ip", "netns", "exec", sns, "tc", "filter", "add", "dev", vs, "ingress", "pref", pref, "bpf", "bytecode",
                   tc_drop_prog(port, loss), "action", "mirred", "egress", "redirect", "dev", "lo", check=False)
            if r.returncode:
                pytest.skip(f"tc cannot drop with a classic BPF filter here: {r.stderr.strip()}")
        receiver = _spawn(cns, RECEIVER, "10.77.1.1")
        procs.append(receiver)
        procs.append(_spawn(sns, SERVER, "10.77.1.2", "10.77.1.1"))
        env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
        pcap = tmp_path_factory.mktemp("netns") / "cap.pcap"
        cap = subprocess.Popen(["ip", "netns", "exec", cns, *HOSTDIAG, "packets", str(CAPTURE_S), "--json",
                                "--iface", vc, "--iface", fc, "--pcap-out", str(pcap)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        _wait_for_packet_socket(cns)    # the capture is open before the traffic starts
        client = _spawn(cns, CLIENT, "10.77.1.2", "10.77.2.1", "10.77.2.2", str(CAPTURE_S + 1))
        procs.append(client)
        out, err = cap.communicate(timeout=60)
        assert cap.returncode in (0, 1, 2), err
        yield {"report": json.loads(out), "client": client.pid, "receiver": receiver.pid, "vc": vc, "fc": fc, "pcap": pcap}
    finally:
        for p in procs:
            p.kill()
            p.wait()
        sh("ip", "netns", "del", cns, check=False)
        sh("ip", "netns", "del", sns, check=False)


def found(world, fid, **subject):
    hits = [f for f in world["report"]["findings"] if f["id"] == fid
            and all(f["subject"].get(k) == v for k, v in subject.items())]
    assert hits, (fid, subject, [(f["id"], f["subject"]) for f in world["report"]["findings"]])
    return hits[0]


def test_capture_is_complete(world):
    st = world["report"]["stats"]
    assert st["source"] == "live" and st["kernel_drops"] == 0 and not st["budget_hit"]
    assert world["report"]["status"] == "ok", world["report"]["blind_spots"]


def test_resets_from_closed_port(world):
    f = found(world, "packets.tcp_resets", peer="10.77.1.2:9", port=9)
    assert f["evidence"]["refused"] >= 10 and f["evidence"]["peers"][0]["address"] == "10.77.1.1"
    # each attempt used a socket that was closed at once: no process can be mapped, and it says so
    assert f["subject"]["process"] is None and "no live socket" in f["evidence"]["process_note"]
    assert f["verify"] == f"tcpdump -ni any 'tcp[tcpflags] & tcp-rst != 0 and port 9'"


def test_dropped_syns(world):
    f = found(world, "packets.syn_unanswered", peer="10.77.1.2:81")
    assert f["evidence"]["attempts"] == 3 and f["evidence"]["syns"] >= 6
    assert f["subject"]["pid"] == world["client"]


def test_retransmits_across_random_loss(world):
    f = found(world, "packets.tcp_retransmits", peer="10.77.1.2:5001")
    assert f["evidence"]["retransmits"] >= 5
    assert f["subject"]["pid"] == world["client"]


def test_dns_failures(world):
    nx = found(world, "packets.dns_nxdomain", server="10.77.1.2")
    sf = found(world, "packets.dns_servfail", server="10.77.1.2")
    assert nx["evidence"]["count"] == 8 and sf["evidence"]["count"] == 4
    assert nx["verify"].startswith("dig @10.77.1.2 nx") and nx["subject"]["pid"] == world["client"]


def test_zero_window_names_the_receiver(world):
    f = found(world, "packets.tcp_zero_window", receiver="10.77.1.1:5002")
    assert f["subject"]["pid"] == world["receiver"]


def test_flatline_on_interface(world):
    f = found(world, "packets.iface_flatline", iface=world["fc"])
    assert f["evidence"]["quiet_s"] >= 2
    s = world["report"]["series"][f"packets.captured_packets[iface={world['fc']}]"]
    assert s["counter"] and s["v"][-1] > 100
    assert not [x for x in world["report"]["findings"] if x["id"] == "packets.iface_flatline" and x["subject"]["iface"] == world["vc"]]


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark not installed (.ci/run installs it)")
def test_retransmits_and_dup_acks_agree_with_tshark(world):
    """The same capture (--pcap-out, 128-byte snap) read by Wireshark's TCP analysis."""
    f = found(world, "packets.tcp_retransmits", peer="10.77.1.2:5001")
    port = int(f["subject"]["flow"].split(" > ")[0].rsplit(":", 1)[1])

    def count(expr):
        p = subprocess.run(["tshark", "-n", "-r", str(world["pcap"]), "-Y", expr], capture_output=True, text=True, timeout=60)
        assert p.returncode == 0, p.stderr
        return len(p.stdout.splitlines())

    # Wireshark calls a resent segment "out-of-order" when it follows the original within the RTT
    # (microseconds on a veth); by our definition (end not beyond the highest end) it is a retransmission
    theirs = count(f"tcp.srcport == {port} and tcp.dstport == 5001 and (tcp.analysis.retransmission or "
                   "tcp.analysis.fast_retransmission or tcp.analysis.spurious_retransmission or tcp.analysis.out_of_order)")
    ours = f["evidence"]["retransmits"]
    assert theirs and abs(ours - theirs) <= max(3, 0.1 * theirs), (ours, theirs)
    dup = count(f"tcp.srcport == 5001 and tcp.dstport == {port} and tcp.analysis.duplicate_ack")
    assert abs(f["evidence"]["dup_acks_back"] - dup) <= max(3, 0.1 * dup), (f["evidence"]["dup_acks_back"], dup)

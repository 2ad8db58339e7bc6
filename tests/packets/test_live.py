"""The assembled BPF program as the kernel runs it: port and host terms, IPv4 and IPv6, on
loopback traffic this test sends (the property test checks the same programs in an interpreter)."""
from __future__ import annotations

import socket
import threading
import time

import pytest

from support import IS_ROOT

pytestmark = pytest.mark.skipif(not IS_ROOT, reason="a packet socket needs root")


def capture_while_sending(flt: str, sends: list[tuple[int, str, int]], ifaces=("lo",)):
    from hostdiag.commands.packets import Options, run
    from hostdiag.core.context import Context

    def send():
        time.sleep(0.4)
        for fam, host, port in sends:
            s = socket.socket(fam, socket.SOCK_DGRAM)
            s.sendto(b"q" * 32, (host, port))
            s.close()

    t = threading.Thread(target=send)
    t.start()
    r = run(Options(seconds=1.2, ifaces=list(ifaces) if ifaces else None, filter=flt), Context())
    t.join()
    return r


def flows(r):
    return {(t["src"].rsplit(":", 1)[0], t["dst"]) for t in r.summary["top_talkers"] if t["proto"] == "udp"}


def _free_port(fam, host):
    s = socket.socket(fam, socket.SOCK_DGRAM)
    s.bind((host, 0))
    return s, s.getsockname()[1]


def test_ipv6_port_term_in_the_kernel():
    sink, port = _free_port(socket.AF_INET6, "::1")
    other, oport = _free_port(socket.AF_INET6, "::1")
    r = capture_while_sending(f"port {port}", [(socket.AF_INET6, "::1", port)] * 20 + [(socket.AF_INET6, "::1", oport)] * 20)
    sink.close()
    other.close()
    assert r.stats["received"] == 20 and flows(r) == {("[::1]", f"[::1]:{port}")}


def test_host_term_in_the_kernel_all_interfaces():
    """No --iface: one unbound socket; loopback's outgoing copies are dropped by the program."""
    a, pa = _free_port(socket.AF_INET, "127.0.0.1")
    b, pb = _free_port(socket.AF_INET, "127.0.0.3")
    r = capture_while_sending("host 127.0.0.3", [(socket.AF_INET, "127.0.0.1", pa)] * 10 + [(socket.AF_INET, "127.0.0.3", pb)] * 10,
                              ifaces=None)
    a.close()
    b.close()
    got = {f for f in flows(r) if f[1].startswith("127.0.0.")}
    assert got == {("127.0.0.1", f"127.0.0.3:{pb}")}
    assert r.summary["ifaces"]["lo"]["packets"] >= 10
    # one socket per send: ten flows of one packet each; not two each (lo's second copy is dropped)
    assert sorted(t["packets"] for t in r.summary["top_talkers"] if t["dst"] == f"127.0.0.3:{pb}") == [1] * 10


def test_resets_from_a_local_closed_port_say_nothing_listens():
    from hostdiag.commands.packets import Options, run
    from hostdiag.core.context import Context

    s, port = _free_port(socket.AF_INET, "127.0.0.1")
    s.close()                                   # a port that was free a moment ago: nothing listens

    def hammer():
        time.sleep(0.4)
        for _ in range(8):
            c = socket.socket()
            try:
                c.connect(("127.0.0.1", port))
            except OSError:
                pass
            c.close()

    t = threading.Thread(target=hammer)
    t.start()
    r = run(Options(seconds=1.2, ifaces=["lo"], filter=f"port {port}"), Context())
    t.join()
    f = [x for x in r.findings if x.id == "packets.tcp_resets"][0]
    assert f.subject["peer"] == f"127.0.0.1:{port}" and f.subject["local_service"] is True
    assert f.evidence["refused"] == 8 and f.evidence["process_note"] == f"nothing was listening on port {port} here"

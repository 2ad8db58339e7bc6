"""Real interface conditions in a network namespace the test creates (veth pair va <-> vb):
traffic that stops mid-window, frames the receiver drops, and the peer going down.

The collector reads the namespace through a helper process living in it: /proc/PID/net/dev is
that process's network namespace, and /proc/PID/root/sys is the sysfs `ip netns exec` mounted
for it. The window is stepped (drive(): one sample per step, 1 s apart on the series' clock)
so that traffic starts and stops between known samples; the counters are the kernel's.
"""
from __future__ import annotations

import os
import subprocess
import sys
import uuid

import pytest
from support import drive, section

from hostdiag import catalog
from hostdiag.collectors import network as N
from hostdiag.core.context import Context
from hostdiag.core.thresholds import Thresholds
from hostdiag.matcher import match

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (ip netns)")
TH = Thresholds(N.THRESHOLDS)

# Sends frames out of va on request and answers "ok" once sent: veth transmit is synchronous,
# so vb's counters already show them. Both ends live in one namespace, so IP between their
# addresses would go over lo: frames are written to a packet socket instead. "ip N": IPv4
# frames for another host's MAC (vb counts them, IP ignores them); "raw N": frames to vb with
# an ethertype nobody handles (0x88b5, local experimental), which vb counts as rx_dropped.
HELPER = r"""
import socket, sys
raw = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
raw.bind(("va", 0))
src = bytes.fromhex(open("/sys/class/net/va/address").read().strip().replace(":", ""))
dst = bytes.fromhex(open("/sys/class/net/vb/address").read().strip().replace(":", ""))
frames = {"ip": bytes.fromhex("020000000099") + src + b"\x08\x00" + b"y" * 1000,
          "raw": dst + src + b"\x88\xb5" + b"x" * 100}
print("ready", flush=True)
for line in sys.stdin:
    kind, n = line.split()
    for _ in range(int(n)):
        raw.send(frames[kind])
    print("ok", flush=True)
"""


def sh(*args):
    subprocess.run(args, check=True, capture_output=True, timeout=20)


@pytest.fixture
def netns():
    ns = f"hdtest-{uuid.uuid4().hex[:8]}"
    sh("ip", "netns", "add", ns)
    try:
        sh("ip", "-n", ns, "link", "add", "va", "type", "veth", "peer", "name", "vb")
        # No IPv6 autoconf chatter (DAD, router solicitations): the only traffic is the test's.
        for conf in ("all", "default", "va", "vb"):
            sh("ip", "netns", "exec", ns, "sysctl", "-q", "-w", f"net.ipv6.conf.{conf}.disable_ipv6=1")
        for dev in ("lo", "va", "vb"):
            sh("ip", "-n", ns, "link", "set", dev, "up")
        p = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-c", HELPER],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        try:
            assert p.stdout.readline().strip() == "ready"

            def send(kind, n):
                p.stdin.write(f"{kind} {n}\n")
                p.stdin.flush()
                assert p.stdout.readline().strip() == "ok"

            # ip netns exec forks the interpreter: find the helper among its children.
            pid = p.pid
            kids = open(f"/proc/{pid}/task/{pid}/children").read().split()
            pid = int(kids[0]) if kids else pid
            ctx = Context(proc=f"/proc/{pid}", sys=f"/proc/{pid}/root/sys")
            yield ns, ctx, send
        finally:
            p.stdin.close()
            p.wait(10)
    finally:
        subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=20)


def test_traffic_that_stops_is_a_cliff_on_that_interface(netns):
    ns, ctx, send = netns
    steps = [lambda: send("ip", 300)] * 6 + [lambda: None] * 6
    job = drive(N, ctx, steps)
    sec = section(N, job)
    rows = {r["iface"]: r for r in sec.data["interfaces"]}
    assert set(rows) >= {"va", "vb", "lo"} and rows["va"]["operstate"] == "up"
    s = job.series["network.tx_bytes[iface=va]"]
    rates = s.rates()
    assert all(r >= 300 * 1000 for r in rates[:6]) and rates[-5:] == [0.0] * 5, rates
    assert job.series["network.rx_packets[iface=vb]"].rates()[:6] == [300.0] * 6
    # The sampled series has the shape the catalog knows: traffic fell off a cliff / flatlined.
    ms = match(s.t, s.v, metric=s.key, counter=True, catalog=catalog.load())
    assert ms and ms[0].shape in ("cliff_drop", "flatline"), [(m.shape, m.why) for m in ms]
    assert ms[0].signature in ("network.traffic_cliff", "ingestion.flatline", "shape.cliff_drop", "shape.flatline")
    assert N.findings(sec, TH) == []     # a traffic drop alone is a shape, not an alarm


def test_unhandled_frames_are_drops_on_the_receiver(netns):
    ns, ctx, send = netns
    job = drive(N, ctx, [lambda: send("raw", 50)] * 4)
    sec = section(N, job)
    fs = N.findings(sec, TH)
    drops = [f for f in fs if f.id == "network.drops"]
    assert [f.subject for f in drops] == [{"iface": "vb"}], [f.title for f in fs]
    assert drops[0].evidence["rx_drops_per_s"] == 50.0 and drops[0].severity == "critical"
    assert "ip -s link show dev vb" in drops[0].verify


def test_peer_down_mid_window_is_link_down(netns):
    ns, ctx, send = netns
    job = drive(N, ctx, [lambda: None, lambda: sh("ip", "-n", ns, "link", "set", "vb", "down"), lambda: None])
    sec = section(N, job)
    fs = N.findings(sec, TH)
    va = [f for f in fs if f.subject == {"iface": "va"}]
    assert [f.id for f in va] == ["network.link_down"], [f.title for f in fs]
    assert va[0].evidence["operstate"] == "lowerlayerdown" and va[0].evidence["operstate_start"] == "up"
    assert va[0].evidence["carrier_changes_window"] == 1
    assert "went down during the window" in va[0].title


def test_cli_inside_the_namespace_sees_its_interfaces(netns):
    """End to end: the real CLI run by `ip netns exec` reads that namespace's /proc/net/dev and
    the sysfs mounted for it, and judges the test's links (up, quiet) as healthy."""
    import json

    from support import HOSTDIAG
    ns, ctx, send = netns
    p = subprocess.run(["ip", "netns", "exec", ns, *HOSTDIAG, "snapshot", "--json", "--only", "network",
                        "--window", "1", "--interval", "0.5"], capture_output=True, text=True, timeout=60,
                       env=dict(os.environ, PYTHONDONTWRITEBYTECODE="1"))
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)
    sec = doc["sections"]["network"]
    rows = {r["iface"]: r for r in sec["data"]["interfaces"]}
    assert set(rows) == {"lo", "va", "vb"} and sec["status"] == "ok", sec
    assert rows["va"]["operstate"] == "up" and rows["va"]["virtual"] is True and rows["va"]["speed_mbps"] == 10000
    assert [f for f in doc["findings"] if f["category"] == "network"] == []
    assert "network.tx_bytes[iface=va]" in doc["series"]

"""network collector: /proc/net/dev parsed from literal kernel text, collect()/findings() on
hand-built proc+sys trees whose counters the test moves between ticks (real /sys layout:
class/net/X is a symlink into devices/, virtual or not)."""
from __future__ import annotations

import os
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st
from support import drive, fixture_ctx, section

from hostdiag.collectors import network as N
from hostdiag.core.thresholds import Thresholds

TH = Thresholds(N.THRESHOLDS)

# Debian 12 VM, kernel 6.18 (this machine), trailing newline missing as the kernel prints it.
DEV_618 = """\
Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:   30125     522    0    0    0     0          0         0    30125     522    0    0    0     0       0          0
  eth0: 129945866    4051    3    7    0     0          0         0   340587    2894    1    2    0     0       0          0"""
# 2.6.18 (RHEL 5): no space after the colon once the byte count is wide.
DEV_2618 = """\
Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
  eth0:4294967295 1234567    0    0    0     0          0         0 987654321  765432    0    0    0     0       0          0
bond0.100:   10  1    0    0    0     0          0         0   20  2    0    0    0     0       0          0
"""


def test_parse_net_dev_618():
    d = N.parse_net_dev(DEV_618)
    assert set(d) == {"lo", "eth0"}
    assert d["eth0"]["rx_bytes"] == 129945866 and d["eth0"]["tx_packets"] == 2894
    assert (d["eth0"]["rx_errors"], d["eth0"]["rx_drops"], d["eth0"]["tx_errors"], d["eth0"]["tx_drops"]) == (3, 7, 1, 2)


def test_parse_net_dev_old_kernel_no_space_after_colon():
    d = N.parse_net_dev(DEV_2618)
    assert d["eth0"]["rx_bytes"] == 4294967295 and d["eth0"]["tx_bytes"] == 987654321
    assert d["bond0.100"]["tx_packets"] == 2


def test_parse_net_dev_skips_malformed():
    assert N.parse_net_dev("eth0: 1 2 3\nfoo\n: 1 2\n") == {}


@settings(deadline=None)
@given(st.text(max_size=400))
def test_parse_net_dev_never_raises(text):
    for v in N.parse_net_dev(text).values():
        assert all(isinstance(x, int) and x >= 0 for x in v.values())


@settings(deadline=None)
@given(st.dictionaries(st.from_regex(r"[a-z][a-z0-9.\-]{0,14}", fullmatch=True),
                       st.lists(st.integers(0, 2**64 - 1), min_size=16, max_size=16), max_size=6))
def test_parse_net_dev_roundtrip(ifaces):
    text = "Inter-|   Receive |  Transmit\n face |bytes|bytes\n" + "".join(
        f"{n:>6}: " + " ".join(map(str, vals)) + "\n" for n, vals in ifaces.items())
    d = N.parse_net_dev(text)
    assert set(d) == set(ifaces)
    for n, vals in ifaces.items():
        assert [d[n][k] for k in N._RX + N._TX] == vals


class Host:
    """A proc+sys tree with interfaces whose counters and link state the test sets."""

    def __init__(self, root: Path):
        self.root = root
        self.dev: dict[str, list[int]] = {}
        (root / "proc" / "net").mkdir(parents=True)
        (root / "sys" / "class" / "net").mkdir(parents=True)

    def iface(self, name, *, virtual=False, operstate="up", flags="0x1003", speed="1000", carrier_changes=1):
        where = "virtual/net" if virtual else "pci0000:00/0000:00:03.0/net"
        d = self.root / "sys" / "devices" / where / name
        d.mkdir(parents=True)
        os.symlink(f"../../devices/{where}/{name}", self.root / "sys" / "class" / "net" / name)
        self.dev[name] = [0] * 16
        self.set(name, operstate=operstate, flags=flags, speed=speed, carrier_changes=carrier_changes, mtu="1500")
        self.write()

    def set(self, name, **files):
        for k, v in files.items():
            (self.root / "sys" / "class" / "net" / name / k).write_text(f"{v}\n")

    def add(self, name, **counts):
        cols = N._RX + N._TX
        for k, v in counts.items():
            self.dev[name][cols.index(k)] += v
        self.write()

    def write(self):
        rows = "".join(f"{n:>6}: " + " ".join(map(str, v)) + "\n" for n, v in self.dev.items())
        (self.root / "proc" / "net" / "dev").write_text(DEV_618.splitlines()[0] + "\n" + DEV_618.splitlines()[1]
                                                        + "\n" + rows)

    def conntrack(self, count, cmax=1000):
        d = self.root / "proc" / "sys" / "net" / "netfilter"
        d.mkdir(parents=True, exist_ok=True)
        (d / "nf_conntrack_count").write_text(f"{count}\n")
        (d / "nf_conntrack_max").write_text(f"{cmax}\n")


def run(host: Host, steps):
    job = drive(N, fixture_ctx(host.root), steps)
    sec = section(N, job)
    return sec, N.findings(sec, TH)


def ids(fs, iface=None):
    return sorted(f.id for f in fs if iface is None or f.subject.get("iface") == iface)


def test_quiet_host_no_findings_and_series_per_interface(tmp_path):
    h = Host(tmp_path)
    h.iface("eth0")
    h.iface("lo", virtual=True, operstate="unknown", flags="0x9", speed="")
    h.iface("docker0", virtual=True, operstate="down", flags="0x1003")   # bridge, no containers
    h.iface("eth1", operstate="down", flags="0x1002")                    # admin down: someone's choice
    sec, fs = run(h, [lambda: h.add("eth0", rx_bytes=1000, rx_packets=10, tx_bytes=500, tx_packets=5)] * 3)
    assert fs == [], [f.title for f in fs]
    assert sec.status == "ok"
    rows = {r["iface"]: r for r in sec.data["interfaces"]}
    assert rows["eth0"]["rates"]["rx_bytes_per_s"] == 1000 and rows["eth0"]["speed_mbps"] == 1000
    assert rows["eth0"]["virtual"] is False and rows["docker0"]["virtual"] is True
    assert rows["lo"]["loopback"] and rows["lo"]["speed_mbps"] is None
    assert sec.data["conntrack"] is None   # nf_conntrack not loaded: not a blind spot either


def test_errors_and_drops_rising(tmp_path):
    h = Host(tmp_path)
    h.iface("eth0")
    h.iface("eth1")
    step = lambda: (h.add("eth0", rx_packets=100, rx_errors=60, rx_drops=40),   # noqa: E731
                    h.add("eth1", rx_packets=10000, rx_drops=2))                 # 0.02 %: benign
    sec, fs = run(h, [step] * 4)
    assert ids(fs, "eth0") == ["network.drops", "network.errors"]
    err = next(f for f in fs if f.id == "network.errors")
    assert err.severity == "critical" and err.subject == {"iface": "eth0"} and "60.0 packet errors/s" in err.title
    assert err.verify.startswith("ip -s link show dev eth0; ethtool -S eth0")
    assert any(s.startswith("Do not") for s in err.stabilize)
    drop = next(f for f in fs if f.id == "network.drops")
    assert drop.severity == "critical" and drop.evidence["drops_pct"] == round(40 / 140 * 100, 1)
    assert ids(fs, "eth1") == []


def test_link_down_rules(tmp_path):
    h = Host(tmp_path)
    h.iface("eth0")                                          # goes down mid-window
    h.iface("eth1", operstate="down")                        # configured up, no carrier since before
    h.iface("veth9", virtual=True)                           # container peer vanished mid-window
    h.iface("docker0", virtual=True, operstate="down")       # idle bridge: no finding
    h.iface("eth2", operstate="down", flags="0x1002")        # admin down: no finding

    def down():
        h.set("eth0", operstate="down", carrier_changes=2)
        h.set("veth9", operstate="lowerlayerdown", carrier_changes=2)
    sec, fs = run(h, [down, lambda: None])
    by = {f.subject["iface"]: f for f in fs}
    assert set(by) == {"eth0", "eth1", "veth9"}, [f.title for f in fs]
    assert by["eth0"].id == "network.link_down" and by["eth0"].severity == "critical"
    assert "went down during the window" in by["eth0"].title
    assert "configured up but has no carrier" in by["eth1"].title
    assert by["veth9"].severity == "warning"


def test_flapping(tmp_path):
    h = Host(tmp_path)
    h.iface("eth0", carrier_changes=4)
    steps = [lambda i=i: h.set("eth0", carrier_changes=4 + i) for i in range(1, 5)]
    sec, fs = run(h, steps)
    (f,) = fs
    assert f.id == "network.link_flapping" and f.subject == {"iface": "eth0"} and "4 times" in f.title
    assert f.severity == "warning"


def test_near_link_speed(tmp_path):
    h = Host(tmp_path)
    h.iface("eth0", speed="100")       # 100 Mb/s = 12.5 MB/s
    h.iface("eth1", speed="-1")        # unknown speed (virtio): never judged
    step = lambda: (h.add("eth0", tx_bytes=12_000_000, tx_packets=8000),   # noqa: E731
                    h.add("eth1", tx_bytes=10**9, tx_packets=8000))
    sec, fs = run(h, [step] * 3)
    (f,) = fs
    assert f.id == "network.link_saturated" and f.subject == {"iface": "eth0"} and f.evidence["util_pct"] == 96.0
    assert f.severity == "warning"


def test_hostile_interface_name_is_quoted(tmp_path):
    h = Host(tmp_path)
    name = "e;rm -rf"           # a name the kernel would refuse, but a copied tree may hold anything
    h.iface(name)
    sec, fs = run(h, [lambda: h.add(name, rx_packets=10, rx_errors=50)] * 2)
    (f,) = fs
    assert "dev 'e;rm -rf'" in f.verify


def test_interface_name_with_key_characters(tmp_path):
    from hostdiag.core.runner import parse_key
    h = Host(tmp_path)
    name = "v,x=[1]"            # valid for the kernel (only '/', ':' and whitespace are refused)
    h.iface(name)
    job = drive(N, fixture_ctx(h.root), [lambda: h.add(name, rx_packets=10, rx_errors=50)] * 2)
    key = "network.rx_errors[iface=v_x__1_]"
    assert key in job.series and parse_key(key[len("network."):])[1] == {"iface": "v_x__1_"}
    sec = section(N, job)
    (f,) = N.findings(sec, TH)
    assert f.subject == {"iface": name} and f.evidence["rx_errors_per_s"] == 50.0


def test_conntrack_fill_and_eta(tmp_path):
    h = Host(tmp_path)
    h.iface("eth0")
    h.conntrack(500)
    steps = [lambda i=i: h.conntrack(500 + 20 * i) for i in range(1, 5)]
    sec, fs = run(h, steps)
    ct = sec.data["conntrack"]
    assert ct["count"] == 580 and ct["max"] == 1000 and ct["per_s"] == 20.0 and ct["eta_s"] == 21.0
    (f,) = fs
    assert f.id == "network.conntrack_full" and f.severity == "critical"   # 58 % but full in 21 s
    assert "full in ~21 s" in f.title


def test_conntrack_eta_not_extrapolated_past_the_window(tmp_path):
    h = Host(tmp_path)
    h.iface("eth0")
    h.conntrack(100, 1_000_000)
    steps = [lambda i=i: h.conntrack(100 + 20 * i, 1_000_000) for i in range(1, 4)]
    sec, fs = run(h, steps)
    assert sec.data["conntrack"]["per_s"] == 20.0 and sec.data["conntrack"]["eta_s"] is None and fs == []


def test_many_interfaces_are_bounded(tmp_path):
    h = Host(tmp_path)
    h.iface("eth0")
    for i in range(N.MAX_IFACES + 5):
        h.iface(f"veth{i}", virtual=True)
    sec, fs = run(h, [lambda: None])
    names = {r["iface"] for r in sec.data["interfaces"]}
    assert len(names) == N.MAX_IFACES and "eth0" in names     # physical first
    assert sec.status == "partial" and "series and findings for 64" in sec.reason


def test_no_sys_is_a_blind_spot(tmp_path):
    h = Host(tmp_path)
    h.iface("eth0")
    import shutil
    shutil.rmtree(tmp_path / "sys")
    sec, fs = run(h, [lambda: None])
    assert sec.status == "partial" and "/sys/class/net" in sec.reason
    assert fs == []


def test_cli_on_a_tree_from_a_bigger_host(tmp_path):
    """--proc-root/--sys-root: every renderer shows the tree's interfaces and CPU count (8 here,
    whatever this machine has), with no traceback."""
    import json

    from support import cli

    h = Host(tmp_path)
    h.iface("ens1f0", speed="25000")
    h.iface("bond0", virtual=True)
    (tmp_path / "proc" / "loadavg").write_text("3.00 2.00 1.00 4/900 1234\n")
    (tmp_path / "proc" / "stat").write_text("cpu  800 0 400 8000 0 0 0 0\n" + "".join(
        f"cpu{i} 100 0 50 1000 0 0 0 0\n" for i in range(8)) + "ctxt 100\nintr 50\n")
    args = ["snapshot", "--proc-root", str(tmp_path / "proc"), "--sys-root", str(tmp_path / "sys"),
            "--only", "network,cpu", "--window", "0"]
    p = cli(*args, "--json")
    assert p.returncode in (0, 1, 2) and "Traceback" not in p.stderr, p.stderr
    doc = json.loads(p.stdout)
    assert doc["sections"]["cpu"]["data"]["cpus"] == 8
    net = doc["sections"]["network"]
    assert net["status"] == "ok" and {r["iface"] for r in net["data"]["interfaces"]} == {"ens1f0", "bond0"}
    assert "network.rx_bytes[iface=ens1f0]" in doc["series"]
    for fmt in ("--plain", "--markdown"):     # the interface table is evidence: --full
        p = cli(*args, fmt, "--full")
        assert p.returncode in (0, 1, 2) and "Traceback" not in p.stderr and "ens1f0" in p.stdout, p.stderr


@settings(deadline=None, max_examples=30)
@given(st.sets(st.sampled_from(["operstate", "flags", "speed", "carrier_changes", "mtu", "link", "dev"]), max_size=7),
       st.sampled_from(["", "garbage\n", "0x\n", "-1\n", "\x1b[31m\n"]))
def test_files_missing_or_garbled_never_raise(tmp_path_factory, broken, junk):
    root = tmp_path_factory.mktemp("net")
    h = Host(root)
    h.iface("eth0")
    h.iface("veth1", virtual=True)
    for name in broken - {"link", "dev"}:
        if junk:
            h.set("eth0", **{name: junk.strip()})
        else:
            (root / "sys/class/net/eth0" / name).unlink()
    if "link" in broken:
        (root / "sys/class/net/veth1").unlink()
    if "dev" in broken:
        (root / "proc/net/dev").write_text(junk)
    sec, fs = run(h, [lambda: h.add("eth0", rx_packets=5) if "dev" not in broken else None])
    assert sec.status in ("ok", "partial")
    assert all(f.subject.get("iface") in ("eth0", "veth1") for f in fs)
    if "dev" in broken:       # nothing parsed: no interfaces, no invented counters
        assert sec.data["interfaces"] == [] and fs == []


def test_no_proc_net_dev_still_reports_links(tmp_path):
    h = Host(tmp_path)
    h.iface("eth0")
    h.iface("eth1", operstate="down")
    (tmp_path / "proc/net/dev").unlink()
    sec, fs = run(h, [lambda: None])
    assert sec.status == "partial" and "net/dev missing: no interface counters" in sec.reason
    rows = {r["iface"]: r for r in sec.data["interfaces"]}
    assert set(rows) == {"eth0", "eth1"} and "rates" not in rows["eth0"]
    assert [(f.id, f.subject) for f in fs] == [("network.link_down", {"iface": "eth1"})]


def test_fifo_at_proc_net_dev_is_named_not_missing(tmp_path):
    """A FIFO where the counters belong is refused without waiting for a writer, and said
    as what it is: "missing" would send the responder looking for a mount problem."""
    import os
    h = Host(tmp_path)
    h.iface("eth0")
    (tmp_path / "proc/net/dev").unlink()
    os.mkfifo(tmp_path / "proc/net/dev")
    sec, _ = run(h, [lambda: None])
    assert sec.status == "partial" and "net/dev not readable: not a regular file" in sec.reason, sec.reason
    assert [r["iface"] for r in sec.data["interfaces"]] == ["eth0"]


def test_nothing_to_read_is_unavailable(tmp_path):
    import pytest

    from hostdiag.core.context import Unavailable
    import shutil
    h = Host(tmp_path)             # writes no proc/net/dev until an interface exists
    shutil.rmtree(tmp_path / "sys")
    with pytest.raises(Unavailable, match="net/dev missing, and .*class/net not listable"):
        N.sample(fixture_ctx(h.root), {})

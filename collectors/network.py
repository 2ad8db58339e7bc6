"""network: per-interface throughput, packets, errors and drops (`sar -n DEV`), link state,
flaps and speed, and conntrack fill against its max. Reads /proc/net/dev,
/sys/class/net/IFACE/{operstate,flags,speed,carrier_changes,mtu} and
/proc/sys/net/netfilter/nf_conntrack_{count,max}; root not needed."""
from __future__ import annotations

import os
import re

from hostdiag.core.context import Unavailable
from hostdiag.core import eta, shell
from hostdiag.core.model import Finding
from hostdiag.core.thresholds import Threshold

NAME = "network"
DEFAULT_ENABLED = True
NEEDS: set[str] = set()
READS = ["/proc/net/dev", "/sys/class/net/*/{operstate,flags,speed,carrier_changes,mtu}",
         "/proc/sys/net/netfilter/nf_conntrack_{count,max}"]

# The /proc/net/dev columns we keep, in file order (rx then tx), and our names for them.
_RX = ("rx_bytes", "rx_packets", "rx_errors", "rx_drops", "rx_fifo", "rx_frame", "rx_compressed", "rx_multicast")
_TX = ("tx_bytes", "tx_packets", "tx_errors", "tx_drops", "tx_fifo", "tx_colls", "tx_carrier", "tx_compressed")
COUNTERS = ("rx_bytes", "tx_bytes", "rx_packets", "tx_packets", "rx_errors", "tx_errors", "rx_drops", "tx_drops")
UNITS = {c: ("bytes" if c.endswith("bytes") else "count", True) for c in COUNTERS} | {
    "carrier_changes": ("count", True),
    "conntrack_count": ("count", False),
}
THRESHOLDS = {
    "network.errors_per_s": Threshold(1, 50, "per second", "rx + tx errors per second on one interface"),
    "network.drops_pct": Threshold(1, 5, "percent",
                                   "rx + tx drops as % of packets on one interface (ignored under 1 drop/s)"),
    "network.link_util_pct": Threshold(90, 98, "percent", "rx or tx bit rate as % of the link's speed"),
    "network.flaps": Threshold(2, 6, "count", "carrier changes on one interface during the window"),
    "network.conntrack_pct": Threshold(80, 95, "percent", "nf_conntrack_count as % of nf_conntrack_max"),
    "network.conntrack_eta_s": Threshold(3600, 600, "seconds",
                                         "time until the conntrack table is full at the window's rate",
                                         higher_is_worse=False),
}
MIN_DROPS_PER_S = 1.0
# A host with thousands of container veths: series for this many interfaces (physical first,
# then the busiest), the rest only counted.
MAX_IFACES = 64
IFF_UP, IFF_LOOPBACK = 0x1, 0x8
# An ETA is given at most this many times further out than the span it was measured over.
EXTRAPOLATE_MAX = eta.EXTRAPOLATE_MAX   # one rule for every ETA (core/eta.py)
_DOWN = ("down", "lowerlayerdown", "notpresent")


def parse_net_dev(text: str) -> dict[str, dict[str, int]]:
    """/proc/net/dev -> {'eth0': {'rx_bytes': n, ...}}. Header lines and malformed rows are
    skipped; old kernels print 'eth0:123' with no space after the colon."""
    out: dict[str, dict[str, int]] = {}
    for line in text.splitlines():
        name, sep, rest = line.partition(":")
        name = name.strip()
        if not sep or not name or "|" in line:
            continue
        vals = rest.split()
        if len(vals) < 16 or not all(v.isdigit() for v in vals[:16]):
            continue
        out[name] = {k: int(v) for k, v in zip(_RX + _TX, vals)}
    return out


def label(iface: str) -> str:
    """An interface name as a series label: the kernel allows ',', '=', '[' and ']' in names,
    which the 'metric[k=v,...]' key cannot carry."""
    return re.sub(r"[,=\[\]]", "_", iface)


def _sysfile(ctx, iface: str, name: str) -> str | None:
    text = ctx.read_optional(ctx.sys_path("class", "net", iface, name), 256)
    return text.strip() if text is not None else None


def _int(text: str | None, base: int = 10) -> int | None:
    try:
        return int(text, base) if text is not None else None
    except ValueError:  # speed reads EINVAL (None) or -1 on virtual links; hostile text
        return None


def link_info(ctx, iface: str) -> dict:
    """operstate, flags, speed (Mb/s, None when unknown), carrier_changes, mtu, virtual."""
    try:
        target = os.readlink(ctx.sys_path("class", "net", iface))
    except OSError:
        target = ""
    speed = _int(_sysfile(ctx, iface, "speed"))
    return {
        "operstate": _sysfile(ctx, iface, "operstate"),
        "flags": _int(_sysfile(ctx, iface, "flags"), 16),   # "0x1003"
        "speed_mbps": speed if speed and speed > 0 else None,
        "carrier_changes": _int(_sysfile(ctx, iface, "carrier_changes")),
        "mtu": _int(_sysfile(ctx, iface, "mtu")),
        # /sys/class/net/X -> ../../devices/virtual/net/X for veth, bridges, tun, bonds...
        "virtual": "/devices/virtual/" in target if target else None,
    }


def _conntrack(ctx) -> tuple[int | None, int | None]:
    def one(name):
        text = ctx.read_optional(ctx.proc_path("sys", "net", "netfilter", name), 64)
        return _int(text.strip()) if text else None
    return one("nf_conntrack_count"), one("nf_conntrack_max")


def _pick(names: list[str], dev: dict[str, dict[str, int]], links: dict[str, dict]) -> list[str]:
    """Interfaces that get series: all of them, or on a crowded host physical first then busiest."""
    if len(names) <= MAX_IFACES:
        return sorted(names)
    def key(n):
        d = dev.get(n) or {}
        return links.get(n, {}).get("virtual") is not False, -(d.get("rx_bytes", 0) + d.get("tx_bytes", 0))
    return sorted(sorted(names, key=key)[:MAX_IFACES])


def read_interfaces(ctx) -> tuple[dict[str, dict[str, int]] | None, list[str], str]:
    """(/proc/net/dev counters, or None when that file cannot be read; interface names, from it
    or else from /sys/class/net; why the counters are missing). Neither there: Unavailable."""
    path = ctx.proc_path("net", "dev")
    try:
        dev = parse_net_dev(ctx.read(path))
        return dev, list(dev), ""
    except (FileNotFoundError, NotADirectoryError):
        why = f"{path} missing"
    except OSError as e:    # a FIFO or device in its place (EINVAL), permission, a hung read
        why = f"{path} not readable: {e.strerror or e}"
    try:
        return None, sorted(os.listdir(ctx.sys_path("class", "net"))), why
    except OSError:
        raise Unavailable(f"{why}, and {ctx.sys_path('class', 'net')} not listable: "
                          "is /proc mounted (and /sys, or --sys-root set)?") from None


def sample(ctx, state):
    dev, names, _ = read_interfaces(ctx)
    if "ifaces" not in state:
        links = {n: link_info(ctx, n) for n in names[:MAX_IFACES * 4]}
        state["ifaces"] = _pick(names, dev or {}, links)
        state["first_link"] = links
        state["seen"] = len(names)
    out: dict[str, float] = {}
    for n in state["ifaces"]:
        d = (dev or {}).get(n)
        if d is not None:   # None: removed during the window, or no /proc/net/dev
            for c in COUNTERS:
                out[f"{c}[iface={label(n)}]"] = d[c]
        cc = _int(_sysfile(ctx, n, "carrier_changes"))
        if cc is not None:
            out[f"carrier_changes[iface={label(n)}]"] = cc
    count, _max = _conntrack(ctx)
    if count is not None:
        out["conntrack_count"] = count
    return out


def _rate(job, metric: str, iface: str) -> float | None:
    s = job.series.get(f"network.{metric}[iface={label(iface)}]")
    return s.rate() if s is not None else None


def collect(job):
    ctx, state = job.ctx, job.state
    dev, names, why = read_interfaces(ctx)
    if dev is None:
        job.blind_spot(f"{why}: no interface counters (link state from /sys only)")
    first = state.get("first_link") or {}
    ifaces = []
    for n in sorted(state.get("ifaces") or names[:MAX_IFACES]):
        link = link_info(ctx, n)
        d = (dev or {}).get(n)
        row = {"iface": n, **link, "present": d is not None,
               "operstate_start": (first.get(n) or {}).get("operstate"),
               "loopback": bool((link["flags"] or 0) & IFF_LOOPBACK) or n == "lo",
               "admin_up": None if link["flags"] is None else bool(link["flags"] & IFF_UP)}
        if d is not None:
            row |= {c: d[c] for c in COUNTERS}
        rates = {c: _rate(job, c, n) for c in COUNTERS}
        if any(v is not None for v in rates.values()):
            row["rates"] = {f"{c}_per_s": None if v is None else round(v, 2) for c, v in rates.items()}
        cc = job.series.get(f"network.carrier_changes[iface={label(n)}]")
        row["carrier_changes_window"] = cc.delta() if cc is not None else None
        ifaces.append(row)
    data: dict = {"interfaces": ifaces, "interfaces_total": len(names)}
    if state.get("seen", 0) > MAX_IFACES:
        job.blind_spot(f"{state['seen']} interfaces: series and findings for {MAX_IFACES} of them "
                       "(physical first, then the busiest)")
    if any(r["operstate"] is None for r in ifaces):
        job.blind_spot("/sys/class/net not readable for some interfaces: link state unknown "
                       "(is /sys mounted, or --sys-root set?)")
    count, cmax = _conntrack(ctx)
    if count is not None and cmax:
        s = job.s("conntrack_count")
        # one ETA rule for every bounded resource (core/eta.py): a steady rise, never extrapolated
        # further than 120x the span it was measured over
        e = eta.time_to_limit(s, cmax, current=count) if s is not None and len(s.v) >= 3 else None
        slope = e.rate_per_s if e is not None and e.rate_per_s and e.rate_per_s > 0 else None
        t_full = e.eta_s if e is not None else None
        data["conntrack"] = {"count": count, "max": cmax, "pct": round(count / cmax * 100, 1),
                             "per_s": None if slope is None else round(slope, 2),
                             "eta_s": None if t_full is None else round(t_full, 1)}
    else:
        data["conntrack"] = None  # nf_conntrack not loaded: nothing to fill
    return data


def _verify(n: str) -> str:
    q = shell.quote(n)
    return f"ip -s link show dev {q}; ethtool -S {q} | grep -iE 'err|drop|discard'"


def findings(section, th):
    d = section.data
    out: list[Finding] = []
    for r in d.get("interfaces") or []:
        if r["loopback"]:
            continue
        n = r["iface"]
        subj = {"iface": n}
        rates = r.get("rates") or {}
        ev_counts = {k: rates.get(k) for k in ("rx_errors_per_s", "tx_errors_per_s", "rx_drops_per_s",
                                                 "tx_drops_per_s", "rx_packets_per_s", "tx_packets_per_s")}

        errs = sum(rates.get(k) or 0 for k in ("rx_errors_per_s", "tx_errors_per_s"))
        level = th.level("network.errors_per_s", errs if rates else None)
        if level:
            out.append(Finding(
                id="network.errors", category="network", severity=level,
                title=f"{n}: {errs:.1f} packet errors/s (rx {rates.get('rx_errors_per_s')}, "
                      f"tx {rates.get('tx_errors_per_s')})",
                subject=subj, evidence=ev_counts,
                impact="corrupted or rejected frames: TCP retransmits and latency for everything on this link",
                verify=_verify(n),
                stabilize=["Move traffic off the interface (bond failover, drain the host) while the link is checked",
                           "Escalate to the network team with the error counters (cable, optics, switch port, "
                           "duplex/speed mismatch)",
                           "Do not restart networking on a remote host over the link you are logged in through"],
                score=errs))

        drops = sum(rates.get(k) or 0 for k in ("rx_drops_per_s", "tx_drops_per_s"))
        pkts = sum(rates.get(k) or 0 for k in ("rx_packets_per_s", "tx_packets_per_s"))
        pct = round(drops / (pkts + drops) * 100, 1) if drops >= MIN_DROPS_PER_S else None
        level = th.level("network.drops_pct", pct)
        if level:
            out.append(Finding(
                id="network.drops", category="network", severity=level,
                title=f"{n}: {drops:.1f} packets dropped/s ({pct}% of packets; rx {rates.get('rx_drops_per_s')}, "
                      f"tx {rates.get('tx_drops_per_s')})",
                subject=subj, evidence=ev_counts | {"drops_pct": pct},
                impact="the kernel or NIC is discarding packets: retransmits, timeouts, lost UDP",
                verify=_verify(n) + "; nstat -az | grep -iE 'drop|prune|overflow'",
                stabilize=["rx drops under load: the receive ring or backlog overflows; shed load from the host",
                           "Check ring sizes (ethtool -g) and softirq CPU (mpstat -P ALL) before changing them",
                           "rx drops on an idle link are often frames nobody handles (unknown protocol, VLAN): "
                           "compare with ethtool -S before acting",
                           "Do not raise ring or backlog sizes blindly: it trades drops for latency (bufferbloat)"],
                score=pct or 0.0))

        speed = r.get("speed_mbps")
        if speed and rates:
            bps = max(rates.get("rx_bytes_per_s") or 0, rates.get("tx_bytes_per_s") or 0) * 8
            util = round(bps / (speed * 1e6) * 100, 1)
            level = th.level("network.link_util_pct", util)
            if level:
                out.append(Finding(
                    id="network.link_saturated", category="network", severity=level,
                    title=f"{n} at {util}% of its {speed} Mb/s link",
                    subject=subj, evidence={"util_pct": util, "speed_mbps": speed,
                                            "rx_bytes_per_s": rates.get("rx_bytes_per_s"),
                                            "tx_bytes_per_s": rates.get("tx_bytes_per_s")},
                    impact="the link is full: queues build, latency and drops follow",
                    verify=f"sar -n DEV 1 5   # or: ip -s link show dev {shell.quote(n)}",
                    stabilize=["Find the top talker (ss -tinp, nethogs, iftop) and throttle or move it",
                               "Spread traffic across links (bond, more instances) if it is legitimate load",
                               "Do not add retries or timeouts upstream: it adds load to a full pipe"],
                    score=util))

        down_now = r.get("operstate") in _DOWN
        was_up = r.get("operstate_start") == "up"
        flaps = r.get("carrier_changes_window")
        # Configured up but no carrier (cable, switch port, peer gone) is the outage; an
        # admin-down interface is someone's choice. A virtual link (docker0 with no containers)
        # idles without carrier, so it only counts when it went down during the window.
        if down_now and (was_up or (r.get("admin_up") and r.get("virtual") is False)):
            flap = f"; carrier changed {flaps:g} times in the window" if flaps else ""
            how = "went down during the window" if was_up else "is configured up but has no carrier"
            out.append(Finding(
                id="network.link_down", category="network",
                severity="critical" if r.get("virtual") is False else "warning",
                title=f"{n} {how} (operstate {r['operstate']}){flap}",
                subject=subj,
                evidence={"operstate": r["operstate"], "operstate_start": r.get("operstate_start"),
                          "admin_up": r.get("admin_up"), "virtual": r.get("virtual"),
                          "carrier_changes_window": flaps, "speed_mbps": speed},
                impact="no traffic passes over this interface until the link returns (or a bond fails over)",
                verify=f"ip -s link show dev {shell.quote(n)}; ethtool {shell.quote(n)} | grep 'Link detected'",
                stabilize=["Check whether a bond/team or a second path took over and traffic still flows",
                           "Physical link: escalate with the time it dropped (cable, optics, switch port); "
                           "virtual link: check the peer (container, VM, tunnel endpoint)",
                           "Do not restart networking on a remote host over a link that carries your session"],
                score=100.0))
        elif th.level("network.flaps", flaps):
            out.append(Finding(
                id="network.link_flapping", category="network", severity=th.level("network.flaps", flaps),
                title=f"{n} link flapped: carrier changed {flaps:g} times during the window",
                subject=subj, evidence={"carrier_changes_window": flaps, "operstate": r.get("operstate"),
                                        "carrier_changes_total": r.get("carrier_changes")},
                impact="each flap drops in-flight traffic and can trigger failovers and reconvergence",
                verify=f"ip -s link show dev {shell.quote(n)}; dmesg -T | grep -i {shell.quote(n)} | tail",
                stabilize=["Fail traffic over to a stable path (bond member, other host) while it is checked",
                           "Escalate to the network team with the flap times (cable, optics, autonegotiation)",
                           "Do not bounce the interface repeatedly to 'fix' it: each bounce is another outage"],
                score=float(flaps)))

    ct = d.get("conntrack")
    if ct:
        lv_pct = th.level("network.conntrack_pct", ct["pct"])
        lv_eta = th.level("network.conntrack_eta_s", ct.get("eta_s"))
        level = max((lv for lv in (lv_pct, lv_eta) if lv), key=("warning", "critical").index, default=None)
        if level:
            from hostdiag.core.units import human_duration
            soon = f"; full in ~{human_duration(ct['eta_s'])} at +{ct['per_s']}/s" if ct.get("eta_s") else ""
            out.append(Finding(
                id="network.conntrack_full", category="network", severity=level,
                title=f"conntrack table {ct['count']} of {ct['max']} entries ({ct['pct']}%){soon}",
                subject={}, evidence=dict(ct),
                impact="when the table is full the kernel drops new connections (nf_conntrack: table full)",
                verify="cat /proc/sys/net/netfilter/nf_conntrack_count /proc/sys/net/netfilter/nf_conntrack_max; "
                       "conntrack -S",
                stabilize=["Find the flood source (conntrack -L | awk '{print $5}' | sort | uniq -c | sort -rn | head) "
                           "and rate-limit it upstream",
                           "Raise net.netfilter.nf_conntrack_max (with hashsize) within memory as a relief",
                           "Do not flush the conntrack table on a NAT gateway: established flows break"],
                score=ct["pct"]))
    return out

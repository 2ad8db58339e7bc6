"""Findings from an Analyzer: a peer address:port, the local process where the socket table maps
it, counts and rates, a verify command (shlex-quoted) and stabilize options.

Processes: the socket tables (/proc/net/{tcp,tcp6,udp,udp6} of hostdiag's network namespace) are
sampled during the capture, so a socket that lived for a second is still known; the inode -> pid
scan of /proc/*/fd runs once at the end, only for the inodes a finding needs, within a time bound.
A connection that closed before that scan (a client hammering a closed port opens a new socket
per attempt) has no process, and the finding says so.
"""
from __future__ import annotations

import os
import shlex
import time

from hostdiag.core.model import Finding
from hostdiag.packets.flows import DNS_SLOW_S, Analyzer
from hostdiag.packets.parse import TCP, UDP, addr, endpoint

# thresholds (count in the window unless it says rate)
RST_WARN, RST_CRIT = 5, 50
SYN_WARN_ATTEMPTS, SYN_CRIT_ATTEMPTS = 1, 10
RETRANS_MIN, RETRANS_WARN_PCT, RETRANS_CRIT_PCT = 5, 2.0, 10.0
DUPACK_WARN = 10
ZEROWIN_WARN = 3
DNS_FAIL_WARN_PCT, DNS_FAIL_CRIT_PCT = 20.0, 50.0
ICMP_WARN = 3
FLATLINE_MIN_PPS, FLATLINE_QUIET_S = 5.0, 2
SCAN_BUDGET_S = 1.0
MAX_PER_ID = 10
SAMPLE_SLOW_S = 0.25
_TABLES = (("tcp", TCP), ("tcp6", TCP), ("udp", UDP), ("udp6", UDP))
_V4MAPPED = b"\0" * 10 + b"\xff\xff"


def _hexaddr(h: str) -> bytes:
    raw = bytes.fromhex(h)
    if len(raw) == 4:
        return raw[::-1]
    b = b"".join(raw[i:i + 4][::-1] for i in range(0, 16, 4))
    return b[12:] if b[:12] == _V4MAPPED else b


class SockMap:
    """(proto, local, lport, remote, rport) -> inode, accumulated over the capture; inode -> pid."""

    def __init__(self, ctx):
        self.ctx = ctx
        self.conns: dict[tuple, int] = {}
        self.listen: dict[tuple, int] = {}
        self.local: set[bytes] = set()
        self.errors: list[str] = []
        self.slow = False

    def sample(self) -> None:
        """Add the current socket tables. Runs in the capture loop about once a second, so it gives
        up for the rest of the capture once a pass is slow (tens of thousands of sockets)."""
        if self.slow:
            return
        t = time.monotonic()
        self._sample()
        if time.monotonic() - t > SAMPLE_SLOW_S:
            self.slow = True
            self.errors.append("socket table sampling stopped after a pass took over "
                               f"{SAMPLE_SLOW_S:g} s: short-lived connections may show no process")

    def _sample(self) -> None:
        for name, proto in _TABLES:
            try:
                text = self.ctx.read(self.ctx.proc_path("net", name), limit=16 << 20)
            except OSError as e:
                if name not in " ".join(self.errors):
                    self.errors.append(f"/proc/net/{name}: {e.strerror}")
                continue
            for line in text.splitlines()[1:]:
                f = line.split()
                if len(f) < 10:
                    continue
                try:
                    la, lp = f[1].split(":")
                    ra, rp = f[2].split(":")
                    local, remote, inode = _hexaddr(la), _hexaddr(ra), int(f[9])
                    lport, rport = int(lp, 16), int(rp, 16)
                except ValueError:
                    continue
                if not inode:
                    continue
                if any(local):
                    self.local.add(local)
                if rport == 0:
                    self.listen[(proto, local, lport)] = inode
                else:
                    self.conns[(proto, local, lport, remote, rport)] = inode

    def inode_for(self, proto: int, local: bytes, lport: int, remote: bytes | None = None, rport: int | None = None) -> int | None:
        if remote is not None:
            ino = self.conns.get((proto, local, lport, remote, rport))
            if ino:
                return ino
        for la in (local, b"\0" * len(local), b"\0" * 4, b"\0" * 16):
            ino = self.listen.get((proto, la, lport))
            if ino:
                return ino
        return None

    def is_local(self, a: bytes) -> bool:
        return a in self.local or a[:1] == b"\x7f" or a == b"\0" * 15 + b"\x01"

    def pids(self, inodes: set[int]) -> dict[int, tuple[int, str]]:
        """inode -> (pid, comm) by one bounded /proc/*/fd scan; stops when all are found."""
        out: dict[int, tuple[int, str]] = {}
        if not inodes:
            return out
        want = {f"socket:[{i}]": i for i in inodes}
        deadline = time.monotonic() + SCAN_BUDGET_S
        try:
            entries = [e.name for e in os.scandir(self.ctx.proc) if e.name.isdigit()]
        except OSError as e:
            self.errors.append(f"{self.ctx.proc}: {e.strerror}")
            return out
        denied = 0
        for pid in entries:
            if time.monotonic() > deadline:
                self.errors.append(f"process scan stopped after {SCAN_BUDGET_S:g} s")
                break
            fddir = self.ctx.proc_path(pid, "fd")
            try:
                fds = os.listdir(fddir)
            except PermissionError:
                denied += 1
                continue
            except OSError:
                continue
            for fd in fds:
                try:
                    link = os.readlink(os.path.join(fddir, fd))
                except OSError:
                    continue
                ino = want.get(link)
                if ino is not None and ino not in out:
                    try:
                        comm = self.ctx.read(self.ctx.proc_path(pid, "comm"), limit=64).strip()
                    except OSError:
                        comm = "?"
                    out[ino] = (int(pid), comm)
            if len(out) == len(want):
                break
        if denied:
            self.errors.append(f"{denied} processes' fds not readable: run as root to map sockets to processes")
        return out


def _q(*words) -> str:
    return " ".join(shlex.quote(str(w)) for w in words)


def _sev(value: float, warn: float, crit: float):
    return "critical" if value >= crit else "warning" if value >= warn else None


class Builder:
    """Collect findings first with their socket keys, then resolve processes in one scan."""

    def __init__(self, an: Analyzer, smap: SockMap | None, window_s: float, iface_hint: str):
        self.an, self.smap, self.window = an, smap, max(window_s, 1e-3)
        self.iface = iface_hint
        self.items: list[tuple[Finding, int | None]] = []   # ino None: no lookup, 0: no socket found

    def add(self, f: Finding, proto: int, local: bytes | None, lport: int | None,
            remote: bytes | None = None, rport: int | None = None) -> None:
        ino = None
        if local is not None:
            ino = (self.smap.inode_for(proto, local, lport, remote, rport) or 0) if self.smap is not None else 0
        self.items.append((f, ino))

    def local_side(self, a: bytes) -> bool:
        """True when `a` is this host's address (on loopback both are: then `a` is taken)."""
        return self.smap is not None and self.smap.is_local(a)

    def done(self) -> list[Finding]:
        pids = self.smap.pids({i for _, i in self.items if i}) if self.smap is not None else {}
        out = []
        for f, ino in self.items:
            if ino is None:            # not about a socket (an interface, a DNS server seen from afar)
                pass
            elif ino and ino in pids:
                f.subject["pid"], f.subject["process"] = pids[ino]
            elif self.smap is None:
                f.subject["process"] = None
                f.evidence["process_note"] = "pcap input: processes are not mapped"
            else:
                f.subject["process"] = None
                f.evidence.setdefault("process_note", "no live socket for this flow when the socket table was read")
            out.append(f)
        out.sort(key=lambda f: f.rank, reverse=True)
        # a lossy link gives one finding per flow: keep the worst few of each kind, count the rest
        kept, seen = [], {}
        for f in out:
            seen[f.id] = seen.get(f.id, 0) + 1
            if seen[f.id] <= MAX_PER_ID:
                kept.append(f)
        for f in kept:
            if seen[f.id] > MAX_PER_ID:
                f.evidence["more_like_this"] = seen[f.id] - MAX_PER_ID
                break
        return kept


def build(an: Analyzer, smap: SockMap | None, window_s: float, iface_hint: str = "any",
          flat: list[dict] | None = None) -> list[Finding]:
    b = Builder(an, smap, window_s, iface_hint)
    _resets(b)
    _syns(b)
    _tcp_flows(b)
    _dns(b)
    _icmp(b)
    for fl in flat or ():
        _flatline(b, fl)
    return b.done()


def _resets(b: Builder) -> None:
    for (svc, port), r in b.an.rsts.items():
        sev = _sev(r["count"], RST_WARN, RST_CRIT)
        if sev is None:
            continue
        peers = sorted(r["peers"].items(), key=lambda kv: -kv[1])
        ep = endpoint(svc, port)
        refused = r["refused"]
        what = f"{refused} connection attempts refused (nothing listening)" if refused >= r["count"] / 2 else "connections reset"
        local_svc = b.smap is not None and b.smap.is_local(svc)
        f = Finding(
            id="packets.tcp_resets", category="network", severity=sev,
            title=f"{r['count']} TCP resets on {ep} in {b.window:.0f} s ({r['count'] / b.window:.1f}/s): {what}",
            subject={"peer": ep, "address": addr(svc), "port": port, "local_service": local_svc},
            evidence={"rsts": r["count"], "rst_per_s": round(r["count"] / b.window, 2), "refused": refused,
                      "from_service": r["from_service"],
                      "peers": [{"address": addr(p), "rsts": n} for p, n in peers[:10]], "peers_total": len(peers)},
            verify=f"tcpdump -ni {shlex.quote(b.iface)} " + shlex.quote(f"tcp[tcpflags] & tcp-rst != 0 and port {port}"),
            stabilize=[f"If {ep} should be serving: start or fix the service, check it listens on that address ({_q('ss', '-ltnp', f'sport = :{port}')})",
                       "If clients point at the wrong port or host: fix their configuration; add backoff to retry loops",
                       "Do not add firewall DROP rules to silence the resets: clients then hang for the full connect timeout instead of failing fast"],
            impact="clients fail immediately on connect or mid-request", score=r["count"] / RST_WARN)
        if local_svc:
            f.evidence["process_note"] = f"nothing was listening on port {port} here" if refused else \
                "the listening socket was gone when the socket table was read"
            b.add(f, TCP, svc, port)
        else:
            b.items.append((f, _client_inode(b, svc, port)))


def _client_inode(b: Builder, svc: bytes, port: int) -> int:
    """A local socket still connected (or connecting) to svc:port, if the table saw one."""
    if b.smap is None:
        return 0
    for (proto, la, lp, ra, rp), ino in b.smap.conns.items():
        if proto == TCP and ra == svc and rp == port:
            return ino
    return 0


def _syns(b: Builder) -> None:
    for (dst, dport), e in b.an.unanswered_syns().items():
        sev = _sev(e["attempts"], SYN_WARN_ATTEMPTS, SYN_CRIT_ATTEMPTS)
        if sev is None:
            continue
        ep = endpoint(dst, dport)
        (csrc, cport) = next(iter(e["clients"]))
        f = Finding(
            id="packets.syn_unanswered", category="network", severity=sev,
            title=f"{e['attempts']} connection attempts to {ep} got no answer ({e['syns']} SYNs, no SYN-ACK or RST)",
            subject={"peer": ep, "address": addr(dst), "port": dport},
            evidence={"attempts": e["attempts"], "syns": e["syns"],
                      "clients": sorted({addr(c) for c, _ in e["clients"]})[:10]},
            verify=_q("ss", "-ti", "dst", addr(dst)) + " ; " + f"tcpdump -ni {shlex.quote(b.iface)} "
                   + shlex.quote(f"host {addr(dst)} and port {dport} and tcp[tcpflags] & (tcp-syn|tcp-rst) != 0"),
            stabilize=[f"Check that {ep} is up and reachable from here; look for a firewall or security group dropping SYNs",
                       "Fail over clients to a healthy backend; lower connect timeouts so callers fail fast",
                       "Do not raise client retry counts or timeouts: a silent drop then ties up workers for longer"],
            impact="clients hang until their connect timeout", score=e["attempts"])
        b.add(f, TCP, csrc, cport, dst, dport)


def _tcp_flows(b: Builder) -> None:
    for (src, sport, dst, dport), d in b.an.dirs.items():
        segs = d.data_segs
        pct = 100.0 * d.retrans / segs if segs else 0.0
        if d.retrans >= RETRANS_MIN and pct >= RETRANS_WARN_PCT:
            sev = "critical" if pct >= RETRANS_CRIT_PCT else "warning"
            ep = endpoint(dst, dport)
            local_is_src = b.local_side(src) or b.smap is None
            f = Finding(
                id="packets.tcp_retransmits", category="network", severity=sev,
                title=f"{d.retrans} of {segs} segments ({pct:.1f} %) retransmitted from {endpoint(src, sport)} to {ep}",
                subject={"peer": ep if local_is_src else endpoint(src, sport), "flow": f"{endpoint(src, sport)} > {ep}",
                         "address": addr(dst), "port": dport},
                evidence={"retransmits": d.retrans, "segments": segs, "retransmit_pct": round(pct, 2),
                          "dup_acks_back": _rev(b, src, sport, dst, dport, "dupacks")},
                verify=_q("ss", "-ti", "dst", addr(dst)) + "   # retrans:, lost:, rtt: per socket",
                stabilize=["Look for loss on the path: interface errors/drops (`ip -s link`), a congested or flapping link, a bad NIC or cable",
                           "Move traffic off the lossy path (other backend, other link) if one exists",
                           "Do not raise TCP buffers or timeouts to hide it: the loss stays and latency grows"],
                impact="throughput collapses and latency rises on this connection", score=pct)
            if local_is_src:
                b.add(f, TCP, src, sport, dst, dport)
            else:
                b.add(f, TCP, dst, dport, src, sport)
        if d.dupacks >= DUPACK_WARN and _rev(b, src, sport, dst, dport, "retrans") < RETRANS_MIN:   # else: in that finding
            ep = endpoint(src, sport)
            f = Finding(
                id="packets.tcp_dup_acks", category="network", severity="warning",
                title=f"{d.dupacks} duplicate ACKs from {ep} to {endpoint(dst, dport)}: segments arriving out of order or lost",
                subject={"peer": endpoint(dst, dport), "flow": f"{ep} > {endpoint(dst, dport)}"},
                evidence={"dup_acks": d.dupacks},
                verify=_q("ss", "-ti", "dst", addr(dst)),
                stabilize=["Check the path for loss or reordering (bonding, ECMP, a failing link)",
                           "Do not disable SACK or timestamps to 'fix' it"],
                impact="the sender slows down (fast retransmit)", score=d.dupacks / DUPACK_WARN)
            b.add(f, TCP, src, sport, dst, dport)
        if d.zerowin >= ZEROWIN_WARN:
            rcv = endpoint(src, sport)
            f = Finding(
                id="packets.tcp_zero_window", category="network", severity="warning",
                title=f"{rcv} advertised a zero receive window {d.zerowin} times to {endpoint(dst, dport)}: the receiving application is not reading",
                subject={"peer": endpoint(dst, dport), "receiver": rcv, "address": addr(src), "port": sport},
                evidence={"zero_window": d.zerowin},
                verify=_q("ss", "-tmi", "src", addr(src)) + "   # Recv-Q full, rcv_space",
                stabilize=["Find why the receiving process stopped reading: blocked on disk, a lock, CPU, or stuck (py-spy/jstack/gdb on it)",
                           "Restart or scale the stuck consumer if it cannot recover",
                           "Do not raise rmem/tcp_rmem: a bigger buffer only fills more slowly"],
                impact="the sender stalls; requests on this connection hang", score=d.zerowin / ZEROWIN_WARN)
            b.add(f, TCP, src, sport, dst, dport)


def _rev(b, src, sport, dst, dport, attr):
    r = b.an.dirs.get((dst, dport, src, sport))
    return getattr(r, attr) if r is not None else 0


def _dns(b: Builder) -> None:
    from hostdiag.packets.scapyload import dissect_dns

    dissected = None
    for server, s in b.an.dns.items():
        srv = addr(server)
        resp = s["responses"]
        for rcode, name, fid in ((3, "NXDOMAIN", "packets.dns_nxdomain"), (2, "SERVFAIL", "packets.dns_servfail")):
            n = s["rcodes"].get(rcode, 0)
            if not n:
                continue
            pct = 100.0 * n / max(resp, 1)
            sev = _sev(pct, DNS_FAIL_WARN_PCT, DNS_FAIL_CRIT_PCT) if rcode == 3 else ("critical" if pct >= DNS_FAIL_CRIT_PCT else "warning")
            if sev is None:
                continue
            names = s["names"].get(rcode, [])
            if dissected is None:
                dissected = dissect_dns(b.an.dns_raw)
            f = Finding(
                id=fid, category="network", severity=sev,
                title=f"DNS server {srv} answered {name} to {n} of {resp} queries ({pct:.0f} %)",
                subject={"peer": f"{srv}:53", "server": srv, "names": names[:5]},
                evidence={"responses": resp, "count": n, "pct": round(pct, 1), "names": names,
                          "dissected": [x for x in dissected if x.get("rcode") in ("name-error", "server-failure")][:5]},
                verify=_q("dig", f"@{srv}", names[0] if names else "example.com"),
                stabilize=([f"SERVFAIL: the server {srv} cannot resolve (upstream down, DNSSEC failure): switch resolvers in /etc/resolv.conf to a healthy one",
                            "Do not cache negative answers longer to hide it"] if rcode == 2 else
                           ["NXDOMAIN: a wrong name in configuration (typo, search domain, deleted record); fix the caller's name",
                            "Do not add the name to /etc/hosts as a quick fix without telling the owner"]),
                impact="lookups fail; clients cannot reach the names they need", score=pct)
            b.add(f, UDP, *_top_client(s))
        if s["slow"] or s["unanswered"]:
            names = [n for n, _ in s["slow_names"]] + s["unanswered_names"]
            f = Finding(
                id="packets.dns_slow", category="network", severity="warning",
                title=f"DNS server {srv}: {s['slow']} answers slower than {DNS_SLOW_S:g} s (max {s['latency_max']:.2f} s), {s['unanswered']} queries unanswered",
                subject={"peer": f"{srv}:53", "server": srv, "names": names[:5]},
                evidence={"slow": s["slow"], "slow_names": s["slow_names"], "unanswered": s["unanswered"],
                          "latency_max_s": round(s["latency_max"], 3), "queries": s["queries"]},
                verify=_q("dig", f"@{srv}", names[0] if names else "example.com"),
                stabilize=["Point resolv.conf at a responsive resolver or add a second nameserver with `options timeout:1 rotate`",
                           "Do not raise client DNS timeouts: every request then waits longer"],
                impact="every new connection waits on name resolution", score=float(s["slow"] + s["unanswered"]))
            b.add(f, UDP, *_top_client(s))


def _top_client(s: dict) -> tuple:
    """The local (address, port) that got most answers from this server: its socket names the process."""
    if not s["clients"]:
        return None, None
    return max(s["clients"].items(), key=lambda kv: kv[1])[0]


def _icmp(b: Builder) -> None:
    for (kind, reporter, isrc, idst, iproto, idport, code), (n, mtu) in b.an.icmp.items():
        if kind == "unreachable" and n < ICMP_WARN:
            continue
        target = endpoint(idst, idport) if idst is not None and iproto in (TCP, UDP) else (addr(idst) if idst else "?")
        if kind == "frag_needed":
            title = f"{n} 'fragmentation needed' (MTU {mtu}) from {addr(reporter)} for traffic to {target}: a path MTU problem"
            stab = [f"Check the MTU along the path (tracepath); lower the interface MTU or clamp TCP MSS to {mtu - 40 if mtu else 'the path MTU'} on the sender",
                    "Do not block ICMP type 3/4 (IPv6: type 2) on firewalls: that makes an MTU black hole"]
            verify = _q("tracepath", "-n", addr(idst) if idst else addr(reporter))
        else:
            title = f"{n} ICMP unreachable (code {code}) from {addr(reporter)} for traffic to {target}"
            stab = ["Check routing and the remote service (code 3 = port unreachable, 1 = host, 0 = net, 13 = filtered)",
                    "Do not drop ICMP to quiet it: applications then time out instead of failing fast"]
            verify = _q("ip", "route", "get", addr(idst) if idst else addr(reporter))
        f = Finding(id=f"packets.icmp_{kind}", category="network", severity="warning", title=title,
                    subject={"peer": target, "reporter": addr(reporter)},
                    evidence={"count": n, "code": code, "mtu": mtu}, verify=verify, stabilize=stab,
                    impact="traffic to that destination fails or stalls", score=float(n))
        b.items.append((f, _client_inode(b, idst, idport) if idst is not None and iproto == TCP else None))


def _flatline(b: Builder, fl: dict) -> None:
    iface = fl["iface"]
    f = Finding(id="packets.iface_flatline", category="network", severity="warning",
                title=f"Traffic on {iface} stopped: {fl['before_pps']:.0f} packets/s, then (almost) none for the last {fl['quiet_s']:.0f} s",
                subject={"iface": iface}, evidence=fl,
                verify=_q("ip", "-s", "link", "show", "dev", iface) + " ; " + _q("tcpdump", "-ni", iface, "-c", "20"),
                stabilize=["Check the link (ip link, ethtool), the peer and the upstream switch/router; check whether the sender died",
                           "Do not restart networking on a remote host you reach through this interface"],
                impact="whatever this interface carries is not flowing", score=fl["before_pps"])
    b.items.append((f, None))


def flatlines(series_by_iface: dict[str, list[float]], window_s: float) -> list[dict]:
    """Interfaces whose per-second packet counts were busy, then zero for the last seconds."""
    out = []
    for iface, counts in series_by_iface.items():
        quiet = 0
        floor = 0.05 * max(counts, default=0)       # "none": under 5 % of the busiest second
        for c in reversed(counts):
            if c > floor:
                break
            quiet += 1
        busy = counts[:len(counts) - quiet]
        if quiet < FLATLINE_QUIET_S or not busy:
            continue
        pps = sum(busy) / len(busy)
        if pps >= FLATLINE_MIN_PPS:
            out.append({"iface": iface, "before_pps": round(pps, 1), "quiet_s": quiet, "window_s": round(window_s, 1)})
    return out

"""Per-interface series and per-flow analysis from headers alone (the hot path after parse).

Definitions (Wireshark's, simplified):
- retransmission: a TCP segment carrying data whose end (seq + len) is not beyond the highest
  end seen in that direction; keep-alives and zero-window probes (1 byte ending at the highest
  end) are not counted. A direction's first packet only sets the baseline, so a capture that
  starts mid-flow counts nothing until each direction has been seen. Sequence numbers compare
  modulo 2**32 (wrap).
- duplicate ACK: a pure ACK (no data, SYN, FIN or RST) repeating the previous ACK number and
  window of its direction while the other direction has data beyond that ACK.
- zero window: an ACK advertising window 0 (not a RST or SYN).
- unanswered SYN: a connection attempt with no SYN-ACK and no RST back, retried or at least
  SYN_GRACE_S old at the end of the capture.
"""
from __future__ import annotations

import struct

from hostdiag.packets.parse import ACK, FIN, ICMP, ICMP6, RST, SYN, TCP, UDP, parse_frame

MASK = 0xFFFFFFFF
HALF = 1 << 31
SYN_GRACE_S = 1.0           # a SYN younger than this at the end may still be answered
DNS_SLOW_S = 0.5
DNS_GRACE_S = 2.0
MAX_FLOWS = 200_000         # flow-table bound; beyond it new flows are counted, not tracked
MAX_DNS_PENDING = 50_000
MAX_EXAMPLES = 10

_DNSHDR = struct.Struct("!HHH").unpack_from
_MTU4 = struct.Struct("!H").unpack_from
_MTU6 = struct.Struct("!I").unpack_from


class Dir:
    """One direction of a TCP connection."""

    __slots__ = ("t_first", "t_last", "pkts", "bytes", "max_end", "data_segs", "retrans", "dupacks",
                 "zerowin", "last_ack", "last_win", "syn", "syn_t", "synack", "rst")

    def __init__(self, ts: float):
        self.t_first = self.t_last = ts
        self.pkts = self.bytes = self.data_segs = self.retrans = self.dupacks = 0
        self.zerowin = self.syn = self.synack = self.rst = 0
        self.max_end = self.last_ack = self.last_win = None
        self.syn_t = None


def _after(a: int, b: int) -> bool:
    """a is beyond b in sequence space (mod 2**32)."""
    return a != b and ((a - b) & MASK) < HALF


def dns_question(msg) -> str | None:
    """The first question's name from a DNS message (no compression expected there)."""
    labels, i, total = [], 12, 0
    try:
        while True:
            n = msg[i]
            if n == 0:
                break
            if n & 0xC0 or total + n > 255:
                return None
            labels.append(bytes(msg[i + 1:i + 1 + n]).decode("ascii", "backslashreplace"))
            total += n + 1
            i += n + 1
    except IndexError:
        return None
    return ".".join(labels) + "." if labels else "."


def _inner(frame, off):
    """(src, dst, proto, dport) of the packet quoted in an ICMP error (often only 8 L4 bytes)."""
    try:
        v = frame[off] >> 4
        if v == 4:
            hl = (frame[off] & 15) * 4
            proto, src, dst, l4 = frame[off + 9], bytes(frame[off + 12:off + 16]), bytes(frame[off + 16:off + 20]), off + hl
        elif v == 6:
            proto, src, dst, l4 = frame[off + 6], bytes(frame[off + 8:off + 24]), bytes(frame[off + 24:off + 40]), off + 40
        else:
            return None, None, 0, 0
        if len(dst) not in (4, 16):
            return None, None, 0, 0
        dport = _MTU4(frame, l4 + 2)[0] if proto in (TCP, UDP) and len(frame) >= l4 + 4 else 0
        return src, dst, proto, dport
    except (IndexError, struct.error):
        return None, None, 0, 0


class Analyzer:
    """Feed frames with add(); call finish(t_end) once; read the result attributes."""

    def __init__(self, t0: float, flt=None):
        self.t0 = t0
        self.flt = flt
        self.frames = 0             # frames seen
        self.parsed = 0             # of which IP and counted
        self.ifaces: dict[str, dict[int, list[int]]] = {}     # iface -> second -> [pkts, bytes]
        self.dirs: dict[tuple, Dir] = {}
        self.other: dict[tuple, list] = {}                    # non-TCP flows -> [pkts, bytes]
        self.untracked = 0
        self.rsts: dict[tuple, dict] = {}                     # (svc addr, svc port) -> stats
        self.dns_pending: dict[tuple, tuple] = {}
        self.dns: dict[bytes, dict] = {}                      # server -> stats
        self.dns_raw: list[bytes] = []                        # failing/slow answers, dissected then dropped
        self.icmp: dict[tuple, list] = {}
        self.t_last = t0

    # -- hot path -------------------------------------------------------------------------
    def add(self, ts: float, iface: str, frame, linklayer: bool = True) -> None:
        self.frames += 1
        pkt = parse_frame(frame, linklayer)
        if pkt is None:
            return
        if self.flt is not None and not self.flt.matches(pkt):
            return
        self.parsed += 1
        self.t_last = ts
        fam, proto, src, dst, sport, dport, flags, seq, ack, win, plen, iplen, l4 = pkt
        sec = int(ts - self.t0)
        b = self.ifaces.get(iface)
        if b is None:
            b = self.ifaces[iface] = {}
        c = b.get(sec)
        if c is None:
            b[sec] = [1, iplen]
        else:
            c[0] += 1
            c[1] += iplen
        if proto == TCP:
            self._tcp(ts, src, sport, dst, dport, flags, seq, ack, win, plen, iplen)
            return
        key = (proto, src, sport, dst, dport)
        o = self.other.get(key)
        if o is None:
            if len(self.other) < MAX_FLOWS:
                self.other[key] = [1, iplen]
            else:
                self.untracked += 1
        else:
            o[0] += 1
            o[1] += iplen
        if proto == UDP and (sport == 53 or dport == 53):
            self._dns(ts, frame, l4 + 8, plen, src, sport, dst, dport)
        elif proto == ICMP or proto == ICMP6:
            self._icmp(frame, fam, src, sport, dport, l4)

    def _tcp(self, ts, src, sport, dst, dport, flags, seq, ack, win, plen, iplen):
        key = (src, sport, dst, dport)
        d = self.dirs.get(key)
        if d is None:
            if len(self.dirs) >= MAX_FLOWS:
                self.untracked += 1
                return
            d = self.dirs[key] = Dir(ts)
        d.t_last = ts
        d.pkts += 1
        d.bytes += iplen
        seglen = plen + (1 if flags & SYN else 0) + (1 if flags & FIN else 0)
        end = (seq + seglen) & MASK
        if flags & SYN:
            if flags & ACK:
                d.synack += 1
            else:
                d.syn += 1
                if d.syn_t is None:
                    d.syn_t = ts
        if flags & RST:
            d.rst += 1
            self._rst(ts, key, d, flags)
            return
        if d.max_end is None:
            d.max_end = end                      # the baseline: a mid-flow start counts nothing yet
        elif seglen:
            if _after(end, d.max_end):
                d.max_end = end
                if plen:
                    d.data_segs += 1
            elif plen > 1 or (plen == 1 and end != d.max_end):
                d.retrans += 1
                d.data_segs += 1
        if flags & ACK:
            if win == 0 and not flags & SYN:
                d.zerowin += 1
            elif not plen and not flags & (SYN | FIN) and ack == d.last_ack and win == d.last_win:
                rev = self.dirs.get((dst, dport, src, sport))
                if rev is not None and rev.max_end is not None and _after(rev.max_end, ack):
                    d.dupacks += 1
            d.last_ack, d.last_win = ack, win

    def _rst(self, ts, key, d, flags):
        src, sport, dst, dport = key
        rev = self.dirs.get((dst, dport, src, sport))
        if rev is not None and rev.syn:          # the other side connected: we are the service
            svc, peer, by_service = (src, sport), dst, True
        elif d.syn:                              # we connected and now reset our own attempt
            svc, peer, by_service = (dst, dport), src, False
        else:                                    # mid-flow: the lower port is the service
            by_service = sport <= dport
            svc, peer = ((src, sport), dst) if by_service else ((dst, dport), src)
        r = self.rsts.get(svc)
        if r is None:
            r = self.rsts[svc] = {"count": 0, "from_service": 0, "refused": 0, "peers": {},
                                  "t_first": ts, "t_last": ts}
        r["count"] += 1
        r["t_last"] = ts
        if by_service:
            r["from_service"] += 1
            if rev is not None and rev.syn and not d.synack:
                r["refused"] += 1                # RST answering a SYN: nothing listens there
        if len(r["peers"]) < 1000 or peer in r["peers"]:
            r["peers"][peer] = r["peers"].get(peer, 0) + 1

    def _dns(self, ts, frame, off, plen, src, sport, dst, dport):
        msg = frame[off:off + min(plen, 1500)]
        if len(msg) < 12:
            return
        qid, fl, _qd = _DNSHDR(msg, 0)
        if not fl & 0x8000:                      # a query
            if dport == 53 and len(self.dns_pending) < MAX_DNS_PENDING:
                self.dns_pending[(src, sport, dst, qid)] = (ts, dns_question(msg))
                s = self._dns_server(dst)
                s["queries"] += 1
            return
        if sport != 53:
            return
        s = self._dns_server(src)
        s["responses"] += 1
        if len(s["clients"]) < 100:
            s["clients"][(dst, dport)] = s["clients"].get((dst, dport), 0) + 1
        rcode = fl & 0xF
        q = self.dns_pending.pop((dst, dport, src, qid), None)
        name = dns_question(msg) or (q[1] if q else None)
        keep = False
        if rcode:
            s["rcodes"][rcode] = s["rcodes"].get(rcode, 0) + 1
            names = s["names"].setdefault(rcode, [])
            if name and len(names) < MAX_EXAMPLES and name not in names:
                names.append(name)
            keep = True
        if q is not None:
            lat = ts - q[0]
            s["answered"] += 1
            s["latency_max"] = max(s["latency_max"], lat)
            if lat >= DNS_SLOW_S:
                s["slow"] += 1
                if len(s["slow_names"]) < MAX_EXAMPLES:
                    s["slow_names"].append((name, round(lat, 3)))
                keep = True
        if keep and len(self.dns_raw) < MAX_EXAMPLES:
            self.dns_raw.append(bytes(msg))

    def _dns_server(self, server: bytes) -> dict:
        s = self.dns.get(server)
        if s is None:
            s = self.dns[server] = {"queries": 0, "responses": 0, "answered": 0, "rcodes": {}, "names": {},
                                    "slow": 0, "slow_names": [], "latency_max": 0.0, "unanswered": 0, "clients": {},
                                    "unanswered_names": []}
        return s

    def _icmp(self, frame, fam, reporter, typ, code, l4):
        if len(frame) < l4 + 8:     # an ICMP error is 8 bytes before the quoted packet: a runt says nothing
            return
        if fam == 4 and typ == 3:
            kind = "frag_needed" if code == 4 else "unreachable"
            mtu = _MTU4(frame, l4 + 6)[0] if code == 4 else None
        elif fam == 6 and typ == 1:
            kind, mtu = "unreachable", None
        elif fam == 6 and typ == 2:
            kind, mtu = "frag_needed", _MTU6(frame, l4 + 4)[0]
        else:
            return
        key = (kind, reporter, *_inner(frame, l4 + 8), code)
        e = self.icmp.get(key)
        if e is None:
            self.icmp[key] = [1, mtu]
        else:
            e[0] += 1

    # -- after the capture ----------------------------------------------------------------
    def finish(self, t_end: float) -> None:
        """Close the window: unanswered DNS queries older than the grace period."""
        self.t_end = t_end
        for (client, cport, server, _qid), (ts, name) in self.dns_pending.items():
            if t_end - ts >= DNS_GRACE_S:
                s = self._dns_server(server)
                s["unanswered"] += 1
                if name and len(s["unanswered_names"]) < MAX_EXAMPLES and name not in s["unanswered_names"]:
                    s["unanswered_names"].append(name)
        self.dns_pending.clear()

    def unanswered_syns(self) -> dict[tuple, dict]:
        """(dst, dport) -> {attempts, syns, clients: {(src, sport): syns}, t_first}."""
        out: dict[tuple, dict] = {}
        for (src, sport, dst, dport), d in self.dirs.items():
            if not d.syn or d.synack:
                continue
            rev = self.dirs.get((dst, dport, src, sport))
            if rev is not None and (rev.synack or rev.rst or rev.pkts):
                continue
            if d.syn < 2 and self.t_end - d.syn_t < SYN_GRACE_S:
                continue
            e = out.setdefault((dst, dport), {"attempts": 0, "syns": 0, "clients": {}, "t_first": d.syn_t})
            e["attempts"] += 1
            e["syns"] += d.syn
            e["t_first"] = min(e["t_first"], d.syn_t)
            if len(e["clients"]) < 1000:
                e["clients"][(src, sport)] = d.syn
        return out

    def series_points(self, iface: str, t_end: float) -> tuple[list[float], list[float], list[float]]:
        """Cumulative (t, packets, bytes) at each whole second of the window, t=0 first."""
        b = self.ifaces.get(iface, {})
        n = max(1, int(t_end - self.t0 + 0.999), max(b, default=-1) + 1)
        t, pk, by = [0.0], [0.0], [0.0]
        cp = cb = 0
        for sec in range(n):
            c = b.get(sec)
            if c:
                cp += c[0]
                cb += c[1]
            t.append(float(min(sec + 1, t_end - self.t0)))
            pk.append(float(cp))
            by.append(float(cb))
        return t, pk, by

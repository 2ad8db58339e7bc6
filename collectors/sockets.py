"""sockets: TCP sockets per state, CLOSE_WAIT/TIME_WAIT/SYN_RECV per process and port, listen
accept queues vs backlog, overflow/retransmit/reset rates, ephemeral port usage. Reads
/proc/net/{tcp,tcp6,netstat,snmp,sockstat}; root helps (socket owners of other users' processes)."""
from __future__ import annotations

import os
import socket
import struct
import sys
import time
from collections import Counter, defaultdict
from typing import Iterator, NamedTuple

from hostdiag.core import eta, tree
from hostdiag.core.context import Unavailable
from hostdiag.core.model import Finding
from hostdiag.core.thresholds import Threshold
from hostdiag.core.units import worst_severity

NAME = "sockets"
DEFAULT_ENABLED = True
NEEDS = {"procs", "fds"}   # socket inode -> owning pid comes from the shared fd scan
READS = ["/proc/net/tcp", "/proc/net/tcp6", "/proc/net/netstat", "/proc/net/snmp", "/proc/net/sockstat",
         "/proc/net/sockstat6", "/proc/sys/net/ipv4/ip_local_port_range",
         "/proc/sys/net/ipv4/tcp_max_tw_buckets", "netlink sock_diag (LISTEN sockets only: backlog)"]

# include/net/tcp_states.h; /proc/net/tcp prints them as two hex digits.
STATES = {1: "ESTABLISHED", 2: "SYN_SENT", 3: "SYN_RECV", 4: "FIN_WAIT1", 5: "FIN_WAIT2",
          6: "TIME_WAIT", 7: "CLOSE", 8: "CLOSE_WAIT", 9: "LAST_ACK", 10: "LISTEN", 11: "CLOSING",
          12: "NEW_SYN_RECV"}
_HEX_STATE = {f"{k:02X}": v for k, v in STATES.items()}
LISTEN, CLOSE_WAIT, TIME_WAIT, SYN_RECV = 10, 8, 6, 3

# (section, field) in /proc/net/netstat or /proc/net/snmp -> our counter name.
COUNTERS = {
    ("TcpExt", "ListenOverflows"): "listen_overflows",
    ("TcpExt", "ListenDrops"): "listen_drops",
    ("TcpExt", "TCPSynRetrans"): "syn_retrans",
    ("TcpExt", "TCPTimeWaitOverflow"): "tw_overflow",
    ("TcpExt", "TCPAbortOnTimeout"): "abort_on_timeout",
    ("Tcp", "RetransSegs"): "retrans_segs",
    ("Tcp", "OutSegs"): "out_segs",
    ("Tcp", "InSegs"): "in_segs",
    ("Tcp", "EstabResets"): "estab_resets",
    ("Tcp", "OutRsts"): "out_rsts",
    ("Tcp", "AttemptFails"): "attempt_fails",
    ("Tcp", "ActiveOpens"): "active_opens",
    ("Tcp", "PassiveOpens"): "passive_opens",
}
UNITS = {"tcp_sockets": ("count", False)} | {c: ("count", True) for c in COUNTERS.values()}

THRESHOLDS = {
    # CLOSE_WAIT is judged by headroom and growth, not by a fixed count: each socket holds one of the
    # owner's fds, so what breaks is the owner's RLIMIT_NOFILE. A pile is critical when it holds a
    # big share of that limit (close_wait_fd_pct) or grows toward it within minutes
    # (close_wait_eta_s). By count alone (this threshold) it is at most a warning when the owner's
    # limit is unknown, and only informational when the owner has plenty of headroom and it is static.
    "sockets.close_wait": Threshold(20, 200, "count",
                                    "CLOSE_WAIT sockets held by one process on one port (peer closed, app did "
                                    "not). Judged by the owner's headroom and growth, not this count: critical "
                                    "only via sockets.close_wait_fd_pct or sockets.close_wait_eta_s; by count "
                                    "alone at most a warning (owner's fd limit unknown, or growing), and info "
                                    "when static with the owner far from its fd limit"),
    "sockets.close_wait_fd_pct": Threshold(25, 50, "percent",
                                           "one owner's CLOSE_WAIT sockets as % of its own RLIMIT_NOFILE soft limit"),
    "sockets.close_wait_eta_s": eta.threshold("the CLOSE_WAIT owner's open fds reach its RLIMIT_NOFILE as its "
                                              "CLOSE_WAIT pile grows"),
    "sockets.ephemeral_ports_eta_s": eta.threshold("one local address uses every port of ip_local_port_range"),
    "sockets.time_wait_eta_s": eta.threshold("TIME_WAIT sockets reach net.ipv4.tcp_max_tw_buckets"),
    "sockets.accept_queue_pct": Threshold(80, 100, "percent",
                                          "listener accept-queue depth as % of its backlog (sustained over the window)"),
    "sockets.listen_overflows_per_s": Threshold(0.1, 10, "per second",
                                                "TcpExt ListenOverflows+ListenDrops rate during the window"),
    "sockets.retransmit_pct": Threshold(5, 15, "percent",
                                        "retransmitted data segments (RetransSegs - TCPSynRetrans) as % of OutSegs"),
    "sockets.ephemeral_ports_pct": Threshold(70, 90, "percent",
                                             "ports of ip_local_port_range in use by one local address or to one destination"),
    "sockets.time_wait_pct": Threshold(80, 95, "percent", "TIME_WAIT sockets as % of net.ipv4.tcp_max_tw_buckets"),
}
TOP = 10
# /proc/sys handlers allocate a buffer of the size asked for: a 64 MiB read() gets ENOMEM.
SYSCTL_LIMIT = 4096
# A retransmit % over a handful of segments is noise, not a storm.
MIN_RETRANS = 10
MIN_OUT_SEGS = 100
# Growth below these over the window is churn, not a trend.
MIN_CW_GROWTH = 10
MIN_PORT_GROWTH = 20
MIN_TW_GROWTH = 100
TRACK_PORTS = 20             # per tick: CLOSE_WAIT counts kept for this many ports per side
# One not-yet-accepted connection on a listen(1) socket is 100% and perfectly healthy.
MIN_QUEUE_DEPTH = 2


class TcpSock(NamedTuple):
    local: str          # address as the kernel prints it: hex, host byte order per 32-bit word
    lport: int
    remote: str
    rport: int
    state: int
    tx_queue: int       # LISTEN: 0 (the backlog is not in /proc/net/tcp; see listen_backlogs())
    rx_queue: int       # LISTEN: accept-queue depth; else unread bytes
    uid: int
    inode: int          # 0: not attached to a file (TIME_WAIT, or waiting in an accept queue)


def parse_tcp(text: str) -> Iterator[TcpSock]:
    """/proc/net/tcp or tcp6 text -> TcpSock per valid line. Skips the header and malformed lines."""
    for line in text.splitlines():
        parts = line.split(None, 10)
        if len(parts) < 10 or not parts[0].endswith(":"):
            continue
        try:
            laddr, _, lport = parts[1].partition(":")
            raddr, _, rport = parts[2].partition(":")
            tx, _, rx = parts[4].partition(":")
            yield TcpSock(laddr, int(lport, 16), raddr, int(rport, 16), int(parts[3], 16),
                          int(tx, 16), int(rx, 16), int(parts[7]), int(parts[9]))
        except ValueError:
            continue


def count_states(text: str, listeners: dict | None = None) -> Counter:
    """Cheap per-tick pass: state hex -> count; LISTEN lines' (addr, port, inode) -> depth into `listeners`."""
    c: Counter = Counter()
    for line in text.splitlines():
        parts = line.split(None, 5)
        if len(parts) < 5:
            continue
        st = parts[3]
        c[st] += 1
        if st == "0A" and listeners is not None:
            for s in parse_tcp(line):
                listeners[(s.local, s.lport, s.inode)] = s.rx_queue
    c.pop("st", None)  # the header line
    return c


def decode_addr(hexaddr: str, byteorder: str = sys.byteorder) -> str:
    """'0100007F' -> '127.0.0.1'; 32 hex digits -> IPv6. Each 32-bit word is in the byte order
    of the host that printed it (`byteorder`: see table_byteorder for a tree from elsewhere)."""
    try:
        raw = bytes.fromhex(hexaddr)
    except ValueError:
        return hexaddr
    if byteorder == "little":
        raw = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
    try:
        return socket.inet_ntop(socket.AF_INET if len(raw) == 4 else socket.AF_INET6, raw)
    except (ValueError, OSError):
        return hexaddr


def table_byteorder(text: str | None, default: str = sys.byteorder) -> str:
    """Byte order of the host whose /proc/net/tcp this is, told by 127.0.0.1: '0100007F' on a
    little-endian host, '7F000001' on a big-endian one (s390x). `default` if no socket says."""
    if text:
        if " 0100007F:" in text:
            return "little"
        if " 7F000001:" in text:
            return "big"
    return default


def parse_netstat(text: str) -> dict[str, dict[str, int]]:
    """/proc/net/netstat or /proc/net/snmp (header line + value line per section) -> {section: {field: n}}."""
    out: dict[str, dict[str, int]] = {}
    lines = text.splitlines()
    for head, vals in zip(lines, lines[1:]):
        hk, _, hrest = head.partition(":")
        vk, _, vrest = vals.partition(":")
        if hk != vk or not hk or hk in out:
            continue
        names, values = hrest.split(), vrest.split()
        if names and not names[0].lstrip("-").isdigit() and len(names) == len(values):
            sec = {}
            for n, v in zip(names, values):
                try:
                    sec[n] = int(v)
                except ValueError:
                    continue
            out[hk] = sec
    return out


def parse_sockstat(text: str) -> dict[str, int]:
    """'TCP: inuse 5 orphan 0 tw 2 alloc 7 mem 1' -> {'tcp_inuse': 5, ...}; 'sockets: used 15' too."""
    out: dict[str, int] = {}
    for line in text.splitlines():
        proto, _, rest = line.partition(":")
        toks = rest.split()
        for k, v in zip(toks[::2], toks[1::2]):
            if v.isdigit():
                out[f"{proto.strip().lower()}_{k}"] = int(v)
    return out


def parse_port_range(text: str) -> tuple[int, int] | None:
    """'32768\\t60999' -> (32768, 60999)."""
    try:
        lo, hi = (int(x) for x in text.split()[:2])
    except ValueError:
        return None
    return (lo, hi) if 0 < lo <= hi <= 65535 else None


def _counters(ctx, missing: list | None = None) -> dict[str, int]:
    out = {}
    for rel in ("net/netstat", "net/snmp"):
        text = tree.read_proc(ctx, rel, missing)
        if not text:
            continue
        parsed = parse_netstat(text)
        for (sec, field), name in COUNTERS.items():
            if field in parsed.get(sec, {}):
                out[name] = parsed[sec][field]
    return out


def _read_tcp(ctx, missing: list | None = None) -> tuple[str | None, str | None]:
    """IPv4 and IPv6 socket tables; either may be gone (a copied tree; tcp6 with IPv6 off)
    and the counters still count. Only tcp's absence is worth a blind spot."""
    text4 = tree.read_proc(ctx, "net/tcp", missing)
    text6 = ctx.read_optional(ctx.proc_path("net/tcp6"))
    return text4, text6


def _sockstat(ctx, missing: list | None = None) -> dict[str, int]:
    out = parse_sockstat(tree.read_proc(ctx, "net/sockstat", missing) or "")
    out.update(parse_sockstat(ctx.read_optional(ctx.proc_path("net/sockstat6")) or ""))
    return out


def sample(ctx, state):
    missing: list[str] = []
    text4, text6 = _read_tcp(ctx, missing)
    counters = _counters(ctx, missing)
    if text4 is None and text6 is None and not counters and not _sockstat(ctx, missing):
        raise Unavailable("; ".join(dict.fromkeys(missing)) + ": no TCP socket table or counter to read")
    listeners: dict = {}
    c: Counter = Counter()
    for text in (text4, text6):
        if text:
            c.update(count_states(text, listeners))
    out: dict = {f"tcp_sockets[state={_HEX_STATE.get(k, k)}]": n for k, n in c.items()}
    if text4 is not None or text6 is not None:
        for name in ("ESTABLISHED", "CLOSE_WAIT", "TIME_WAIT", "SYN_RECV", "LISTEN"):
            out.setdefault(f"tcp_sockets[state={name}]", 0)  # same series on every tick
    out.update(counters)
    if "port_range" not in state:
        state["port_range"] = parse_port_range(ctx.read_optional(ctx.proc_path("sys/net/ipv4/ip_local_port_range"),
                                                                 SYSCTL_LIMIT) or "")
        state["t0"] = time.monotonic()
    state.setdefault("ticks_detail", []).append((time.monotonic() - state["t0"],
                                                 tick_detail((text4, text6), state["port_range"])))
    for key, depth in listeners.items():
        state.setdefault("listen_depths", {}).setdefault(key, []).append(depth)
    state["ticks"] = state.get("ticks", 0) + 1
    state["last_text"] = (text4, text6)  # collect() reuses the last tick's read
    return out


def tick_detail(texts, port_range) -> dict:
    """Per tick: ephemeral ports in use per local address, CLOSE_WAIT per local and remote port
    (the growth rates for the time-to-limit of ports and of CLOSE_WAIT owners' fds)."""
    eph: dict[str, set[int]] = defaultdict(set)
    cw_l: Counter = Counter()
    cw_r: Counter = Counter()
    lo, hi = port_range or (1, 0)
    for text in texts:
        # split() only as far as the state column, like count_states: this runs every tick
        for line in (text or "").splitlines():
            parts = line.split(None, 4)
            if len(parts) < 5 or not parts[0].endswith(":"):
                continue
            local, _, lport = parts[1].rpartition(":")
            st = parts[3]
            try:
                lp = int(lport, 16)
                if st == "08":
                    cw_l[lp] += 1
                    cw_r[int(parts[2].rpartition(":")[2], 16)] += 1
            except ValueError:
                continue
            if st != "0A" and lo <= lp <= hi:
                eph[local].add(lp)
    return {"eph": {a: len(p) for a, p in eph.items()}, "cw_l": dict(cw_l.most_common(TRACK_PORTS)),
            "cw_r": dict(cw_r.most_common(TRACK_PORTS))}


# --- netlink sock_diag: the listen backlog is not in /proc/net/tcp ---------------------------
# For a LISTEN socket inet_diag reports idiag_rqueue = accept-queue depth and idiag_wqueue =
# sk_max_ack_backlog (net/ipv4/tcp_diag.c tcp_diag_get_info); ss shows them as Recv-Q/Send-Q.
# A dump request is read-only, works unprivileged, and we ask for LISTEN sockets only.
_NETLINK_SOCK_DIAG, _SOCK_DIAG_BY_FAMILY = 4, 20
_NLM_F_REQUEST, _NLM_F_DUMP = 0x1, 0x300
_NLMSG_DONE, _NLMSG_ERROR = 3, 2


def listen_backlogs(timeout_s: float = 1.0) -> dict[int, tuple[int, int]]:
    """inode -> (accept-queue depth, backlog) for every TCP LISTEN socket in our network namespace."""
    out: dict[int, tuple[int, int]] = {}
    with socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, _NETLINK_SOCK_DIAG) as nl:
        nl.settimeout(timeout_s)
        for seq, family in enumerate((socket.AF_INET, socket.AF_INET6), 1):
            req = struct.pack("=BBBBI", family, socket.IPPROTO_TCP, 0, 0, 1 << LISTEN) + bytes(48)
            nl.sendall(struct.pack("=IHHII", 16 + len(req), _SOCK_DIAG_BY_FAMILY,
                                   _NLM_F_REQUEST | _NLM_F_DUMP, seq, 0) + req)
            done = False
            while not done:
                buf = nl.recv(65536)
                off = 0
                while off + 16 <= len(buf):
                    ln, typ, _flags, rseq, _pid = struct.unpack_from("=IHHII", buf, off)
                    if ln < 16:
                        done = True
                        break
                    if typ in (_NLMSG_DONE, _NLMSG_ERROR):
                        done = True
                    elif rseq == seq and ln >= 16 + 72:
                        rq, wq, _uid, inode = struct.unpack_from("=IIII", buf, off + 16 + 56)
                        out[inode] = (rq, wq)
                    off += (ln + 3) & ~3
    return out


def _is_live_proc(ctx) -> bool:
    # netlink answers for the live host: never mix it into a fixture tree or a --proc-root elsewhere.
    return os.path.realpath(ctx.proc) == "/proc"


def _read_int(ctx, rel: str) -> int | None:
    text = ctx.read_optional(ctx.proc_path(rel), SYSCTL_LIMIT)
    try:
        return int(text.split()[0]) if text else None
    except (ValueError, IndexError):
        return None


def collect(job):
    ctx, state, scan = job.ctx, job.state, job.scan
    texts = state["last_text"] if "last_text" in state else _read_tcp(ctx)
    if texts == (None, None) and "ticks" not in state:
        sample(ctx, {})     # nothing sampled (a direct call): raises Unavailable if nothing is there
    if texts[0] is None:
        why = tree.read(ctx, ctx.proc_path("net/tcp"), 1)[1] or f"{ctx.proc_path('net/tcp')} not readable"
        job.blind_spot(f"{why}: " + ("IPv4 TCP sockets not listed (states, CLOSE_WAIT, listeners and "
                                             "ephemeral ports are IPv6 only)" if texts[1] is not None else
                                             "no TCP socket list: states, CLOSE_WAIT, listeners and ephemeral "
                                             "ports unknown; counters below"))
    owner = scan.socket_owner if scan is not None and scan.fds_scanned else {}
    range_missing: list[str] = []
    port_range = parse_port_range(tree.read_proc(ctx, "sys/net/ipv4/ip_local_port_range", range_missing,
                                                 SYSCTL_LIMIT) or "")
    if range_missing:
        job.blind_spot(f"{range_missing[0]}: ephemeral port use not judged")

    states: Counter = Counter()
    listeners: dict[tuple[str, int, int], dict] = {}   # SO_REUSEPORT: several per address:port
    listen_ports: set[int] = set()
    close_wait: list[TcpSock] = []
    tw_by_port: Counter = Counter()
    tw_socks: list[tuple[int, int]] = []
    syn_recv_by_port: Counter = Counter()
    eph_local: dict[str, set[int]] = defaultdict(set)
    eph_dest: Counter = Counter()
    families = 0
    for text in texts:
        if not text:
            continue
        families += 1
        for s in parse_tcp(text):
            states[s.state] += 1
            if s.state == LISTEN:
                listen_ports.add(s.lport)
                listeners[(s.local, s.lport, s.inode)] = {"inode": s.inode, "depth": s.rx_queue, "uid": s.uid}
            elif s.state == CLOSE_WAIT:
                close_wait.append(s)
            elif s.state == TIME_WAIT:
                tw_socks.append((s.lport, s.rport))
            elif s.state in (SYN_RECV, 12):
                syn_recv_by_port[s.lport] += 1
            if port_range and port_range[0] <= s.lport <= port_range[1] and s.state != LISTEN:
                eph_local[s.local].add(s.lport)
                eph_dest[(s.local, s.remote, s.rport)] += 1
    for lport, rport in tw_socks:  # group by the service port, whichever end it is
        tw_by_port[lport if _is_server_side(lport, rport, listen_ports, port_range) else rport] += 1

    data: dict = {
        "tcp_total": sum(states.values()),
        "states": {STATES.get(k, str(k)): n for k, n in sorted(states.items(), key=lambda kv: -kv[1])},
        "ipv6_table": texts[1] is not None,
    }
    if texts[0] is None:
        data["ipv4_table"] = False        # absent key: the usual case, IPv4 was read
    stat_missing: list[str] = []
    sockstat = _sockstat(ctx, stat_missing)
    if stat_missing:
        job.blind_spot(f"{stat_missing[0]}: no socket totals (orphans, TCP memory)")
    data["totals"] = {k: sockstat[k] for k in ("sockets_used", "tcp_inuse", "tcp_orphan", "tcp_tw", "tcp_alloc",
                                               "tcp_mem", "tcp6_inuse", "udp_inuse", "udp6_inuse")
                      if k in sockstat} or None

    # Owners: only where the shared fd scan could read the fd table.
    unreadable = scan.fd_unreadable if scan is not None else None
    if scan is None:
        job.blind_spot("no process scan: socket owners unknown")
    elif unreadable:
        job.blind_spot(f"fd tables of {unreadable} processes not readable: socket owners of their "
                       f"processes unknown: run as root")
    data["fd_tables_unreadable"] = unreadable
    listener_owner = {}
    for (_laddr, lport, inode) in listeners:
        if owner.get(inode) is not None:
            listener_owner[lport] = owner[inode]
    counters_missing: list[str] = []
    _counters(ctx, counters_missing)
    if counters_missing:
        job.blind_spot(f"{' and '.join(counters_missing)}: no listen-overflow, retransmit or reset counters")
    data["close_wait"] = _close_wait_rows(close_wait, owner, listen_ports, listener_owner, scan, port_range)
    _close_wait_headroom(data["close_wait"], scan, state.get("ticks_detail") or [], job.window_s)
    data["close_wait_total"] = states.get(CLOSE_WAIT, 0)
    data["time_wait_total"] = states.get(TIME_WAIT, 0)
    data["time_wait_by_port"] = [{"port": p, "count": n} for p, n in tw_by_port.most_common(5)]
    data["syn_recv_by_port"] = [{"port": p, "count": n} for p, n in syn_recv_by_port.most_common(5)]
    tw_max = _read_int(ctx, "sys/net/ipv4/tcp_max_tw_buckets")
    if tw_max is None and states.get(TIME_WAIT):
        job.blind_spot(f"{ctx.proc_path('sys/net/ipv4/tcp_max_tw_buckets')} not readable: TIME_WAIT not "
                       "judged against its limit")
    data["tw_buckets_max"] = tw_max
    data["time_wait_pct"] = round(states.get(TIME_WAIT, 0) / tw_max * 100, 1) if tw_max else None

    bo = table_byteorder(texts[0])
    data["listeners"] = _listeners(job, listeners, owner, scan, bo)
    data["ephemeral"] = _ephemeral(port_range, eph_local, eph_dest, bo)
    ticks = state.get("ticks_detail") or []
    busiest = (data["ephemeral"] or {}).get("busiest_local")
    if busiest and job.window_s > 0:
        addr = max(eph_local, key=lambda a: len(eph_local[a]))
        e = eta.time_to_limit([(t, d["eph"].get(addr, 0)) for t, d in ticks], data["ephemeral"]["size"],
                              current=len(eph_local[addr]), min_change=MIN_PORT_GROWTH)
        busiest.update(e.evidence())
    data["time_wait_eta"] = None
    tw = job.s("tcp_sockets[state=TIME_WAIT]")
    if tw_max and tw is not None and job.window_s > 0:
        e = eta.time_to_limit(tw, tw_max, current=states.get(TIME_WAIT, 0), min_change=MIN_TW_GROWTH)
        data["time_wait_eta"] = e.evidence() if e.eta_s is not None else None
    data["rates"] = _rates(job)
    data["window_s"] = job.window_s
    return data


def _short(text: str | None, n: int = 300) -> str | None:
    return text if text is None or len(text) <= n else text[:n] + "…"


def _name(scan, pid):
    p = scan.procs.get(pid) if scan is not None and pid is not None else None
    return p.name if p else None


def _is_server_side(lport: int, rport: int, listen_ports: set[int], port_range) -> bool:
    """Our end is the service end: it listens on lport, or lport is fixed and the peer's is ephemeral."""
    if lport in listen_ports:
        return True
    if rport in listen_ports or not port_range:
        return False
    lo, hi = port_range
    return not lo <= lport <= hi and lo <= rport <= hi


def _close_wait_rows(socks, owner, listen_ports, listener_owner, scan, port_range=None) -> list[dict]:
    groups: Counter = Counter()
    unaccepted: Counter = Counter()
    for s in socks:
        server = _is_server_side(s.lport, s.rport, listen_ports, port_range)
        port = s.lport if server else s.rport
        if s.inode == 0 and server:
            # Still in the accept queue: the peer gave up before the app accepted it.
            pid = listener_owner.get(s.lport)
            unaccepted[(pid, port, "server")] += 1
        else:
            pid = owner.get(s.inode)
        groups[(pid, port, "server" if server else "client")] += 1
    rows = []
    for (pid, port, side), n in groups.most_common(TOP):
        rows.append({"pid": pid, "name": _name(scan, pid), "port": port, "side": side, "count": n,
                     "not_accepted": unaccepted.get((pid, port, side), 0) or None,
                     "cmdline": _short(scan.cmdline(pid)) if scan is not None and pid is not None else None})
    return rows


def _close_wait_headroom(rows, scan, ticks, window_s) -> None:
    """Each CLOSE_WAIT row gets its owner's fd limit, the pile's share of it, its growth per second
    and the time until the owner's fds reach the limit at that growth."""
    for r in rows:
        p = scan.procs.get(r["pid"]) if scan is not None and r.get("pid") is not None else None
        limit, fds = (p.nofile_soft, p.fds) if p is not None else (None, None)
        r.update(owner_fd_limit=limit, owner_fds=fds,
                 fd_pct=round(r["count"] / limit * 100, 1) if limit else None,
                 per_s=None, eta_s=None, limit_fraction=round(fds / limit, 4) if limit and fds is not None else None)
        if window_s <= 0 or not ticks:
            continue
        side = "cw_l" if r.get("side") == "server" else "cw_r"
        pts = [(t, d[side].get(r["port"], 0)) for t, d in ticks]
        # The owner's fds climb with its CLOSE_WAIT pile: the limit is reached when the pile has
        # grown by the owner's remaining headroom.
        room = (limit - fds) if limit and fds is not None else None
        e = eta.time_to_limit(pts, None if room is None else r["count"] + room, current=r["count"],
                              min_change=MIN_CW_GROWTH)
        if room is None:   # no limit known: the growth still counts
            e = eta.time_to_limit(pts, r["count"] + 1, current=r["count"], min_change=MIN_CW_GROWTH)
            r["per_s"] = None if e.rate_per_s is None or e.rate_per_s <= 0 else round(e.rate_per_s, 2)
            continue
        r.update(per_s=None if e.rate_per_s is None or e.rate_per_s <= 0 else round(e.rate_per_s, 2),
                 eta_s=None if e.eta_s is None else round(e.eta_s, 1), measured_s=round(e.measured_s, 1))


def _listeners(job, listeners, owner, scan, bo: str = sys.byteorder) -> list[dict]:
    backlogs: dict[int, tuple[int, int]] = {}
    if listeners:
        if _is_live_proc(job.ctx):
            try:
                backlogs = job.bounded(listen_backlogs)
            except (OSError, TimeoutError) as e:
                job.blind_spot(f"listen backlogs not visible (sock_diag netlink: {e}): accept queues "
                               "shown without their limit; ss -ltn shows them")
        else:
            job.blind_spot("listen backlogs come from netlink sock_diag, not /proc: unknown for a --proc-root")
    depths = job.state.get("listen_depths", {})
    rows = []
    for (laddr, lport, inode), li in listeners.items():
        seen = depths.get((laddr, lport, inode)) or [li["depth"]]
        backlog = backlogs.get(li["inode"], (None, None))[1] if li["inode"] else None
        sustained = min(seen)
        pct = round(sustained / max(backlog, 1) * 100, 1) if backlog is not None else None
        pid = owner.get(li["inode"])
        rows.append({"port": lport, "address": decode_addr(laddr, bo), "pid": pid, "name": _name(scan, pid),
                     "queue": li["depth"], "queue_max": max(seen), "queue_min": sustained, "backlog": backlog,
                     "queue_pct": pct})
    rows.sort(key=lambda r: (r["queue_pct"] or 0, r["queue_max"]), reverse=True)
    for r in rows[:3]:
        if r["queue_max"] and r["pid"] is not None and scan is not None:
            r["cmdline"] = _short(scan.cmdline(r["pid"]))
    return rows[:TOP]


def _ephemeral(port_range, eph_local, eph_dest, bo: str = sys.byteorder) -> dict | None:
    if not port_range:
        return None
    size = port_range[1] - port_range[0] + 1
    out: dict = {"range": f"{port_range[0]}-{port_range[1]}", "size": size}
    if eph_local:
        addr, ports = max(eph_local.items(), key=lambda kv: len(kv[1]))
        out["busiest_local"] = {"address": decode_addr(addr, bo), "ports": len(ports),
                                "pct": round(len(ports) / size * 100, 1)}
    if eph_dest:
        (la, ra, rp), n = eph_dest.most_common(1)[0]
        out["busiest_destination"] = {"address": decode_addr(la, bo), "remote": f"{decode_addr(ra, bo)}:{rp}", "ports": n,
                                      "pct": round(n / size * 100, 1)}
    return out


_DELTAS = ("listen_overflows", "listen_drops", "retrans_segs", "out_segs", "syn_retrans", "tw_overflow")


def _rates(job) -> dict | None:
    """Counter deltas and rates over the window; None with --window 0 (no fake zeros)."""
    if job.window_s <= 0:
        return None
    out: dict = {}
    for name in COUNTERS.values():
        s = job.s(name)
        if s is None:
            continue
        r = s.rate()
        first, last = s.v[0], s.last()
        out[f"{name}_per_s"] = None if r is None else round(r, 2)
        if name in _DELTAS:
            out[f"{name}_delta"] = None if r is None or first is None or last is None else last - first
    return out or None


# --- findings --------------------------------------------------------------------------------
def findings(section, th):
    d = section.data
    out: list[Finding] = []
    out += _f_close_wait(d, th)
    out += _f_accept_queue(d, th)
    out += _f_retransmit(d, th)
    out += _f_ports(d, th)
    return out


def close_wait_level(row: dict, th) -> str | None:
    """Headroom and growth, not a fixed count (see THRESHOLDS['sockets.close_wait'])."""
    by_count = th.level("sockets.close_wait", row["count"])
    by_pct = th.level("sockets.close_wait_fd_pct", row.get("fd_pct"))
    by_eta = th.level("sockets.close_wait_eta_s", row.get("eta_s"))
    if by_count:
        if row.get("owner_fd_limit") is None:
            by_count = "warning"
        elif not row.get("per_s"):
            by_count = "info"       # static, and the owner is far from its limit
        else:
            by_count = "warning"    # growing, but not toward the limit within the hour
    return worst_severity((by_count, by_pct, by_eta))


def _f_close_wait(d, th):
    out = []
    for row in d.get("close_wait") or []:
        level = close_wait_level(row, th)
        if not level:
            continue
        port, pid, name = row["port"], row.get("pid"), row.get("name")
        server = row.get("side") == "server"
        # "run as root" only when unreadable fd tables are why (not a scan cut short, or a fixture tree)
        why = "owner not visible: run as root" if d.get("fd_tables_unreadable") else "owner not seen: see blind spots"
        who = f"{name} (pid {pid})" if pid is not None else f"an unknown process ({why})"
        subject = {"pid": pid, "name": name, "port": port} if pid is not None else {"port": port}
        flt = f"sport = :{port}" if server else f"dport = :{port}"
        head = ""
        if row.get("owner_fd_limit"):
            head = f" ({row['fd_pct']}% of its {row['owner_fd_limit']}-fd limit"
            head += f", +{row['per_s']:g}/s" if row.get("per_s") else ", not growing"
            head += (f"; fd limit reached in {eta.in_words(row['eta_s'])} at this rate)" if row.get("eta_s") is not None
                     and th.level("sockets.close_wait_eta_s", row["eta_s"]) else ")")
        elif row.get("per_s"):
            head = f" (+{row['per_s']:g}/s)"
        out.append(Finding(
            id="sockets.close_wait_leak", category="sockets", severity=level,
            title=f"{row['count']} sockets in CLOSE_WAIT held by {who} on "
                  f"{'its port' if server else 'connections to port'} {port}{head}",
            subject=subject,
            evidence=eta.compact({"close_wait": row["count"], "port": port, "side": row.get("side"),
                      "not_accepted": row.get("not_accepted"), "close_wait_total": d.get("close_wait_total"),
                      "cmdline": row.get("cmdline"), "owner_fd_limit": row.get("owner_fd_limit"),
                      "owner_fds": row.get("owner_fds"), "fd_pct": row.get("fd_pct"), "per_s": row.get("per_s"),
                      "rate_per_s": row.get("per_s"), "eta_s": row.get("eta_s"),
                      "limit": "owner's RLIMIT_NOFILE" if row.get("owner_fd_limit") else None,
                      "limit_fraction": row.get("limit_fraction")}),
            impact="each leaked socket holds an fd and kernel memory; the process drifts toward its fd limit "
                   "and peers see half-closed connections",
            verify=f"ss -tanp state close-wait '( {flt} )'",
            stabilize=["The app is not closing sockets after the peer closed: restart the holder off-peak "
                       "to release them (drain it from the load balancer first)",
                       "Look for a missing close() on an error or timeout path (connection pool, HTTP client "
                       "without a response-body close)",
                       "Do not tune tcp_fin_timeout for this: CLOSE_WAIT is waiting for the application, "
                       "not the kernel"],
            score=float(row["count"]) + (1e6 / max(row["eta_s"], 1.0) if row.get("eta_s") is not None else 0)))
    return out


def _f_accept_queue(d, th):
    out = []
    rates = d.get("rates") or {}
    drop_rate = None
    if rates.get("listen_overflows_per_s") is not None or rates.get("listen_drops_per_s") is not None:
        # ListenDrops already counts overflows on modern kernels; take the larger, not the sum.
        drop_rate = max(rates.get("listen_overflows_per_s") or 0, rates.get("listen_drops_per_s") or 0)
    rate_level = th.level("sockets.listen_overflows_per_s", drop_rate)
    listeners = d.get("listeners") or []
    full = []
    for li in listeners:
        lvl = th.level("sockets.accept_queue_pct", li.get("queue_pct"))
        if lvl and (li.get("queue_min") or 0) >= MIN_QUEUE_DEPTH:
            full.append((li, lvl))
    if rate_level and not full:
        busiest = max(listeners, key=lambda li: li.get("queue_max") or 0, default=None)
        full.append((busiest if busiest and busiest.get("queue_max") else None, None))
    for li, lvl in full:
        levels = [x for x in (lvl, rate_level) if x]
        severity = "critical" if "critical" in levels else "warning"
        ev = {"listen_overflows_per_s": rates.get("listen_overflows_per_s"),
              "listen_drops_per_s": rates.get("listen_drops_per_s"),
              "listen_overflows_delta": rates.get("listen_overflows_delta")}
        if li:
            port = li["port"]
            subject = {"port": port, "pid": li.get("pid"), "name": li.get("name")}
            ev.update({"queue": li.get("queue"), "queue_max": li.get("queue_max"), "backlog": li.get("backlog"),
                       "queue_pct": li.get("queue_pct"), "address": li.get("address")})
            who = f" ({li['name']}, pid {li['pid']})" if li.get("pid") is not None else ""
            q = (f"accept queue {li.get('queue_max')}/{li['backlog']}" if li.get("backlog") is not None
                 else f"accept queue {li.get('queue_max')}")
            title = f"Listener on port {port}{who} is not keeping up: {q}"
            verify = f"ss -ltn '( sport = :{port} )'   # Recv-Q vs Send-Q; then: nstat -az TcpExtListenOverflows"
        else:
            subject, port = {}, None
            title = "Connections are being dropped at a full listen queue"
            verify = "nstat -az TcpExtListenOverflows TcpExtListenDrops; ss -ltn   # Recv-Q vs Send-Q"
        if drop_rate:
            title += f"; {drop_rate:g} SYN/ACK drops/s (ListenOverflows/ListenDrops)"
        out.append(Finding(
            id="sockets.accept_queue_overflow", category="sockets", severity=severity, title=title,
            subject={k: v for k, v in subject.items() if v is not None}, evidence=ev,
            impact="new connections are dropped at the kernel: clients see connect timeouts and 1 s, 3 s, 7 s "
                   "SYN retry delays while the service looks up",
            verify=verify,
            stabilize=["The application is not calling accept() fast enough: check whether its worker pool is "
                       "exhausted or blocked (thread dump, slow dependency)",
                       "Restart or scale out the listener off-peak if it is wedged; shed load at the balancer",
                       "Raise the listen backlog (app setting plus net.core.somaxconn) only as a buffer for bursts",
                       "Do not just raise somaxconn/backlog for a listener that has stopped accepting: the queue "
                       "fills anyway and clients wait longer before failing"],
            score=float((li or {}).get("queue_pct") or 0) + float(drop_rate or 0)))
    return out


def _f_retransmit(d, th):
    r = d.get("rates") or {}
    retrans, out_segs, syn = r.get("retrans_segs_delta"), r.get("out_segs_delta"), r.get("syn_retrans_delta") or 0
    if retrans is None or not out_segs:
        return []
    data_retrans = max(0, retrans - syn)  # SYN retries to a dead peer are not a loss storm
    if data_retrans < MIN_RETRANS or out_segs < MIN_OUT_SEGS:
        return []
    pct = round(data_retrans / out_segs * 100, 1)
    level = th.level("sockets.retransmit_pct", pct)
    if not level:
        return []
    return [Finding(
        id="sockets.retransmit_storm", category="sockets", severity=level,
        title=f"{pct}% of TCP segments retransmitted during the window ({data_retrans} of {out_segs})",
        evidence={"retransmit_pct": pct, "retrans_segs": data_retrans, "out_segs": out_segs, "syn_retrans": syn,
                  "retrans_segs_per_s": r.get("retrans_segs_per_s"), "estab_resets_per_s": r.get("estab_resets_per_s")},
        impact="packet loss or a congested/overloaded path: throughput collapses and request latency spikes",
        verify="nstat -az TcpRetransSegs TcpOutSegs; ss -ti | grep -E 'retrans|rtt'   # which peers",
        stabilize=["Find the peers with retransmits (ss -ti) and check the path: NIC errors (ip -s link), "
                   "a saturated link, a failing switch port or a congested peer",
                   "Move traffic off the bad path or host if one peer or interface stands out",
                   "Do not raise TCP buffers or retry counts: that adds load to a lossy path"],
        score=pct)]


def _f_ports(d, th):
    out = []
    eph = d.get("ephemeral") or {}
    cands = [(k, eph.get(k)) for k in ("busiest_destination", "busiest_local") if eph.get(k)]
    if cands:
        key, row = max(cands, key=lambda kv: kv[1]["pct"])
        local = eph.get("busiest_local") or {}
        l_eta = th.level("sockets.ephemeral_ports_eta_s", local.get("eta_s"))
        if l_eta and th.level("sockets.ephemeral_ports_pct", row["pct"]) is None:
            key, row = "busiest_local", local
        level = worst_severity((th.level("sockets.ephemeral_ports_pct", row["pct"]), l_eta))
        if level:
            dest = row.get("remote")
            subject = {"local_address": row["address"], "port_range": eph["range"]}
            if key == "busiest_destination":
                subject["remote"] = dest
            tw = d.get("time_wait_total") or 0
            out.append(Finding(
                id="sockets.ephemeral_port_exhaustion", category="sockets", severity=level,
                title=f"{row['ports']} of {eph['size']} ephemeral ports ({row['pct']}%) in use from {row['address']}"
                      + (f" to {dest}" if key == "busiest_destination" else "") + f"; {tw} in TIME_WAIT"
                      + (f"; all used in {eta.in_words(local['eta_s'])} at this rate (+{local['rate_per_s']:g}/s)"
                         if l_eta else ""),
                subject=subject, evidence={"ports": row["ports"], "range": eph["range"], "pct": row["pct"],
                                           "time_wait_total": tw, "scope": key, "limit": "ip_local_port_range",
                                           "eta_s": local.get("eta_s"), "rate_per_s": local.get("rate_per_s"),
                                           "measured_s": local.get("measured_s"),
                                           "limit_fraction": round(row["pct"] / 100, 4)},
                impact="outgoing connects start failing with EADDRNOTAVAIL ('Cannot assign requested address')",
                verify="ss -tan state time-wait | wc -l; ss -tan | awk '{print $5}' | sort | uniq -c | sort -rn | head; "
                       "sysctl net.ipv4.ip_local_port_range",
                stabilize=["Reuse connections (keep-alive, connection pooling) in the client that opens them",
                           "Widen net.ipv4.ip_local_port_range, or spread load over more destination IPs/ports",
                           "Enable net.ipv4.tcp_tw_reuse=1 for outgoing connections if not already on",
                           "Do not enable tcp_tw_recycle (removed in 4.12; it broke clients behind NAT) or shorten "
                           "TIME_WAIT by other hacks: TIME_WAIT protects against stray old segments"],
                score=row["pct"] + (1e6 / max(local["eta_s"], 1.0) if l_eta else 0)))
    pct = d.get("time_wait_pct")
    r = d.get("rates") or {}
    level = th.level("sockets.time_wait_pct", pct)
    if (r.get("tw_overflow_delta") or 0) > 0:
        level = "critical" if level == "critical" else "warning"
    te = d.get("time_wait_eta") or {}
    l_eta = th.level("sockets.time_wait_eta_s", te.get("eta_s"))
    level = worst_severity((level, l_eta))
    if level:
        out.append(Finding(
            id="sockets.time_wait_exhaustion", category="sockets", severity=level,
            title=f"{d.get('time_wait_total')} TIME_WAIT sockets = {pct}% of tcp_max_tw_buckets "
                  f"({d.get('tw_buckets_max')})"
                  + (f"; reached in {eta.in_words(te['eta_s'])} at this rate (+{te['rate_per_s']:g}/s)" if l_eta else ""),
            subject={"port": d["time_wait_by_port"][0]["port"]} if d.get("time_wait_by_port") else {},
            evidence={"time_wait_total": d.get("time_wait_total"), "tw_buckets_max": d.get("tw_buckets_max"),
                      "time_wait_pct": pct, "tw_overflow_delta": r.get("tw_overflow_delta"),
                      "time_wait_by_port": d.get("time_wait_by_port"), "limit": "net.ipv4.tcp_max_tw_buckets",
                      "eta_s": te.get("eta_s"), "rate_per_s": te.get("rate_per_s"),
                      "limit_fraction": round(pct / 100, 4) if pct is not None else None},
            impact="past the bucket limit the kernel destroys TIME_WAIT early (TCPTimeWaitOverflow): stray "
                   "segments can corrupt new connections; usually a sign of connection churn",
            verify="ss -s; nstat -az TcpExtTCPTimeWaitOverflow",
            stabilize=["Find the churning client or server port (time_wait_by_port) and add connection reuse",
                       "Do not raise tcp_max_tw_buckets without fixing the churn: it only moves the limit"],
            score=float(pct or 0)))
    return out

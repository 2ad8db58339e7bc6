"""`hostdiag packets [SECONDS]`: a short passive capture turned into findings.

run(opts, ctx) -> PacketReport is the API the analysis layer calls for `snapshot --packets`.
Without root/CAP_NET_RAW it says so (a blind spot) and falls back to /proc/net/dev counters.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

from hostdiag.core.model import Finding, Series

DEFAULT_BUDGET = 200_000


@dataclass
class Options:
    seconds: float = 5.0
    ifaces: list[str] | None = None
    filter: str | None = None
    budget: int = DEFAULT_BUDGET
    promisc: bool = False
    pcap_in: str | None = None
    pcap_out: str | None = None
    top: int = 10


@dataclass
class PacketReport:
    status: str                                   # ok | partial | unavailable
    findings: list[Finding] = field(default_factory=list)
    series: dict[str, Series] = field(default_factory=dict)
    stats: dict = field(default_factory=dict)
    blind_spots: list[str] = field(default_factory=list)
    summary: dict = field(default_factory=dict)   # per-interface totals, top talkers

    def section(self, duration_s: float = 0.0):
        """The capture as a snapshot Section named "packets" (for `snapshot --packets`)."""
        from hostdiag.core.model import Section

        return Section("packets", self.status, "; ".join(self.blind_spots) or None, duration_s,
                       {"stats": self.stats, "summary": self.summary}, list(self.blind_spots))

    def to_dict(self) -> dict:
        from hostdiag.core.sanitize import deep

        return deep({"status": self.status, "findings": [asdict(f) for f in self.findings],
                     "stats": self.stats, "blind_spots": self.blind_spots, "summary": self.summary,
                     "series": {k: asdict(s) for k, s in self.series.items()}})


def run(opts: Options, ctx) -> PacketReport:
    """Capture (or read --pcap-in), analyse, build findings. ValueError only for bad options."""
    from hostdiag.packets import bpf, capture, findings, pcap
    from hostdiag.packets.flows import Analyzer

    flt = bpf.parse_filter(opts.filter)
    if opts.budget < 1:
        raise ValueError("--budget must be at least 1")
    blind: list[str] = []
    writer = None
    if opts.pcap_in:
        an = Analyzer(0.0, flt)
        first = None
        try:
            for ts, frame, ll in pcap.read_pcap(opts.pcap_in, opts.budget):
                if first is None:
                    first = an.t0 = ts
                an.add(ts, "pcap", frame, ll)
        except (pcap.PcapError, OSError) as e:
            return PacketReport("unavailable", blind_spots=[f"--pcap-in {e}"])
        t_end = an.t_last if first is not None else 0.0
        stats = {"source": "pcap", "frames": an.frames, "analysed": an.parsed,
                 "budget_hit": an.frames >= opts.budget, "duration_s": round(t_end - an.t0, 3)}
        if stats["budget_hit"]:
            blind.append(f"sampled: first {an.frames} packets of the file (--budget)")
        an.finish(t_end)
        smap = None
        window = max(t_end - an.t0, 1e-3)
        iface_hint = "any"
    else:
        if opts.pcap_out:
            writer = pcap.PcapWriter(opts.pcap_out)
        smap = findings.SockMap(ctx)
        smap.sample()
        t0 = time.time()
        an = Analyzer(t0, None)       # the kernel already applied the filter

        def on_frame(ts, iface, frame, ll, _add=an.add):
            _add(ts, iface, frame, ll)
            if writer is not None:
                writer.write(ts, frame, ll)

        try:
            st = capture.capture(opts.seconds, flt, opts.ifaces, opts.budget, on_frame,
                                 promisc=opts.promisc, tick=smap.sample)
        except capture.CaptureUnavailable as e:
            if writer is not None:
                writer.abort()
            return _fallback(opts, ctx, str(e))
        if writer is not None:
            writer.close()
        smap.sample()
        t_end = t0 + st.duration_s
        an.finish(t_end)
        window = st.duration_s
        offered = st.kernel_packets
        stats = {"source": "live", "received": st.received, "kernel_packets": offered,
                 "kernel_drops": st.kernel_drops, "budget": opts.budget, "budget_hit": st.budget_hit,
                 "duration_s": round(st.duration_s, 3), "ifaces": st.ifaces, "promisc": st.promisc,
                 "rcvbuf_bytes": st.rcvbuf, "filter": flt.text or None, "pcap_out": opts.pcap_out}
        if st.kernel_drops or st.budget_hit or offered - st.kernel_drops > st.received:
            why = []
            if st.kernel_drops:
                why.append(f"{st.kernel_drops} dropped by the kernel (receive buffer full)")
            if st.budget_hit:
                why.append(f"packet budget {opts.budget} reached after {st.duration_s:.1f} s")
            blind.append(f"sampled: {st.received} of {max(offered, st.received)} packets"
                         + (f" ({'; '.join(why)})" if why else ""))
        blind.extend(smap.errors)
        iface_hint = opts.ifaces[0] if opts.ifaces and len(opts.ifaces) == 1 else "any"
    series, per_sec = _series(an, t_end, [] if opts.pcap_in else opts.ifaces or [])
    flats = findings.flatlines(per_sec, window)
    found = findings.build(an, smap, window, iface_hint, flats)
    status = "partial" if blind else "ok"
    return PacketReport(status, found, series, stats, blind, _summary(an, window, opts.top))


def _series(an, t_end, named: list[str]):
    """Cumulative counters per interface; a named interface that carried nothing gets zeros."""
    out, per_sec = {}, {}
    for iface in sorted(set(an.ifaces) | set(named)):
        t, pk, by = an.series_points(iface, t_end)
        for metric, v, unit in (("packets.captured_packets", pk, "count"), ("packets.captured_bytes", by, "bytes")):
            s = Series(metric, unit, t, v, {"iface": iface}, counter=True, t0=an.t0)
            out[s.key] = s
        per_sec[iface] = [b - a for a, b in zip(pk, pk[1:])]
    return out, per_sec


def _summary(an, window: float, top: int) -> dict:
    from hostdiag.packets.parse import endpoint

    flows = [("tcp", k, d.pkts, d.bytes) for k, d in an.dirs.items()]
    flows += [({17: "udp", 1: "icmp", 58: "icmp6"}.get(k[0], str(k[0])), k[1:], v[0], v[1]) for k, v in an.other.items()]
    flows.sort(key=lambda x: -x[3])
    talkers = [{"proto": p, "src": endpoint(k[0], k[1]), "dst": endpoint(k[2], k[3]), "packets": n, "bytes": b,
                "bytes_per_s": round(b / max(window, 1e-3), 1)} for p, k, n, b in flows[:top]]
    ifaces = {}
    for iface, secs in an.ifaces.items():
        p = sum(c[0] for c in secs.values())
        b = sum(c[1] for c in secs.values())
        ifaces[iface] = {"packets": p, "bytes": b, "packets_per_s": round(p / max(window, 1e-3), 1),
                         "bytes_per_s": round(b / max(window, 1e-3), 1)}
    return {"ifaces": ifaces, "top_talkers": talkers, "tcp_flows": len(an.dirs), "other_flows": len(an.other),
            "untracked_packets": an.untracked}


def _fallback(opts: Options, ctx, reason: str) -> PacketReport:
    """No capture: per-interface counters from /proc/net/dev over the same window."""
    t0 = time.time()
    samples = []
    end = time.monotonic() + opts.seconds
    while True:
        samples.append((time.time() - t0, _netdev(ctx)))
        left = end - time.monotonic()
        if left <= 0:
            break
        time.sleep(min(1.0, left))
    series = {}
    for iface in sorted(samples[-1][1]):
        for i, (metric, unit) in enumerate((("packets.dev_packets", "count"), ("packets.dev_bytes", "bytes"))):
            s = Series(metric, unit, [t for t, _ in samples], [float(d[iface][i]) if iface in d else None for _, d in samples],
                       {"iface": iface}, counter=True, t0=t0)
            series[s.key] = s
    blind = [f"packets {reason}; showing /proc/net/dev counters only (no flows, peers or processes)"]
    return PacketReport("unavailable", [], series, {"source": "/proc/net/dev", "duration_s": round(samples[-1][0], 3)},
                        blind, {})


def _netdev(ctx) -> dict[str, tuple[int, int]]:
    """iface -> (rx+tx packets, rx+tx bytes)."""
    out = {}
    try:
        text = ctx.read(ctx.proc_path("net", "dev"), limit=4 << 20)
    except OSError:
        return out
    for line in text.splitlines()[2:]:
        name, _, rest = line.partition(":")
        f = rest.split()
        if len(f) >= 16 and all(x.isdigit() for x in f[:16]):
            out[name.strip()] = (int(f[1]) + int(f[9]), int(f[0]) + int(f[8]))
    return out


def render_plain(r: PacketReport) -> str:
    from hostdiag.core.sanitize import clean
    from hostdiag.core.units import human_bytes

    lines = [f"Packets: {r.status}" + (f" ({r.stats.get('source')}, {r.stats.get('duration_s', 0):.1f} s)" if r.stats else "")]
    if r.stats.get("source") == "live":
        lines.append(f"  read {r.stats['received']} of {r.stats['kernel_packets']} packets, kernel drops {r.stats['kernel_drops']}, "
                     f"budget {r.stats['budget']}{' (hit)' if r.stats['budget_hit'] else ''}")
    for b in r.blind_spots:
        lines.append(f"  cannot see: {clean(b)}")
    lines.append("")
    lines.append("Findings:" if r.findings else "Findings: none from the packets seen")
    for f in r.findings:
        proc = f.subject.get("process")
        who = f" [process {clean(str(proc))} pid {f.subject.get('pid')}]" if proc else ""
        lines.append(f"  {f.severity.upper():8s} {clean(f.title)}{who}")
        lines.append(f"           verify: {clean(f.verify)}")
        for s in f.stabilize:
            lines.append(f"           - {clean(s)}")
    if r.summary.get("ifaces"):
        lines.append("")
        lines.append("Interfaces (captured):")
        for iface, d in sorted(r.summary["ifaces"].items()):
            lines.append(f"  {clean(iface):12s} {d['packets_per_s']:>10.1f} pkt/s {human_bytes(d['bytes_per_s']):>10s}/s")
    elif r.series:
        lines.append("")
        lines.append("Interfaces (/proc/net/dev, rx+tx):")
        for key, s in sorted(r.series.items()):
            if s.metric == "packets.dev_packets":
                rate = s.rate()
                lines.append(f"  {clean(s.labels['iface']):12s} {rate if rate is not None else 0:>10.1f} pkt/s")
    if r.summary.get("top_talkers"):
        lines.append("")
        lines.append("Top talkers:")
        for t in r.summary["top_talkers"]:
            lines.append(f"  {t['proto']:5s} {t['src']:>28s} > {t['dst']:<28s} {t['packets']:>8d} pkts {human_bytes(t['bytes']):>10s}")
    return "\n".join(lines) + "\n"

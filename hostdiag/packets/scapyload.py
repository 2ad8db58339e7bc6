"""Import scapy so that it writes nothing (it is optional: `pip install hostdiag[packets]`).

scapy 2.8 creates ~/.config/scapy and ~/.cache/scapy/*.pickle when `scapy.main` is imported,
which happens as soon as a layer module loads its data tables (scapy.data.scapy_data_cache).
No setting turns that off, so a stub `scapy.main` saying "no config or cache folder" is put in
sys.modules first; the layers then load their tables uncached. Promiscuous sniffing is switched
off too, though hostdiag never sniffs with scapy. Verified with strace in tests/packets.
"""
from __future__ import annotations

import sys
import types


def load():
    """Return the scapy.layers.dns module, or None when scapy is not installed."""
    if "scapy.main" not in sys.modules:
        stub = types.ModuleType("scapy.main")
        stub.SCAPY_CONFIG_FOLDER = stub.SCAPY_CACHE_FOLDER = None
        stub.DEFAULT_PRESTART_FILE = stub.DEFAULT_STARTUP_FILE = None
        sys.modules["scapy.main"] = stub
    try:
        from scapy.config import conf
        conf.sniff_promisc = False
        conf.logLevel = 40
        import scapy.layers.dns as dns
        import scapy.layers.inet  # noqa: F401 - tests craft IP/TCP/UDP with it
        import scapy.layers.inet6  # noqa: F401
        import scapy.utils  # noqa: F401 - wrpcap in tests
    except ImportError:
        return None
    return dns


def dissect_dns(msgs: list[bytes], limit: int = 10) -> list[dict]:
    """Question, rcode and answers of a few DNS responses (scapy), or [] without scapy."""
    dns = load()
    if dns is None:
        return []
    out = []
    for m in msgs[:limit]:
        try:
            p = dns.DNS(m)
            q = p.qd[0].qname.decode("ascii", "backslashreplace") if p.qdcount and p.qd else None
            ans = []
            for rr in (p.an or [])[:5]:
                ans.append(f"{rr.rrname.decode('ascii', 'backslashreplace')} {rr.sprintf('%type%')} {rr.rdata}")
            out.append({"qname": q, "rcode": p.sprintf("%rcode%"), "answers": ans})
        except Exception:   # noqa: BLE001 - a malformed answer is skipped, not fatal
            continue
    return out

"""Packets: a short, passive, bounded capture turned into findings.

capture.py (raw AF_PACKET socket + in-kernel classic BPF), bpf.py (the --filter grammar and the
BPF assembler), parse.py (struct header parsing), flows.py (per-interface series, per-flow
analysis), findings.py (Finding objects with peer, port and process), pcap.py (pcap in/out),
scapyload.py (scapy imported so that it writes nothing). The entry point is
hostdiag.commands.packets.run(opts, ctx) -> PacketReport.
"""

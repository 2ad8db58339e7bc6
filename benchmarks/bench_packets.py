"""Packet capture and analysis speed (root, loopback only).

1. analysis: frames/s through parse + flow analysis on one core, for a synthetic mix held in
   memory (TCP bulk both ways, UDP, DNS), against two baselines measured in the same run: the bare
   struct parse (parse_frame) and scapy's dissection (Ether(frame)) of the same frames.
2. live: a generator process offers UDP on loopback at 50k and 200k packets/s (as it can on this
   machine: the achieved rate is printed) for 5 s while `hostdiag packets 5 --iface lo --filter
   'port P' --budget 2000000 --json` captures; reported: packets read, kernel drops, hostdiag CPU (user+sys from
   wait4) per 10,000 packets read.
3. wall: `hostdiag packets 5` on the host as it is.
Medians of --runs runs.

    .venv/bin/python benchmarks/bench_packets.py [--runs 3] [--quick]
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import struct
import subprocess
import sys
import time

HOSTDIAG = [sys.executable, "-m", "hostdiag"]
GENERATOR: list[str] = []


def synthetic(n: int) -> list[bytes]:
    eth = b"\0" * 12 + b"\x08\x00"
    out = []
    a, b = bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2])
    for i in range(n):
        k = i % 10
        if k < 6:       # bulk data a -> b over 8 flows
            ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 1040, 0, 0x4000, 64, 6, 0, a, b)
            l4 = struct.pack("!HHIIBBHHH", 40000 + i % 8, 443, (i * 1000) & 0xFFFFFFFF, 1, 0x50, 0x10, 500, 0, 0)
        elif k < 9:     # ACKs back
            ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 40, 0, 0x4000, 64, 6, 0, b, a)
            l4 = struct.pack("!HHIIBBHHH", 443, 40000 + i % 8, 1, (i * 1000) & 0xFFFFFFFF, 0x50, 0x10, 500, 0, 0)
        else:           # DNS query
            q = struct.pack("!HHHHHH", i & 0xFFFF, 0x0100, 1, 0, 0, 0) + b"\x03www\x07example\x03com\x00\x00\x01\x00\x01"
            ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 28 + len(q), 0, 0, 64, 17, 0, a, b)
            l4 = struct.pack("!HHHH", 50000 + i % 100, 53, 8 + len(q), 0) + q
        out.append((eth + ip + l4)[:128])
    return out


def bench_analysis(runs: int, n: int) -> dict:
    from hostdiag.packets.flows import Analyzer
    from hostdiag.packets.parse import parse_frame

    frames = synthetic(n)
    parse, full = [], []
    for _ in range(runs):
        t = time.perf_counter()
        for f in frames:
            parse_frame(f)
        parse.append(n / (time.perf_counter() - t))
        an = Analyzer(0.0)
        t = time.perf_counter()
        ts = 0.0
        for f in frames:
            ts += 1e-5
            an.add(ts, "lo", f)
        full.append(n / (time.perf_counter() - t))
    res = {"frames": n, "parse_pps": statistics.median(parse), "analysis_pps": statistics.median(full)}
    try:
        from hostdiag.packets import scapyload

        if scapyload.load() is not None:
            from scapy.layers.l2 import Ether

            m = 3000
            t = time.perf_counter()
            for f in frames[:m]:
                Ether(f)
            res["scapy_dissect_pps"] = m / (time.perf_counter() - t)
    except Exception as e:  # noqa: BLE001
        res["scapy_error"] = repr(e)
    return res


GEN = r"""
import socket, sys, time
rate, secs, port = float(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 22)
dst, payload = ("127.0.0.1", port), b"g" * 64
sent, t0 = 0, time.monotonic()
end = t0 + secs
send = u.sendto
while True:
    now = time.monotonic()
    if now >= end: break
    due = int((now - t0) * rate)
    while sent < due:
        try: send(payload, dst); sent += 1
        except OSError: due -= 1          # not sent (buffer full): counts neither as sent nor as due

    if sent >= due: time.sleep(0.0005)
print(sent, flush=True)
"""


CGEN = r"""
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec / 1e9; }
int main(int argc, char **argv) {
    double rate = atof(argv[1]), secs = atof(argv[2]);
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[3]))};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    connect(fd, (struct sockaddr *)&a, sizeof a);
    char buf[64]; memset(buf, 'g', sizeof buf);
    struct mmsghdr m[64]; struct iovec v = {buf, sizeof buf};
    memset(m, 0, sizeof m);
    for (int i = 0; i < 64; i++) { m[i].msg_hdr.msg_iov = &v; m[i].msg_hdr.msg_iovlen = 1; }
    long sent = 0; double t0 = now(), t;
    while ((t = now()) < t0 + secs) {
        long due = (long)((t - t0) * rate) - sent;
        if (due <= 0) { struct timespec z = {0, 200000}; nanosleep(&z, 0); continue; }
        int r = sendmmsg(fd, m, due > 64 ? 64 : due, 0);
        if (r > 0) sent += r;
    }
    printf("%ld\n", sent);
    return 0;
}
"""


def generator() -> list[str]:
    """A C sendmmsg generator (Python alone cannot offer 200k packets/s while a capture holds the
    other core here); falls back to the Python one without a compiler."""
    import shutil
    import tempfile

    cc = shutil.which("cc") or shutil.which("gcc")
    if cc:
        d = tempfile.mkdtemp(prefix="hd-bench-")
        src, exe = os.path.join(d, "gen.c"), os.path.join(d, "gen")
        with open(src, "w") as f:
            f.write(CGEN)
        if subprocess.run([cc, "-O2", "-o", exe, src], capture_output=True).returncode == 0:
            return [exe]
    return [sys.executable, "-c", GEN]


def run_capture(args: list[str]) -> tuple[dict, float, float]:
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    t = time.monotonic()
    p = subprocess.Popen([*HOSTDIAG, "packets", *args, "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    out = p.stdout.read()
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.monotonic() - t
    return json.loads(out), wall, ru.ru_utime + ru.ru_stime


def bench_live(rate: float, secs: float = 5.0) -> dict:
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.bind(("127.0.0.1", 0))
    sink.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)   # an open port: no ICMP unreachable
    port = sink.getsockname()[1]
    cap_env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    t = time.monotonic()
    gen = subprocess.Popen([*GENERATOR, str(rate), str(secs + 2.0), str(port)], stdout=subprocess.PIPE, text=True)
    # --budget above 5 s x 200k: this measures drops, not the default budget (200,000 = 4 s at 50k pps)
    cap = subprocess.Popen([*HOSTDIAG, "packets", str(secs), "--iface", "lo", "--filter", f"port {port}", "--json",
                            "--budget", "2000000"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=cap_env)
    # (the generator started first and runs past the end: the whole window sees traffic)
    out = cap.stdout.read()
    _, _, ru = os.wait4(cap.pid, 0)
    wall = time.monotonic() - t
    sent = int(gen.stdout.read().strip() or 0)
    gen.wait()
    sink.close()
    doc = json.loads(out)
    st = doc["stats"]
    cpu = ru.ru_utime + ru.ru_stime
    return {"offered_pps_target": rate, "offered_pps_achieved": round(sent / (secs + 2.0)),
            "seen_on_lo_pps": round(st["kernel_packets"] / st["duration_s"]), "read": st["received"],
            "kernel_packets": st["kernel_packets"], "kernel_drops": st["kernel_drops"],
            "cpu_s": round(cpu, 2), "cpu_ms_per_10k": round(1e4 * cpu * 1000 / max(st["received"], 1), 1),
            "wall_s": round(wall, 2), "sampled_note": [b for b in doc["blind_spots"] if b.startswith("sampled")]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--quick", action="store_true")
    a = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("needs root (a packet socket)")
    runs = 1 if a.quick else a.runs
    global GENERATOR
    GENERATOR = generator()
    print(f"generator: {'C sendmmsg' if GENERATOR[0] != sys.executable else 'Python sendto'}")
    an = bench_analysis(max(runs, 3), 100_000 if a.quick else 300_000)
    print(f"analysis: parse {an['parse_pps']:,.0f} frames/s; parse+flows {an['analysis_pps']:,.0f} frames/s "
          f"({an['analysis_pps'] / an['parse_pps']:.2f}x of parse)"
          + (f"; scapy dissect {an['scapy_dissect_pps']:,.0f}/s (parse+flows is {an['analysis_pps'] / an['scapy_dissect_pps']:.0f}x)"
             if "scapy_dissect_pps" in an else ""))
    for rate in (50_000, 200_000):
        rows = [bench_live(rate) for _ in range(runs)]
        med = {k: statistics.median(r[k] for r in rows) for k in ("offered_pps_achieved", "seen_on_lo_pps", "read", "kernel_drops", "cpu_ms_per_10k", "wall_s")}
        print(f"live {rate:,} pps target: generator sent {med['offered_pps_achieved']:,.0f} pps, filter saw {med['seen_on_lo_pps']:,.0f} pps, read {med['read']:,.0f}, "
              f"kernel drops {med['kernel_drops']:,.0f}, CPU {med['cpu_ms_per_10k']} ms per 10k packets, wall {med['wall_s']} s"
              f"  {rows[-1]['sampled_note']}")
    walls = []
    for _ in range(runs):
        _, wall, cpu = run_capture(["5"])
        walls.append(wall)
    print(f"`hostdiag packets 5` wall: median {statistics.median(walls):.2f} s over {runs} runs")


if __name__ == "__main__":
    main()

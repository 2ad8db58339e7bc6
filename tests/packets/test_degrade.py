"""Passive and honest: no privilege gives a blind spot and /proc counters (never a traceback);
--pcap-out writes only the named file; scapy's import writes nothing."""
from __future__ import annotations

import json
import os
import shutil
import socket
import stat
import subprocess
import sys
import threading
import time

import pytest

from support import HOSTDIAG, IS_ROOT

needs_root = pytest.mark.skipif(not IS_ROOT, reason="needs root")


@needs_root
@pytest.mark.skipif(shutil.which("setpriv") is None, reason="setpriv (util-linux) missing")
def test_without_cap_net_raw_falls_back_to_proc_counters():
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    p = subprocess.run(["setpriv", "--bounding-set=-net_raw", "--inh-caps=-net_raw", *HOSTDIAG, "packets", "1", "--json"],
                       capture_output=True, text=True, env=env, timeout=60)
    assert p.returncode == 0 and "Traceback" not in p.stderr, p.stderr
    doc = json.loads(p.stdout)
    assert doc["status"] == "unavailable"
    assert "needs root or CAP_NET_RAW" in doc["blind_spots"][0] and "/proc/net/dev" in doc["blind_spots"][0]
    assert "packets.dev_packets[iface=lo]" in doc["series"] and len(doc["series"]["packets.dev_packets[iface=lo]"]["v"]) >= 2
    plain = subprocess.run(["setpriv", "--bounding-set=-net_raw", "--inh-caps=-net_raw", *HOSTDIAG, "packets", "0.5"],
                           capture_output=True, text=True, env=env, timeout=60)
    assert "cannot see: packets unavailable: needs root or CAP_NET_RAW" in plain.stdout, plain.stdout


@needs_root
def test_as_nobody_in_a_forked_child():
    """The venv lives under /root (0700) here, so nobody cannot exec it: fork and drop instead."""
    from hostdiag.commands.packets import Options, run
    from hostdiag.core.context import Context

    import hostdiag.core.sanitize  # noqa: F401 - imported before dropping privileges: nobody
    import hostdiag.packets.findings  # noqa: F401   cannot read the venv under /root here
    from hostdiag.packets import bpf, capture, flows, pcap  # noqa: F401

    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(r)
            os.setgroups([])
            os.setresgid(65534, 65534, 65534)
            os.setresuid(65534, 65534, 65534)
            try:
                doc = run(Options(seconds=0.3), Context()).to_dict()
            except BaseException as e:  # noqa: BLE001 - report it to the parent
                doc = {"error": repr(e)}
            with os.fdopen(w, "w") as f:
                json.dump(doc, f)
        finally:
            os._exit(0)
    os.close(w)
    with os.fdopen(r) as f:
        doc = json.loads(f.read())
    os.waitpid(pid, 0)
    assert "error" not in doc, doc
    assert doc["status"] == "unavailable" and "needs root or CAP_NET_RAW" in doc["blind_spots"][0]


@needs_root
def test_pcap_out_keeps_exactly_what_was_analysed(tmp_path):
    from hostdiag.commands.packets import Options, run
    from hostdiag.core.context import Context

    srv = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    srv.bind(("127.0.0.1", 0))
    port = srv.getsockname()[1]

    def send():
        time.sleep(0.3)
        c = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        for _ in range(300):
            c.sendto(b"p" * 400, ("127.0.0.1", port))
        c.close()

    threading.Thread(target=send).start()
    out = tmp_path / "cap.pcap"
    live = run(Options(seconds=1.2, ifaces=["lo"], filter=f"port {port}", pcap_out=str(out)), Context())
    srv.close()
    assert live.stats["received"] == 300 and live.stats["kernel_drops"] == 0     # lo's own copies are not doubled
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert out.stat().st_size == 24 + 300 * (16 + 128)                            # headers only: 128-byte snap
    again = run(Options(pcap_in=str(out)), Context())
    assert again.stats["analysed"] == 300
    assert again.summary["top_talkers"][0]["dst"] == f"127.0.0.1:{port}"
    assert again.summary["top_talkers"][0]["bytes"] == live.summary["top_talkers"][0]["bytes"] == 300 * 428


@needs_root
def test_pcap_out_refuses_an_existing_file(tmp_path):
    from support import cli

    target = tmp_path / "exists.pcap"
    target.write_bytes(b"keep")
    p = cli("packets", "0.2", "--pcap-out", str(target))
    assert p.returncode == 2 and "exists" in p.stderr and target.read_bytes() == b"keep"


STRACE = ["strace", "-f", "-qq", "-e", "trace=openat,mkdir,mkdirat,unlink,unlinkat,rename,renameat2,creat"]


@pytest.mark.skipif(shutil.which("strace") is None, reason="strace missing")
def test_scapy_import_writes_nothing(tmp_path):
    pytest.importorskip("scapy")
    home = tmp_path / "home"
    home.mkdir()
    env = {"PATH": os.environ["PATH"], "HOME": str(home), "PYTHONDONTWRITEBYTECODE": "1"}

    def writes(code):
        log = tmp_path / "s.log"
        subprocess.run([*STRACE, "-o", str(log), sys.executable, "-B", "-c", code], env=env, check=True, timeout=60,
                       capture_output=True)
        return [x for x in log.read_text().splitlines()
                if ("O_WRONLY" in x or "O_RDWR" in x or "O_CREAT" in x or "mkdir" in x or "rename" in x or "unlink" in x)
                and "/dev/null" not in x]

    ours = writes("from hostdiag.packets import scapyload; d = scapyload.load(); assert d is not None;"
                  "print(scapyload.dissect_dns([bytes(d.DNS(id=1, qr=1, rcode=3, qd=d.DNSQR(qname='a.example.')))]))")
    assert ours == [] and list(home.iterdir()) == []
    # the detector sees what a plain import does (a test that cannot fail is a defect)
    plain = writes("import scapy.layers.dns")
    assert plain and list(home.iterdir()), "plain scapy import wrote nothing: detector or scapy changed"

"""`signatures match --prometheus` against a real Prometheus holding a backfilled fleet.

100 hosts x 6 h of one gauge at 1-minute resolution, loaded with `promtool tsdb
create-blocks-from openmetrics`; a handful of hosts carry an injected stair-step, flatline
or cliff, the rest are noise around their own level. The command must name exactly those hosts.
"""
from __future__ import annotations

import http.server
import json
import random
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from promtools import PROMTOOL, need_prometheus, start_prometheus, stop
from support import cli

pytestmark = [need_prometheus, pytest.mark.slow]

HOSTS = 100
POINTS = 360
INJECTED = {"host-007": "stair_step", "host-023": "stair_step", "host-042": "stair_step",
            "host-011": "flatline", "host-058": "flatline",
            "host-003": "cliff_drop", "host-077": "cliff_drop", "host-091": "cliff_drop"}
QUERY = "fleet_memory_used_bytes"


def fleet_values(host: str, seed: int) -> list[float]:
    r = random.Random(seed)
    base = 4e9 + r.random() * 2e9
    v = [base + r.gauss(0, base * 0.01) for _ in range(POINTS)]
    kind = INJECTED.get(host)
    if kind == "stair_step":     # +500 MB every hour from hour 2: a leak that never gives back
        v = [x + (i // 60) * 5e8 if i >= 120 else x for i, x in enumerate(v)]
    elif kind == "flatline":     # the exporter froze: the last value repeats for the last 2.5 h
        v = v[:200] + [v[199]] * (POINTS - 200)
    elif kind == "cliff_drop":   # a sudden fall to a fifth that stays down
        v = v[:250] + [x * 0.2 for x in v[250:]]
    return v


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fleet")
    end = int(time.time()) - 60
    start = end - (POINTS - 1) * 60
    lines = ["# HELP fleet_memory_used_bytes Memory in use.", "# TYPE fleet_memory_used_bytes gauge"]
    for h in range(HOSTS):
        host = f"host-{h:03d}"
        for i, x in enumerate(fleet_values(host, h)):
            lines.append(f'fleet_memory_used_bytes{{instance="{host}:9100",job="node"}} {x:.1f} {start + i * 60}')
    lines.append("# EOF")
    om = tmp / "fleet.om"
    om.write_text("\n".join(lines) + "\n")
    data = tmp / "data"
    subprocess.run([PROMTOOL, "tsdb", "create-blocks-from", "openmetrics", "-q", str(om), str(data)],
                   check=True, capture_output=True, timeout=300)
    proc, url = start_prometheus(data, tmp)
    yield url
    stop(proc)


def test_names_exactly_the_injected_hosts(fleet):
    p = cli("signatures", "match", "--prometheus", fleet, "--query", QUERY, "--range", "6h", "--step", "1m",
            "--json", timeout=120)
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)
    assert doc["series"] == HOSTS
    found = {r["host"].split(":")[0]: r["matches"][0]["shape"] for r in doc["hosts"] if r["matches"]}
    assert found == INJECTED
    assert all(r["points"] >= POINTS - 2 for r in doc["hosts"])


def test_table_ranks_matched_hosts(fleet):
    p = cli("signatures", "match", "--prometheus", fleet, "--query", QUERY, timeout=120)
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith(f"{len(INJECTED)} of {HOSTS} series match")
    ranked = [ln.split()[1].split(":")[0] for ln in p.stdout.splitlines() if ln[:4].strip().rstrip(".").isdigit()]
    assert set(ranked) == set(INJECTED) and len(ranked) == len(INJECTED)
    assert "shape.stair_step" in p.stdout and f"{HOSTS - len(INJECTED)} series steady" in p.stdout


def test_bad_query_is_a_clear_error(fleet):
    p = cli("signatures", "match", "--prometheus", fleet, "--query", "rate(fleet_memory_used_bytes[5m]")
    assert p.returncode == 2
    assert "bad query" in p.stderr and "Traceback" not in p.stderr


def test_a_constant_series_matches_nothing(fleet):
    p = cli("signatures", "match", "--prometheus", fleet, "--query", "vector(1)", "--json")
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["matched"] == 0     # a constant: steady, no archetype


def test_unreachable_server_is_a_clear_error():
    from promtools import free_port

    p = cli("signatures", "match", "--prometheus", f"http://127.0.0.1:{free_port()}", "--query", "up", "--timeout", "3")
    assert p.returncode == 2
    assert "cannot reach Prometheus" in p.stderr and "Traceback" not in p.stderr


def test_bearer_token_from_file_and_env(tmp_path):
    """Prometheus itself has no bearer auth here (it sits behind a proxy in real setups), so a
    stdlib HTTP server stands in for that proxy and records the Authorization header."""
    seen = []

    class H(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            seen.append(self.headers.get("Authorization"))
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            body = json.dumps({"status": "success", "data": {"resultType": "matrix", "result": []}}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a):
            pass

    srv = http.server.HTTPServer(("127.0.0.1", 0), H)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{srv.server_address[1]}"
        tok = tmp_path / "token"
        tok.write_text("s3cret-file\n")
        assert cli("signatures", "match", "--prometheus", url, "--query", "up", "--bearer-token-file", str(tok)).returncode == 0
        assert cli("signatures", "match", "--prometheus", url, "--query", "up",
                   env={"HOSTDIAG_PROM_TOKEN": "s3cret-env"}).returncode == 0
        p = cli("signatures", "match", "--prometheus", url, "--query", "up", "--bearer-token-file", str(tmp_path / "nope"))
        assert p.returncode == 2 and "bearer-token-file" in p.stderr
    finally:
        srv.shutdown()
    assert seen == ["Bearer s3cret-file", "Bearer s3cret-env"]


@pytest.mark.skipif(shutil.which("strace") is None, reason="strace not installed (.ci/run installs it)")
def test_fleet_match_writes_nothing(fleet, tmp_path):
    """The detector of test_readonly: querying Prometheus and matching writes no file."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))
    from test_readonly import trace, violations

    lines, p = trace(["signatures", "match", "--prometheus", fleet, "--query", QUERY], tmp_path)
    assert p.returncode == 0, p.stderr
    assert any("openat" in x for x in lines), "strace saw nothing: the detector is broken"
    assert violations(lines, set()) == []

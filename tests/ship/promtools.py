"""Start Debian's prometheus / prometheus-node-exporter in the foreground on loopback, for tests."""
from __future__ import annotations

import shutil
import socket
import subprocess
import time
import urllib.request

import pytest

PROMETHEUS = shutil.which("prometheus")
NODE_EXPORTER = shutil.which("prometheus-node-exporter") or shutil.which("node_exporter")
PROMTOOL = shutil.which("promtool")
need_prometheus = pytest.mark.skipif(not (PROMETHEUS and PROMTOOL),
                                     reason="prometheus/promtool not installed (apt-get install prometheus; .ci/run does)")
need_node_exporter = pytest.mark.skipif(not NODE_EXPORTER,
                                        reason="prometheus-node-exporter not installed (.ci/run installs it)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url: str, timeout: float = 5.0) -> str:
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.read().decode()


def wait_http(url: str, proc: subprocess.Popen, limit_s: float = 60.0) -> None:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args[0]} exited {proc.returncode}: {proc.stderr.read()[-2000:]}")
        try:
            get(url, 1.0)
            return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"{url} not up after {limit_s}s")


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def start_prometheus(data_dir, tmp) -> tuple[subprocess.Popen, str]:
    cfg = tmp / "prometheus.yml"
    cfg.write_text("global:\n  scrape_interval: 1m\nscrape_configs: []\n")
    port = free_port()
    p = subprocess.Popen([PROMETHEUS, f"--config.file={cfg}", f"--storage.tsdb.path={data_dir}",
                          f"--web.listen-address=127.0.0.1:{port}", "--storage.tsdb.retention.time=30d"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(url + "/-/ready", p)
    except BaseException:
        stop(p)
        raise
    return p, url


def start_node_exporter(textfile_dir) -> tuple[subprocess.Popen, str]:
    port = free_port()
    p = subprocess.Popen([NODE_EXPORTER, f"--web.listen-address=127.0.0.1:{port}", "--collector.disable-defaults",
                          "--collector.textfile", f"--collector.textfile.directory={textfile_dir}",
                          "--no-collector.systemd"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}/metrics"
    try:
        wait_http(url, p)
    except BaseException:
        stop(p)
        raise
    return p, url

"""`signatures new --from-bundle / --from-csv`: a scaffold that lints, tests and matches its own series."""
from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
import textwrap
import time

import pytest

from support import HOSTDIAG

GROWER = textwrap.dedent("""
    import sys, time
    hold = []
    print("ready", flush=True)
    sys.stdin.readline()          # the window has started: every step falls inside it
    for _ in range(5):            # +400 MiB every 1.5 s, touched (b'x' * n memsets), never freed
        time.sleep(1.5)
        hold.append(b"x" * (400 << 20))
    time.sleep(60)
""")


def run(*args, input=None, timeout=120):
    e = dict(os.environ, PYTHONDONTWRITEBYTECODE="1", NO_COLOR="1")
    return subprocess.run([*HOSTDIAG, *args], input=input, capture_output=True, text=input is None or isinstance(input, str),
                          env=e, timeout=timeout)


def stair_csv(path, steps=4, per=8, base=1000, step=300):
    rows = ["t,v"] + [f"{i},{base + (i // per) * step + (i % 3)}" for i in range(steps * per)]
    path.write_text("\n".join(rows) + "\n")
    return path


def test_from_csv_labelled_series(tmp_path):
    csv = stair_csv(tmp_path / "s.csv")
    cat = tmp_path / "cat"
    cat.mkdir()
    p = run("signatures", "new", "memory.batch_leak", "--from-csv", str(csv), "--metric", "processes.rss_bytes[pid=42]",
            "--incident", "INC-7", "--dir", str(cat))
    assert p.returncode == 0, p.stderr
    f = cat / "memory.batch_leak.toml"
    text = f.read_text()
    assert 'metrics = ["processes.rss_bytes[pid=*]"]' in text and 'incident = "INC-7"' in text
    assert 'shapes = ["stair_step"]' in text and "TODO" in text
    assert run("signatures", "lint", str(f)).returncode == 0
    assert run("signatures", "test", str(f)).returncode == 0
    m = run("signatures", "match", str(csv), "--metric", "processes.rss_bytes[pid=42]", "--catalog", str(cat), "--json")
    assert json.loads(m.stdout)["matches"][0]["signature"] == "memory.batch_leak"
    # never overwrites, and an existing id is refused
    p = run("signatures", "new", "memory.batch_leak", "--from-csv", str(csv), "--metric", "x.y", "--dir", str(cat))
    assert p.returncode == 2
    p = run("signatures", "new", "memory.leak_stair_step", "--from-csv", str(csv), "--metric", "x.y", "--dir", str(tmp_path))
    assert p.returncode == 2 and "already exists" in p.stderr


def test_steady_series_has_nothing_to_encode(tmp_path):
    csv = tmp_path / "flat.csv"
    csv.write_text("\n".join("100" for i in range(40)) + "\n")
    p = run("signatures", "new", "x.flat", "--from-csv", str(csv), "--metric", "x.y", "--dir", str(tmp_path))
    assert p.returncode == 2 and "no shape" in p.stderr
    assert not (tmp_path / "x.flat.toml").exists()


def test_refuses_a_tampered_bundle(tmp_path):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as t:
        ti = tarfile.TarInfo("b/snapshot.json")
        data = b"{}"
        ti.size = len(data)
        t.addfile(ti, io.BytesIO(data))
    f = tmp_path / "b.tar.gz"
    f.write_bytes(buf.getvalue())
    p = run("signatures", "new", "x.y", "--from-bundle", str(f), "--series", "memory.available_bytes", "--dir", str(tmp_path))
    assert p.returncode == 2 and "does not verify" in p.stderr


@pytest.fixture
def grower():
    p = subprocess.Popen([sys.executable, "-c", GROWER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "ready"
    yield p
    p.kill()
    p.wait()


def test_stair_step_incident_round_trip(tmp_path, grower):
    """A real stair-step (a child growing RSS by 400 MiB every 2 s during a 10 s window), bundled,
    turned into an archetype that lints, tests, and matches the same series in `signatures match`."""
    bundle = tmp_path / "inc.tar.gz"
    b = subprocess.Popen([*HOSTDIAG, "bundle", "--incident", "INC-STAIR", "--window", "12", "--interval", "0.5",
                          "--only", "memory", "--since", "5m", "-o", str(bundle)], stderr=subprocess.PIPE,
                         env=dict(os.environ, PYTHONDONTWRITEBYTECODE="1", NO_COLOR="1"))
    time.sleep(2.0)                   # past start-up (slow on a loaded machine): the window is open
    grower.stdin.write("go\n")
    grower.stdin.flush()
    _, err = b.communicate(timeout=120)
    assert b.returncode == 0, err.decode()
    cat = tmp_path / "cat"
    cat.mkdir()
    p = run("signatures", "new", "memory.inc_stair", "--from-bundle", str(bundle), "--series", "memory.available_bytes",
            "--dir", str(cat))
    if p.returncode:                  # say what the series looked like: steps in MiB
        from hostdiag.bundle.verify import verify
        v = json.loads(verify(open(bundle, "rb"), keep=lambda n: n == "snapshot.json").members["snapshot.json"]
                       )["series"]["memory.available_bytes"]["v"]
        pytest.fail(f"{p.stderr} diffs MiB: {[round((y - x) / 2**20) for x, y in zip(v, v[1:])]}")
    f = cat / "memory.inc_stair.toml"
    text = f.read_text()
    assert 'incident = "INC-STAIR"' in text and "memory.available_bytes" in text
    assert 'direction = "down"' in text
    lint = run("signatures", "lint", str(f))
    assert lint.returncode == 0, lint.stdout + lint.stderr
    test = run("signatures", "test", str(f))
    assert test.returncode == 0, test.stdout + test.stderr
    # the same series, exported from the bundle, is matched to the new archetype
    from hostdiag.bundle.verify import verify

    res = verify(open(bundle, "rb"), keep=lambda n: n == "snapshot.json")
    s = json.loads(res.members["snapshot.json"])["series"]["memory.available_bytes"]
    csv = tmp_path / "series.csv"
    csv.write_text("timestamp,value\n" + "".join(f"{s['t0'] + t},{v}\n" for t, v in zip(s["t"], s["v"])))
    import tomllib

    metric = tomllib.loads(text)["examples"][0]["metric"]
    m = run("signatures", "match", str(csv), "--metric", metric, "--catalog", str(cat), "--json")
    assert m.returncode == 0, m.stderr
    best = json.loads(m.stdout)["matches"][0]
    assert best["signature"] == "memory.inc_stair", best

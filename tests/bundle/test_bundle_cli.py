"""`hostdiag bundle` end to end, on real processes and a real journal file with planted secrets."""
from __future__ import annotations

import gzip
import io
import json
import os
import shlex
import signal
import stat
import subprocess
import sys
import tarfile
import time

import pytest

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(__file__)), "journal"))
import secret_corpus as corpus  # noqa: E402
import journalgen  # noqa: E402

from support import HOSTDIAG  # noqa: E402

SLEEPER = "import time; time.sleep(300)"
SECRETS = sorted({s for _, secrets, _ in corpus.ALL for s in secrets}, key=len, reverse=True)


def run(*args, input=None, env=None, timeout=120, cwd=None) -> subprocess.CompletedProcess:
    e = dict(os.environ, PYTHONDONTWRITEBYTECODE="1", NO_COLOR="1")
    e.update(env or {})
    return subprocess.run([*HOSTDIAG, *args], input=input, capture_output=True, env=e, timeout=timeout, cwd=cwd)


def members(blob: bytes) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(blob), mode="r:*") as t:
        return {m.name.split("/", 1)[1]: t.extractfile(m).read() for m in t.getmembers()}


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    """Processes whose command lines hold secrets, and a journal whose lines hold secrets."""
    why = journalgen.available()
    if why:
        pytest.skip(why)
    d = tmp_path_factory.mktemp("secretjournal")
    now = time.time()
    entries = list(journalgen.bulk(now - 3000, now - 900, 3000))
    for i, (text, _, _) in enumerate(corpus.JOURNAL + corpus.CONFIG + corpus.CMDLINES):
        entries.append((now - 800 + i, journalgen.service("app.service", text, 3, 4242)))
    entries.sort(key=lambda x: x[0])
    journalgen.write_journal(str(d / "system.journal"), entries)
    kids = [subprocess.Popen([sys.executable, "-c", SLEEPER, *shlex.split(c)], start_new_session=True)
            for c, _, _ in corpus.CMDLINES]
    time.sleep(0.3)
    yield d, now
    for k in kids:
        os.killpg(k.pid, signal.SIGKILL)
        k.wait()


@pytest.fixture(scope="module")
def made(planted):
    d, _ = planted
    p = run("bundle", "--incident", "INC-4242", "--window", "1", "--interval", "0.5", "--since", "1h",
            "--journal-dir", str(d), "-o", "-")
    assert p.returncode == 0, p.stderr.decode()
    return p.stdout, p.stderr.decode()


def test_stdout_bundle_verifies_from_file_and_stdin(made, tmp_path):
    blob, err = made
    assert blob[:2] == b"\x1f\x8b" and "manifest SHA-256" in err
    f = tmp_path / "b.tar.gz"
    f.write_bytes(blob)
    p = run("bundle", "verify", str(f))
    assert p.returncode == 0, p.stdout + p.stderr
    assert b"OK" in p.stdout and b"INC-4242" in p.stdout
    p = run("bundle", "verify", "-", input=blob)
    assert p.returncode == 0, p.stdout + p.stderr
    sha = err.split("manifest SHA-256 ")[1].split()[0]
    assert run("bundle", "verify", str(f), "--expect", sha).returncode == 0
    assert run("bundle", "verify", str(f), "--expect", "0" * 64).returncode == 1
    bad = bytearray(blob)
    bad[len(bad) // 3] ^= 0xFF
    p = run("bundle", "verify", "-", input=bytes(bad))
    assert p.returncode == 1 and b"FAIL" in p.stdout


def test_round_trip_show_json_equals_the_snapshot(made, tmp_path):
    from hostdiag.bundle.show import report_from_dict
    from hostdiag.render import Env, render

    blob, _ = made
    m = members(blob)
    f = tmp_path / "b.tar.gz"
    f.write_bytes(blob)
    p = run("bundle", "show", str(f), "--json")
    assert p.returncode == 0, p.stderr
    assert p.stdout == m["snapshot.json"]
    doc = json.loads(m["snapshot.json"])
    rep = report_from_dict(doc)
    assert json.loads(render(rep, "json", Env())) == doc
    # and the other formats, rebuilt on "another machine" from the JSON alone
    md = run("bundle", "show", str(f), "--markdown").stdout.decode()
    txt = run("bundle", "show", "-", "--plain", input=blob).stdout.decode()
    assert md == render(rep, "markdown", Env()) and txt == render(rep, "plain", Env())
    assert doc["headline"]["condition"][:40] in txt


def test_round_trip_in_process(snapshot):
    """bundle -> verify -> show --json equals the report of the same snapshot (no redaction needed)."""
    from hostdiag.bundle import contents
    from hostdiag.bundle.show import render_member
    from hostdiag.bundle.verify import verify
    from hostdiag.core.context import Context
    from hostdiag.render import Env, render

    rep = snapshot(only=["memory", "cpu"], window=0)
    want = render(rep, "json", Env())
    out = io.BytesIO()
    now = time.time()
    contents.write(contents.Options(incident="INC-1", redact=False, argv=["hostdiag", "bundle"]), Context(),
                   out, report=rep, since=now - 60, until=now, err=lambda m: None)
    res = verify(io.BytesIO(out.getvalue()), keep=lambda n: n.endswith((".json", ".md", ".txt")))
    assert res.ok, res.problems
    text, note = render_member(res.members, "json", Env())
    assert note is None and text == want


def test_no_secret_survives_extracted_or_compressed(made):
    blob, _ = made
    m = members(blob)
    raw = gzip.decompress(blob)
    assert b"journal.jsonl" in raw
    for s in SECRETS:
        b = s.encode()
        assert b not in blob, f"secret in the compressed stream: {s}"
        assert b not in raw, f"secret in the tar stream: {s}"
        for name, data in m.items():
            assert b not in data, f"secret {s!r} survived in {name}"
    man = json.loads(m["manifest.json"])
    red = man["redaction"]
    assert red["enabled"] and red["total"] >= len(SECRETS) // 2
    assert {"cmdline_password", "jwt", "aws_access_key", "private_key", "url_password"} <= set(red["counts"])


def test_planted_text_is_there_and_ordinary_text_untouched(made):
    m = members(made[0])
    journal = [json.loads(x) for x in m["journal.jsonl"].splitlines()]
    msgs = [j["message"] for j in journal]
    for text, secrets, keep in corpus.JOURNAL:
        if not secrets:
            assert text in msgs, f"ordinary line changed or missing: {text!r}"
        for k in keep:
            assert any(k in x for x in msgs), k
    assert [j["ts"] for j in journal] == sorted(j["ts"] for j in journal)      # oldest first
    procs = [json.loads(x) for x in m["processes.jsonl"].splitlines()]
    cmdlines = " ".join(p["cmdline"] for p in procs)
    for text, _, keep in corpus.CMDLINES:
        for k in keep:
            assert k in cmdlines, f"ordinary cmdline text lost: {k!r}"
    assert any(p["pid"] == os.getpid() for p in procs)
    assert not any("environ" in k for p in procs for k in p)


def test_manifest_contents(made):
    m = members(made[0])
    man = json.loads(m["manifest.json"])
    assert man["incident"] == "INC-4242" and man["hostdiag_version"]
    assert man["host"]["hostname"] and "machine_id" in man["host"] and "boot_id" in man["host"]
    c = man["collection"]
    assert c["start_epoch"] <= c["end_epoch"] and c["start_monotonic"] <= c["end_monotonic"]
    assert "bundle" in man["command_line"] and "INC-4242" in man["command_line"]
    assert [x["name"] for x in man["members"]] == [n for n in m if n not in ("manifest.json", "manifest.sha256")]
    assert man["history"]["included"] is False and man["history"]["note"]
    assert isinstance(man["blind_spots"], list)
    for name in ("snapshot.json", "report.md", "report.txt", "changes.json", "kernel_events.json",
                 "signature_matches.json", "processes.jsonl", "sockets.jsonl", "journal.jsonl"):
        assert name in m


def test_no_redact_says_so_and_keeps_secrets(planted):
    """The negative control: without redaction the planted secrets are in the bundle, so the
    assertions above can fail."""
    d, _ = planted
    p = run("bundle", "--no-redact", "--window", "0", "--since", "1h", "--journal-dir", str(d), "--only", "memory", "-o", "-")
    assert p.returncode == 0
    assert b"WARNING: --no-redact" in p.stderr
    m = members(p.stdout)
    man = json.loads(m["manifest.json"])
    assert man["redaction"]["enabled"] is False and "NOT REDACTED" in man["redaction"]["WARNING"]
    everything = b"".join(m.values())
    assert corpus.AWS_ID.encode() in everything and b"Tr0ub4dor3xQ" in everything


def test_output_file_default_name_0600_never_overwrites(tmp_path):
    p = run("bundle", "--incident", "INC 77/../x", "--window", "0", "--only", "memory", "--since", "5m",
            "-o", str(tmp_path))
    assert p.returncode == 0, p.stderr
    files = list(tmp_path.iterdir())
    assert len(files) == 1
    f = files[0]
    assert f.name.startswith("hostdiag-bundle_") and "INC_77_.._x" in f.name and f.name.endswith("Z.tar.gz")
    assert "/" not in f.name and stat.S_IMODE(f.stat().st_mode) == 0o600
    before = f.read_bytes()
    p = run("bundle", "--window", "0", "--only", "memory", "-o", str(f))
    assert p.returncode == 2 and b"exists" in p.stderr
    assert f.read_bytes() == before
    link = tmp_path / "link.tar.gz"
    link.symlink_to(tmp_path / "elsewhere")
    assert run("bundle", "--window", "0", "--only", "memory", "-o", str(link)).returncode == 2
    assert not (tmp_path / "elsewhere").exists()


def test_max_size_trims_oldest_journal_lines_first(planted):
    d, _ = planted
    args = ("bundle", "--window", "0", "--only", "memory", "--since", "1h", "--journal-dir", str(d))
    # The budget: everything but the journal (the process table is this host's: not a constant)
    # plus half the journal, so the journal must be trimmed and everything else must fit.
    whole = members(run(*args, "-o", "-").stdout)
    budget = sum(len(v) for k, v in whole.items() if k != "journal.jsonl") + len(whole["journal.jsonl"]) // 2
    p = run(*args, "--max-size", str(budget), "-o", "-")
    assert p.returncode == 0, p.stderr
    m = members(p.stdout)
    man = json.loads(m["manifest.json"])
    trim = [t for t in man["trimmed"] if t["member"] == "journal.jsonl"]
    assert trim and trim[0]["dropped_lines"] > 0 and trim[0]["order"] == "oldest first"
    assert sum(len(v) for v in m.values()) <= budget
    kept = [json.loads(x) for x in m["journal.jsonl"].splitlines()]
    assert kept and kept[-1]["message"].startswith(corpus.CMDLINES[-1][0][:3])   # the newest line survived
    assert man["journal"]["dropped_by_max_size"] == trim[0]["dropped_lines"]
    assert b"trimmed: journal.jsonl" in p.stderr


def test_zstd(tmp_path):
    pytest.importorskip("zstandard")
    p = run("bundle", "--zstd", "--window", "0", "--only", "memory", "--since", "5m", "-o", str(tmp_path))
    assert p.returncode == 0, p.stderr
    (f,) = tmp_path.iterdir()
    assert f.name.endswith(".tar.zst") and f.read_bytes()[:4] == b"\x28\xb5\x2f\xfd"
    assert run("bundle", "verify", str(f)).returncode == 0
    assert run("bundle", "show", str(f), "--json").returncode == 0


def test_show_and_verify_refuse_hostile(tmp_path):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as t:
        ti = tarfile.TarInfo("../../etc/cron.d/x")
        ti.size = 1
        t.addfile(ti, io.BytesIO(b"x"))
    f = tmp_path / "evil.tar.gz"
    f.write_bytes(buf.getvalue())
    for args in (("verify", str(f)), ("show", str(f), "--json"), ("show", str(f), "--ignore-hash")):
        p = run("bundle", *args)
        assert p.returncode == 1 and b"traversal" in (p.stdout + p.stderr)
    assert not (tmp_path / "etc").exists()


UNSHARE = "unshare"


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root for a private mount namespace")
def test_streams_while_the_disk_is_full(tmp_path):
    """cwd and TMPDIR on a full tmpfs (private mount namespace): `-o -` still streams a bundle
    that verifies; `-o FILE` on the full disk fails cleanly and leaves nothing behind."""
    full = tmp_path / "full"
    full.mkdir()
    py = shlex.quote(sys.executable)
    script = f"""
        set -e
        mount -t tmpfs -o size=64k tmpfs {full}
        cd {full}
        dd if=/dev/zero of=fill bs=4k >/dev/null 2>&1 || true
        test "$(stat -f -c %a .)" -eq 0
        export TMPDIR={full} PYTHONDONTWRITEBYTECODE=1
        if {py} -m hostdiag bundle --window 0 --only memory,cpu --since 5m -o {full}/x.tar.gz 2>{tmp_path}/err.txt; then
            echo "file bundle unexpectedly written" >&2; exit 9
        fi
        ls -A {full} > {tmp_path}/ls.txt
        exec {py} -m hostdiag bundle --window 0 --only memory,cpu --since 5m -o -
    """
    p = subprocess.run([UNSHARE, "--mount", "--propagation", "private", "sh", "-c", script],
                       capture_output=True, timeout=120, cwd=str(tmp_path))
    assert p.returncode == 0, p.stderr.decode()
    from hostdiag.bundle.verify import verify

    res = verify(io.BytesIO(p.stdout), keep=lambda n: n == "snapshot.json")
    assert res.ok, res.problems
    assert json.loads(res.members["snapshot.json"])["sections"]["memory"]["status"] in ("ok", "partial")
    assert (tmp_path / "ls.txt").read_text().split() == ["fill"]            # no temp file left behind
    assert "No space left" in (tmp_path / "err.txt").read_text() or "not written" in (tmp_path / "err.txt").read_text()


def test_history_slice_from_a_real_store(snapshot, monkeypatch, tmp_path):
    """Two real captures into a store ($HOSTDIAG_STORE): the bundle carries the window's slice
    (series and the findings timeline); with no store it says so and goes on."""
    from hostdiag.bundle import contents
    from hostdiag.bundle.verify import verify
    from hostdiag.core.context import Context

    store = tmp_path / "state" / "h.db"
    now = time.time()
    for t in (now - 120, now - 60):
        p = subprocess.run([sys.executable, "-m", "hostdiag", "capture", "--store", str(store), "--window", "0"],
                           env=dict(os.environ, HOSTDIAG_NOW=str(t)), capture_output=True, text=True, timeout=120)
        assert p.returncode == 0, p.stderr
    monkeypatch.setenv("HOSTDIAG_STORE", str(store))
    rep = snapshot(only=["memory"], window=0)
    out = io.BytesIO()
    contents.write(contents.Options(argv=["hostdiag"]), Context(), out, report=rep, since=now - 600, until=now,
                   err=lambda m: None)
    res = verify(io.BytesIO(out.getvalue()), keep=lambda n: n == "history.json")
    assert res.ok and res.manifest["history"]["included"] is True
    hist = json.loads(res.members["history.json"])
    assert hist["captures_in_store"] == 2
    avail = hist["series"]["memory.available_bytes"]
    assert len(avail["t"]) == 2 and all(v > 0 for v in avail["v"])
    monkeypatch.setenv("HOSTDIAG_STORE", str(tmp_path / "none" / "h.db"))
    out = io.BytesIO()
    contents.write(contents.Options(argv=["hostdiag"]), Context(), out, report=rep, since=now - 60, until=now,
                   err=lambda m: None)
    res = verify(io.BytesIO(out.getvalue()))
    assert res.ok and res.manifest["history"] == {"included": False, "note": "no capture store on this host: no history slice"}
    assert "history.json" not in [m["name"] for m in res.manifest["members"]]


def test_stream_cut_by_the_reader_is_an_error_not_a_warning(tmp_path):
    """`hostdiag bundle -o - | uploader` where the uploader dies: click turned EPIPE into a
    silent exit 1, which reads as "warning" while the archive is cut short. The archive must
    not fit in the pipe before the reader goes (a 9 KiB one did, 3 runs in 8): a 4 KiB pipe and
    ~400 KB of journal text that does not compress."""
    import fcntl

    why = journalgen.available()
    if why:
        pytest.skip(why)
    now = time.time()
    journalgen.write_journal(str(tmp_path / "system.journal"),
                             [(now - 200 + i * 0.1, journalgen.service("app.service", os.urandom(96).hex(), 6, 100))
                              for i in range(2000)])
    r, w = os.pipe()
    fcntl.fcntl(w, fcntl.F_SETPIPE_SZ, 4096)
    p = subprocess.Popen([*HOSTDIAG, "bundle", "--since", "5m", "--window", "0", "--only", "cpu",
                          "--journal-dir", str(tmp_path), "-o", "-"], stdout=w, stderr=subprocess.PIPE)
    os.close(w)
    with os.fdopen(r, "rb") as out:
        assert out.read(10)[:2] == b"\x1f\x8b"
    # the reader went away mid-archive
    err = p.stderr.read().decode()
    assert p.wait(timeout=120) == 3, err
    assert "NOT complete" in err and "Traceback" not in err, err


def test_folded_message_templates_leave_no_secret_fragment(tmp_path):
    """top_messages templates are folded from raw lines, and folding cuts a bare Slack token into
    `xoxb-<n>-<n>-<secret part>`, which no rule recognises. The line repeats (a retry loop) so
    it ranks among the top messages; its secret part must not leave the host."""
    why = journalgen.available()
    if why:
        pytest.skip(why)
    now = time.time()
    line = f"slack post failed (attempt {{}}): {corpus.SLACK} rejected"
    journalgen.write_journal(str(tmp_path / "system.journal"),
                             [(now - 600 + i, journalgen.service("notify.service", line.format(i), 3, 4242))
                              for i in range(60)])
    p = run("bundle", "--window", "0", "--only", "journal", "--since", "1h", "--journal-dir", str(tmp_path), "-o", "-")
    assert p.returncode == 0, p.stderr.decode()
    m = members(p.stdout)
    tail = corpus.SLACK.rsplit("-", 1)[1].encode()
    for name, data in m.items():
        assert tail not in data, f"secret fragment survived in {name}"
    top = json.loads(m["snapshot.json"])["sections"]["journal"]["data"]["top_messages"]
    assert any(t["count"] == 60 and "[REDACTED:" in t["template"] and "<n>" in t["template"] for t in top), top


def _fragments(secret: str, n: int = 8) -> set[bytes]:
    return {secret[i:i + n].encode() for i in range(len(secret) - n + 1)}


def _pad_argv(head: list[str], before: str, secret: str, keep: int, limit: int = 4096) -> list[str]:
    """argv whose /proc/PID/cmdline (NUL-joined) reaches `before + secret` at byte limit - keep
    - len(before): the read cap (procscan reads `limit` bytes) cuts the secret after `keep` chars."""
    used = sum(len(a) + 1 for a in head)
    pad = limit - keep - len(before) - used - 1
    return [*head, "/opt/lib/x.jar:" * (pad // 15) + "y" * (pad % 15), before + secret]


@pytest.fixture(scope="module")
def cut_bundle(tmp_path_factory):
    """Secrets where a length cap or the sanitiser falls on them: command lines cut by the 4096-byte
    cmdline read, a journal line cut at 2048 characters (latest lines, top message examples), a
    message cut at 8192 (the journal reader's cap), and a multi-line message the sanitiser folds
    into one line of `\\x0a` (latest lines)."""
    why = journalgen.available()
    if why:
        pytest.skip(why)
    d = tmp_path_factory.mktemp("cutjournal")
    now = time.time()
    gh, url_pw, aws = corpus.GH_TOKEN, "Cut9Pw2Lm7Wz4Xq8Rt", corpus.AWS_ID
    kids = [subprocess.Popen(_pad_argv([sys.executable, "-c", SLEEPER, "--classpath"], "", gh, 20),
                             start_new_session=True),
            subprocess.Popen(_pad_argv([sys.executable, "-c", SLEEPER], "postgresql://report:", url_pw, 12),
                             start_new_session=True)]
    at_2048 = "x" * 2025 + " key " + aws + " rotated"          # cut 18 characters into the key
    at_8192 = "y" * 8171 + " slack " + corpus.SLACK + " done"    # cut 14 characters into the token
    multi = "config reloaded:\n[db]\npassword = correct horse battery staple\nport = 5432"
    entries = [(now - 900 + i, journalgen.service("keys.service", at_2048, 3, 4242)) for i in range(40)]
    entries += [(now - 100, journalgen.service("app.service", at_8192, 3, 4243)),
                (now - 99, journalgen.service("app.service", multi, 3, 4243))]
    journalgen.write_journal(str(d / "system.journal"), entries)
    time.sleep(0.3)
    try:
        p = run("bundle", "--window", "0", "--only", "journal,processes", "--since", "1h", "--journal-dir", str(d),
                "-o", "-")
    finally:
        for k in kids:
            os.killpg(k.pid, signal.SIGKILL)
            k.wait()
    assert p.returncode == 0, p.stderr.decode()
    secrets = {"gh": gh[4:], "url": url_pw, "aws": aws[4:], "slack": corpus.SLACK.split("-", 1)[1],
               "multi": "horse battery staple"}
    return p.stdout, members(p.stdout), secrets


@pytest.mark.parametrize("which", ["gh", "url", "aws", "slack", "multi"])
def test_no_fragment_survives_a_cut_or_the_sanitiser(cut_bundle, which):
    blob, m, secrets = cut_bundle
    frags = _fragments(secrets[which])
    raw = gzip.decompress(blob)
    assert not [f for f in frags if f in raw], f"{which}: a fragment is in the tar stream"
    for name, data in m.items():
        left = sorted(f for f in frags if f in data)
        assert not left, f"{which}: fragments {left[:3]} survived in {name}"


def test_cut_conditions_were_really_made(cut_bundle):
    """The negative control of the test above: the cuts really fell inside the secrets."""
    _, m, _ = cut_bundle
    procs = [json.loads(x) for x in m["processes.jsonl"].splitlines()]
    cut = [p["cmdline"] for p in procs if "--classpath" in p["cmdline"] or "postgresql://report:" in p["cmdline"]]
    assert len(cut) == 2 and all(len(c) >= 4000 and c.endswith("[REDACTED:cut_secret]") for c in cut), cut
    journal = json.loads(m["snapshot.json"])["sections"]["journal"]["data"]
    assert any(x["message"].startswith("xxxx") and x["message"].endswith(" key [REDACTED:cut_secret]")
               for x in journal["latest"])
    assert any("\\x0a" in x["message"] and "password = [REDACTED:" in x["message"] for x in journal["latest"])
    lines = [json.loads(x)["message"] for x in m["journal.jsonl"].splitlines()]
    assert any(x.startswith("yyyy") and x.endswith(" slack [REDACTED:cut_secret]") for x in lines)


def test_user_patterns_that_backtrack_cannot_stall_the_bundle(tmp_path):
    """redact.toml from an operator: `(a+)+$` (exponential: refused at load, said on stderr and in
    the manifest), `(.*=){5}x` (polynomial, which no static check here catches: it runs with a time
    bound, and a string it times out on leaves the host as [REDACTED], never as it is) and a sane
    pattern that keeps working. The lines it chokes on are real: a journal line and a process's
    argv, a long run of `a` and of `=`. Without the bounds this bundle never finishes (the run's timeout
    fails the test)."""
    why = journalgen.available()
    if why:
        pytest.skip(why)
    cfg = tmp_path / "redact.toml"
    cfg.write_text('[[pattern]]\nname = "nested"\nregex = "(a+)+$"\n'
                   '[[pattern]]\nname = "poly"\nregex = "(.*=){5}x"\n'
                   '[[pattern]]\nname = "ticket"\nregex = "TCK-\\\\d{6}"\n')
    now = time.time()
    journalgen.write_journal(str(tmp_path / "system.journal"), [
        (now - 60, journalgen.service("app.service", "ticket TCK-123456 opened by bob", 3, 4242)),
        (now - 59, journalgen.service("app.service", "payload " + "a" * 3000 + "!", 3, 4242)),
        (now - 58, journalgen.service("app.service", "=" * 3000, 3, 4242))])
    kid = subprocess.Popen([sys.executable, "-c", SLEEPER, "a" * 3000 + "!", "=" * 3000], start_new_session=True)
    try:
        p = run("bundle", "--window", "0", "--only", "journal", "--since", "1h", "--journal-dir", str(tmp_path),
                "--redact-config", str(cfg), "-o", "-", timeout=90)
    finally:
        os.killpg(kid.pid, signal.SIGKILL)
        kid.wait()
    assert p.returncode == 0, p.stderr.decode()
    err = p.stderr.decode()
    assert "pattern nested" in err and "nested quantifiers" in err, err
    m = members(p.stdout)
    man = json.loads(m["manifest.json"])
    assert any("pattern nested" in b["reason"] for b in man["blind_spots"])
    counts = man["redaction"]["counts"]
    assert counts.get("user:ticket", 0) >= 1 and counts.get("user:poly:timed_out", 0) >= 2, counts
    everything = b"".join(m.values())
    assert b"TCK-123456" not in everything and b"=" * 100 not in everything
    lines = [json.loads(x)["message"] for x in m["journal.jsonl"].splitlines()]
    assert "[REDACTED:user:poly]" in lines and "ticket [REDACTED:user:ticket] opened by bob" in lines


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root for a private mount namespace")
def test_mount_secrets_through_the_snapshot_and_a_real_capture_store(tmp_path):
    """A tmpfs in a private mount namespace whose source is a URL with a password (curlftpfs,
    davfs show theirs so) and whose path holds `db_password=`; two real `hostdiag capture` runs
    store its series (keyed by the path), then the bundle is made in the same namespace. Neither
    secret may reach the snapshot, the reports or history.json."""
    path_pw, src_pw = "MntPathPw5ecret9", "MntSrcPw9Qz2Lm"
    mnt = tmp_path / "m" / f"db_password={path_pw}"
    store = tmp_path / "store" / "h.db"
    py, now = shlex.quote(sys.executable), int(time.time())
    script = f"""
        set -e
        mkdir -p {shlex.quote(str(mnt))}
        mount -t tmpfs -o size=1m {shlex.quote(f"ftp://bob:{src_pw}@files.internal/share")} {shlex.quote(str(mnt))}
        export HOSTDIAG_STORE={shlex.quote(str(store))} PYTHONDONTWRITEBYTECODE=1
        HOSTDIAG_NOW={now - 120} {py} -m hostdiag capture --store "$HOSTDIAG_STORE" --window 0 >/dev/null
        HOSTDIAG_NOW={now - 60} {py} -m hostdiag capture --store "$HOSTDIAG_STORE" --window 0 >/dev/null
        exec {py} -m hostdiag bundle --window 0 --only disk --since 10m -o -
    """
    p = subprocess.run([UNSHARE, "--mount", "--propagation", "private", "sh", "-c", script],
                       capture_output=True, timeout=180, cwd=str(tmp_path))
    assert p.returncode == 0, p.stderr.decode()
    m = members(p.stdout)
    assert b"history.json" in b"".join(n.encode() for n in m)
    for name, data in m.items():
        for s in (path_pw, src_pw):
            assert not [f for f in _fragments(s) if f in data], f"{s} in {name}"
    fs = json.loads(m["snapshot.json"])["sections"]["disk"]["data"]["filesystems"]
    ours = [f for f in fs if "/m/db_password=" in f["mount"]]
    assert ours and ours[0]["source"] == "ftp://bob:[REDACTED:url_password]@files.internal/share", ours
    assert any("/m/db_password=[REDACTED:keyword]" in k for k in json.loads(m["history.json"])["series"])


def test_journal_fields_beside_the_message_are_redacted(tmp_path):
    """journal.jsonl carries each entry's unit and identifier as well as its message; an
    identifier is whatever the sender chose (`logger -t "backup.sh --s3-secret-key ..."`)."""
    why = journalgen.available()
    if why:
        pytest.skip(why)
    now = time.time()
    ident = "backup.sh --s3-secret-key Id3ntPw9Qz2Lm"
    journalgen.write_journal(str(tmp_path / "system.journal"), [
        (now - 60, {"MESSAGE": "upload finished", "PRIORITY": 3, "_TRANSPORT": "syslog", "SYSLOG_IDENTIFIER": ident,
                    "_PID": 4242})])
    p = run("bundle", "--window", "0", "--only", "journal", "--since", "1h", "--journal-dir", str(tmp_path), "-o", "-")
    assert p.returncode == 0, p.stderr.decode()
    m = members(p.stdout)
    for name, data in m.items():
        assert not [f for f in _fragments("Id3ntPw9Qz2Lm") if f in data], f"identifier secret in {name}"
    rows = [json.loads(x) for x in m["journal.jsonl"].splitlines()]
    assert [r["ident"] for r in rows if r["message"] == "upload finished"] == [
        "backup.sh --s3-secret-key [REDACTED:cmdline_password]"]

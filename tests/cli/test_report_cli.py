"""The five-second report as a user meets it: usage errors before sampling, honest UNKNOWN,
Ctrl-C keeps the partial window, --can, help, completion, and exiting past a stuck worker."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

import pytest
from support import HOSTDIAG, cli

ENV = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")


def _importtime(*args) -> tuple[subprocess.CompletedProcess, str, set[str]]:
    """Run the CLI with -X importtime: (process, stderr without the import lines, modules imported)."""
    p = subprocess.run([sys.executable, "-X", "importtime", "-m", "hostdiag", *args], capture_output=True,
                       text=True, env=ENV, timeout=60)
    mods, rest = set(), []
    for line in p.stderr.splitlines():
        if line.startswith("import time:"):
            mods.add(line.rsplit("|", 1)[-1].strip())
        else:
            rest.append(line)
    return p, "\n".join(rest), mods


@pytest.mark.parametrize("args,needle", [
    (["--since", "30m", "--until", "1h"], "is not after --since 30m"),
    (["--until", "2h"], "is not after the default --since"),
    (["--since", "2099-01-01T00:00:00"], "is in the future"),
    (["--since", "99999h"], "days ago"),
    (["--since", "yesterday-ish"], "cannot read time"),
    (["--interval", "10", "--window", "5"], "longer than --window"),
    (["-t", "cpu.load_per_core=5,2"], "higher is worse"),
    (["-t", "memory.available_pct=20,30"], "lower is worse"),
    (["--only", ""], "--only is empty"),
    (["--only", ","], "--only is empty"),
    (["--only", "nosuch"], "unknown collector"),
    (["-o", "/proc/hostdiag-test"], "--output"),
    (["-o", "/nonexistent-dir/x"], "--output"),
    (["--plain", "--json"], "choose one of"),
])
def test_bad_input_is_one_line_exit_2_and_nothing_sampled(args, needle):
    # --window 30: had sampling started, the run would take 30 s and print a report
    p, err, mods = _importtime("snapshot", "--window", "30", *args)
    assert p.returncode == 2, (p.stdout, err)
    assert p.stdout == ""
    assert len(err.splitlines()) == 1 and err.startswith("hostdiag: ") and needle in err, err
    assert "hostdiag.core.runner" not in mods          # the runner is what samples: never imported


def test_threshold_in_the_right_order_is_accepted():
    p = cli("snapshot", "--window", "0", "--only", "memory", "-t", "memory.available_pct=30,20", "--json")
    assert p.returncode in (0, 1, 2), p.stderr


def test_most_collectors_blind_is_unknown_exit_3_never_ok(tmp_path):
    p = cli("snapshot", "--window", "0", "--proc-root", str(tmp_path / "none"), "--sys-root", str(tmp_path / "none"),
            "--plain", "--only", "cpu,memory,io,sockets,processes")
    assert p.returncode == 3, p.stdout + p.stderr
    assert "STATUS: UNKNOWN" in p.stdout and "STATUS: OK" not in p.stdout
    assert "collectors unavailable" in p.stdout and "is /proc mounted" in p.stdout
    # the header describes the tree given, not the machine hostdiag runs on
    assert p.stdout.startswith("hostdiag snapshot: ? ·") and "kernel ?" in p.stdout


def test_ctrl_c_mid_window_prints_the_partial_report_exit_130():
    p = subprocess.Popen([*HOSTDIAG, "snapshot", "--window", "30", "--interval", "0.5", "--plain",
                          "--only", "cpu,memory"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         env=ENV)
    time.sleep(3)                      # inside the 30 s window
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=25)
    assert p.returncode == 130, err
    assert "(interrupted: partial)" in out and "PARTIAL (interrupted during the window)" in out
    assert "STATUS: " in out and "Traceback" not in err


def test_ctrl_c_json_is_marked_interrupted():
    p = subprocess.Popen([*HOSTDIAG, "snapshot", "--window", "30", "--json", "--only", "cpu"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
    time.sleep(3)
    p.send_signal(signal.SIGINT)
    out, _ = p.communicate(timeout=25)
    import json

    doc = json.loads(out)
    assert p.returncode == 130 and 0 < doc["window_s"] < 30
    assert doc["series"]["cpu.busy_pct"]["t"] if "cpu.busy_pct" in doc["series"] else doc["series"]


def test_can_is_three_lines_with_utc_times():
    p = cli("snapshot", "--window", "0", "--only", "cpu", "--can")
    lines = p.stdout.splitlines()
    assert p.returncode in (0, 1, 2) and len(lines) == 3, p.stdout
    for line, word in zip(lines, ("CONDITION", "ACTION", "NEED")):
        assert line.startswith("[20") and "Z] " + word in line


def test_help_has_flags_examples_and_exit_codes():
    p = cli("snapshot", "--help", env={"COLUMNS": "100"})
    assert p.returncode in (0, 1, 2)
    assert "<bool>" not in p.stdout and "--full, --evidence" in p.stdout
    assert "Examples:" in p.stdout and "Exit codes:" in p.stdout and "130" in p.stdout


def test_shell_completion_is_offered():
    p = cli("--help")
    assert "--install-completion" in p.stdout and "--show-completion" in p.stdout
    q = cli("--show-completion", "bash", env={"SHELL": "/bin/bash"})
    assert q.returncode == 0 and "complete" in q.stdout


def test_collectors_lists_full_descriptions():
    from hostdiag import collectors

    out = cli("collectors").stdout
    for m in collectors.load():
        first_para = " ".join((m.__doc__ or "").strip().split("\n\n")[0].split())
        assert first_para in " ".join(out.split()), m.NAME


def test_exits_even_when_a_bounded_worker_is_stuck():
    """A hostdiag-* worker that never returns (as one stuck in statvfs on a hung mount) must not
    keep the process alive after the report: here a non-daemon thread, which the interpreter
    would otherwise wait for forever."""
    code = ("import threading; threading.Thread(target=threading.Event().wait, name='hostdiag-stuck').start();"
            "print('report'); from hostdiag.cli import _exit; _exit(2)")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=20, env=ENV)
    assert p.returncode == 2 and p.stdout == "report\n"


@pytest.mark.skipif(not __import__("shutil").which("script"), reason="needs script(1) for a real pty")
def test_on_a_tty_progress_shows_and_a_long_full_report_repeats_the_status(tmp_path):
    """Under a real pseudo-terminal (script(1)): the spinner with seconds left appears while
    sampling, and a --full report longer than the screen ends with the status block again."""
    log = tmp_path / "tty.log"
    cmd = f"{sys.executable} -m hostdiag snapshot --window 3 --interval 0.5 --full --only cpu,memory,processes"
    p = subprocess.run(["script", "-qec", cmd, str(log)], capture_output=True, text=True, timeout=60,
                       stdin=subprocess.DEVNULL,
                       env=dict(ENV, COLUMNS="80", LINES="20", TERM="xterm"))
    text = log.read_text(errors="replace")
    assert "s left" in text and "sampling" in text                   # the progress line (stderr, a TTY)
    body = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", text)
    assert body.count("Condition") == 2 and body.rstrip().rfind("Need") > body.rfind("Blind spots")
    assert p.returncode in (0, 1, 2)


@pytest.mark.parametrize("cmd", ["bundle", "capture"])
def test_ctrl_c_mid_window_keeps_what_was_sampled_and_exits_130(tmp_path, cmd):
    """bundle and capture cut short by Ctrl-C exited 0, as if the full window had been sampled."""
    out = tmp_path / ("b.tgz" if cmd == "bundle" else "h.db")
    args = ["-o", str(out)] if cmd == "bundle" else ["--store", str(out)]
    p = subprocess.Popen([*HOSTDIAG, cmd, "--window", "30", "--interval", "0.5", *(["--only", "cpu"] if cmd == "bundle" else []),
                          *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
    time.sleep(3)                      # inside the 30 s window
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=60)
    assert p.returncode == 130, err
    assert "interrupted: the sampling window was cut short" in err and "Traceback" not in err, err
    assert out.exists() and out.stat().st_size > 0
    if cmd == "bundle":
        v = subprocess.run([*HOSTDIAG, "bundle", "verify", str(out)], capture_output=True, text=True, env=ENV)
        assert v.returncode == 0, v.stdout + v.stderr

"""Folding a printed command to the width keeps its argv for every word core/shell.quote can make,
including bash's $'...' (a host name with a newline): there `\\'` does not close the quote, `\\x0a`
is one character, and a backslash-newline is kept literally (seen: a mount named with a newline
printed a verify that ran `sort\\` and df'ed a path with a backslash in it). Checked by bash."""
from __future__ import annotations

from hypothesis import given, settings, strategies as st

from hostdiag.core import shell
from hostdiag.render.common import brief_command, command_lines, split_comment
from support import bash_argv

HOSTILE = st.lists(st.sampled_from(list("ab -'\"\\$`#;()|&\n\t\x1b{}x0") + ["$(id)", "\\x0a", "é"]),
                   min_size=1, max_size=40).map("".join)


@settings(max_examples=150, deadline=None)
@given(st.lists(HOSTILE, min_size=1, max_size=5), st.integers(min_value=30, max_value=100))
def test_folded_quoted_words_keep_their_argv(argv, width):
    cmd = shell.cmd(*argv)
    lines = command_lines(cmd + "   # a note", width)
    assert all(len(x) <= width for x in lines), lines
    assert lines[-1] == "# a note"
    assert bash_argv("\n".join(lines[:-1])) == argv


def test_the_mount_seen_on_this_host_folds_to_a_working_command():
    mnt = "/tmp/zr/-m $(touch PWN1) 'q\" `id`\nx;id>>PWN2;#"
    cmd = shell.cmd("-h", mnt, "-xh", "--max-depth=2", mnt)   # as in df/du verify, after printf
    for width in (40, 48, 60, 69):
        text = "\n".join(command_lines(cmd, width))
        assert bash_argv(text) == ["-h", mnt, "-xh", "--max-depth=2", mnt], (width, text)


def test_a_hash_inside_ansi_c_quotes_is_not_a_comment():
    word = shell.quote("a \\' #b\n")
    assert split_comment(f"ls {word}") == (f"ls {word}", "")
    assert brief_command(f"ls {word}  # note") == f"ls {word}"


def test_terminal_full_view_on_a_40_column_terminal_prints_whole_commands():
    """The terminal folded commands to at least 30 columns; on a 40-column terminal the verify
    column is 24 wide and rich cropped the rest: `df -h $'/tmp/…$(touch` with the quote open."""
    import re
    import types

    from hostdiag import analysis
    from hostdiag.core.model import SCHEMA_VERSION, Finding, Host, Section, Snapshot
    from hostdiag.core.thresholds import Thresholds
    from hostdiag.render import Env, render

    verify = "df -h '/srv/a rather long mount point/with spaces'; du -xh --max-depth=2 /srv/data/x | sort -h"

    def findings(sec, th):
        return [Finding("disk.nearly_full", "disk", "critical", "/srv is full", subject={"mount": "/srv"}, verify=verify)]

    snap = Snapshot(schema_version=SCHEMA_VERSION, host=Host("vm", "6.1", "Debian", 2, None, None, 0, "test"),
                    collected_at="2026-11-29T08:20:00+00:00", window_s=5.0, interval_s=1.0,
                    sections={"disk": Section("disk", "ok", data={})}, series={})
    rep = analysis.build(snap, [types.SimpleNamespace(NAME="disk", findings=findings)], Thresholds({}))
    out = re.sub(r"\x1b\[[0-9;]*m", "", render(rep, "terminal", Env(True, False, 40, 50), full=True))
    lines = out.split("\n")
    i = next(n for n, x in enumerate(lines) if x.lstrip().startswith("verify"))
    col = lines[i].index("df -h")
    cmd = [lines[i][col:].rstrip()]
    while cmd[-1].endswith("\\"):
        i += 1
        cmd.append(lines[i][col:].rstrip())
    import shlex

    def words(text):        # bash drops a backslash-newline anywhere outside single quotes
        return shlex.split(text.replace("\\\n", ""))
    assert words("\n".join(cmd)) == words(verify), cmd

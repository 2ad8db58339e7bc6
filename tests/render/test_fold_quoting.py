"""Folding a printed command to the width keeps its argv for every word core/shell.quote can make,
including bash's $'...' (a host name with a newline): there `\\'` does not close the quote, `\\x0a`
is one character, and a backslash-newline is kept literally (seen: a mount named with a newline
printed a verify that ran `sort\\` and df'ed a path with a backslash in it). Checked by bash."""
from __future__ import annotations

import subprocess

from hypothesis import given, settings, strategies as st

from hostdiag.core import shell
from hostdiag.render.common import brief_command, command_lines, split_comment

HOSTILE = st.lists(st.sampled_from(list("ab -'\"\\$`#;()|&\n\t\x1b{}x0") + ["$(id)", "\\x0a", "é"]),
                   min_size=1, max_size=40).map("".join)


def _bash_argv(text: str) -> list[str]:
    out = subprocess.run(["bash", "-c", "printf '%s\\0' " + text], capture_output=True, timeout=10).stdout
    return out.decode("utf-8", "surrogateescape").split("\0")[:-1]


@settings(max_examples=150, deadline=None)
@given(st.lists(HOSTILE, min_size=1, max_size=5), st.integers(min_value=30, max_value=100))
def test_folded_quoted_words_keep_their_argv(argv, width):
    cmd = shell.cmd(*argv)
    lines = command_lines(cmd + "   # a note", width)
    assert all(len(x) <= width for x in lines), lines
    assert lines[-1] == "# a note"
    assert _bash_argv("\n".join(lines[:-1])) == argv


def test_the_mount_seen_on_this_host_folds_to_a_working_command():
    mnt = "/tmp/zr/-m $(touch PWN1) 'q\" `id`\nx;id>>PWN2;#"
    cmd = shell.cmd("-h", mnt, "-xh", "--max-depth=2", mnt)   # as in df/du verify, after printf
    for width in (40, 48, 60, 69):
        text = "\n".join(command_lines(cmd, width))
        assert _bash_argv(text) == ["-h", mnt, "-xh", "--max-depth=2", mnt], (width, text)


def test_a_hash_inside_ansi_c_quotes_is_not_a_comment():
    word = shell.quote("a \\' #b\n")
    assert split_comment(f"ls {word}") == (f"ls {word}", "")
    assert brief_command(f"ls {word}  # note") == f"ls {word}"

"""Printed commands run as printed: folding a long command to the width keeps its argv (checked
by bash itself), and no line is longer than the width."""
from __future__ import annotations

import shlex

from hypothesis import given, settings, strategies as st

from hostdiag.render.common import brief_command, command_lines, split_comment
from support import bash_argv

ARG = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), min_size=1, max_size=150)


@settings(max_examples=60, deadline=None)
@given(st.lists(ARG, min_size=1, max_size=6), st.integers(min_value=30, max_value=100))
def test_folded_command_has_the_same_argv_in_bash(argv, width):
    cmd = shlex.join(argv)
    lines = command_lines(cmd, width)
    assert all(len(x) <= width for x in lines), lines
    assert bash_argv("\n".join(lines)) == argv


def test_comment_goes_on_its_own_lines_and_brief_drops_it():
    cmd = "dmesg -T | grep -iE 'a  # b' | tail   # or: journalctl -k -g 'Killed process'"
    assert split_comment(cmd) == ("dmesg -T | grep -iE 'a  # b' | tail", "# or: journalctl -k -g 'Killed process'")
    lines = command_lines(cmd, 40)
    assert lines[-1].startswith("# ") and not any(x.endswith("\\") and "#" in x for x in lines)
    assert brief_command(cmd) == "dmesg -T | grep -iE 'a  # b' | tail"

import re

from hypothesis import given, strategies as st

from hostdiag.core.sanitize import MAX_TEXT, clean, deep

UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


@given(st.one_of(st.text(), st.binary()))
def test_clean_never_leaves_control_characters(s):
    out = clean(s)
    assert not UNSAFE.search(out)
    out.encode("utf-8")  # always encodable: no lone surrogates survive
    assert len(out) <= MAX_TEXT + 40


@given(st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7e)))
def test_clean_keeps_printable_ascii_as_is(s):
    assert clean(s[:MAX_TEXT]) == s[:MAX_TEXT]


def test_examples():
    assert clean("a\x1b[31mb") == "a\\x1b[31mb"
    assert clean("\x9b2J") == "\\x9b2J"                # 8-bit CSI
    assert clean(b"\xff\xfe") == "\\xff\\xfe"           # invalid UTF-8
    assert clean("x\udcffy") == "x\\xffy"              # surrogateescape'd byte
    assert clean("l1\nl2") == "l1\\x0al2" and clean("l1\nl2", multiline=True) == "l1\nl2"
    assert clean("[bold]red[/bold]") == "[bold]red[/bold]"   # markup is harmless text here
    assert clean("x" * 100_000).endswith("…[+95904 chars]")
    assert deep({"k\x1b": ["\x07", 1, None]}) == {"k\\x1b": ["\\x07", 1, None]}

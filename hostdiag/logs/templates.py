"""Template folding: a message with its variable parts (numbers, ids, addresses) folded, so repeats count together."""
from __future__ import annotations

import re

_FOLDS = [
    (re.compile(r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b"), "<uuid>"),
    (re.compile(r"\b\d{1,3}(?:\.\d{1,3}){3}(?::\d+)?\b"), "<ip>"),
    (re.compile(r"(?<![\w:])(?:[0-9a-fA-F]{1,4}:){1,7}:(?:[0-9a-fA-F]{1,4}(?::[0-9a-fA-F]{1,4})*)?"
                r"|\b(?:[0-9a-fA-F]{1,4}:){4,7}[0-9a-fA-F]{1,4}\b"), "<ip>"),
    (re.compile(r"\b0x[0-9a-fA-F]+\b|\b[0-9a-fA-F]*\d[0-9a-fA-F]*[a-fA-F][0-9a-fA-F]*\b(?<=\w{8})"
                r"|\b[0-9a-fA-F]*[a-fA-F][0-9a-fA-F]*\d[0-9a-fA-F]*\b(?<=\w{8})"), "<hex>"),
    (re.compile(r"(?<![A-Za-z_])\d+(?:\.\d+)?"), "<n>"),   # not the digit in sda1, v6, eth0
]


def template(msg: str) -> str:
    """A message with its variable parts folded: 'conn 10.0.0.1:55 id 42' -> 'conn <ip> id <n>'."""
    s = msg.split("\n", 1)[0][:300]
    for rx, rep in _FOLDS:
        s = rx.sub(rep, s)
    return s

"""Reading logs, shared by the journal and changes collectors.

    from hostdiag import logs
    rd = logs.open_journal(ctx, since, until, cap=..., expired=..., matches=("MESSAGE_ID=...",))
    for e in rd.entries: ...          # logs.Entry, newest first; rd.truncated/skipped/notes say what was missed

- sources.py   where journal files are (find_source: --journal-dir/--journal-file, --root, live)
- backends.py  systemd-python, `journalctl -o json`, classic text logs + /dev/kmsg; open_journal()
- parsers.py   one syslog line / one kmsg record -> Entry (pure)
- templates.py template(msg): variable parts folded so repeated messages count together
Matching lines against the catalog's log patterns is hostdiag.catalog.LogPattern.search.
"""
from hostdiag.logs.backends import (MAX_ENTRIES, Read, journalctl_cmd, open_journal, read_journalctl,
                                    read_python, read_text, run_bounded)
from hostdiag.logs.entry import MAX_MSG_CHARS, PRIORITIES, Entry, make_entry
from hostdiag.logs.parsers import parse_kmsg_record, parse_syslog_line
from hostdiag.logs.sources import Source, find_source
from hostdiag.logs.templates import template

__all__ = ["MAX_ENTRIES", "MAX_MSG_CHARS", "PRIORITIES", "Entry", "Read", "Source", "find_source",
           "journalctl_cmd", "make_entry", "open_journal", "parse_kmsg_record", "parse_syslog_line",
           "read_journalctl", "read_python", "read_text", "run_bounded", "template"]

"""Where the capture store lives. No sqlite3 here: a snapshot checks for a store before it
loads the store code (a Python without its sqlite3 library still runs the snapshot)."""
from __future__ import annotations

import os


def default_path(env=None, euid: int | None = None) -> str:
    """--store default: $HOSTDIAG_STORE, else /var/lib/hostdiag for root, else $XDG_STATE_HOME."""
    env = os.environ if env is None else env
    if env.get("HOSTDIAG_STORE"):
        return env["HOSTDIAG_STORE"]
    if (os.geteuid() if euid is None else euid) == 0:
        return "/var/lib/hostdiag/history.db"
    state = env.get("XDG_STATE_HOME") or os.path.join(env.get("HOME") or "~", ".local", "state")
    return os.path.join(os.path.expanduser(state), "hostdiag", "history.db")

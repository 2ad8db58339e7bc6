"""`hostdiag capture`: one short snapshot appended to the history store. Silent on success.

For cron and systemd timers: on failure one line on stderr and exit 3 (cron mails only that).
Tests inject the capture time with the environment variable HOSTDIAG_NOW (epoch seconds);
nothing else reads it.
"""
from __future__ import annotations

import os
import re
import time
from typing import Optional

import typer

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?\s*$", re.I)
_AGE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$", re.I)


def parse_size(text: str) -> int:
    """'256M' -> 268435456 (binary units; a bare number is bytes)."""
    m = _SIZE.match(text)
    if not m:
        raise typer.BadParameter(f"{text!r}: use e.g. 256M, 1G or a number of bytes")
    return int(float(m.group(1)) * 1024 ** " kmgt".index((m.group(2) or " ").lower()))


def parse_age(text: str) -> float:
    """'14d' -> seconds; a bare number is seconds."""
    m = _AGE.match(text)
    if not m:
        raise typer.BadParameter(f"{text!r}: use e.g. 14d, 36h or a number of seconds")
    return float(m.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[(m.group(2) or "").lower()]


def now() -> float:
    """The capture clock: HOSTDIAG_NOW (tests only) or the wall clock."""
    v = os.environ.get("HOSTDIAG_NOW")
    return float(v) if v else time.time()


def capture_cmd(
    store: Optional[str] = typer.Option(None, "--store", envvar="HOSTDIAG_STORE", help="Store file (default /var/lib/hostdiag/history.db for root, else $XDG_STATE_HOME/hostdiag/history.db)."),
    window: float = typer.Option(1.0, "--window", "-w", min=0, help="Sampling window in seconds for rates; 0 = point in time."),
    interval: float = typer.Option(1.0, "--interval", min=0.05, help="Seconds between samples in the window."),
    timeout: float = typer.Option(2.0, "--timeout", min=0.05, help="Time bound per collector call, seconds."),
    top: int = typer.Option(20, "--top", min=1, max=200, help="Processes kept per capture by each of CPU, RSS, fds and I/O."),
    max_age: str = typer.Option("14d", "--max-age", help="Drop captures older than this (e.g. 14d, 36h)."),
    max_size: str = typer.Option("256M", "--max-size", help="Never let the store (file + WAL) grow past this (e.g. 256M, 1G)."),
    lock_timeout: float = typer.Option(10.0, "--lock-timeout", min=0, help="Wait at most this long for another capture holding the store."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Say what was stored and how big the store is."),
    textfile: Optional[str] = typer.Option(None, "--textfile", metavar="DIR", help="Also write the capture's metrics and findings to DIR/hostdiag.prom for node_exporter's textfile collector (atomic replace)."),
    no_store: bool = typer.Option(False, "--no-store", help="Keep no local history (with --textfile: Prometheus holds the history)."),
    proc_root: str = typer.Option("/proc", "--proc-root", help="Read procfs from here."),
    sys_root: str = typer.Option("/sys", "--sys-root", help="Read sysfs from here."),
    root: str = typer.Option("/", "--root", help="Host root filesystem for /etc and mount paths."),
):
    """Append one short capture to the local history store (for a 1-minute timer or cron)."""
    from hostdiag.history.store import StoreError, default_path

    age, size = parse_age(max_age), parse_size(max_size)
    if size < 1024 * 1024:      # the WAL and one capture's pages are kept free below the cap
        raise typer.BadParameter("--max-size must be at least 1M")
    if no_store and not textfile:
        raise typer.BadParameter("--no-store keeps nothing without --textfile DIR")
    if textfile:  # before sampling: a bad directory costs nothing
        from hostdiag.core.safeio import UnsafePath, check_target
        from hostdiag.export.textfile import FILENAME

        try:
            check_target(os.path.join(textfile, FILENAME), force=True)
        except UnsafePath as e:
            typer.echo(f"hostdiag capture: --textfile {e}", err=True)
            raise typer.Exit(3) from None
    path = None if no_store else (store or default_path())
    try:
        stats = run(path, window_s=window, interval_s=interval, timeout_s=timeout, top=top, max_age_s=age,
                    max_bytes=size, lock_timeout_s=lock_timeout, proc=proc_root, sys_root=sys_root, root=root,
                    textfile=textfile)
    except (StoreError, OSError, ValueError) as e:
        typer.echo(f"hostdiag capture: {e}", err=True)
        raise typer.Exit(3) from None
    if stats["interrupted"]:    # Ctrl-C (or a stop) cut the window: what was sampled is stored, marked short
        typer.echo("hostdiag capture: interrupted: the sampling window was cut short (stored as sampled)", err=True)
    if verbose and path is None:
        typer.echo(f"wrote {stats['textfile']} ({stats['findings']} findings); no local history kept")
    elif verbose:
        from hostdiag.core.units import human_bytes, rfc3339

        typer.echo(f"stored capture {rfc3339(stats['t'])} in {path}: {stats['procs']} process rows, "
                   f"{stats['mounts']} mounts, {stats['findings']} findings; {stats['expired']} old captures "
                   f"expired; store {human_bytes(stats['bytes'])} ({stats['captures']} captures, "
                   f"cap {human_bytes(size)}, {max_age})")
    if stats["interrupted"]:
        from hostdiag.core.exit import ExitStatus

        raise typer.Exit(int(ExitStatus.INTERRUPTED))


def run(path: str, *, window_s: float = 1.0, interval_s: float = 1.0, timeout_s: float = 2.0, top: int = 20,
        max_age_s: float = 14 * 86400, max_bytes: int = 256 * 1024 * 1024, lock_timeout_s: float = 10.0,
        proc: str = "/proc", sys_root: str = "/sys", root: str = "/", textfile: str | None = None) -> dict:
    """Open the store first (a refused or busy store costs no sampling), snapshot, append; then
    the node_exporter textfile when asked. `path` None: no store (textfile only)."""
    from hostdiag.commands import snapshot as snap_cmd
    from hostdiag.core.context import Context
    from hostdiag.history import record
    from hostdiag.history.store import Store

    st = Store.open(path, max_age_s=max_age_s, max_bytes=max_bytes, lock_timeout_s=lock_timeout_s) if path else None
    try:
        t = now()
        wall = time.time()
        # the journal window is the last minute: one capture a minute sees each error once
        ctx = Context(proc=proc, sys=sys_root, root=root, timeout_s=timeout_s, since=wall - 60, until=wall)
        report = snap_cmd.run(snap_cmd.Options(window_s=window_s, interval_s=interval_s), ctx)
        doc = report.to_dict()
        stats: dict = {"t": t, "findings": len(doc.get("findings") or [])}
        if st is not None:
            scan = getattr(report.snapshot, "scan", None)
            rec = record.from_report(doc, t, record.procs_from_scan(scan) if scan else None, top)
            stats = st.append(rec, next_free="HOSTDIAG_NOW" not in os.environ)
            stats["captures"] = st.span()[2]
        if textfile:
            from hostdiag.bundle import redact
            from hostdiag.export import textfile as tf

            stats["textfile"] = tf.write(textfile, doc, redact=redact.make().text)
        stats["interrupted"] = report.snapshot.interrupted
        return stats
    finally:
        if st is not None:
            st.close()


"""The typer app: flags -> Options, run a command, render, map errors to exit statuses.

No /proc reads and no rich tables here; rich is imported only by the terminal renderer.
"""
from __future__ import annotations

import importlib
import os
import sys
import threading
import time
from collections.abc import MutableMapping
from pathlib import Path
from typing import Optional

import typer
from typer.core import TyperGroup

from hostdiag import __version__
from hostdiag.core.exit import ExitStatus

# Commands whose modules are imported, and turned into click commands, only when named (or for
# --help and completion): building all of them cost every run ~10 ms, `snapshot` included.
_LAZY = {"capture": ("hostdiag.commands.capture", "capture_cmd"),
         "history": ("hostdiag.commands.history", "history_cmd"),
         "signatures": ("hostdiag.commands.signatures", "app"),
         "bundle": ("hostdiag.commands.bundle", "app")}
_ORDER = ("snapshot", "collectors", "thresholds", "capture", "history", "packets", "signatures", "bundle")


class _Commands(MutableMapping):
    """The top-level command table with the _LAZY entries built on first access, exactly as
    add_typer()/command() on the app would have built them (a holder app with its settings)."""

    def __init__(self, eager):
        self._d = dict(eager)
        self._lazy = {k: v for k, v in _LAZY.items() if k not in self._d}

    def _load(self, name: str) -> None:
        module, attr = self._lazy.pop(name)
        obj = getattr(importlib.import_module(module), attr)
        holder = typer.Typer(add_completion=False, pretty_exceptions_enable=False, rich_markup_mode=None)
        holder.callback()(lambda: None)          # a group, so `name` is one of its commands
        if isinstance(obj, typer.Typer):
            holder.add_typer(obj, name=name)
        else:
            holder.command(name)(obj)
        self._d[name] = typer.main.get_command(holder).commands[name]

    def __getitem__(self, name):
        if name in self._lazy:
            self._load(name)
        return self._d[name]

    def __contains__(self, name) -> bool:
        return name in self._d or name in self._lazy

    def __iter__(self):
        names = [*self._d, *self._lazy]
        return iter(sorted(names, key=lambda n: _ORDER.index(n) if n in _ORDER else len(_ORDER)))

    def __len__(self) -> int:
        return len(self._d) + len(self._lazy)

    def __setitem__(self, name, cmd) -> None:
        self._lazy.pop(name, None)
        self._d[name] = cmd

    def __delitem__(self, name) -> None:
        if self._lazy.pop(name, None) is None:
            del self._d[name]


class _Group(TyperGroup):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.commands = _Commands(self.commands)


app = typer.Typer(
    name="hostdiag",
    help="Read-only host diagnostics for incident stabilization. Changes nothing on the host.",
    no_args_is_help=True,
    add_completion=True,              # --install-completion / --show-completion
    pretty_exceptions_enable=False,
    rich_markup_mode=None,            # plain click help: flags shown as flags, no rich import for --help
    cls=_Group,
)


def _version(value: bool):
    if value:
        typer.echo(f"hostdiag {__version__}")
        raise typer.Exit()


@app.callback()
def _main(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                       help="Print the version and exit.")):
    """hostdiag: what is on fire, what to stabilize first, what it could not see."""


def _split(values: list[str] | None) -> list[str]:
    return [x.strip() for v in values or [] for x in v.split(",") if x.strip()]


EXIT_CODES = """\b
Exit codes:
  0  no warning or critical finding
  1  worst finding is a warning
  2  a critical finding; also a usage error (one line on stderr, nothing sampled)
  3  status UNKNOWN (most collectors could not see) or hostdiag failed
  130 interrupted (Ctrl-C during the window prints the partial report)"""

SNAPSHOT_HELP = """Sample the host for a short window and print a stabilize-first report.

The default view fits one screen: status, Condition/Action/Need, the most urgent findings
with the command that verifies each, what changed, matching failure shapes, blind spots.
--full adds the evidence, tables and sparklines; --json is always complete.

\b
Examples:
  hostdiag snapshot                      # 5 s window, one screen
  hostdiag snapshot --full --pager       # everything, in less
  hostdiag snapshot --can                # Condition/Action/Need for the incident channel
  hostdiag snapshot -w 30 -o /root/snap.json --json
  hostdiag snapshot --only memory,disk -t disk.used_pct=80,90
  hostdiag snapshot --proc-root /host/proc --sys-root /host/sys --root /host

""" + EXIT_CODES

MAX_SINCE_S = 400 * 86400     # --since further back than this is a typo (99999h), not a log window


def _usage(msg: str) -> typer.Exit:
    """A usage error: one line on stderr, exit 2, before anything is sampled."""
    typer.echo(f"hostdiag: {msg}", err=True)
    return typer.Exit(int(ExitStatus.USAGE))


def _check_inputs(window: float, interval: float, only, since: str | None, until: str | None):
    """Bad input fails here, before sampling: (since, until) as epoch seconds or None."""
    from hostdiag.core.timeparse import parse_when

    # `only` is None (typer >= 0.9) or () (typer 0.7, Debian 12) when --only was not given at all
    if only and not _split(only):
        raise _usage("--only is empty: name at least one collector (see `hostdiag collectors`)")
    if window > 0 and interval > window:
        raise _usage(f"--interval {interval:g}s is longer than --window {window:g}s: nothing would be "
                     "sampled twice; use a shorter interval or --window 0 for a point in time")
    now = time.time()
    try:
        t_since = parse_when(since, now) if since else None
        t_until = parse_when(until, now) if until else None
    except ValueError as e:
        raise _usage(str(e)) from None
    if t_since is not None and t_since > now + 60:
        raise _usage(f"--since {since} is in the future")
    if t_since is not None and now - t_since > MAX_SINCE_S:
        raise _usage(f"--since {since} is more than {MAX_SINCE_S // 86400} days ago")
    if t_until is not None and t_until - now > 60 and t_since is None:
        raise _usage(f"--until {until} is in the future")
    lo = t_since if t_since is not None else now - 1800
    if t_until is not None and t_until <= lo:
        what = f"--since {since}" if since else "the default --since (30m ago)"
        raise _usage(f"--until {until} is not after {what}")
    return t_since, t_until


def _progress_bar(window: float):
    """A transient spinner on stderr with the seconds left and what is being read; None off a TTY."""
    if window <= 0 or not sys.stderr.isatty() or "NO_COLOR" in os.environ:
        return None, None
    from rich.console import Console
    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn

    prog = Progress(SpinnerColumn(), TextColumn("sampling"), BarColumn(bar_width=20),
                    TextColumn("{task.fields[left]:>4}s left"), TextColumn("{task.fields[what]}"),
                    console=Console(file=sys.stderr), transient=True)
    task = prog.add_task("sampling", total=window, left=f"{window:.0f}", what="")

    def update(elapsed: float, total: float, what: str) -> None:
        prog.update(task, completed=min(elapsed, total), left=f"{max(0.0, total - elapsed):.0f}", what=what[:40])

    return prog, update


@app.command(help=SNAPSHOT_HELP)
def snapshot(
    window: float = typer.Option(5.0, "--window", "-w", min=0, help="Sampling window in seconds; 0 = point in time (no rates)."),
    interval: float = typer.Option(1.0, "--interval", min=0.05, help="Seconds between samples in the window (not longer than the window)."),
    timeout: float = typer.Option(2.0, "--timeout", min=0.05, help="Time bound per collector call, seconds."),
    full: bool = typer.Option(False, "--full", "--evidence", help="The whole report: per-resource evidence, tables, sparklines, every finding."),
    can: bool = typer.Option(False, "--can", help="Print only Condition / Action / Need, three lines with UTC times, for the incident channel."),
    pager: bool = typer.Option(False, "--pager", help="Page the report (less -R) when stdout is a terminal."),
    plain: bool = typer.Option(False, "--plain", help="No colour or box drawing, 80 columns (default when stdout is not a TTY or NO_COLOR is set)."),
    json_: bool = typer.Option(False, "--json", help="The whole snapshot and findings as JSON (always complete)."),
    markdown: bool = typer.Option(False, "--markdown", help="Markdown, for an incident channel or postmortem."),
    output: Optional[str] = typer.Option(None, "--output", "-o", help="Write the report to this new file (0600, never through a link, never under /proc, /sys or /dev) instead of stdout; '-' is stdout."),
    force: bool = typer.Option(False, "--force", help="Let --output replace an existing regular file."),
    only: Optional[list[str]] = typer.Option(None, "--only", help="Run only these collectors (comma-separated or repeated)."),
    no_collector: Optional[list[str]] = typer.Option(None, "--no-collector", help="Skip a collector (repeatable)."),
    threshold: Optional[list[str]] = typer.Option(None, "--threshold", "-t", help="Override a threshold: KEY=WARNING[,CRITICAL] (see `hostdiag thresholds`)."),
    top: int = typer.Option(5, "--top", min=1, max=100, help="Rows per top-N table in the full report."),
    proc_root: str = typer.Option("/proc", "--proc-root", help="Read procfs from here (e.g. /host/proc in a container)."),
    sys_root: str = typer.Option("/sys", "--sys-root", help="Read sysfs from here."),
    root: str = typer.Option("/", "--root", help="Host root filesystem for /etc and mount paths."),
    journal_dir: Optional[str] = typer.Option(None, "--journal-dir", help="Read journal files from this directory instead of the live journal."),
    journal_file: Optional[str] = typer.Option(None, "--journal-file", help="Read this one journal file instead of the live journal."),
    since: Optional[str] = typer.Option(None, "--since", help="Start of the log window: '30m', '2h', '1d' ago or an ISO-8601 time (default 30m)."),
    until: Optional[str] = typer.Option(None, "--until", help="End of the log window, same forms (default now)."),
    catalog_dir: Optional[list[str]] = typer.Option(None, "--catalog", help="Add a signature catalog directory on top of the shipped one (repeatable; also $HOSTDIAG_SIGNATURES)."),
    debug: bool = typer.Option(False, "--debug", help="Print tracebacks of collector failures to stderr."),
    no_history: bool = typer.Option(False, "--no-history", help="Do not read the capture store (hostdiag capture) for since-when, trends and multi-hour shapes."),
    store: Optional[str] = typer.Option(None, "--store", envvar="HOSTDIAG_STORE", help="The capture store to read (default /var/lib/hostdiag/history.db for root, else $XDG_STATE_HOME/hostdiag/history.db); opened read-only."),
    packets: Optional[float] = typer.Option(None, "--packets", min=0.5, max=300, metavar="SECONDS", help="Also capture packets passively for SECONDS (e.g. 5) during the window: resets, unanswered SYNs, retransmits, DNS failures (root or CAP_NET_RAW)."),
    iface: Optional[list[str]] = typer.Option(None, "--iface", help="With --packets: capture on this interface (repeatable; default every up interface)."),
    packet_filter: Optional[str] = typer.Option(None, "--packet-filter", help="With --packets: 'port N' / 'host ADDR' terms joined by 'or'."),
):
    if sum([plain, json_, markdown, can]) > 1:
        raise _usage("choose one of --plain, --json, --markdown, --can")
    t_since, t_until = _check_inputs(window, interval, only, since, until)
    if output is not None and str(output) == "-":
        output = None
    if output is not None:  # before sampling: a bad path must cost nothing
        from hostdiag.core.safeio import UnsafePath, check_target

        try:
            check_target(output, force=force)
        except UnsafePath as e:
            raise _usage(f"--output {e}") from None
    from hostdiag.commands import snapshot as cmd

    popts = None
    if packets is not None:      # a bad filter or interface is a usage error, before sampling
        from hostdiag.commands import packets as pk
        from hostdiag.packets import bpf

        try:
            bpf.parse_filter(packet_filter)
        except ValueError as e:
            raise _usage(f"--packet-filter: {e}") from None
        for name in iface or []:
            if not os.path.exists(os.path.join(sys_root, "class", "net", name)):
                raise _usage(f"--iface {name}: no such interface")
        popts = pk.Options(seconds=packets, ifaces=list(iface) if iface else None, filter=packet_filter)
    opts = cmd.Options(window_s=window, interval_s=interval, only=_split(only) or None,
                       skip=_split(no_collector), thresholds=list(threshold or []),
                       debug=debug, history=not no_history, store=store, packets=popts)
    try:
        cmd.check(opts)       # unknown collector or threshold, inverted levels: before sampling
    except ValueError as e:
        raise _usage(str(e)) from None
    from hostdiag.core.context import Context
    from hostdiag.render import Env, render

    journal = journal_file or journal_dir
    ctx = Context(proc=proc_root, sys=sys_root, root=root, timeout_s=timeout,
                  journal_path=str(journal) if journal else None, since=t_since, until=t_until,
                  catalog_dirs=tuple(str(d) for d in catalog_dir or ()))
    prog, update = _progress_bar(window)
    try:
        if prog is not None:
            with prog:
                report = cmd.run(opts, ctx, progress=update)
        else:
            report = cmd.run(opts, ctx)
    except ValueError as e:
        raise _usage(str(e)) from None
    env = Env.detect(sys.stdout if output is None else None)
    fmt = ("can" if can else "json" if json_ else "markdown" if markdown
           else "plain" if (plain or not env.pretty) else "terminal")
    text = render(report, fmt, env, top=top, full=full)
    code = ExitStatus.INTERRUPTED if report.snapshot.interrupted else ExitStatus.for_severity(report.headline.severity)
    if output is None:
        _emit(text, report, fmt, env, full, pager)
    else:
        from hostdiag.core.safeio import UnsafePath, write_file

        try:
            write_file(output, text.encode("utf-8"), force=force)
        except (UnsafePath, OSError) as e:
            sys.stdout.write(text)          # never lose the report: print it, then say why
            typer.echo(f"hostdiag: --output not written: {e}", err=True)
            raise typer.Exit(int(ExitStatus.ERROR)) from None
    raise typer.Exit(int(code))


def _emit(text: str, report, fmt: str, env, full: bool, pager: bool) -> None:
    """stdout; on a TTY a long report goes through the pager when asked, else ends with the status again."""
    if env.stdout_isatty and fmt in ("terminal", "plain"):
        if pager:
            import shutil
            import subprocess

            less = shutil.which("less")
            if less:
                subprocess.run([less, "-R", "-F", "-X"], input=text, text=True, check=False)
                return
        if text.count("\n") > env.height:
            from hostdiag.render import render_status

            text += "\n" + render_status(report, fmt, env)
    sys.stdout.write(text)
    sys.stdout.flush()


@app.command("collectors")
def collectors_cmd():
    """List the collectors: name, default state, what each sees and reads (full descriptions)."""
    from hostdiag import collectors

    import shutil
    import textwrap

    width = max(60, min(120, shutil.get_terminal_size((100, 24)).columns))
    for m in collectors.load():
        doc = " ".join((m.__doc__ or "").strip().split("\n\n")[0].split())   # the whole first paragraph
        state = "enabled" if m.DEFAULT_ENABLED else "disabled"
        typer.echo(f"{m.NAME} ({state})")
        typer.echo(textwrap.fill(doc, width, initial_indent="    ", subsequent_indent="    ", break_on_hyphens=False,
                                 break_long_words=False))
        typer.echo(textwrap.fill("reads: " + ", ".join(m.READS), width, initial_indent="    ",
                                 subsequent_indent="           ", break_on_hyphens=False, break_long_words=False))


@app.command("thresholds")
def thresholds_cmd():
    """List every threshold with its warning/critical levels; override with --threshold."""
    from hostdiag import collectors
    from hostdiag.commands.snapshot import thresholds_for

    for key, t in thresholds_for(collectors.load()).items():
        cmp = ">=" if t.higher_is_worse else "<="
        typer.echo(f"{key:<28} warning {cmp} {t.warning:g}  critical {cmp} {t.critical:g} {t.unit}: {t.help}")


@app.command("packets")
def packets_cmd(
    seconds: float = typer.Argument(5.0, min=0.1, max=300, help="Capture this many seconds."),
    iface: Optional[list[str]] = typer.Option(None, "--iface", "-i", help="Capture on this interface (repeatable; default: all, loopback included)."),
    filter_: Optional[str] = typer.Option(None, "--filter", help="'port N' / 'host ADDR' terms joined by 'or', e.g. 'port 443 or host 10.0.0.1'."),
    budget: int = typer.Option(200_000, "--budget", min=1, help="Stop after this many packets."),
    promisc: bool = typer.Option(False, "--promisc", help="Put the interfaces in promiscuous mode (off by default: passive)."),
    pcap_in: Optional[str] = typer.Option(None, "--pcap-in", help="Analyse this saved pcap instead of capturing."),
    pcap_out: Optional[str] = typer.Option(None, "--pcap-out", help="Also keep the capture in this new file (0600): headers only, 128 bytes a packet (DNS 1500)."),
    json_: bool = typer.Option(False, "--json", help="Findings, series and stats as JSON."),
    plain: bool = typer.Option(False, "--plain", help="Plain text (the default)."),
    top: int = typer.Option(10, "--top", min=1, max=100, help="Rows of top talkers."),
    proc_root: str = typer.Option("/proc", "--proc-root", help="Read procfs from here (socket tables, processes)."),
):
    """Capture packets passively for a few seconds and name resets, unanswered SYNs, retransmits, zero windows, DNS failures."""
    import json

    from hostdiag.commands import packets as cmd
    from hostdiag.core.context import Context
    from hostdiag.core.safeio import UnsafePath, check_target
    from hostdiag.core.units import worst_severity

    if json_ and plain:
        raise typer.BadParameter("choose one of --plain, --json")
    if pcap_out is not None:
        try:
            check_target(pcap_out)
        except UnsafePath as e:
            typer.echo(f"hostdiag: --pcap-out {e}", err=True)
            raise typer.Exit(2) from None
    opts = cmd.Options(seconds=seconds, ifaces=_split(iface) or None, filter=filter_, budget=budget, promisc=promisc,
                       pcap_in=str(pcap_in) if pcap_in else None, pcap_out=str(pcap_out) if pcap_out else None, top=top)
    try:
        report = cmd.run(opts, Context(proc=proc_root))
    except ValueError as e:
        typer.echo(f"hostdiag: {e}", err=True)
        raise typer.Exit(2) from None
    sys.stdout.write(json.dumps(report.to_dict(), indent=1) + "\n" if json_ else cmd.render_plain(report))
    sys.stdout.flush()
    raise typer.Exit(int(ExitStatus.for_severity(worst_severity(f.severity for f in report.findings) or "ok")))


def main() -> None:
    """Console entry point: typer's usage errors keep their code; anything else is ERROR (3)."""
    try:
        app(standalone_mode=True)
        code = 0
    except KeyboardInterrupt:
        code = int(ExitStatus.INTERRUPTED)
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        if isinstance(e.code, str):
            print(e.code, file=sys.stderr)
    except Exception as e:  # noqa: BLE001 - last resort: say it, exit 3
        print(f"hostdiag: internal error: {type(e).__name__}: {e}", file=sys.stderr)
        code = int(ExitStatus.ERROR)
    _exit(code)


def _exit(code: int) -> None:
    """Exit now, even if a bounded worker (a hostdiag-* daemon thread) is stuck in a kernel call
    on a hung mount: the report is out, so flush and leave without waiting for it."""
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):    # a closed pipe: nothing more to say
        pass
    if any(t.name.startswith("hostdiag-") and t.is_alive() for t in threading.enumerate()):
        os._exit(code)
    sys.exit(code)

"""The typer app: flags -> Options, run a command, render, map errors to exit statuses.

No /proc reads and no rich tables here; rich is imported only by the terminal renderer.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

from hostdiag import __version__
from hostdiag.commands.signatures import app as signatures_app
from hostdiag.core.exit import ExitStatus

app = typer.Typer(
    name="hostdiag",
    help="Read-only host diagnostics for incident stabilization. Changes nothing on the host.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(signatures_app, name="signatures")


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


@app.command()
def snapshot(
    window: float = typer.Option(5.0, "--window", "-w", min=0, help="Sampling window in seconds; 0 = point in time (no rates)."),
    interval: float = typer.Option(1.0, "--interval", min=0.05, help="Seconds between samples in the window."),
    timeout: float = typer.Option(2.0, "--timeout", min=0.05, help="Time bound per collector call, seconds."),
    plain: bool = typer.Option(False, "--plain", help="No colour or box drawing, 80 columns (default when stdout is not a TTY or NO_COLOR is set)."),
    json_: bool = typer.Option(False, "--json", help="The whole snapshot and findings as JSON."),
    markdown: bool = typer.Option(False, "--markdown", help="Markdown, for an incident channel or postmortem."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Write the report to this new file (0600, never through a link, never under /proc, /sys or /dev) instead of stdout; '-' is stdout."),
    force: bool = typer.Option(False, "--force", help="Let --output replace an existing regular file."),
    only: Optional[list[str]] = typer.Option(None, "--only", help="Run only these collectors (comma-separated or repeated)."),
    no_collector: Optional[list[str]] = typer.Option(None, "--no-collector", help="Skip a collector (repeatable)."),
    threshold: Optional[list[str]] = typer.Option(None, "--threshold", "-t", help="Override a threshold: KEY=WARNING[,CRITICAL] (see `hostdiag thresholds`)."),
    top: int = typer.Option(5, "--top", min=1, max=100, help="Rows per top-N table in the report."),
    proc_root: str = typer.Option("/proc", "--proc-root", help="Read procfs from here (e.g. /host/proc in a container)."),
    sys_root: str = typer.Option("/sys", "--sys-root", help="Read sysfs from here."),
    root: str = typer.Option("/", "--root", help="Host root filesystem for /etc and mount paths."),
    journal_dir: Optional[Path] = typer.Option(None, "--journal-dir", help="Read journal files from this directory instead of the live journal."),
    journal_file: Optional[Path] = typer.Option(None, "--journal-file", help="Read this one journal file instead of the live journal."),
    since: Optional[str] = typer.Option(None, "--since", help="Start of the log window: '30m', '2h', '1d' ago or an ISO-8601 time (default 30m)."),
    until: Optional[str] = typer.Option(None, "--until", help="End of the log window, same forms (default now)."),
    catalog_dir: Optional[list[Path]] = typer.Option(None, "--catalog", help="Add a signature catalog directory on top of the shipped one (repeatable; also $HOSTDIAG_SIGNATURES)."),
    debug: bool = typer.Option(False, "--debug", help="Print tracebacks of collector failures to stderr."),
):
    """Sample the host for a short window and print a stabilize-first report."""
    from hostdiag.commands import snapshot as cmd
    from hostdiag.core.context import Context
    from hostdiag.render import Env, render

    if sum([plain, json_, markdown]) > 1:
        raise typer.BadParameter("choose one of --plain, --json, --markdown")
    if output is not None and str(output) == "-":
        output = None
    if output is not None:  # before sampling: a bad path must cost nothing
        from hostdiag.core.safeio import UnsafePath, check_target

        try:
            check_target(output, force=force)
        except UnsafePath as e:
            typer.echo(f"hostdiag: --output {e}", err=True)
            raise typer.Exit(2) from None
    opts = cmd.Options(window_s=window, interval_s=interval, only=_split(only) or None,
                       skip=_split(no_collector), thresholds=list(threshold or []),
                       debug=debug)
    from hostdiag.core.timeparse import parse_when

    try:
        t_since = parse_when(since) if since else None
        t_until = parse_when(until) if until else None
    except ValueError as e:
        raise typer.BadParameter(str(e)) from None
    journal = journal_file or journal_dir
    ctx = Context(proc=proc_root, sys=sys_root, root=root, timeout_s=timeout,
                  journal_path=str(journal) if journal else None, since=t_since, until=t_until,
                  catalog_dirs=tuple(str(d) for d in catalog_dir or ()))
    try:
        report = cmd.run(opts, ctx)
    except ValueError as e:  # unknown collector or threshold: a usage error
        typer.echo(f"hostdiag: {e}", err=True)
        raise typer.Exit(2) from None
    env = Env.detect(sys.stdout if output is None else None)
    fmt = "json" if json_ else "markdown" if markdown else "plain" if (plain or not env.pretty) else "terminal"
    text = render(report, fmt, env, top=top)
    if output is None:
        sys.stdout.write(text)
        sys.stdout.flush()
    else:
        from hostdiag.core.safeio import UnsafePath, write_file

        try:
            write_file(output, text.encode("utf-8"), force=force)
        except (UnsafePath, OSError) as e:
            sys.stdout.write(text)          # never lose the report: print it, then say why
            typer.echo(f"hostdiag: --output not written: {e}", err=True)
            raise typer.Exit(int(ExitStatus.ERROR)) from None
    raise typer.Exit(int(ExitStatus.for_severity(report.headline.severity)))


@app.command("collectors")
def collectors_cmd():
    """List the collectors: name, what they read, default state."""
    from hostdiag import collectors

    for m in collectors.load():
        doc = (m.__doc__ or "").strip().split("\n")[0]
        state = "enabled" if m.DEFAULT_ENABLED else "disabled"
        typer.echo(f"{m.NAME:<10} {state:<8} {doc}")
        typer.echo(f"{'':<19} reads: {', '.join(m.READS)}")


@app.command("thresholds")
def thresholds_cmd():
    """List every threshold with its warning/critical levels; override with --threshold."""
    from hostdiag import collectors
    from hostdiag.commands.snapshot import thresholds_for

    for key, t in thresholds_for(collectors.load()).items():
        cmp = ">=" if t.higher_is_worse else "<="
        typer.echo(f"{key:<28} warning {cmp} {t.warning:g}  critical {cmp} {t.critical:g} {t.unit}: {t.help}")


from hostdiag.commands.bundle import app as bundle_app  # noqa: E402 - cheap: typer only, work is lazy

app.add_typer(bundle_app, name="bundle")

# periodic capture and its history (hostdiag/history/)
from hostdiag.commands.capture import capture_cmd  # noqa: E402 - light: typer only
from hostdiag.commands.history import history_cmd  # noqa: E402

app.command("capture")(capture_cmd)
app.command("history")(history_cmd)


@app.command("packets")
def packets_cmd(
    seconds: float = typer.Argument(5.0, min=0.1, max=300, help="Capture this many seconds."),
    iface: Optional[list[str]] = typer.Option(None, "--iface", "-i", help="Capture on this interface (repeatable; default: all, loopback included)."),
    filter_: Optional[str] = typer.Option(None, "--filter", help="'port N' / 'host ADDR' terms joined by 'or', e.g. 'port 443 or host 10.0.0.1'."),
    budget: int = typer.Option(200_000, "--budget", min=1, help="Stop after this many packets."),
    promisc: bool = typer.Option(False, "--promisc", help="Put the interfaces in promiscuous mode (off by default: passive)."),
    pcap_in: Optional[Path] = typer.Option(None, "--pcap-in", help="Analyse this saved pcap instead of capturing."),
    pcap_out: Optional[Path] = typer.Option(None, "--pcap-out", help="Also keep the capture in this new file (0600): headers only, 128 bytes a packet (DNS 1500)."),
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
    except KeyboardInterrupt:
        sys.exit(ExitStatus.INTERRUPTED)
    except SystemExit:
        raise
    except Exception as e:  # noqa: BLE001 - last resort: say it, exit 3
        print(f"hostdiag: internal error: {type(e).__name__}: {e}", file=sys.stderr)
        sys.exit(ExitStatus.ERROR)

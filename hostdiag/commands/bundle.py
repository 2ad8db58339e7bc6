"""`hostdiag bundle`: an evidence archive for the postmortem; `bundle verify`, `bundle show`.

    hostdiag bundle [--incident INC-1234] [--since 2h] [--until ...] [-o PATH | -o -]
                    [--max-size 50MB] [--no-redact] [--redact-config FILE] [--zstd]
    hostdiag bundle verify FILE|-      every member's SHA-256 against the manifest; exit 1 on mismatch
    hostdiag bundle show FILE|- [--json|--plain|--markdown]
"""
from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from stat import S_ISREG
from typing import Optional

import typer

app = typer.Typer(help="Evidence bundle for the postmortem: redacted, bounded, verifiable, streamable.",
                  invoke_without_command=True)

_UNITS = {"": 1, "b": 1, "k": 1000, "kb": 1000, "m": 1000**2, "mb": 1000**2, "g": 1000**3, "gb": 1000**3,
          "kib": 1024, "mib": 1024**2, "gib": 1024**3}


def parse_size(text: str) -> int:
    """'50MB' -> 50_000_000, '5MiB' -> 5_242_880, '1000' -> 1000."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*", text)
    if not m or m.group(2).lower() not in _UNITS:
        raise typer.BadParameter(f"cannot read size {text!r}: use e.g. 50MB, 500KB, 2GiB")
    return int(float(m.group(1)) * _UNITS[m.group(2).lower()])


def _not_a_file(path: str) -> str | None:
    """Why PATH cannot be read as a config file, or None; bounded on a dead mount."""
    from hostdiag.core import isolate

    why = isolate.answers(path)
    if why:
        return why
    try:
        st = os.stat(path)
    except OSError as e:
        return f"{path}: {e.strerror}"
    return None if S_ISREG(st.st_mode) else f"{path}: not a regular file"


def _open_input(file: str):
    if file == "-":
        return sys.stdin.buffer
    try:
        return open(file, "rb")
    except OSError as e:
        typer.echo(f"hostdiag: {file}: {e.strerror}", err=True)
        raise typer.Exit(2) from None


@app.callback()
def bundle(
    tctx: typer.Context,
    incident: Optional[str] = typer.Option(None, "--incident", help="Incident id (e.g. INC-1234): goes into the manifest and the file name."),
    since: str = typer.Option("2h", "--since", help="Start of the incident window: '2h' ago or an ISO-8601 time."),
    until: Optional[str] = typer.Option(None, "--until", help="End of the window (default now)."),
    output: Optional[str] = typer.Option(None, "--output", "-o", help="New file (0600, never overwrites) or directory for it; '-' streams to stdout and writes nothing on disk. Default: ./hostdiag-bundle_HOST_INCIDENT_UTCTIME.tar.gz"),
    max_size: str = typer.Option("50MB", "--max-size", help="Bound on the members' bytes; trims oldest journal lines first (recorded in the manifest)."),
    no_redact: bool = typer.Option(False, "--no-redact", help="Keep secrets as found (says so loudly in the manifest and on stderr)."),
    redact_config: Optional[str] = typer.Option(None, "--redact-config", help="Extra redaction patterns (TOML [[pattern]] name/regex); default /etc/hostdiag/redact.toml if present."),
    zstd: bool = typer.Option(False, "--zstd", help="Write .tar.zst (needs the zstandard package)."),
    window: float = typer.Option(5.0, "--window", "-w", min=0, help="Sampling window of the snapshot, seconds."),
    interval: float = typer.Option(1.0, "--interval", min=0.05, help="Seconds between samples."),
    timeout: float = typer.Option(2.0, "--timeout", min=0.05, help="Time bound per collector call, seconds."),
    journal_dir: Optional[str] = typer.Option(None, "--journal-dir", help="Read journal files from this directory."),
    journal_file: Optional[str] = typer.Option(None, "--journal-file", help="Read this one journal file."),
    only: Optional[str] = typer.Option(None, "--only", help="Run only these collectors (comma-separated)."),
    proc_root: str = typer.Option("/proc", "--proc-root", help="Read procfs from here."),
    sys_root: str = typer.Option("/sys", "--sys-root", help="Read sysfs from here."),
    root: str = typer.Option("/", "--root", help="Host root filesystem."),
):
    """Collect an evidence bundle for the incident window (subcommands: verify, show)."""
    if tctx.invoked_subcommand is not None:
        return
    import time

    from hostdiag.bundle import contents
    from hostdiag.bundle.archive import safe_component, zstd_available
    from hostdiag.core import isolate
    from hostdiag.core.context import Context
    from hostdiag.core.exit import ExitStatus
    from hostdiag.core.safeio import ExclusiveFile, UnsafePath, check_target
    from hostdiag.core.timeparse import parse_when

    max_bytes = parse_size(max_size)
    try:
        t_since = parse_when(since)
        t_until = parse_when(until) if until else time.time()
    except ValueError as e:
        raise typer.BadParameter(str(e)) from None
    if t_since > t_until:
        raise typer.BadParameter("--since is after --until")
    if zstd and not zstd_available():
        typer.echo("hostdiag: --zstd needs the zstandard package (pip install zstandard); use .tar.gz", err=True)
        raise typer.Exit(2)
    if redact_config is not None and (why := _not_a_file(redact_config)):
        typer.echo(f"hostdiag: --redact-config {why}", err=True)
        raise typer.Exit(2)
    only_list = [x.strip() for x in (only or "").split(",") if x.strip()] or None
    if only_list:
        from hostdiag.commands.snapshot import Options as SnapOptions, selected

        try:
            selected(SnapOptions(only=only_list))
        except ValueError as e:
            raise typer.BadParameter(str(e)) from None
    ext = ".tar.zst" if zstd else ".tar.gz"
    if output == "-" and sys.stdout.isatty():
        typer.echo("hostdiag: -o - writes a binary archive: redirect it (hostdiag bundle -o - > FILE)", err=True)
        raise typer.Exit(2)
    target = None
    if output != "-":  # decide and check the path before sampling: a bad path must cost nothing
        import socket

        stem = contents.bundle_name(safe_component(socket.gethostname()), incident, time.time())
        if output and (why := isolate.answers(output)):
            typer.echo(f"hostdiag: --output {why}", err=True)
            raise typer.Exit(2)
        p = Path(output) if output else Path(stem + ext)
        if output and p.is_dir() and not p.is_symlink():
            p = p / (stem + ext)
        try:
            target = check_target(p)
        except UnsafePath as e:
            typer.echo(f"hostdiag: --output {e}", err=True)
            raise typer.Exit(2) from None
    journal = journal_file or journal_dir
    ctx = Context(proc=proc_root, sys=sys_root, root=root, timeout_s=timeout,
                  journal_path=str(journal) if journal else None, since=t_since, until=t_until)
    opts = contents.Options(incident=incident, window_s=window, interval_s=interval, max_bytes=max_bytes,
                            redact=not no_redact, redact_config=str(redact_config) if redact_config else None,
                            zstd=zstd, only=only_list)

    def collect():
        from hostdiag.commands import snapshot as snap_cmd

        return snap_cmd.run(snap_cmd.Options(window_s=window, interval_s=interval, only=only_list), ctx)
    if target is None:
        out = sys.stdout.buffer
        try:
            summary = contents.write(opts, ctx, out, collect=collect, since=t_since, until=t_until)
            out.flush()
        except BrokenPipeError:
            # click turns EPIPE into a silent exit 1 ("warning"): say the archive is cut short
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())   # no second EPIPE at exit
            typer.echo("hostdiag: bundle NOT complete: stdout was closed before the end of the archive", err=True)
            raise typer.Exit(int(ExitStatus.ERROR)) from None
    else:
        try:
            f = ExclusiveFile(target)
        except (UnsafePath, OSError) as e:
            typer.echo(f"hostdiag: --output {target}: {e}", err=True)
            raise typer.Exit(int(ExitStatus.ERROR)) from None
        try:
            summary = contents.write(opts, ctx, f, collect=collect, since=t_since, until=t_until)
        except OSError as e:     # ENOSPC on a full disk: nothing half-written stays behind
            f.abort()
            typer.echo(f"hostdiag: bundle not written: {e}; stream it instead: hostdiag bundle -o - > FILE", err=True)
            raise typer.Exit(int(ExitStatus.ERROR)) from None
        except BaseException:
            f.abort()
            raise
        try:
            f.close()
        except (UnsafePath, OSError) as e:
            typer.echo(f"hostdiag: bundle not written: {e}", err=True)
            raise typer.Exit(int(ExitStatus.ERROR)) from None
    from hostdiag.core.units import human_bytes

    red = ", ".join(f"{k} {v}" for k, v in summary["redactions"].items()) or "none"
    trim = "; ".join(f"{t['member']}: {t.get('dropped_lines', t.get('dropped_rows'))} dropped ({t['order']})"
                     for t in summary["trimmed"]) or "nothing"
    typer.echo(f"hostdiag: bundle {target or '(stdout)'}: {human_bytes(summary['bytes'])}, "
               f"{summary['members']} members; redactions: {red}; trimmed: {trim}", err=True)
    typer.echo(f"hostdiag: manifest SHA-256 {summary['manifest_sha256']} "
               f"(check later: hostdiag bundle verify FILE --expect {summary['manifest_sha256']})", err=True)
    if summary.get("interrupted"):    # Ctrl-C cut the window: the evidence is kept, the exit says so
        typer.echo("hostdiag: interrupted: the sampling window was cut short; the bundle holds what was sampled",
                   err=True)
        raise typer.Exit(int(ExitStatus.INTERRUPTED))


@app.command()
def verify(file: str = typer.Argument(..., metavar="FILE|-", help="The bundle, or - to read it from stdin."),
           expect: Optional[str] = typer.Option(None, "--expect", help="The manifest SHA-256 printed when the bundle was made.")):
    """Check every member's SHA-256 and size against the manifest; exit 1 on any mismatch."""
    from hostdiag.bundle.verify import verify as run_verify
    from hostdiag.core.sanitize import clean

    f = _open_input(file)
    res = run_verify(f, expect=expect)
    for p in res.problems:
        typer.echo(clean(f"FAIL {p}"))
    if not res.ok:
        typer.echo(f"hostdiag: {file}: NOT verified ({len(res.problems)} problem(s))", err=True)
        raise typer.Exit(1)
    man = res.manifest or {}
    typer.echo(clean(f"OK {res.checked} members match the manifest (sha256 {res.manifest_sha256}); "
                     f"host {man.get('host', {}).get('hostname')}, incident {man.get('incident')}, "
                     f"collected {man.get('collection', {}).get('start')}; redaction "
                     f"{'ON' if man.get('redaction', {}).get('enabled') else 'OFF (--no-redact)'}"))


@app.command()
def show(file: str = typer.Argument(..., metavar="FILE|-", help="The bundle, or - for stdin."),
         json_: bool = typer.Option(False, "--json", help="The snapshot JSON."),
         plain: bool = typer.Option(False, "--plain", help="Plain text, 80 columns."),
         markdown: bool = typer.Option(False, "--markdown", help="Markdown."),
         ignore_hash: bool = typer.Option(False, "--ignore-hash", help="Show a bundle that fails verification (still refuses hostile archives).")):
    """Render the report stored in a bundle; needs no access to the original host."""
    from hostdiag.bundle.show import STORED, render_member
    from hostdiag.bundle.verify import verify as run_verify
    from hostdiag.core.sanitize import clean
    from hostdiag.render import Env

    if sum([json_, plain, markdown]) > 1:
        raise typer.BadParameter("choose one of --json, --plain, --markdown")
    f = _open_input(file)
    res = run_verify(f, keep=lambda n: n in STORED.values())
    if res.hostile or not res.ok:
        for p in res.problems:
            typer.echo(clean(f"hostdiag: {file}: {p}"), err=True)
        if res.hostile or not ignore_hash or not res.members:
            raise typer.Exit(1)
    env = Env.detect(sys.stdout)
    fmt = "json" if json_ else "markdown" if markdown else "plain" if (plain or not env.pretty) else "terminal"
    try:
        text, note = render_member(res.members, fmt, env)
    except ValueError as e:
        typer.echo(f"hostdiag: {file}: {e}", err=True)
        raise typer.Exit(1) from None
    if note:
        typer.echo(f"hostdiag: {note}", err=True)
    sys.stdout.write(text)
    sys.stdout.flush()

"""`hostdiag signatures ...`: list, show, lint, test and match the archetype catalog.

Heavy imports (numpy, the matcher) happen inside the commands, never at start-up.
"""
from __future__ import annotations

import typer

app = typer.Typer(help="The signature catalog: failure archetypes kept as reviewed data files.",
                  no_args_is_help=True)

"""``singularity features ...``."""

from __future__ import annotations

import typer

app = typer.Typer(help="Build and list causal features.", no_args_is_help=True)

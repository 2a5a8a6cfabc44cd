"""``singularity data ...``: import, download, list and show candles."""

from __future__ import annotations

import typer

app = typer.Typer(help="Store, import and download candles.", no_args_is_help=True)

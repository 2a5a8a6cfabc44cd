"""``singularity init`` and ``singularity config show``."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.table import Table

from singularity.cli._context import console, state
from singularity.config import CONFIG_FILENAME, DEFAULT_CONFIG_TOML, effective_items
from singularity.errors import ConfigError
from singularity.storage import atomic_write_bytes

app = typer.Typer(help="Inspect the effective settings.", no_args_is_help=True)


def init(
    path: Path = typer.Argument(Path(CONFIG_FILENAME), help="Where to write the settings file."),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing file."),
) -> None:
    """Write a commented default settings file."""
    if path.exists() and not force:
        raise ConfigError(f"{path} already exists: use --force to overwrite it")
    atomic_write_bytes(path, DEFAULT_CONFIG_TOML.encode())
    console.print(f"wrote {path}")


@app.command("show")
def show(
    ctx: typer.Context,
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Print the effective settings and where each value came from."""
    loaded = state(ctx).loaded()
    rows = effective_items(loaded)
    if as_json:
        typer.echo(json.dumps({k: {"value": v, "source": s} for k, v, s in rows}, indent=2))
        return
    table = Table(title=f"settings ({loaded.path or 'no settings file: defaults'})")
    table.add_column("key")
    table.add_column("value")
    table.add_column("source")
    for k, v, s in rows:
        table.add_row(k, json.dumps(v), s)
    console.print(table)

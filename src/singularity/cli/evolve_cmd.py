"""``singularity evolve`` and ``singularity bench gp``."""

from __future__ import annotations

import typer

bench_app = typer.Typer(help="Benchmarks that print JSON.", no_args_is_help=True)


def evolve(ctx: typer.Context) -> None:
    """Evolve trading rules by genetic programming."""

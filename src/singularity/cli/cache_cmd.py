"""``singularity cache``: what the data directory holds besides candles, and its pruning."""

from __future__ import annotations

import time
from pathlib import Path

import typer

from singularity.cli._context import console, settings

app = typer.Typer(help="Feature caches, artifacts, reports and run logs: sizes and pruning.",
                  no_args_is_help=False, invoke_without_command=True)


def _mb(n: int) -> str:
    return f"{n / 2**20:.1f}"


def _age(t: float | None) -> str:
    if t is None:
        return "-"
    days = (time.time() - t) / 86_400
    return f"{days:.1f} d" if days >= 1 else f"{days * 24:.1f} h"


def _champions(s) -> tuple[set[int], set[int]]:  # type: ignore[no-untyped-def]
    from singularity.registry import Registry

    reg = Registry(s.database_url, recover=False)
    try:
        champs = reg.strategies(status="champion", limit=100_000)
        return {c.id for c in champs}, {c.run_id for c in champs}
    finally:
        reg.close()


@app.callback()
def show(ctx: typer.Context) -> None:
    """Sizes and ages (without a sub-command)."""
    if ctx.invoked_subcommand is not None:
        return
    from rich.table import Table

    from singularity.retention import usage

    s = settings(ctx)
    table = Table(title=f"generated files under {s.data.dir}")
    for col, just in (("kind", "left"), ("path", "left"), ("items", "right"), ("MB", "right"),
                      ("oldest", "right"), ("newest", "right")):
        table.add_column(col, justify=just, overflow="fold")  # type: ignore[arg-type]
    root = Path(s.data.dir)
    for u in usage(s):
        where = u.path.relative_to(root) if u.path.is_relative_to(root) else u.path
        table.add_row(u.kind, str(where) if str(where) != "." else "(all)", str(u.items), _mb(u.bytes), _age(u.oldest), _age(u.newest))
    console.print(table)
    r = s.retention
    console.print(f"retention: feature cache {r.feature_cache_mb} MB / {r.feature_cache_days:g} days; "
                  f"artifacts, reports, run logs {r.generated_days:g} days (champions kept)",
                  highlight=False, soft_wrap=True)


@app.command()
def prune(ctx: typer.Context,
          dry_run: bool = typer.Option(False, "--dry-run", help="List what would go; remove nothing.")) -> None:
    """Apply the retention settings (champions' artifacts and reports are kept)."""
    from singularity.retention import prune as do_prune

    s = settings(ctx)
    champions, runs = _champions(s)
    gone = do_prune(s, dry_run=dry_run, champions=champions, champion_runs=runs)
    verb = "would remove" if dry_run else "removed"
    for p in gone:
        console.print(f"{verb} {p.kind}: {p.path} ({_mb(p.bytes)} MB)", highlight=False, soft_wrap=True)
    console.print(f"{verb} {len(gone)} item(s), {_mb(sum(p.bytes for p in gone))} MB", highlight=False)

"""``singularity forge``: one full forge cycle."""

from __future__ import annotations

import json

import typer

from singularity.cli._context import console, err_console, settings
from singularity.cli._tables import gauntlet_table


def forge(
    ctx: typer.Context,
    symbol: str = typer.Argument(..., help="ccxt symbol, e.g. BTC/USDT."),
    timeframe: str = typer.Option("tactical", "--timeframe", "-t", help="Timeframe or its name in settings."),
    population: int | None = typer.Option(None, "--population", min=4, help="GP population (settings: forge.population)."),
    generations: int | None = typer.Option(None, "--generations", min=1, help="GP generations (settings: forge.generations)."),
    workers: int | None = typer.Option(None, "--workers", min=0, help="Worker processes; 0 = every core."),
    seed: int | None = typer.Option(None, "--seed", help="Random seed (settings: forge.seed)."),
    bars: int | None = typer.Option(None, "--bars", min=1000, help="Use only the last N candles."),
    end: str | None = typer.Option(None, "--to", help="Use only candles that open before this time (UTC)."),
    exchange: str | None = typer.Option(None, "--exchange", help="Exchange id of the stored candles."),
    holdout_looks: int | None = typer.Option(
        None, "--holdout-looks", min=1,
        help="Candidates whose holdout is opened, best in-sample first (settings: gauntlet.holdout_looks, "
             "default 1). Each extra look is Holm-corrected and counted as a trial."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object (progress goes to stderr)."),
) -> None:
    """Forge: data → features → labels → bake-off → GP → gauntlet → registry → report."""
    from singularity.config import check_symbol, drop_secret_env
    from singularity.errors import ConfigError
    from singularity.forge.cycle import ForgeOptions, run_forge

    s = settings(ctx, forge__population=population, forge__generations=generations, forge__workers=workers,
                 forge__seed=seed)
    drop_secret_env()  # the settings hold the keys now: the worker pool must not inherit them
    from singularity.runtime.process import exit_with_parent_from_env

    exit_with_parent_from_env()  # a cycle started by the engine ends with the engine
    try:
        check_symbol(symbol)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    if end is not None:
        import pandas as pd

        try:
            pd.Timestamp(end)
        except ValueError:
            raise ConfigError(f"--to: cannot read {end!r} as a date (e.g. 2025-02-20 or 2025-02-20T12:00)") from None
    opts = ForgeOptions(symbol=symbol, timeframe=s.timeframe(timeframe), population=s.forge.population,
                        generations=s.forge.generations, seed=s.forge.seed, workers=s.forge.workers,
                        exchange=exchange, bars=bars, end=end, holdout_looks=holdout_looks, progress=not as_json)
    out = err_console if as_json else console
    outcome = run_forge(s, opts, say=out.print)
    if as_json:
        typer.echo(json.dumps(outcome.to_json_dict(), default=str))
        return
    print_outcome(outcome)


def print_outcome(outcome) -> None:  # type: ignore[no-untyped-def]
    console.print(f"\nforge run {outcome.run_id}: {outcome.symbol} {outcome.timeframe} on {outcome.exchange} "
                  f"in {outcome.seconds:.1f} s — {outcome.split}")
    console.print(f"holdout looks: {outcome.holdout_looks}")
    if outcome.champion:
        c = outcome.champion
        console.print(f"[bold green]champion[/] strategy {c['id']}: {c['readable']}")
        console.print(f"holdout: {c['holdout']}")
    else:
        console.print("[bold red]no strategy passed the gauntlet[/]")
        if outcome.best:
            console.print(f"best candidate: strategy {outcome.best['id']}: {outcome.best['readable']}")
    if outcome.gauntlet:
        console.print(gauntlet_table(outcome.gauntlet))
    stages = ", ".join(f"{k} {v:.1f}s" for k, v in outcome.stage_seconds.items())
    console.print(f"stages: {stages}")
    if outcome.report:
        console.print(f"report: {outcome.report}")

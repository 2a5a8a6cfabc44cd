"""``singularity demo``: candles from the store (else the exchange, else a labelled synthetic
market), then one full forge cycle at a small budget, and where its report is."""

from __future__ import annotations

import typer

from singularity.cli._context import console, settings

DEMO_BARS = 6000


def demo(
    ctx: typer.Context,
    symbol: str | None = typer.Option(None, "--symbol", help="Symbol to forge (default: the universe's first)."),
    population: int = typer.Option(1000, "--population", min=4, help="GP population."),
    generations: int = typer.Option(10, "--generations", min=1, help="GP generations."),
    workers: int = typer.Option(0, "--workers", min=0, help="Worker processes; 0 = every core."),
) -> None:
    """Run one forge cycle on the demo data and print where the report is."""
    from singularity.cli.forge_cmd import print_outcome
    from singularity.demo_data import demo_data
    from singularity.errors import DataError
    from singularity.forge.cycle import ForgeOptions, run_forge

    s = settings(ctx)
    data = demo_data(s, say=console.print)
    sym = symbol or next(iter(data.candles))
    if sym not in data.candles:
        raise DataError(f"{sym} is not among the demo symbols: {', '.join(data.candles)}")
    if data.synthetic:
        console.print("[bold red]SYNTHETIC market[/]: results below say nothing about real markets")
    opts = ForgeOptions(symbol=sym, timeframe=data.timeframe, population=population, generations=generations,
                        seed=s.forge.seed, workers=workers, exchange=data.exchange,
                        bars=min(DEMO_BARS, len(data.candles[sym])))
    print_outcome(run_forge(s, opts, say=console.print))

"""``singularity strategy add SYMBOL "EXPRESSION"`` and ``singularity strategy pin ID``."""

from __future__ import annotations

import json

import typer

from singularity.cli._context import console, settings
from singularity.cli._tables import gauntlet_table

app = typer.Typer(help="Add your own rules; choose what the engine trades.", no_args_is_help=True)


@app.command("add")
def add(
    ctx: typer.Context,
    symbol: str = typer.Argument(..., help="e.g. BTC/USDT"),
    expression: str = typer.Argument(..., help="A rule in the GP's grammar, e.g. 'ts_mean(macd_hist, w5)'."),
    timeframe: str = typer.Option("tactical", "--timeframe", help="Named timeframe or e.g. '1h'."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Check a rule, run the gauntlet on it (one trial) and store it in the registry."""
    from singularity.config import check_symbol
    from singularity.engine.manual import add_manual_strategy
    from singularity.errors import ConfigError

    try:
        check_symbol(symbol)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    s = settings(ctx)
    out = add_manual_strategy(s, symbol, expression, s.timeframe(timeframe))
    if as_json:
        typer.echo(json.dumps(out, default=str))
        return
    console.print(f"strategy {out['id']} ({symbol}): {expression}")
    console.print(gauntlet_table(out["gauntlet"]))
    verdict = "passed the gauntlet" if out["passed"] else "did not pass the gauntlet (paper only when pinned)"
    console.print(f"{verdict}; pin it with 'singularity strategy pin {out['id']}'")


@app.command("pin")
def pin_(
    ctx: typer.Context,
    strategy_id: int = typer.Argument(..., help="Strategy id (see 'registry list')."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Make a stored strategy the one the engine trades for its symbol (champion or not)."""
    from singularity.engine.pins import pin
    from singularity.registry import Registry

    with Registry(settings(ctx).database_url, recover=False) as reg:
        row = pin(reg, strategy_id)
    if as_json:
        typer.echo(json.dumps(row, default=str))
        return
    where = "paper only (it did not pass the gauntlet)" if row["paper_only"] else "paper and live"
    console.print(f"pinned strategy {row['strategy_id']} for {row['symbol']} {row['timeframe']}: {where}")


@app.command("unpin")
def unpin_(
    ctx: typer.Context,
    symbol: str = typer.Argument(..., help="Symbol whose pin to remove, e.g. BTC/USDT."),
) -> None:
    """Remove a symbol's pin: the engine trades its champions again (a running engine from its
    next cycle's champion; a restarted one from the registry's champion)."""
    from singularity.engine.pins import pinned, unpin
    from singularity.errors import ConfigError
    from singularity.registry import Registry

    with Registry(settings(ctx).database_url, recover=False) as reg:
        row = pinned(reg, symbol)
        if row is None:
            raise ConfigError(f"{symbol} is not pinned (see 'singularity strategy pin')")
        unpin(reg, int(row["strategy_id"]))
    console.print(f"unpinned strategy {row['strategy_id']} for {symbol}")

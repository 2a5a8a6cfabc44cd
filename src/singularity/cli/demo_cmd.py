"""``singularity demo``: candles from the store (else the exchange, else a labelled synthetic
market), then a backtest of a simple trend rule with costs."""

from __future__ import annotations

import typer
from rich.table import Table

from singularity.cli._context import console, settings


def demo(
    ctx: typer.Context,
    symbol: str | None = typer.Option(None, "--symbol", help="Symbol to trade (default: the universe's first)."),
) -> None:
    """Backtest a simple EMA-crossover rule on the configured universe's candles."""
    import numpy as np
    import talib

    from singularity.backtest import run
    from singularity.demo_data import demo_data

    s = settings(ctx)
    data = demo_data(s, say=console.print)
    sym = symbol or next(iter(data.candles))
    if sym not in data.candles:
        from singularity.errors import DataError

        raise DataError(f"{sym} is not among the demo symbols: {', '.join(data.candles)}")
    candles = data.candles[sym]
    close = candles["close"].to_numpy()
    fast, slow = talib.EMA(close, 20), talib.EMA(close, 50)
    target = np.where(np.isnan(slow), 0.0, np.where(fast > slow, 1.0, 0.0))
    res = run(candles, target, timeframe=data.timeframe, fee_bps=s.costs.fee_bps,
              slippage_bps=s.costs.slippage_bps)
    label = " [bold red](SYNTHETIC market)[/]" if data.synthetic else ""
    table = Table(title=f"EMA(20) > EMA(50) long-only on {sym} {data.timeframe}, {data.exchange}{label}; "
                        f"fees {s.costs.fee_bps:g} + slippage {s.costs.slippage_bps:g} bps per side")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for k, v in res.metrics.items():
        table.add_row(k, f"{v:,.4f}" if isinstance(v, float) else str(v))
    console.print(table)
    console.print(f"{len(candles):,} candles {candles.index[0]:%Y-%m-%d %H:%M} → {candles.index[-1]:%Y-%m-%d %H:%M} UTC; "
                  f"{len(res.trades)} trades")

"""``singularity bakeoff SYMBOL --timeframe TF [--json] [--tail N]``.

Candles come from the store, features from the FeatureFactory (this symbol alone, so the
cross-asset family is skipped); the holdout (the last ``forge.holdout_fraction`` of the bars,
with ``forge.embargo_bars`` dropped before it) is cut off before the bake-off sees anything.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from singularity.cli._context import console, err_console, settings

if TYPE_CHECKING:
    from singularity.models.bakeoff import BakeoffResult


def _table(result: BakeoffResult) -> None:
    from rich.table import Table

    table = Table(
        title=f"bake-off: {result.folds} purged walk-forward folds, embargo {result.embargo} bars",
        caption=f"out of fold, after costs; class-frequency log-loss {result.prior_log_loss:.4f}",
    )
    for col in ("model", "log-loss", "bal. acc.", "Sharpe", "return", "max DD", "trades", "fit s"):
        table.add_column(col, justify="left" if col == "model" else "right", no_wrap=True)
    for s in result.scores:
        mark = " *" if s.name == result.winner else ""
        table.add_row(
            s.name + mark, f"{s.log_loss:.4f}", f"{s.balanced_accuracy:.3f}", f"{s.sharpe:.2f}",
            f"{s.total_return:+.1%}", f"{s.max_drawdown:.1%}", str(s.trades), f"{s.fit_seconds:.1f}",
        )
    console.print(table)
    console.print(
        f"winner: [bold]{result.winner}[/] (lowest out-of-fold log-loss among models whose "
        "Sharpe is not below the logistic baseline's)"
    )


def bakeoff(
    ctx: typer.Context,
    symbol: Annotated[str, typer.Argument(help="Symbol, e.g. BTC/USDT.")],
    timeframe: Annotated[
        str | None, typer.Option("--timeframe", "-t", help="Timeframe or its name (default: tactical).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    tail: Annotated[
        int | None, typer.Option("--tail", min=1, help="Use only the last N stored candles.")
    ] = None,
    workers: Annotated[
        int, typer.Option("--workers", min=0, help="Worker processes (1 = serial here; 0 = every core).")
    ] = 1,
    artifacts: Annotated[
        Path | None, typer.Option("--artifacts", help="Artifact directory (default: DATA/artifacts/bakeoff-...).")
    ] = None,
) -> None:
    """Hold the model bake-off (LightGBM, Transformer, logistic baseline) on the training window."""
    from singularity.data.store import CandleStore, symbol_to_filename
    from singularity.features.factory import FeatureFactory
    from singularity.forge.split import time_split
    from singularity.models.bakeoff import run_bakeoff

    s = settings(ctx)
    tf = s.timeframe(timeframe or "tactical")
    candles = CandleStore(s.data.dir).read(s.exchange.name, symbol, tf)
    if tail is not None:
        candles = candles.iloc[-tail:]
    data_dir = Path(s.data.dir)
    fs = FeatureFactory(s.features, cache_dir=data_dir / "features").build(
        {symbol: candles}, progress=not as_json
    )
    ready = fs.ready(symbol)
    candles = candles.loc[ready.index]
    split = time_split(len(candles), holdout_fraction=s.forge.holdout_fraction, embargo=s.forge.embargo_bars)
    if not as_json:
        err_console.print(f"{symbol} {tf}: {split.describe(candles.index)}", highlight=False)
    out_dir = artifacts or data_dir / "artifacts" / f"bakeoff-{symbol_to_filename(symbol)}-{tf}"
    kw = {
        "labels_settings": s.labels, "bakeoff_settings": s.bakeoff, "costs": s.costs, "timeframe": tf,
        "artifacts_dir": out_dir,
    }
    train_f, train_c = ready.iloc[split.train], candles.iloc[split.train]
    if workers == 1:
        result = run_bakeoff(train_f, train_c, **kw)
    else:
        from singularity.runtime.pool import WorkerPool

        with WorkerPool(workers) as pool:
            result = run_bakeoff(train_f, train_c, pool=pool, **kw)
    if as_json:
        typer.echo(json.dumps(result.to_json_dict()))
    else:
        _table(result)
        err_console.print(f"artifacts: {out_dir}", highlight=False)

"""``singularity regimes SYMBOL``: the symbol's market regimes (names, statistics, timeline,
transition matrix), optionally a plot file. Heavy imports happen inside the command."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Annotated, Any

import typer

from singularity.cli._context import console, err_console, settings
from singularity.errors import DataError


def regimes(
    ctx: typer.Context,
    symbol: Annotated[str, typer.Argument(help="Symbol, e.g. BTC/USDT.")],
    timeframe: Annotated[
        str | None, typer.Option("--timeframe", "-t", help="Timeframe or its name (default: tactical).")
    ] = None,
    until: Annotated[
        str | None, typer.Option("--until", help="Last candle to use (inclusive, UTC).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    plot: Annotated[
        Path | None, typer.Option("--plot", help="Write an HTML chart with the regimes shaded.")
    ] = None,
    spells: Annotated[int, typer.Option("--spells", min=1, help="Latest spells to list.")] = 12,
    workers: Annotated[
        int | None, typer.Option("--workers", "-w", help="Worker processes (default: forge.workers).")
    ] = None,
) -> None:
    """Regimes of SYMBOL; the other stored assets of the universe feed the cross-asset level."""
    import pandas as pd

    from singularity.config import check_symbol
    from singularity.data.store import CandleStore

    st = settings(ctx)
    try:
        check_symbol(symbol)
    except ValueError as e:
        raise DataError(str(e)) from None
    tf = st.timeframe(timeframe or "tactical")
    store = CandleStore(st.data.dir)
    if not store.exists(st.exchange.name, symbol, tf):
        store.read(st.exchange.name, symbol, tf)  # raises the store's one-line "absent" error
    stop = None
    if until is not None:
        try:
            stop = pd.Timestamp(until)
        except ValueError:
            raise DataError(f"--until: not a timestamp: {until!r}") from None
        stop = stop.tz_localize("UTC") if stop.tzinfo is None else stop.tz_convert("UTC")
    from singularity.regimes.online import load_universe

    universe = load_universe(store, st.exchange.name, symbol, tf, st.universe.symbols, stop)
    from singularity.regimes.analysis import analyse_symbol
    from singularity.runtime.pool import WorkerPool, resolve_workers

    n_workers = resolve_workers(st.forge.workers if workers is None else workers)
    with contextlib.ExitStack() as stack:
        pool = stack.enter_context(WorkerPool(n_workers)) if n_workers > 1 else None
        analysis = analyse_symbol(universe, symbol, st.features.regimes, pool=pool)
    if plot is not None:
        write_plot(plot, universe[symbol], analysis)
    if as_json:
        typer.echo(json.dumps(analysis.to_json(tf)))
    else:
        _print(analysis, tf, spells)
    for note in analysis.notes:
        err_console.print(f"note: {note}", highlight=False, soft_wrap=True)
    if plot is not None and not as_json:
        console.print(f"plot -> {plot}", highlight=False, soft_wrap=True)


def spells_of(labels: Any) -> list[tuple[Any, Any, int | None, int]]:
    """Runs of one regime: (first time, last time, regime or None, bars)."""
    import numpy as np

    values = labels.to_numpy()
    out: list[tuple[Any, Any, int | None, int]] = []
    start = 0
    for i in range(1, len(values) + 1):
        if i == len(values) or not (values[i] == values[start]
                                    or (np.isnan(values[i]) and np.isnan(values[start]))):
            r = values[start]
            out.append((labels.index[start], labels.index[i - 1],
                        None if np.isnan(r) else int(r), i - start))
            start = i
    return out


def _print(analysis: Any, tf: str, n_spells: int) -> None:
    from rich.table import Table

    res = analysis.result
    warm = int(res.warmup.sum())
    uncl = int(((res.labels < 0) & ~res.warmup).sum())
    console.print(
        f"{analysis.symbol} {tf}: {len(res.labels)} bars, {len(analysis.stats)} regimes, "
        f"{res.fits} fits, {warm} warm-up bars, {uncl} unclassified",
        highlight=False, soft_wrap=True,
    )
    table = Table(title="regimes")
    for col in ("id", "name", "bars", "volatility", "trend", "autocorr", "drawdown"):
        table.add_column(col, overflow="fold", justify="left" if col == "name" else "right")
    for k, s in analysis.stats.items():
        table.add_row(str(k), analysis.names[k], str(s["bars"]), f"{s['volatility']:.4f}",
                      f"{s['trend']:+.2f}", f"{s['autocorr']:+.3f}", f"{s['drawdown']:+.3f}")
    console.print(table)
    trans = analysis.transitions()
    if trans:
        tt = Table(title="transitions (row: from, column: to)")
        tt.add_column("from")
        for j in trans:
            tt.add_column(j, justify="right")
        for i, row in trans.items():
            tt.add_row(i, *(f"{v:.3f}" for v in row.values()))
        console.print(tt)
    timeline = Table(title=f"timeline (latest {n_spells} spells)")
    for col in ("from", "to", "regime", "bars"):
        timeline.add_column(col, overflow="fold")
    for a, b, r, n in spells_of(analysis.labels())[-n_spells:]:
        name = "unclassified" if r is None else f"{r} {analysis.names.get(r, '')}"
        timeline.add_row(f"{a:%Y-%m-%d %H:%M}", f"{b:%Y-%m-%d %H:%M}", name, str(n))
    console.print(timeline)


def write_plot(path: Path, candles: Any, analysis: Any) -> None:
    """Close price with each regime spell shaded (plotly HTML, written atomically)."""
    import plotly.graph_objects as go

    from singularity.storage import atomic_write_bytes

    colours = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
               "#7f7f7f", "#bcbd22", "#17becf"]
    fig = go.Figure(go.Scatter(x=candles.index, y=candles["close"], name="close",
                               line={"color": "black", "width": 1}))
    for a, b, r, _ in spells_of(analysis.labels()):
        if r is None:
            continue
        fig.add_vrect(x0=a, x1=b, fillcolor=colours[r % len(colours)], opacity=0.18,
                      line_width=0, layer="below")
    for r, name in analysis.names.items():  # legend entries for the shades
        fig.add_trace(go.Scatter(x=[None], y=[None], mode="markers", name=f"{r}: {name}",
                                 marker={"color": colours[r % len(colours)], "size": 10}))
    fig.update_layout(title=f"{analysis.symbol} regimes", template="plotly_white")
    atomic_write_bytes(path, fig.to_html(include_plotlyjs="cdn").encode())

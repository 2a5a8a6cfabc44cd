"""``singularity features ...``: build one symbol's feature table, list the catalogue.

Heavy libraries are imported inside the commands so ``singularity --help`` stays fast.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Annotated

import typer

from singularity.cli._context import console, err_console, settings
from singularity.errors import DataError

app = typer.Typer(help="Build and list causal features.", no_args_is_help=True)


@app.command("build")
def build(
    ctx: typer.Context,
    symbol: Annotated[str, typer.Argument(help="Symbol, e.g. BTC/USDT.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output Parquet file.")],
    timeframe: Annotated[
        str | None, typer.Option("--timeframe", "-t", help="Timeframe or its name (default: tactical).")
    ] = None,
    until: Annotated[
        str | None, typer.Option("--until", help="Last candle to use (inclusive, UTC).")
    ] = None,
    workers: Annotated[
        int | None, typer.Option("--workers", "-w", help="Worker processes (default: forge.workers).")
    ] = None,
    cache: Annotated[bool, typer.Option("--cache/--no-cache", help="Use the feature cache.")] = True,
) -> None:
    """Feature table of SYMBOL; the other assets of the universe feed its cross-asset features."""
    import pandas as pd

    from singularity.config import check_symbol
    from singularity.data.store import CandleStore, load_universe

    st = settings(ctx)
    try:
        check_symbol(symbol)
    except ValueError as e:
        raise DataError(str(e)) from None
    tf = st.timeframe(timeframe or "tactical")
    symbols = [symbol] + [s for s in st.universe.symbols if s != symbol]
    store = CandleStore(st.data.dir)
    universe = load_universe(store, st.exchange.name, symbols, tf)
    if until is not None:
        try:
            stop = pd.Timestamp(until)
        except ValueError:
            raise DataError(f"--until: not a timestamp: {until!r}") from None
        stop = stop.tz_localize("UTC") if stop.tzinfo is None else stop.tz_convert("UTC")
        universe = {s: df.loc[df.index <= stop] for s, df in universe.items()}
        if len(universe[symbol]) == 0:
            raise DataError(f"{symbol}: no {tf} candles up to {stop}")
    # assets without any candle in range cannot feed the graph: leave them out, say so
    empty = [s for s, df in universe.items() if len(df) == 0]
    universe = {s: df for s, df in universe.items() if len(df) > 0}
    cache_dir = Path(st.data.dir) / "cache" / "features" / st.exchange.name / tf if cache else None
    from singularity.features.factory import FeatureFactory  # numba, TA-Lib: after the checks
    from singularity.runtime.pool import WorkerPool, resolve_workers

    n_workers = resolve_workers(st.forge.workers if workers is None else workers)
    with contextlib.ExitStack() as stack:
        # one worker: compute in-process rather than pay for starting a pool
        pool = stack.enter_context(WorkerPool(n_workers)) if n_workers > 1 else None
        factory = FeatureFactory(st.features, pool=pool, cache_dir=cache_dir)
        fs = factory.build(universe, progress=True)
    frame = fs.frames[symbol]
    _write_table(out, frame, [s.to_dict() for s in fs.catalogue])
    for note in (*fs.notes, *(f"{s}: no candles in range, left out" for s in empty)):
        err_console.print(f"note: {note}", highlight=False, soft_wrap=True)
    warm = int(frame["warmup"].sum())
    console.print(
        f"{symbol} {tf}: {len(frame)} rows x {len(fs.catalogue)} features "
        f"({warm} warm-up rows marked), {len(universe)} assets, "
        f"cache {factory.last_cache_relation or 'off'} -> {out}",
        highlight=False, soft_wrap=True,
    )


def _write_table(out: Path, frame: object, catalogue: list[dict[str, object]]) -> None:
    """Parquet with the catalogue in its key-value metadata, written atomically."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from singularity.storage import atomic_write_with

    table = pa.Table.from_pandas(frame)
    meta = dict(table.schema.metadata or {})
    meta[b"singularity.features"] = json.dumps(catalogue).encode()
    table = table.replace_schema_metadata(meta)
    atomic_write_with(out, lambda tmp: pq.write_table(table, tmp))


@app.command("list")
def list_(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """The feature catalogue of the current settings: name, family, warm-up, description."""
    from rich.table import Table

    from singularity.features.factory import feature_catalogue

    specs, notes = feature_catalogue(settings(ctx).features)
    if as_json:
        typer.echo(json.dumps({"features": [s.to_dict() for s in specs], "notes": notes}, indent=1))
        return
    table = Table(title=f"{len(specs)} features")
    for col in ("name", "family", "warm-up", "description"):
        table.add_column(col, justify="right" if col == "warm-up" else "left")
    for s in specs:
        table.add_row(s.name, s.family, str(s.warmup), s.description)
    console.print(table)
    for note in notes:
        err_console.print(f"note: {note}", highlight=False, soft_wrap=True)

"""``singularity data ...``: import, download, list and show candles.

Heavy libraries (pandas, pyarrow, ccxt) are imported inside the commands so that
``singularity --help`` stays fast.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from singularity.cli._context import console, settings
from singularity.errors import DataError

if TYPE_CHECKING:
    import pandas as pd
    from rich.table import Table

    from singularity.data.store import StoreEntry

app = typer.Typer(help="Store, import and download candles.", no_args_is_help=True)

ExchangeOpt = Annotated[
    str | None, typer.Option("--exchange", "-e", help="ccxt exchange id (default: settings).")
]
TimeframeOpt = Annotated[
    str | None, typer.Option("--timeframe", "-t", help="Timeframe or its name (default: tactical).")
]


def _ts(ts: pd.Timestamp | None) -> str:
    return "-" if ts is None else ts.strftime("%Y-%m-%d %H:%M")


def _column(table: Table, name: str) -> None:
    """Timestamps never wrap; numbers align right."""
    left = name in ("exchange", "symbol", "tf", "first", "last")
    table.add_column(name, justify="left" if left else "right", no_wrap=name in ("first", "last"))


def _parse_column_map(spec: str | None) -> dict[str, str] | None:
    """``timestamp=Time,volume=Vol`` -> {'timestamp': 'Time', 'volume': 'Vol'}."""
    if not spec:
        return None
    out: dict[str, str] = {}
    for part in spec.split(","):
        key, sep, value = part.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise DataError(f"--column-map: expected NAME=COLUMN pairs separated by commas, got {part!r}")
        out[key.strip().lower()] = value.strip()
    return out


@app.command("import")
def import_(
    ctx: typer.Context,
    paths: Annotated[
        list[Path], typer.Argument(help="Candle files (feather, json, json.gz, csv, parquet).")
    ],
    symbol: Annotated[
        str | None, typer.Option("--symbol", "-s", help="e.g. BTC/USDT (default: from the file name).")
    ] = None,
    timeframe: Annotated[
        str | None, typer.Option("--timeframe", "-t", help="e.g. 1h (default: from the file name).")
    ] = None,
    exchange: ExchangeOpt = None,
    column_map: Annotated[
        str | None,
        typer.Option(
            "--column-map", help="Generic CSV columns: timestamp=Time,open=O,high=H,low=L,close=C,volume=V."
        ),
    ] = None,
) -> None:
    """Import candle files into the store. Every file is checked before any is written."""
    from rich import box
    from rich.table import Table

    from singularity.data.importers import (
        cryptodatadownload_exchange,
        import_file,
        is_cryptodatadownload,
    )
    from singularity.data.schema import ensure_valid
    from singularity.data.store import CandleStore
    from singularity.errors import CandleValidationError

    st = settings(ctx)
    store = CandleStore(st.data.dir)
    tf = st.timeframe(timeframe) if timeframe else None
    cmap = _parse_column_map(column_map)

    def exchange_of(path: Path) -> str:
        """--exchange, else a CryptoDataDownload file's own (Binance_BTCUSDT_1h.csv), else settings."""
        if exchange:
            return exchange
        named = (cryptodatadownload_exchange(path) if path.suffix.lower() in (".csv", ".gz")
                 and path.is_file() and is_cryptodatadownload(path) else None)
        return named or st.exchange.name

    # Phase 1: read and validate everything; a bad file stops the import before any write.
    groups: dict[tuple[str, str, str], list[tuple[Path, pd.DataFrame]]] = {}
    with console.status("reading files") as status:
        for path in paths:
            status.update(f"reading {path.name}")
            sym, tfr, df = import_file(path, symbol=symbol, timeframe=tf, column_map=cmap)
            try:
                ensure_valid(df, tfr, sym)
            except CandleValidationError as e:
                raise CandleValidationError(f"{path.name}: {e}", e.report) from e
            groups.setdefault((exchange_of(path), sym, tfr), []).append((path, df))
        merged_new = {}
        for (ex, sym, tfr), items in groups.items():
            frame = _combine([df for _, df in items])
            try:
                store.check_write(ex, sym, tfr, frame)
            except CandleValidationError as e:
                names = ", ".join(p.name for p, _ in items)
                raise CandleValidationError(f"{names}: merged with the store: {e}", e.report) from e
            merged_new[(ex, sym, tfr)] = frame

    # Phase 2: write.
    exchanges = sorted({ex for ex, _, _ in merged_new})
    table = Table(title=f"stored in {store.ohlcv_dir / exchanges[0] if len(exchanges) == 1 else store.ohlcv_dir}",
                  box=box.SIMPLE, pad_edge=False)
    for col in ("exchange", "symbol", "tf", "added", "rows", "first", "last", "gaps"):
        _column(table, col)
    for (ex, sym, tfr), frame in merged_new.items():
        rep = store.write(ex, sym, tfr, frame)
        v = rep.validation
        table.add_row(
            ex, sym, tfr, str(rep.added), str(rep.rows_after), _ts(v.first), _ts(v.last), str(len(v.gaps))
        )
    console.print(table)


def _combine(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """Several files of one symbol: later files win on overlapping candles."""
    if len(frames) == 1:
        return frames[0]
    import pandas as pd

    both = pd.concat(frames)
    return both[~both.index.duplicated(keep="last")].sort_index()


@app.command(
    "download", context_settings={"allow_extra_args": True, "ignore_unknown_options": False}
)
def download(
    ctx: typer.Context,
    since: Annotated[str, typer.Option("--since", help="First candle to fetch, e.g. 2024-01-01 (UTC).")],
    symbols: Annotated[
        list[str] | None,
        typer.Option("--symbols", "-s", help="Repeat, or comma-separated (default: the universe)."),
    ] = None,
    timeframe: TimeframeOpt = None,
    until: Annotated[
        str | None, typer.Option("--until", help="Stop before this time (default: now).")
    ] = None,
    exchange: ExchangeOpt = None,
) -> None:
    """Download candles through ccxt, resuming after the last stored candle."""
    import pandas as pd
    from rich import box
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    from rich.table import Table

    from singularity.data.downloader import build_exchange, download_ohlcv
    from singularity.data.store import CandleStore
    from singularity.timeframes import timeframe_delta

    st = settings(ctx)
    exchange = exchange or st.exchange.name
    tf = st.timeframe(timeframe or "tactical")
    # ``--symbols A B`` leaves B as an extra argument: accept both spellings.
    syms = [s.strip() for item in [*(symbols or []), *ctx.args] for s in item.split(",") if s.strip()]
    syms = syms or list(st.universe.symbols)
    start = _parse_time(since, "--since")
    stop = _parse_time(until, "--until") if until else None
    store = CandleStore(st.data.dir)
    exchange_config: dict[str, object] = {"timeout": st.exchange.timeout_ms}
    if st.exchange.api_key:
        exchange_config.update(apiKey=st.exchange.api_key.get_secret_value(),
                               secret=st.exchange.secret.get_secret_value() if st.exchange.secret else None)

    # One client for every symbol: the exchange's markets are loaded once, not per symbol.
    client = build_exchange(exchange, timeout_ms=st.exchange.timeout_ms, exchange_config=exchange_config)
    reports = []
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=False) as progress:
        for sym in syms:
            last = store.last_timestamp(exchange, sym, tf)
            first_needed = max(start, last + timeframe_delta(tf)) if last is not None else start
            end = stop or pd.Timestamp.now(tz="UTC")
            expected = max(0, int((end - first_needed) / timeframe_delta(tf)))
            task = progress.add_task(f"{sym} {tf}", total=expected or None)

            def advance(n: int, _task: int = task) -> None:
                progress.advance(_task, n)

            reports.append(
                download_ohlcv(
                    store, client, sym, tf, start, until=stop, progress=advance,
                )
            )
            progress.update(task, total=expected, completed=expected)  # the estimate was rough

    table = Table(title=f"downloaded from {exchange}", box=box.SIMPLE, pad_edge=False)
    for col in ("symbol", "tf", "added", "first", "last", "pages", "retries"):
        _column(table, col)
    for r in reports:
        table.add_row(
            r.symbol, r.timeframe, str(r.candles_added), _ts(r.first), _ts(r.last),
            str(r.pages), str(r.retries),
        )
    console.print(table)


def _parse_time(text: str, option: str) -> pd.Timestamp:
    import pandas as pd

    try:
        t = pd.Timestamp(text)
    except (ValueError, TypeError) as e:
        raise DataError(f"{option}: not a date/time {text!r} (expected e.g. 2024-01-01 or 2024-01-01T12:00)") from e
    if t is pd.NaT:
        raise DataError(f"{option}: not a date/time {text!r}")
    return t.tz_localize("UTC") if t.tzinfo is None else t.tz_convert("UTC")


def _entry_dict(e: StoreEntry) -> dict[str, object]:
    return {
        "exchange": e.exchange,
        "symbol": e.symbol,
        "timeframe": e.timeframe,
        "rows": e.rows,
        "first": None if e.first is None else e.first.isoformat(),
        "last": None if e.last is None else e.last.isoformat(),
        "gaps": e.gaps,
        "missing": e.missing,
    }


@app.command("list")
def list_(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """List the stored candles: exchange, symbol, timeframe, rows, first, last, gaps."""
    from rich import box
    from rich.table import Table

    from singularity.data.store import CandleStore

    st = settings(ctx)
    store = CandleStore(st.data.dir)
    entries = store.entries()
    if as_json:
        typer.echo(json.dumps([_entry_dict(e) for e in entries], indent=2))
        return
    if not entries:
        console.print(f"no candles stored in {store.root} (singularity data import / download)")
        return
    table = Table(title=f"candles in {store.ohlcv_dir}", box=box.SIMPLE, pad_edge=False)
    exchanges = sorted({e.exchange for e in entries})
    cols = ("symbol", "tf", "rows", "first", "last", "gaps", "missing")
    if len(exchanges) > 1:
        cols = ("exchange", *cols)
    else:
        table.title = f"candles on {exchanges[0]} in {store.ohlcv_dir}"
    for col in cols:
        _column(table, col)
    for e in entries:
        row = [e.symbol, e.timeframe, str(e.rows), _ts(e.first), _ts(e.last), str(e.gaps), str(e.missing)]
        table.add_row(*([e.exchange, *row] if len(exchanges) > 1 else row))
    console.print(table)


@app.command("show")
def show(
    ctx: typer.Context,
    symbol: Annotated[str, typer.Argument(help="Symbol, e.g. BTC/USDT.")],
    timeframe: TimeframeOpt = None,
    exchange: ExchangeOpt = None,
    tail: Annotated[int, typer.Option("--tail", "-n", min=0, help="Rows to show at each end.")] = 5,
) -> None:
    """Show the first and last candles of a symbol and a validation summary."""
    from rich import box
    from rich.table import Table

    from singularity.data.schema import validate_candles
    from singularity.data.store import CandleStore

    st = settings(ctx)
    exchange = exchange or st.exchange.name
    tf = st.timeframe(timeframe or "tactical")
    df = CandleStore(st.data.dir).read(exchange, symbol, tf)
    table = Table(title=f"{symbol} {tf} on {exchange}: {len(df)} candles", box=box.SIMPLE, pad_edge=False)
    table.add_column("timestamp (UTC)")
    for col in df.columns:
        table.add_column(col, justify="right")
    if len(df) > 2 * tail:
        head, rest = df.iloc[:tail], df.iloc[-tail:] if tail else df.iloc[:0]
    else:
        head, rest = df, df.iloc[:0]
    for ts, row in head.iterrows():
        table.add_row(_ts(ts), *(f"{v:.10g}" for v in row))
    if len(rest):
        table.add_row("...", *("" for _ in df.columns))
        for ts, row in rest.iterrows():
            table.add_row(_ts(ts), *(f"{v:.10g}" for v in row))
    console.print(table)
    report = validate_candles(df, tf)
    console.print(f"validation: {report.summary()}", highlight=False)
    for start, end in report.gaps[:10]:
        console.print(f"  gap {_ts(start)} .. {_ts(end)}", highlight=False)
    if len(report.gaps) > 10:
        console.print(f"  ... and {len(report.gaps) - 10} more gaps", highlight=False)

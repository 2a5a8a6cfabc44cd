"""The candle store: one Parquet file per (exchange, symbol, timeframe).

Layout: ``root/ohlcv/<exchange>/<BTC_USDT>-<1h>.parquet`` (a perpetual ``BTC/USDT:USDT`` is
``BTC_USDT_USDT``). Every write validates the new candles, merges them with what is stored
(the NEW value wins on an overlap), validates the merged frame and replaces the file
atomically (temporary file, fsync, rename): a rejected or interrupted write leaves the stored
file byte-for-byte unchanged. The exchange, symbol, timeframe and a summary (rows, first,
last, gaps) live in the Parquet key-value metadata, so ``entries()`` never reads candles.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from singularity.data.schema import (
    INDEX_NAME,
    OHLCV_COLUMNS,
    TIME_UNIT,
    ValidationReport,
    ensure_valid,
)
from singularity.errors import DataError
from singularity.storage import atomic_write_with
from singularity.timeframes import timeframe_seconds

try:  # POSIX advisory lock so two writers of one file cannot lose each other's candles
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

META_KEY = b"singularity"
_SYMBOL = re.compile(r"^[A-Z0-9]{1,20}/[A-Z0-9]{1,20}(:[A-Z0-9]{1,20})?$")
_EXCHANGE = re.compile(r"^[a-z0-9_]{1,40}$")
_SCHEMA = pa.schema(
    [pa.field(INDEX_NAME, pa.timestamp(TIME_UNIT, tz="UTC"), nullable=False)]
    + [pa.field(c, pa.float64(), nullable=False) for c in OHLCV_COLUMNS]
)


def symbol_to_filename(symbol: str) -> str:
    """``BTC/USDT`` -> ``BTC_USDT``; ``BTC/USDT:USDT`` -> ``BTC_USDT_USDT``."""
    if not _SYMBOL.match(symbol):
        raise DataError(f"malformed symbol {symbol!r}: expected a ccxt symbol like 'BTC/USDT'")
    return symbol.replace("/", "_").replace(":", "_")


def _check_exchange(exchange: str) -> str:
    if not _EXCHANGE.match(exchange):
        raise DataError(f"malformed exchange id {exchange!r}: expected a ccxt id like 'binance'")
    return exchange


@dataclass(frozen=True)
class StoreEntry:
    exchange: str
    symbol: str
    timeframe: str
    rows: int
    first: pd.Timestamp | None
    last: pd.Timestamp | None
    gaps: int
    """Number of runs of missing candles."""
    missing: int
    """Number of missing candles inside [first, last]."""
    path: Path


@dataclass(frozen=True)
class WriteReport:
    exchange: str
    symbol: str
    timeframe: str
    path: Path
    rows_before: int
    rows_after: int
    added: int
    """Candles whose timestamp was not stored before."""
    overlapped: int
    """New candles whose timestamp was already stored (the new value was kept)."""
    changed: int
    """Overlapping candles whose values differed from the stored ones."""
    written: bool
    """False when the write changed nothing, so the file was left untouched."""
    validation: ValidationReport
    """Report on the merged, stored frame (gaps included)."""


def _ts_or_none(v: object) -> pd.Timestamp | None:
    return None if v is None else pd.Timestamp(v)


class CandleStore:
    """Parquet candle files under ``root/ohlcv``; ``root`` is ``settings.data.dir``."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.ohlcv_dir = self.root / "ohlcv"

    def __repr__(self) -> str:
        return f"CandleStore({str(self.root)!r})"

    def path(self, exchange: str, symbol: str, timeframe: str) -> Path:
        timeframe_seconds(timeframe)  # rejects unknown timeframes with a clear message
        name = f"{symbol_to_filename(symbol)}-{timeframe}.parquet"
        return self.ohlcv_dir / _check_exchange(exchange) / name

    def exists(self, exchange: str, symbol: str, timeframe: str) -> bool:
        return self.path(exchange, symbol, timeframe).is_file()

    # -- reading -------------------------------------------------------------------------

    def read(
        self,
        exchange: str,
        symbol: str,
        timeframe: str,
        start: pd.Timestamp | str | None = None,
        end: pd.Timestamp | str | None = None,
    ) -> pd.DataFrame:
        """Canonical frame of the stored candles with ``start <= timestamp < end``.

        Naive ``start``/``end`` are read as UTC. Raises ``DataError`` naming the symbol and
        listing what is stored when the file is absent.
        """
        path = self.path(exchange, symbol, timeframe)
        if not path.is_file():
            raise DataError(self._absent_message(exchange, symbol, timeframe))
        filters = []
        if start is not None:
            filters.append((INDEX_NAME, ">=", _utc(start)))
        if end is not None:
            filters.append((INDEX_NAME, "<", _utc(end)))
        with _readable(path):
            return _table_to_frame(pq.read_table(path, filters=filters or None))

    def last_timestamp(self, exchange: str, symbol: str, timeframe: str) -> pd.Timestamp | None:
        """Open time of the newest stored candle, or None when nothing is stored."""
        path = self.path(exchange, symbol, timeframe)
        if not path.is_file():
            return None
        entry = self._entry_from_file(path)
        return entry.last if entry else None

    def entries(self) -> list[StoreEntry]:
        """Everything stored, sorted by (exchange, symbol, timeframe seconds); metadata only."""
        out = [e for p in self._files() if (e := self._entry_from_file(p)) is not None]
        return sorted(out, key=lambda e: (e.exchange, e.symbol, timeframe_seconds(e.timeframe)))

    def _files(self) -> Iterator[Path]:
        if self.ohlcv_dir.is_dir():
            yield from sorted(self.ohlcv_dir.glob("*/*.parquet"))

    @staticmethod
    def _entry_from_file(path: Path) -> StoreEntry | None:
        with _readable(path):
            meta = pq.read_metadata(path).metadata or {}
        if META_KEY not in meta:
            return None  # not written by this store
        m = json.loads(meta[META_KEY])
        return StoreEntry(
            exchange=m["exchange"],
            symbol=m["symbol"],
            timeframe=m["timeframe"],
            rows=int(m["rows"]),
            first=_ts_or_none(m["first"]),
            last=_ts_or_none(m["last"]),
            gaps=int(m["gaps"]),
            missing=int(m["missing"]),
            path=path,
        )

    def _absent_message(self, exchange: str, symbol: str, timeframe: str) -> str:
        stored = self.entries()
        if not stored:
            what = f"the store at {self.root} is empty (singularity data import/download)"
        else:
            names = [f"{e.symbol} {e.timeframe} ({e.exchange})" for e in stored]
            more = f" and {len(names) - 12} more" if len(names) > 12 else ""
            what = "stored: " + ", ".join(names[:12]) + more
        return f"no candles stored for {symbol} {timeframe} on {exchange}; {what}"

    # -- writing -------------------------------------------------------------------------

    def write(self, exchange: str, symbol: str, timeframe: str, df: pd.DataFrame) -> WriteReport:
        """Validate ``df``, merge it into the stored candles (new wins) and store atomically."""
        path = self.path(exchange, symbol, timeframe)
        ensure_valid(df, timeframe, symbol)
        with self._lock(path):
            report, merged = self._merge(path, exchange, symbol, timeframe, df)
            if merged is not None:
                table = _frame_to_table(merged, exchange, symbol, timeframe, report.validation)
                atomic_write_with(path, lambda tmp: pq.write_table(table, tmp, compression="zstd"))
        return report

    def check_write(
        self, exchange: str, symbol: str, timeframe: str, df: pd.DataFrame
    ) -> WriteReport:
        """What ``write`` would do (raising what it would raise), without touching the file."""
        path = self.path(exchange, symbol, timeframe)
        ensure_valid(df, timeframe, symbol)
        report, _ = self._merge(path, exchange, symbol, timeframe, df)
        return replace(report, written=False)

    def _merge(
        self, path: Path, exchange: str, symbol: str, timeframe: str, df: pd.DataFrame
    ) -> tuple[WriteReport, pd.DataFrame | None]:
        """Merged frame (None when nothing changes) and its report; raises on corrupt results."""
        if path.is_file():
            with _readable(path):
                old = _table_to_frame(pq.read_table(path))
        else:
            old = _empty_frame()
        new = df.copy()
        new.index = new.index.as_unit(TIME_UNIT)
        overlap = new.index.intersection(old.index)
        changed = 0
        if len(overlap):
            a = old.loc[overlap, list(OHLCV_COLUMNS)].to_numpy()
            b = new.loc[overlap, list(OHLCV_COLUMNS)].to_numpy()
            changed = int((a != b).any(axis=1).sum())
        added = len(new) - len(overlap)
        if added == 0 and changed == 0:
            validation = ensure_valid(old, timeframe, symbol)
            report = WriteReport(
                exchange, symbol, timeframe, path, len(old), len(old), 0, len(overlap), 0,
                False, validation,
            )
            return report, None
        merged = pd.concat([old, new]) if len(old) else new
        merged = merged[~merged.index.duplicated(keep="last")].sort_index()
        validation = ensure_valid(merged, timeframe, symbol)
        report = WriteReport(
            exchange, symbol, timeframe, path, len(old), len(merged), added, len(overlap),
            changed, True, validation,
        )
        return report, merged

    @contextlib.contextmanager
    def _lock(self, path: Path) -> Iterator[None]:
        if fcntl is None:  # pragma: no cover
            yield
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        lock_path = path.parent / f".{path.name}.lock"
        with open(lock_path, "a+b") as fh:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def load_universe(
    store: CandleStore,
    exchange: str,
    symbols: Iterable[str],
    timeframe: str,
    *,
    start: pd.Timestamp | str | None = None,
    end: pd.Timestamp | str | None = None,
) -> dict[str, pd.DataFrame]:
    """Candles of every symbol (in the given order); one ``DataError`` lists all absent ones."""
    symbols = list(symbols)
    absent = [s for s in symbols if not store.exists(exchange, s, timeframe)]
    if absent:
        stored = sorted(
            {e.symbol for e in store.entries() if e.exchange == exchange and e.timeframe == timeframe}
        )
        have = ", ".join(stored) if stored else "none"
        raise DataError(
            f"no {timeframe} candles on {exchange} for {', '.join(absent)}; stored {timeframe}: {have}"
        )
    return {s: store.read(exchange, s, timeframe, start=start, end=end) for s in symbols}


@contextlib.contextmanager
def _readable(path: Path) -> Iterator[None]:
    """A damaged file (e.g. copied in by hand) is a one-line DataError naming it."""
    try:
        yield
    except (pa.ArrowException, OSError, KeyError) as e:
        raise DataError(f"{path}: unreadable candle file ({type(e).__name__}: {e})") from e


def _utc(ts: pd.Timestamp | str) -> pd.Timestamp:
    t = pd.Timestamp(ts)
    return (t.tz_localize("UTC") if t.tzinfo is None else t.tz_convert("UTC")).as_unit(TIME_UNIT)


def _empty_frame() -> pd.DataFrame:
    idx = pd.DatetimeIndex([], tz="UTC", name=INDEX_NAME).as_unit(TIME_UNIT)
    return pd.DataFrame({c: np.empty(0, dtype=np.float64) for c in OHLCV_COLUMNS}, index=idx)


def _table_to_frame(table: pa.Table) -> pd.DataFrame:
    ts = table.column(INDEX_NAME).to_numpy()  # datetime64[ns] (UTC instants)
    idx = pd.DatetimeIndex(ts).tz_localize("UTC").as_unit(TIME_UNIT).rename(INDEX_NAME)
    cols = {c: table.column(c).to_numpy().astype(np.float64, copy=False) for c in OHLCV_COLUMNS}
    return pd.DataFrame(cols, index=idx, columns=list(OHLCV_COLUMNS))


def _frame_to_table(
    df: pd.DataFrame, exchange: str, symbol: str, timeframe: str, report: ValidationReport
) -> pa.Table:
    arrays = [pa.array(df.index.as_unit(TIME_UNIT).asi8, type=_SCHEMA.field(INDEX_NAME).type)]
    arrays += [pa.array(df[c].to_numpy(dtype=np.float64)) for c in OHLCV_COLUMNS]
    meta = {
        "exchange": exchange,
        "symbol": symbol,
        "timeframe": timeframe,
        "rows": len(df),
        "first": df.index[0].isoformat() if len(df) else None,
        "last": df.index[-1].isoformat() if len(df) else None,
        "gaps": len(report.gaps),
        "missing": report.missing_candles,
    }
    schema = _SCHEMA.with_metadata({META_KEY: json.dumps(meta).encode()})
    return pa.Table.from_arrays(arrays, schema=schema)

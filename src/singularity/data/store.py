"""The candle store: one folder of monthly Parquet partitions per (exchange, symbol, timeframe).

Layout: ``root/ohlcv/<exchange>/<BTC_USDT>-<1h>/`` (a perpetual ``BTC/USDT:USDT`` is
``BTC_USDT_USDT``), described in ``series_files``: a manifest (the committed state and a
summary: rows, first, last, gaps), one Parquet file per UTC month, and an append log. Every
write validates the new candles, merges them with what is stored (the NEW value wins on an
overlap) and validates the result; only the months it touches are read and rewritten, and a
candle after the last one is appended to the log in O(new rows). Writes commit by replacing
the manifest atomically: a rejected or interrupted write changes nothing a reader sees.
``entries()`` reads manifests and logs, never candles. A range read opens only the months it
needs. Stores of the earlier layout (one Parquet file per series) are migrated on first open.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import re
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TypeVar

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from singularity.data import series_files as sf
from singularity.data.schema import (
    INDEX_NAME,
    OHLCV_COLUMNS,
    TIME_UNIT,
    ValidationReport,
    ensure_valid,
)
from singularity.errors import DataError
from singularity.storage import atomic_write_bytes, atomic_write_with, fsync_dir, sweep_temp_files
from singularity.timeframes import timeframe_delta, timeframe_seconds

try:  # POSIX advisory lock so two writers of one file cannot lose each other's candles
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger(__name__)
META_KEY = b"singularity"
"""Parquet key-value metadata of the earlier one-file layout (read when migrating)."""
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


@dataclass(frozen=True)
class _ReadCache:
    """What ``CandleStore._manifest_and_log`` read of one series."""

    manifest_bytes: bytes
    manifest: sf.Manifest
    rows: np.ndarray
    """The append log's rows read so far."""
    log_end: int
    """Bytes of the log's intact batches read so far."""


@dataclass
class _Plan:
    """What a write would do: its report, and (unless nothing changes) either rows to append
    to the log or the months to rewrite with the manifest that commits them."""

    report: WriteReport
    append: np.ndarray | None = None
    log: sf.LogState | None = None
    """The append log as read by the plan (an append goes after its intact part)."""
    months: dict[str, pd.DataFrame] | None = None
    manifest: sf.Manifest | None = None


class CandleStore:
    """Partitioned candle series under ``root/ohlcv``; ``root`` is ``settings.data.dir``."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.ohlcv_dir = self.root / "ohlcv"
        self._read_cache: dict[Path, _ReadCache] = {}
        self._migrate_all()

    def __repr__(self) -> str:
        return f"CandleStore({str(self.root)!r})"

    def path(self, exchange: str, symbol: str, timeframe: str) -> Path:
        """The series' folder."""
        timeframe_seconds(timeframe)  # rejects unknown timeframes with a clear message
        name = f"{symbol_to_filename(symbol)}-{timeframe}"
        return self.ohlcv_dir / _check_exchange(exchange) / name

    def exists(self, exchange: str, symbol: str, timeframe: str) -> bool:
        path = self.path(exchange, symbol, timeframe)
        self._migrate(_legacy(path))
        return (path / sf.MANIFEST).is_file()

    # -- reading -------------------------------------------------------------------------

    def read(
        self,
        exchange: str,
        symbol: str,
        timeframe: str,
        start: pd.Timestamp | str | None = None,
        end: pd.Timestamp | str | None = None,
    ) -> pd.DataFrame:
        """Canonical frame of the stored candles with ``start <= timestamp < end``; only the
        months that overlap the range are opened.

        Naive ``start``/``end`` are read as UTC. Raises ``DataError`` naming the symbol and
        listing what is stored when the series is absent.
        """
        tables, rows = self._read_parts(exchange, symbol, timeframe, start, end)
        frames = []
        if tables:
            frames.append(_table_to_frame(pa.concat_tables(tables)))
        if len(rows):
            frames.append(_rows_to_frame(rows))
        if not frames:
            return _empty_frame()
        return frames[0] if len(frames) == 1 else pd.concat(frames)

    def read_arrays(
        self,
        exchange: str,
        symbol: str,
        timeframe: str,
        start: pd.Timestamp | str | None = None,
        end: pd.Timestamp | str | None = None,
    ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """``read``'s candles as plain arrays, without building a frame (for a caller that
        polls for a few new candles: a frame costs more than the read): open times (int64 ns
        since the epoch, UTC) and each OHLCV column (float64)."""
        tables, rows = self._read_parts(exchange, symbol, timeframe, start, end)
        times = [tbl.column(INDEX_NAME).to_numpy().astype("datetime64[ns]").view(np.int64) for tbl in tables]
        cols = {c: [tbl.column(c).to_numpy().astype(np.float64, copy=False) for tbl in tables]
                for c in OHLCV_COLUMNS}
        times.append(rows["t"].astype(np.int64))
        for c in OHLCV_COLUMNS:
            cols[c].append(rows[c].astype(np.float64))
        return np.concatenate(times), {c: np.concatenate(v) for c, v in cols.items()}

    def _read_parts(
        self, exchange: str, symbol: str, timeframe: str,
        start: pd.Timestamp | str | None, end: pd.Timestamp | str | None,
    ) -> tuple[list[pa.Table], np.ndarray]:
        """The month tables and the log rows of ``start <= timestamp < end``."""
        path = self.path(exchange, symbol, timeframe)
        if not self.exists(exchange, symbol, timeframe):
            raise DataError(self._absent_message(exchange, symbol, timeframe))
        lo = _utc(start).value if start is not None else None
        hi = _utc(end).value if end is not None else None
        # bounds as nanosecond Arrow scalars: a pandas Timestamp reaches pyarrow as a Python
        # datetime, which drops the nanoseconds (start T + 1 ns read as T)
        stamp = _SCHEMA.field(INDEX_NAME).type
        filters = []
        if lo is not None:
            filters.append((INDEX_NAME, ">=", pa.scalar(lo, type=stamp)))
        if hi is not None:
            filters.append((INDEX_NAME, "<", pa.scalar(hi, type=stamp)))
        with self._lock(path, shared=True):
            m, rows = self._manifest_and_log(path)
            files = [path / p.file for p in m.partitions
                     if not ((lo is not None and p.last < lo) or (hi is not None and p.first >= hi))]

            def read_one(f: Path) -> pa.Table:
                with _readable(f):
                    return pq.read_table(f, filters=filters or None)

            # months in parallel threads (pyarrow reads and decompresses without the GIL)
            tables = _io_map(read_one, files)
        if lo is not None:
            rows = rows[rows["t"] >= lo]
        if hi is not None:
            rows = rows[rows["t"] < hi]
        return tables, rows

    def _manifest_and_log(self, path: Path) -> tuple[sf.Manifest, np.ndarray]:
        """The series' manifest and its append log's rows (under the series' shared lock),
        from what this store read before when the manifest's bytes are the same (parsing it
        is what costs), plus only the log's new batches: the log is append-only under its name
        and any rewrite commits a new manifest with a new log name. A caller polling for each
        new candle reads the small manifest and a few log bytes, not the whole log."""
        f = path / sf.MANIFEST
        raw = _manifest_bytes(f)
        cached = self._read_cache.get(path)
        if cached is None or cached.manifest_bytes != raw:
            m = _parse_manifest(f, raw)
            state = sf.read_log(path / m.log)
            cached = _ReadCache(raw, m, state.rows, state.valid)
        else:
            new, end = sf.read_log_after(path / cached.manifest.log, cached.log_end)
            if len(new):
                rows = np.empty(len(cached.rows) + len(new), dtype=sf.ROW)  # (np.concatenate
                rows[:len(cached.rows)], rows[len(cached.rows):] = cached.rows, new  # promotes
                cached = _ReadCache(raw, cached.manifest, rows, end)  # the record fields: slower)
        self._read_cache[path] = cached  # replaced whole: a concurrent reader sees one or the other
        return cached.manifest, cached.rows

    def last_timestamp(self, exchange: str, symbol: str, timeframe: str) -> pd.Timestamp | None:
        """Open time of the newest stored candle, or None when nothing is stored."""
        if not self.exists(exchange, symbol, timeframe):
            return None
        entry = self._entry(self.path(exchange, symbol, timeframe))
        return entry.last if entry else None

    def entries(self) -> list[StoreEntry]:
        """Everything stored, sorted by (exchange, symbol, timeframe seconds); no candle files
        are read (manifests and append logs only)."""
        self._migrate_all(quiet=False)
        out = [e for p in self._series() if (e := self._entry(p)) is not None]
        return sorted(out, key=lambda e: (e.exchange, e.symbol, timeframe_seconds(e.timeframe)))

    def _series(self) -> Iterator[Path]:
        if self.ohlcv_dir.is_dir():
            yield from sorted(p.parent for p in self.ohlcv_dir.glob(f"*/*/{sf.MANIFEST}"))

    def _entry(self, path: Path) -> StoreEntry | None:
        with self._lock(path, shared=True):
            m = _manifest(path)
            rows = sf.read_log(path / m.log).rows
        s = _summary(m, rows)
        return StoreEntry(
            exchange=m.exchange, symbol=m.symbol, timeframe=m.timeframe, rows=s.rows,
            first=s.first, last=s.last, gaps=len(s.gaps), missing=s.missing_candles, path=path,
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
        """Validate ``df``, merge it into the stored candles (new wins) and commit atomically."""
        path = self.path(exchange, symbol, timeframe)
        ensure_valid(df, timeframe, symbol)
        self._migrate(_legacy(path))
        with self._lock(path):
            if path.is_dir():
                sweep_temp_files(path)  # left by killed writers of this series; none live now
            plan = self._plan(path, exchange, symbol, timeframe, df)
            _apply(path, plan)
        return plan.report

    def check_write(
        self, exchange: str, symbol: str, timeframe: str, df: pd.DataFrame
    ) -> WriteReport:
        """What ``write`` would do (raising what it would raise), without touching the store."""
        path = self.path(exchange, symbol, timeframe)
        ensure_valid(df, timeframe, symbol)
        self._migrate(_legacy(path))
        with self._lock(path, shared=True):
            plan = self._plan(path, exchange, symbol, timeframe, df)
        return replace(plan.report, written=False)

    def _plan(
        self, path: Path, exchange: str, symbol: str, timeframe: str, df: pd.DataFrame
    ) -> _Plan:
        """Reads only the months the new candles (and the append log) fall in."""
        step = timeframe_delta(timeframe).value
        exists = (path / sf.MANIFEST).is_file()
        m = _manifest(path) if exists else sf.Manifest(exchange, symbol, timeframe)
        state = sf.read_log(path / m.log) if exists else sf.LogState(np.empty(0, dtype=sf.ROW), 0, -1)
        logged = state.rows
        new = sf.rows_from_frame(df)
        before = _summary(m, logged)
        last = before.last.value if before.last is not None else None
        if (
            exists and len(new) and last is not None and new["t"][0] > last
            and (new["t"][0] - last) % step == 0 and len(logged) + len(new) <= sf.LOG_MAX_ROWS
        ):  # an append after the last candle: O(new rows)
            after = _summary(m, np.concatenate([logged, new]))
            report = WriteReport(exchange, symbol, timeframe, path, before.rows, after.rows,
                                 len(new), 0, 0, True, after)
            return _Plan(report, append=new, log=state)
        by_key = {p.key: p for p in m.partitions}
        new_keys = sf.month_keys(new["t"])
        log_keys = sf.month_keys(logged["t"])
        months: dict[str, pd.DataFrame] = {}
        added = overlapped = changed = 0
        for key in sorted(set(new_keys.tolist()) | set(log_keys.tolist())):
            mine = logged[log_keys == key]
            if key not in by_key and not len(mine):
                # a month with nothing stored: a slice of ``df``, which ``write`` validated
                # whole (sorted, unique, every candle sound), so valid as it is; re-checking it
                # month by month was most of an import's time. Sorted: the month's rows are
                # contiguous.
                lo, hi = np.searchsorted(new_keys, key, side="left"), np.searchsorted(new_keys, key, side="right")
                part = df.iloc[lo:hi].copy()
                part.index = part.index.as_unit(TIME_UNIT)
                added += len(part)
                months[key] = part
                continue
            old = _empty_frame()
            if key in by_key:
                f = path / by_key[key].file
                with _readable(f):
                    old = _table_to_frame(pq.read_table(f))
            if len(mine):
                old = pd.concat([old, _rows_to_frame(mine)]) if len(old) else _rows_to_frame(mine)
            part = df.iloc[np.flatnonzero(new_keys == key)].copy()
            part.index = part.index.as_unit(TIME_UNIT)
            overlap = part.index.intersection(old.index)
            if len(overlap):
                a = old.loc[overlap, list(OHLCV_COLUMNS)].to_numpy()
                b = part.loc[overlap, list(OHLCV_COLUMNS)].to_numpy()
                changed += int((a != b).any(axis=1).sum())
            overlapped += len(overlap)
            added += len(part) - len(overlap)
            merged = pd.concat([old, part]) if len(old) else part
            merged = merged[~merged.index.duplicated(keep="last")].sort_index()
            ensure_valid(merged, timeframe, symbol)
            months[key] = merged
        if added == 0 and changed == 0:
            return _Plan(WriteReport(exchange, symbol, timeframe, path, before.rows, before.rows,
                                     0, overlapped, 0, False, before))
        parts = dict(by_key)
        for key, frame in months.items():
            t = frame.index.as_unit("ns").asi8
            parts[key] = sf.Partition(key, sf.new_partition_name(key), len(frame), int(t[0]),
                                      int(t[-1]), sf.gaps_of(t, step))
        ordered = tuple(parts[k] for k in sorted(parts))
        _check_junctions(ordered, step, timeframe, symbol)
        manifest = sf.Manifest(exchange, symbol, timeframe, ordered, sf.new_log_name())
        after = _summary(manifest, np.empty(0, dtype=sf.ROW))
        report = WriteReport(exchange, symbol, timeframe, path, before.rows, after.rows, added,
                             overlapped, changed, True, after)
        return _Plan(report, months=months, manifest=manifest)

    # -- the earlier one-file layout -----------------------------------------------------

    def _migrate_all(self, *, quiet: bool = True) -> None:
        if not self.ohlcv_dir.is_dir():
            return
        for legacy in sorted(self.ohlcv_dir.glob("*/*.parquet")):
            try:
                self._migrate(legacy)
            except DataError as e:
                if not quiet:
                    raise
                log.warning("not migrated: %s", e)

    def _migrate(self, legacy: Path) -> None:
        """Rewrite a one-file series as partitions (one commit), then remove the file."""
        if not legacy.is_file():
            return
        path = legacy.with_suffix("")
        with self._lock(path):
            if not legacy.is_file():
                return  # another process migrated it meanwhile
            if not (path / sf.MANIFEST).is_file():
                with _readable(legacy):
                    table = pq.read_table(legacy)
                meta = (table.schema.metadata or {}).get(META_KEY)
                if meta is None:
                    return  # not written by this store: left alone, as before
                m = json.loads(meta)
                df = _table_to_frame(table)
                ensure_valid(df, m["timeframe"], m["symbol"])  # _plan trusts a validated frame
                plan = self._plan(path, m["exchange"], m["symbol"], m["timeframe"], df)
                _apply(path, plan)
                log.info("migrated %s to monthly partitions (%d candles)", legacy, len(df))
            legacy.unlink()

    @contextlib.contextmanager
    def _lock(self, path: Path, *, shared: bool = False) -> Iterator[None]:
        if fcntl is None:  # pragma: no cover
            yield
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        lock_path = path.parent / f".{path.name}.lock"
        with open(lock_path, "a+b") as fh:
            fcntl.flock(fh.fileno(), fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def _legacy(path: Path) -> Path:
    return path.with_name(path.name + ".parquet")


def _manifest(path: Path) -> sf.Manifest:
    f = path / sf.MANIFEST
    return _parse_manifest(f, _manifest_bytes(f))


def _manifest_bytes(f: Path) -> bytes:
    try:
        return f.read_bytes()
    except OSError as e:
        raise DataError(f"{f}: unreadable candle manifest ({type(e).__name__}: {e})") from e


def _parse_manifest(f: Path, raw: bytes) -> sf.Manifest:
    try:
        return sf.Manifest.from_bytes(raw)
    except (ValueError, KeyError, TypeError) as e:
        raise DataError(f"{f}: unreadable candle manifest ({type(e).__name__}: {e})") from e


def _apply(path: Path, plan: _Plan) -> None:
    """Carry out a plan under the series' lock. Partitions first (new names), the manifest
    last (the commit), then what it no longer references is removed."""
    if plan.append is not None and plan.log is not None:
        sf.append_log(path / _manifest(path).log, plan.log, plan.append)
        return
    if plan.manifest is None or plan.months is None:
        return  # nothing changes
    path.mkdir(parents=True, exist_ok=True)
    m = plan.manifest
    by_key = {p.key: p for p in m.partitions}

    def write_month(key: str) -> None:
        p = by_key[key]
        own = _summary(sf.Manifest(m.exchange, m.symbol, m.timeframe, (p,), m.log),
                       np.empty(0, dtype=sf.ROW))  # this month's own figures, in its metadata
        table = _frame_to_table(plan.months[key], m.exchange, m.symbol, m.timeframe, own)  # type: ignore[index]
        atomic_write_with(path / p.file, lambda tmp: pq.write_table(table, tmp, compression="zstd"),
                          sync_dir=False)  # the directory is synced once, below

    _io_map(write_month, list(plan.months))  # months in parallel: their fsyncs overlap (an import writes many)
    fsync_dir(path)  # every month's rename durable before the commit names it (one sync, not one a month)
    atomic_write_bytes(path / sf.MANIFEST, m.to_bytes())  # the commit
    keep = m.referenced()
    for f in path.iterdir():  # superseded files, and leftovers of interrupted writes
        if f.name not in keep:
            with contextlib.suppress(OSError):
                f.unlink()


T = TypeVar("T")
R = TypeVar("R")


def _io_map(fn: Callable[[T], R], items: list[T]) -> list[R]:
    """``[fn(x) for x in items]``, on a small shared thread pool when there is more than one
    (partition reads and writes: I/O and pyarrow work run without the GIL). Never a process
    pool: this runs inside workers too."""
    if len(items) <= 1:
        return [fn(x) for x in items]
    global _IO_POOL
    if _IO_POOL is None:
        _IO_POOL = ThreadPoolExecutor(max_workers=IO_THREADS, thread_name_prefix="candle-io")
    return list(_IO_POOL.map(fn, items))


IO_THREADS = 8
_IO_POOL: ThreadPoolExecutor | None = None


def _check_junctions(parts: tuple[sf.Partition, ...], step: int, timeframe: str, symbol: str) -> None:
    """Candles of neighbouring months must sit on one timeframe grid."""
    for a, b in itertools.pairwise(parts):
        if (b.first - a.last) % step:
            idx = pd.DatetimeIndex(pd.to_datetime([a.last, b.first], utc=True), name=INDEX_NAME)
            stub = pd.DataFrame({c: 1.0 for c in OHLCV_COLUMNS}, index=idx.as_unit(TIME_UNIT))
            ensure_valid(stub, timeframe, symbol)  # raises, naming the off-grid candle


def _summary(m: sf.Manifest, logged: np.ndarray) -> ValidationReport:
    """The stored series' report (valid by construction: only gaps are left to describe)."""
    step = timeframe_delta(m.timeframe).value
    gaps: list[tuple[int, int]] = []
    rows = 0
    first = last = None
    for p in m.partitions:
        if last is not None and p.first - last > step:
            gaps.append((last + step, p.first - step))
        gaps.extend(p.gaps)
        rows += p.rows
        first = p.first if first is None else first
        last = p.last
    if len(logged):
        t = logged["t"]
        if last is not None and t[0] - last > step:
            gaps.append((last + step, int(t[0]) - step))
        gaps.extend(sf.gaps_of(t, step))
        rows += len(logged)
        first = int(t[0]) if first is None else first
        last = int(t[-1])
    return ValidationReport(
        timeframe=m.timeframe,
        rows=rows,
        gaps=tuple((pd.Timestamp(a, tz="UTC"), pd.Timestamp(b, tz="UTC")) for a, b in gaps),
        missing_candles=int(sum((b - a) // step + 1 for a, b in gaps)),
        first=pd.Timestamp(first, tz="UTC") if first is not None else None,
        last=pd.Timestamp(last, tz="UTC") if last is not None else None,
    )


def _rows_to_frame(rows: np.ndarray) -> pd.DataFrame:
    idx = pd.DatetimeIndex(rows["t"].astype("datetime64[ns]")).tz_localize("UTC")
    idx = idx.as_unit(TIME_UNIT).rename(INDEX_NAME)
    return pd.DataFrame({c: np.ascontiguousarray(rows[c]) for c in OHLCV_COLUMNS}, index=idx,
                        columns=list(OHLCV_COLUMNS))


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

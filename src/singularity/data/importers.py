"""Read candle files from other tools into the canonical frame.

Formats (chosen by the file name's extension):

- freqtrade feather (``.feather``) and JSON (``.json``/``.json.gz``: ``[[ts_ms, o, h, l, c, v], ...]``)
- CryptoDataDownload CSV (``.csv`` whose first line is the site's URL banner; newest row first;
  ``unix`` in seconds or milliseconds, even mixed within one file, or only a ``Date`` column
  such as ``2019-10-17 09-AM`` (hourly files) or ``2019-10-17 09:00:00``); the exchange,
  symbol and timeframe come from its name (``Binance_BTCUSDT_1h.csv``) and columns
- generic CSV (any other ``.csv``/``.csv.gz``) with an optional column mapping; timestamps in
  an unnamed first column (what ``DataFrame.to_csv`` writes for a time index) are read as such
- Parquet (``.parquet``) with a timestamp index or column

Symbol and timeframe come from a freqtrade file name (``BTC_USDT-1h.feather``,
``BTC_USDT_USDT-1h-futures.feather``), from a CryptoDataDownload file's content and name, or
from the caller; explicit arguments win.
"""

from __future__ import annotations

import gzip
import json
import re
import warnings
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from singularity.data.schema import OHLCV_COLUMNS, TIME_UNIT, to_canonical
from singularity.data.store import symbol_to_filename
from singularity.errors import DataError
from singularity.timeframes import is_timeframe, timeframe_delta

# BTC_USDT-1h, BTC_USDT_USDT-1h-futures (freqtrade's futures candles); other freqtrade
# candle types (mark, funding_rate, index) are not trade candles and are refused.
_FREQTRADE_NAME = re.compile(
    r"^(?P<base>[A-Z0-9]+)_(?P<quote>[A-Z0-9]+)(?:_(?P<settle>[A-Z0-9]+))?"
    r"-(?P<tf>[0-9]+[a-zA-Z])(?:-(?P<kind>[a-zA-Z_]+))?$"
)
# Binance_BTCUSDT_1h.csv, Bitstamp_BTCUSD_d.csv, Binance_ETHUSDT_minute.csv
_CDD_NAME = re.compile(r"^(?P<exchange>[A-Za-z0-9]+)_[A-Za-z0-9]+_(?P<tf>[0-9]*[a-z]+)$")
_CDD_HOURLY_DATE = re.compile(r"^\d{4}-\d{2}-\d{2} \d{1,2}-[AP]M$")
_CDD_TIMEFRAMES = {"d": "1d", "minute": "1m", "1h": "1h", "h": "1h", "4h": "4h", "1d": "1d"}
_SUFFIXES = (".json.gz", ".csv.gz", ".feather", ".json", ".csv", ".parquet")


def _stem(path: Path) -> tuple[str, str]:
    name = path.name
    for suf in _SUFFIXES:
        if name.lower().endswith(suf):
            return name[: -len(suf)], suf
    raise DataError(
        f"{path.name}: unknown file type (expected one of {', '.join(_SUFFIXES)})"
    )


def parse_freqtrade_name(path: str | Path) -> tuple[str, str] | None:
    """(symbol, timeframe) from ``BTC_USDT-1h.feather`` / ``BTC_USDT_USDT-1h-futures.feather``."""
    stem, _ = _stem(Path(path))
    m = _FREQTRADE_NAME.match(stem)
    if not m:
        return None
    kind = m.group("kind")
    if kind is not None and kind != "futures":
        raise DataError(f"{Path(path).name}: freqtrade '{kind}' files are not trade candles")
    symbol = f"{m.group('base')}/{m.group('quote')}"
    if m.group("settle"):
        symbol += f":{m.group('settle')}"
    return symbol, m.group("tf")


# -- readers: each returns the canonical frame, in the file's row order -------------------


def read_freqtrade_feather(path: Path) -> pd.DataFrame:
    try:
        raw = pd.read_feather(path)
    except Exception as e:  # pyarrow raises its own types for truncated or foreign files
        raise DataError(f"{path.name}: not a readable feather file ({type(e).__name__}: "
                        f"{str(e).splitlines()[0] if str(e) else 'truncated?'})") from None
    return to_canonical(raw, source=path.name)


def read_freqtrade_json(path: Path) -> pd.DataFrame:
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    try:
        with opener(path, "rt", encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DataError(f"{path.name}: not readable JSON ({e})") from e
    if not isinstance(data, list):
        raise DataError(f"{path.name}: expected a JSON list of [ts_ms, o, h, l, c, v] rows")
    if data and isinstance(data[0], dict):  # records orient: [{"date": ..., "open": ...}]
        return to_canonical(pd.DataFrame.from_records(data), source=path.name)
    if any(not isinstance(r, list) or len(r) != 6 for r in data):
        bad = next(i for i, r in enumerate(data) if not isinstance(r, list) or len(r) != 6)
        raise DataError(f"{path.name}: row {bad} is not [ts_ms, open, high, low, close, volume]")
    frame = pd.DataFrame(data, columns=["timestamp", *OHLCV_COLUMNS])
    if len(frame) and not pd.api.types.is_numeric_dtype(frame["timestamp"]):
        raise DataError(f"{path.name}: timestamps must be integers (milliseconds since 1970)")
    return to_canonical(frame, source=path.name)


def _read_text_head(path: Path) -> str:
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8", errors="replace") as fh:
        return fh.readline()


def is_cryptodatadownload(path: Path) -> bool:
    head = _read_text_head(path).strip().lower()
    return head.startswith("http") or "cryptodatadownload" in head


def read_cryptodatadownload(path: Path) -> tuple[pd.DataFrame, str | None, str | None]:
    """CryptoDataDownload CSV -> (frame oldest first, symbol from the data, timeframe from the name)."""
    try:
        raw = pd.read_csv(path, skiprows=1)
    except (ValueError, OSError) as e:
        raise DataError(f"{path.name}: not a readable CSV ({e})") from None
    cols = {str(c).strip().lower(): c for c in raw.columns}
    if "unix" not in cols and "date" not in cols:
        raise DataError(f"{path.name}: CryptoDataDownload file without a 'unix' or 'date' column")
    vol_cols = [c for c in raw.columns if str(c).lower().startswith("volume ")]
    currencies = [str(c)[len("volume ") :].strip().upper() for c in vol_cols]
    symbol = _cdd_symbol(raw[cols["symbol"]].iloc[0] if "symbol" in cols and len(raw) else None,
                         currencies)
    base_vol = None
    if symbol is not None:
        base = symbol.split("/")[0]
        base_vol = next((c for c, cur in zip(vol_cols, currencies, strict=True) if cur == base), None)
    if base_vol is None and "volume" not in cols:
        if not vol_cols:
            raise DataError(f"{path.name}: no volume column")
        base_vol = vol_cols[0]  # CryptoDataDownload lists the base currency's volume first
    frame = pd.DataFrame({c: raw[cols[c]] for c in ("open", "high", "low", "close")})
    frame["volume"] = raw[base_vol] if base_vol is not None else raw[cols["volume"]]
    if "unix" in cols:
        unix = pd.to_numeric(raw[cols["unix"]], errors="coerce").to_numpy(dtype=float)
        if not np.isfinite(unix).all():
            raise DataError(f"{path.name}: unreadable 'unix' timestamps")
        # The site switched from seconds to milliseconds; old files mix both, row by row.
        ms = np.where(unix < 1e11, unix * 1000.0, unix).astype("int64")
        frame["timestamp"] = pd.to_datetime(ms, unit="ms", utc=True)
    else:
        frame["timestamp"] = _cdd_dates(raw[cols["date"]], path.name)
    df = to_canonical(frame, source=path.name).iloc[::-1]  # the site writes newest first
    stem, _ = _stem(path)
    m = _CDD_NAME.match(stem)
    tf = _CDD_TIMEFRAMES.get(m.group("tf")) if m else None
    return df, symbol, tf


def _cdd_dates(values: pd.Series, name: str) -> pd.DatetimeIndex:
    """CryptoDataDownload dates, UTC: '2019-10-17 09-AM' (hourly files), or ISO forms such as
    '2019-10-17 09:00:00' and '2019-10-17'."""
    text = values.astype(str).str.strip()
    hourly = bool(len(text)) and bool(text.map(lambda v: bool(_CDD_HOURLY_DATE.match(v))).all())
    try:
        parsed = pd.to_datetime(text, format="%Y-%m-%d %I-%p" if hourly else "ISO8601", utc=True)
    except (ValueError, TypeError) as e:
        raise DataError(f"{name}: unreadable 'Date' timestamps (e.g. {text.iloc[0]!r}: {e})") from None
    return pd.DatetimeIndex(parsed)


def cryptodatadownload_exchange(path: str | Path) -> str | None:
    """'binance' from 'Binance_BTCUSDT_1h.csv' (the site names files Exchange_PAIR_timeframe)."""
    stem, _ = _stem(Path(path))
    m = _CDD_NAME.match(stem)
    return m.group("exchange").lower() if m else None


def _cdd_symbol(value: object, currencies: list[str]) -> str | None:
    """'BTC/USDT' as is; 'BTCUSDT' split where the two 'Volume X' columns say."""
    if not isinstance(value, str):
        return None
    s = value.strip().upper().replace("-", "/")
    if "/" in s:
        return s
    for a in currencies:
        for b in currencies:
            if a != b and a + b == s:
                return f"{a}/{b}"
    return None


def read_generic_csv(path: Path, column_map: Mapping[str, str] | None = None) -> pd.DataFrame:
    """CSV with a header; ``column_map`` maps canonical names (timestamp, open, ...) to its columns."""
    try:
        raw = pd.read_csv(path)
    except (ValueError, OSError) as e:
        raise DataError(f"{path.name}: not a readable CSV ({e})") from e
    first = str(raw.columns[0]) if len(raw.columns) else ""
    names = {str(c).strip().lower() for c in raw.columns}
    if first.startswith("Unnamed: 0") and not names & {"timestamp", "date", "datetime", "time", "open_time", "unix"}:
        raw = raw.rename(columns={raw.columns[0]: "timestamp"})  # DataFrame.to_csv's index column
    if column_map:
        unknown = [k for k in column_map if k not in ("timestamp", *OHLCV_COLUMNS)]
        if unknown:
            raise DataError(
                f"column map keys must be timestamp/open/high/low/close/volume, got {unknown}"
            )
        absent = [v for v in column_map.values() if v not in raw.columns]
        if absent:
            raise DataError(f"{path.name}: mapped columns {absent} not found (have {list(raw.columns)})")
        raw = raw.rename(columns={v: k for k, v in column_map.items()})
    return to_canonical(raw, source=path.name)


def read_parquet(path: Path) -> pd.DataFrame:
    try:
        raw = pd.read_parquet(path)
    except (OSError, ValueError) as e:
        raise DataError(f"{path.name}: not a readable Parquet file ({e})") from e
    return to_canonical(raw, source=path.name)


def _check_spacing(df: pd.DataFrame, timeframe: str, name: str) -> None:
    """Catch a wrong --timeframe: the commonest spacing of the candles must equal it."""
    if len(df) < 3:
        return
    steps = np.diff(df.index.as_unit(TIME_UNIT).asi8)
    steps = steps[steps > 0]
    if not len(steps):
        return
    values, counts = np.unique(steps, return_counts=True)
    common = pd.Timedelta(int(values[np.argmax(counts)]), unit="ns")
    if common != timeframe_delta(timeframe):
        raise DataError(
            f"{name}: candles are {_fmt_delta(common)} apart, not {timeframe}; pass the right --timeframe"
        )


def _fmt_delta(td: pd.Timedelta) -> str:
    s = int(td.total_seconds())
    for unit, secs in (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60)):
        if s % secs == 0:
            return f"{s // secs}{unit}"
    return f"{s}s"


def import_file(
    path: str | Path,
    *,
    symbol: str | None = None,
    timeframe: str | None = None,
    column_map: Mapping[str, str] | None = None,
) -> tuple[str, str, pd.DataFrame]:
    """Read one candle file -> (symbol, timeframe, canonical frame); nothing is validated or stored.
    pandas' warnings (format inference and the like) are kept off stderr: a problem is one
    DataError line."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return _import_file(Path(path), symbol=symbol, timeframe=timeframe, column_map=column_map)


def _import_file(path: Path, *, symbol: str | None, timeframe: str | None,
                 column_map: Mapping[str, str] | None) -> tuple[str, str, pd.DataFrame]:
    if not path.is_file():
        raise DataError(f"no such file: {path}")
    _, suffix = _stem(path)
    found_symbol: str | None = None
    found_tf: str | None = None
    parsed = parse_freqtrade_name(path)
    if parsed:
        found_symbol, found_tf = parsed
    if suffix == ".feather":
        df = read_freqtrade_feather(path)
    elif suffix in (".json", ".json.gz"):
        df = read_freqtrade_json(path)
    elif suffix == ".parquet":
        df = read_parquet(path)
    elif is_cryptodatadownload(path):
        df, cdd_symbol, cdd_tf = read_cryptodatadownload(path)
        found_symbol = found_symbol or cdd_symbol
        found_tf = found_tf or cdd_tf
    else:
        df = read_generic_csv(path, column_map)
    symbol = symbol or found_symbol
    timeframe = timeframe or found_tf
    if symbol is None or timeframe is None:
        what = " and ".join(
            n for n, v in (("symbol", symbol), ("timeframe", timeframe)) if v is None
        )
        raise DataError(
            f"{path.name}: cannot tell the {what} from the file name "
            "(freqtrade style BTC_USDT-1h.feather); pass --symbol/--timeframe"
        )
    if not is_timeframe(timeframe):
        raise DataError(f"{path.name}: unknown timeframe {timeframe!r} (expected e.g. '1h', '4h')")
    symbol_to_filename(symbol)  # malformed symbols fail here, before anything is stored
    _check_spacing(df, timeframe, path.name)
    return symbol, timeframe, df


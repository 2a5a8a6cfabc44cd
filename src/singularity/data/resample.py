"""Resample candles to a coarser timeframe (e.g. 1h -> 4h).

Buckets are aligned to the Unix epoch (a 4h bucket opens at 00:00, 04:00, ... UTC; a 1d
bucket at 00:00 UTC), which is how exchanges label their own coarse candles. Aggregation:
first open, max high, min low, last close, summed volume.

A bucket is kept only when ALL its source candles are present. That drops a partial last
bucket (its candle is still forming) and any bucket with a missing source candle: a 4h candle
built from three hours would be invented data, so such a bucket becomes a gap instead.
Weekly buckets align to the epoch too (Thursdays), not to exchanges' Monday weeks.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from singularity.data.schema import INDEX_NAME, OHLCV_COLUMNS, TIME_UNIT, validate_candles
from singularity.errors import DataError
from singularity.timeframes import timeframe_seconds


def resample(df: pd.DataFrame, from_tf: str, to_tf: str) -> pd.DataFrame:
    """Aggregate canonical ``from_tf`` candles into complete ``to_tf`` candles."""
    src, dst = timeframe_seconds(from_tf), timeframe_seconds(to_tf)
    if dst % src != 0 or dst < src:
        raise DataError(f"cannot resample {from_tf} to {to_tf}: {to_tf} must be a multiple of {from_tf}")
    report = validate_candles(df, from_tf)
    if not report.ok:
        raise DataError(f"cannot resample corrupt {from_tf} candles: {report.problem_text()}")
    if dst == src:
        return df.copy()
    per_bucket = dst // src
    t = df.index.as_unit(TIME_UNIT).asi8
    if np.any(np.mod(t, src * 1_000_000_000)):
        raise DataError(f"cannot resample: {from_tf} candles do not open on the epoch-aligned {from_tf} grid")
    step = dst * 1_000_000_000
    bucket = t - np.mod(t, step)  # bucket open time, epoch-aligned (works before 1970 too)
    g = df.groupby(bucket, sort=True)
    out = pd.DataFrame(
        {
            "open": g["open"].first(),
            "high": g["high"].max(),
            "low": g["low"].min(),
            "close": g["close"].last(),
            "volume": g["volume"].sum(),
        }
    )
    complete = g.size().to_numpy() == per_bucket
    out = out[complete]
    idx = pd.DatetimeIndex(pd.to_datetime(out.index.to_numpy(dtype="int64"), unit="ns", utc=True))
    out.index = idx.as_unit(TIME_UNIT).rename(INDEX_NAME)
    return out[list(OHLCV_COLUMNS)].astype(np.float64)

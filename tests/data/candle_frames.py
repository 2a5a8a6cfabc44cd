"""Tiny hand-made candle frames for the data-store tests (imported as ``candle_frames``)."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

Row = tuple[str, float, float, float, float, float]


def frame(rows: Sequence[Row]) -> pd.DataFrame:
    """Canonical frame from (UTC time, open, high, low, close, volume) rows, in the given order."""
    idx = pd.DatetimeIndex([pd.Timestamp(r[0], tz="UTC") for r in rows], tz="UTC", name="timestamp")
    data = [r[1:] for r in rows]
    return pd.DataFrame(data, index=idx.as_unit("ns"), columns=["open", "high", "low", "close", "volume"]).astype(
        "float64"
    )


def hourly(n: int, start: str = "2024-09-14 00:00", base: float = 100.0) -> pd.DataFrame:
    """``n`` valid consecutive 1h candles: open base+i, high +2, low -1, close +1, volume 10+i."""
    rows = [
        (str(pd.Timestamp(start) + pd.Timedelta(hours=i)), base + i, base + i + 2, base + i - 1, base + i + 1, 10.0 + i)
        for i in range(n)
    ]
    return frame(rows)


"""Random-walk candles for the forge tests (imported as ``forge_candles``)."""

from __future__ import annotations

import numpy as np
import pandas as pd


def random_walk(n: int, seed: int, *, sigma: float, high: float, low: float) -> pd.DataFrame:
    """``n`` hourly candles: log returns N(0, ``sigma``), open = previous close, high and low
    the body's ends times ``high`` and ``low``, log-normal volume."""
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, sigma, n)))
    open_ = np.concatenate([[100.0], close[:-1]])
    idx = pd.date_range("2024-01-01", periods=n, freq="1h", tz="UTC", name="timestamp")
    return pd.DataFrame({"open": open_, "high": np.maximum(open_, close) * high,
                         "low": np.minimum(open_, close) * low, "close": close,
                         "volume": rng.lognormal(8, 0.3, n)}, index=idx)

"""A synthetic market with a planted, learnable signal (shared by the bake-off tests)."""

from __future__ import annotations

import numpy as np
import pandas as pd


def planted_market(n: int = 1600, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Feature x (persistent AR(1), known at bar t) drives the next bar's drift; 'noise' does
    nothing. Features start with 5 warm-up NaN rows."""
    rng = np.random.default_rng(seed)
    x = np.zeros(n)
    e = rng.normal(size=n)
    for t in range(1, n):
        x[t] = 0.95 * x[t - 1] + np.sqrt(1 - 0.95**2) * e[t]
    r = np.concatenate(([0.0], 0.003 * x[:-1] + 0.01 * rng.normal(size=n - 1)))
    close = 100 * np.exp(np.cumsum(r))
    open_ = np.concatenate(([100.0], close[:-1]))
    idx = pd.date_range("2024-01-01", periods=n, freq="h", tz="UTC", name="timestamp")
    candles = pd.DataFrame(
        {"open": open_, "high": np.maximum(open_, close) * 1.001,
         "low": np.minimum(open_, close) * 0.999, "close": close, "volume": 1.0},
        index=idx,
    )
    feats = pd.DataFrame({"x": x, "noise": rng.normal(size=n)}, index=idx)
    feats.iloc[:5] = np.nan
    return candles, feats

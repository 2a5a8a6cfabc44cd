"""Synthetic data shared by the evolution tests (module name unique across test folders)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from singularity.evolution.bench import synthetic_market


def random_market(n: int = 600, n_features: int = 5, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Random-walk candles and random-walk input columns f0..f{k-1} on one UTC index (the GP
    benchmark's data, smaller)."""
    return synthetic_market(n, n_features, seed)


def planted_market(n: int, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Bar t+1's return is +-0.6 % by the sign of (a[t] - b[t]), plus 0.3 % noise; two more
    inputs are pure noise. Opens equal the previous close, so the edge is tradable."""
    rng = np.random.default_rng(seed)
    idx = pd.date_range("2024-01-01", periods=n, freq="1h", tz="UTC", name="timestamp")
    a = rng.normal(0, 1, n)
    b = rng.normal(0, 1, n)
    r = np.zeros(n)
    r[1:] = 0.006 * np.sign(a[:-1] - b[:-1]) + rng.normal(0, 0.003, n - 1)
    close = 100 * np.exp(np.cumsum(r))
    open_ = np.r_[close[0], close[:-1]]
    candles = pd.DataFrame(
        {"open": open_, "high": np.maximum(open_, close), "low": np.minimum(open_, close),
         "close": close, "volume": 1.0},
        index=idx,
    )
    inputs = pd.DataFrame(
        {"a": a, "b": b, "noise1": rng.normal(0, 1, n), "noise2": rng.normal(0, 1, n)},
        index=idx,
    )
    return inputs, candles

"""A market with planted regimes, for the recovery test and the benchmark.

Three regimes differ in volatility, drift and lag-1 autocorrelation of returns (AR(1)):
calm up-trend with momentum, normal down-trend, turbulent mean-reverting range. The regime
switches at random times (the first three spells visit each regime once): each spell lasts ``min_spell`` to ``max_spell`` bars. Every asset
shares the regime path; returns are ``beta_i * f_t + e_it``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

# (drift per bar, volatility per bar, AR(1) coefficient)
PLANTED = np.array([[6e-4, 0.004, 0.3], [-6e-4, 0.010, 0.0], [0.0, 0.025, -0.3]])


def planted_regime_market(
    n_assets: int = 2, *, n_bars: int = 6000, seed: int = 0, min_spell: int = 300,
    max_spell: int = 900, start: str = "2024-01-01",
) -> tuple[dict[str, pd.DataFrame], np.ndarray]:
    """(universe of 1h candle frames, true regime per bar)."""
    rng = np.random.default_rng(seed)
    truth = np.empty(n_bars, dtype=np.int64)
    order = [int(k) for k in rng.permutation(3)]  # every regime shows up early
    t, k = 0, 0
    while t < n_bars:
        k = order.pop(0) if order else (k + int(rng.integers(1, 3))) % 3
        spell = int(rng.integers(min_spell, max_spell + 1))
        truth[t:t + spell] = k
        t += spell
    mu, sigma, phi = PLANTED[truth, 0], PLANTED[truth, 1], PLANTED[truth, 2]
    shocks = rng.standard_normal(n_bars) * sigma * np.sqrt(1 - phi**2)
    factor = np.empty(n_bars)
    prev = 0.0
    for i in range(n_bars):
        prev = phi[i] * prev + shocks[i]
        factor[i] = prev
    factor += mu
    index = pd.date_range(start, periods=n_bars, freq="1h", tz="UTC", name="timestamp")
    out: dict[str, pd.DataFrame] = {}
    for i in range(n_assets):
        beta = 0.8 + 0.4 * rng.random()
        r = beta * factor + rng.normal(0.0, 0.3, n_bars) * sigma
        close = 100.0 * np.exp(np.cumsum(r))
        open_ = np.concatenate([[100.0], close[:-1]])
        wig = np.abs(rng.normal(0.0, 0.5, (2, n_bars))) * sigma * close
        high = np.maximum(open_, close) + wig[0]
        low = np.minimum(open_, close) - np.minimum(wig[1], 0.5 * np.minimum(open_, close))
        volume = np.exp(rng.normal(8.0, 0.3, n_bars) + 20.0 * np.abs(r))
        out[f"S{i}/USDT"] = pd.DataFrame(
            {"open": open_, "high": high, "low": low, "close": close, "volume": volume},
            index=index,
        )
    return out, truth

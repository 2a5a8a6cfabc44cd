"""A synthetic market for demos and tests when no exchange can be reached.

Model (documented so results can be read for what they are): a three-state Markov chain of
regimes shared by every asset — calm uptrend, calm downtrend, turbulent range — with a
persistence of ``stay`` per bar. In regime k an asset's log return is
``beta_i * f_t + e_it`` where the common factor ``f_t ~ mu_k + sigma_k * t(5)/sqrt(5/3)`` and the
idiosyncratic part ``e_it ~ N(0, (0.5 sigma_k)^2)``. Each bar's high and low come from four
intra-bar sub-steps (a Brownian bridge of the bar's move), volume is log-normal and rises with
|return|. Everything is generated from ``seed``; frames are canonical candle frames and every
symbol carries the exchange name ``synthetic`` so it is never mistaken for market data.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from singularity.timeframes import timeframe_delta

SYNTHETIC_EXCHANGE = "synthetic"
# (drift per bar, volatility per bar) of the common factor in each regime, for 1h bars.
_REGIMES = np.array([[4e-4, 0.006], [-4e-4, 0.006], [0.0, 0.015]])


def regime_switching_market(
    symbols: tuple[str, ...] | list[str],
    *,
    n_bars: int = 8000,
    timeframe: str = "1h",
    seed: int = 0,
    start: str = "2024-01-01",
    stay: float = 0.995,
) -> dict[str, pd.DataFrame]:
    """Candles for ``symbols`` (canonical frames, UTC) from the regime-switching model."""
    rng = np.random.default_rng(seed)
    n_reg = len(_REGIMES)
    regimes = np.empty(n_bars, dtype=np.int64)
    regimes[0] = 0
    switch = rng.random(n_bars) > stay
    jumps = rng.integers(1, n_reg, n_bars)
    for t in range(1, n_bars):
        regimes[t] = (regimes[t - 1] + jumps[t]) % n_reg if switch[t] else regimes[t - 1]
    scale = np.sqrt(timeframe_delta(timeframe) / pd.Timedelta(hours=1))
    mu, sigma = _REGIMES[regimes, 0] * scale**2, _REGIMES[regimes, 1] * scale
    factor = mu + sigma * rng.standard_t(5, n_bars) / np.sqrt(5 / 3)
    index = pd.date_range(start, periods=n_bars, freq=timeframe_delta(timeframe), tz="UTC", name="timestamp")
    out: dict[str, pd.DataFrame] = {}
    for i, sym in enumerate(symbols):
        beta = 0.6 + 0.8 * rng.random()
        log_ret = beta * factor + rng.normal(0.0, 0.5 * sigma)
        price0 = 10.0 ** rng.uniform(0, 4)
        close = price0 * np.exp(np.cumsum(log_ret))
        open_ = np.empty(n_bars)
        open_[0] = price0
        open_[1:] = close[:-1]
        # Intra-bar path: 4 sub-steps bridged from open to close give a realistic high/low.
        steps = rng.normal(0.0, 1.0, (n_bars, 4)) * (sigma[:, None] / 2.0)
        path = np.cumsum(steps, axis=1)
        path -= path[:, -1:] * (np.arange(1, 5) / 4.0)  # bridge: ends at zero extra move
        lo = np.log(open_)[:, None] + log_ret[:, None] * (np.arange(1, 5) / 4.0) + path
        high = np.maximum(np.exp(lo.max(axis=1)), np.maximum(open_, close))
        low = np.minimum(np.exp(lo.min(axis=1)), np.minimum(open_, close))
        volume = np.exp(rng.normal(8.0 + i * 0.1, 0.4, n_bars)) * (1.0 + 50.0 * np.abs(log_ret))
        out[sym] = pd.DataFrame(
            {"open": open_, "high": high, "low": low, "close": close, "volume": volume},
            index=index,
        ).astype("float64")
    return out

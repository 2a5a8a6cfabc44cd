"""A regime-conditional planted edge: input ``a`` predicts the next bar's return with one sign
in the calm regime and the opposite sign in the middle one (none in the turbulent one). The
regime columns come from the DynamicRegimeModel itself (walk-forward, causal), not from the
truth. With them the GP finds a rule through ``in_regime`` whose holdout Sharpe beats the
best rule found without regime inputs, on the same seeds; costs (fees, slippage and the
perpetual's charge on shorts) apply throughout."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from singularity.config import CostSettings
from singularity.evolution import evolve, expression_metrics
from singularity.regimes.family import regime_feature_frames
from singularity.regimes.settings import RegimeSettings

EDGE = 0.006
SIGMA = (0.003, 0.012, 0.03)  # per-bar noise of the calm, middle and turbulent regimes
SIGN = (1.0, -1.0, 0.0)  # how ``a`` pays in each regime
SETTINGS = RegimeSettings(
    window=800, refit_every=100, min_cluster_size=80, min_samples=5, persistence=3,
    min_strength=0.1, vol_short=24, vol_long=96, trend_window=24, autocorr_window=48,
    volume_window=24, drawdown_window=48, corr_window=48, cluster_features=("log_vol_short",),
)
COSTS = CostSettings(market="perpetual")  # the edge is long and short: a market with shorts


def edge_market(n: int, seed: int) -> tuple[pd.DataFrame, pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    truth = np.empty(n, dtype=np.int64)
    t, k = 0, 0
    while t < n:
        spell = int(rng.integers(150, 400))
        truth[t:t + spell] = k
        t += spell
        k = (k + int(rng.integers(1, 3))) % 3
    a = rng.normal(0, 1, n)
    sigma, sign = np.array(SIGMA)[truth], np.array(SIGN)[truth]
    r = np.zeros(n)
    r[1:] = EDGE * sign[:-1] * np.sign(a[:-1]) + rng.normal(0, 1, n - 1) * sigma[:-1]
    close = 100 * np.exp(np.cumsum(r))
    open_ = np.r_[close[0], close[:-1]]
    idx = pd.date_range("2024-01-01", periods=n, freq="1h", tz="UTC", name="timestamp")
    candles = pd.DataFrame({"open": open_, "high": np.maximum(open_, close) * 1.001,
                            "low": np.minimum(open_, close) * 0.999, "close": close,
                            "volume": np.exp(rng.normal(8, 0.3, n))}, index=idx)
    inputs = pd.DataFrame({"a": a, "noise1": rng.normal(0, 1, n), "noise2": rng.normal(0, 1, n)},
                          index=idx)
    return inputs, candles, truth


@pytest.mark.parametrize("seed", [1, 2])
def test_gp_with_in_regime_beats_the_search_without_regimes(seed: int) -> None:
    inputs, candles, _truth = edge_market(3600, seed)
    frames, _, _ = regime_feature_frames({"X/USDT": candles}, SETTINGS)
    regime = frames["X/USDT"][[f"regime_{k}" for k in range(SETTINGS.max_regimes)]]
    start = SETTINGS.warmup_bars + SETTINGS.window
    with_regimes = pd.concat([inputs, regime], axis=1).iloc[start:]
    plain = inputs.iloc[start:]
    bars = candles.iloc[start:]
    train, hold = slice(0, 1800), slice(1800, None)
    found = {}
    for name, x in (("regimes", with_regimes), ("plain", plain)):
        r = evolve(x.iloc[train], bars.iloc[train], population=2000, generations=20, seed=seed,
                   costs=COSTS)
        best = r.hall_of_fame[0]
        found[name] = (best.expression,
                       expression_metrics(best.expression, x.iloc[hold], bars.iloc[hold],
                                          costs=COSTS))
    expr, hold_regimes = found["regimes"]
    _, hold_plain = found["plain"]
    assert "in_regime" in expr, expr
    assert hold_regimes["sharpe"] > hold_plain["sharpe"] + 1.0, found
    assert hold_regimes["sharpe"] > 1.0 and hold_regimes["total_return"] > 0, found

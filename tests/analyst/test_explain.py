from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from singularity.analyst.explain import explain, regime_masks


def _positions(expr: str, inputs: pd.DataFrame) -> np.ndarray:
    # Toy evaluator for the rule family used here: sign(a - b) or sign(a).
    if expr.startswith("sub("):
        a, b = expr[4:-1].split(", ")
        return np.sign(inputs[a].to_numpy() - inputs[b].to_numpy())
    return np.sign(inputs[expr].to_numpy())


@pytest.fixture()
def data() -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(0)
    n = 3000
    x = rng.normal(size=(n, 3))
    r = rng.normal(0, 0.01, n)
    r[1:] += 0.004 * np.sign(x[:-1, 0])  # 'good' predicts the next bar
    close = 100 * np.exp(np.cumsum(r))
    open_ = np.concatenate([[100.0], close[:-1]])
    idx = pd.date_range("2024-01-01", periods=n, freq="1h", tz="UTC")
    candles = pd.DataFrame({"open": open_, "high": np.maximum(open_, close), "low": np.minimum(open_, close),
                            "close": close, "volume": 1.0}, index=idx)
    return candles, pd.DataFrame(x, index=idx, columns=["good", "noise", "other"])


def test_explanation_names_inputs_and_ranks_them(data) -> None:
    candles, inputs = data
    e = explain("sub(good, mul(noise, 0.0))", inputs=inputs, candles=candles,
                positions=lambda ex, X: _positions("good", X), cost_rate=0.0005, periods_per_year=8760,
                descriptions={"good": "a predictive feature"})
    assert e.simplified == "good"  # noise * 0 folded away... and good - 0 is good
    assert e.readable == "good"
    assert "good (a predictive feature)" in e.text
    # Held at its median the input gives one constant position: the edge is gone.
    assert e.ablation["full"] > 5 and e.ablation["good"] < 2
    assert e.exposure["long"] + e.exposure["short"] + e.exposure["flat"] == pytest.approx(1.0)
    assert set(e.regimes) == {"high volatility", "low volatility", "uptrend", "downtrend"}


def test_ablation_of_two_inputs(data) -> None:
    candles, inputs = data
    e = explain("sub(good, noise)", inputs=inputs, candles=candles, positions=_positions,
                cost_rate=0.0005, periods_per_year=8760)
    # Removing the predictive input hurts more than removing the noise input.
    assert e.ablation["good"] < e.ablation["noise"]
    assert e.text.index("  - good") < e.text.index("  - noise")


def test_regime_masks_are_causal(data) -> None:
    candles, _ = data
    # Masks use trailing windows only, except the median threshold of volatility, which is a
    # property of the period summarised (explanations describe a finished window).
    full = regime_masks(candles)["uptrend"]
    cut = regime_masks(candles.iloc[:2000])["uptrend"]
    np.testing.assert_array_equal(full[:2000], cut)


def test_sharpes_charge_shorts_on_margin_markets(data) -> None:
    """The explanation's Sharpes (full and every ablation) carry the short charge per bar, as
    the GP and the gauntlet do on margin and perpetual markets."""
    from singularity.backtest.kernel import sharpe_from_returns
    from singularity.backtest.runner import net_returns

    candles, inputs = data
    rate = 2e-4
    e = explain("sub(good, noise)", inputs=inputs, candles=candles, positions=_positions,
                cost_rate=0.0005, periods_per_year=8760, short_rate=rate)
    free = explain("sub(good, noise)", inputs=inputs, candles=candles, positions=_positions,
                   cost_rate=0.0005, periods_per_year=8760)

    def sharpe(held: str | None) -> float:
        x = inputs.copy()
        if held:
            x[held] = float(np.nanmedian(inputs[held]))
        r = net_returns(candles, _positions("sub(good, noise)", x), 0.0005, short_rate=rate)
        return round(float(sharpe_from_returns(r, 8760)), 4)

    assert e.ablation == {"full": sharpe(None), "good": sharpe("good"), "noise": sharpe("noise")}
    assert e.ablation["full"] < free.ablation["full"] - 0.5  # short about half the time: it costs

"""The gauntlet's holdout per market regime, the optional 'no losing regime' test, and the
report's regime shading and table."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from singularity.analyst.report import ReportData, regime_shapes, render_report
from singularity.evolution import evaluate_expression
from singularity.validation.gauntlet import GauntletContext, run_gauntlet
from singularity.validation.regimes import regime_ids, regime_performance
from singularity.validation.settings import GauntletSettings


def test_regime_ids_and_performance_exact() -> None:
    x = pd.DataFrame({"a": [1.0, 2, 3, 4, 5], "regime_1": [0.0, 1, 0, 0, 1],
                      "regime_0": [1.0, 0, 0, np.nan, 0]})
    assert regime_ids(x).tolist() == [0, 1, -1, -1, 1]
    assert regime_ids(x[["a"]]) is None
    r = np.array([0.01, 0.02, -0.01, 0.0, -0.01])
    rows = regime_performance(r, regime_ids(x), 8760.0)
    assert [(row["regime"], row["bars"], row["bar_share"], row["pnl"], row["pnl_share"])
            for row in rows] == [(0, 1, 0.2, 0.01, 1.0), (1, 2, 0.4, 0.01, 1.0),
                                 ("unclassified", 2, 0.4, -0.01, -1.0)]


def _market(n: int = 2000, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``a`` predicts the next bar in regime 0 and the opposite in regime 1."""
    rng = np.random.default_rng(seed)
    regime = (np.arange(n) // 100) % 2
    a = rng.normal(size=n)
    sign = np.where(regime == 0, 1.0, -1.0)
    r = rng.normal(0, 0.002, n)
    r[1:] += 0.004 * sign[:-1] * np.sign(a[:-1])
    close = 100 * np.exp(np.cumsum(r))
    open_ = np.r_[100.0, close[:-1]]
    idx = pd.date_range("2024-01-01", periods=n, freq="1h", tz="UTC", name="timestamp")
    candles = pd.DataFrame({"open": open_, "high": np.maximum(open_, close),
                            "low": np.minimum(open_, close), "close": close, "volume": 1.0},
                           index=idx)
    inputs = pd.DataFrame({"a": a, "regime_0": (regime == 0) * 1.0,
                           "regime_1": (regime == 1) * 1.0}, index=idx)
    return candles, inputs


def _context(candles: pd.DataFrame, inputs: pd.DataFrame, **settings) -> GauntletContext:
    split = 1500
    return GauntletContext(
        train_candles=candles.iloc[:split], train_inputs=inputs.iloc[:split],
        holdout_candles=candles.iloc[split:], holdout_inputs=inputs.iloc[split:], timeframe="1h",
        fee_bps=1.0, slippage_bps=0.0, settings=GauntletSettings(**settings),
        positions=evaluate_expression, n_trials=1, trial_sharpe_variance=0.0,
        trial_returns=np.zeros((split, 2)), seed=0)


@pytest.mark.parametrize(("expr", "passes"), [
    ("a", False),  # pays in regime 0, loses in regime 1
    ("if_then_else(in_regime(regime_0), a, neg(a))", True),
])
def test_holdout_per_regime_and_no_losing_regime(expr: str, passes: bool) -> None:
    candles, inputs = _market()
    ctx = _context(candles, inputs)
    report = run_gauntlet(ctx, expr, tests=("holdout", "no_losing_regime"))
    hold, regimes = report.verdicts
    table = hold.figures["per_regime"]
    assert [row["regime"] for row in table] == [0, 1] and sum(r["bars"] for r in table) == 500
    assert table[0]["pnl"] > 0 and (table[1]["pnl"] < 0) is not passes
    assert regimes.passed is passes
    assert regimes.figures["regimes_checked"] == [0, 1]
    assert regimes.figures["losing"] == ([] if passes else [1])
    # a regime below the share threshold is not held to it
    small = run_gauntlet(_context(candles, inputs, regime_min_share=0.6), expr,
                         tests=("no_losing_regime",)).verdicts[0]
    assert small.figures["regimes_checked"] == [] and not small.passed


def test_no_losing_regime_without_regime_inputs_fails_with_a_reason() -> None:
    candles, inputs = _market()
    v = run_gauntlet(_context(candles, inputs[["a"]]), "a", tests=("holdout", "no_losing_regime"))
    assert "per_regime" not in v.verdicts[0].figures
    assert not v.verdicts[1].passed and "enable [features.regimes]" in v.verdicts[1].detail


def test_report_shades_regimes_and_tabulates_them() -> None:
    candles, inputs = _market(400)
    regimes = regime_ids(inputs)
    regimes[350:] = -1  # an unclassified spell stays white
    shapes = regime_shapes(candles.index, regimes)
    assert len(shapes) == 4 and [s["name"] for s in shapes] == ["regime 0", "regime 1"] * 2
    assert shapes[-1]["x1"] == candles.index[349]
    ret = np.full(400, 0.001)
    html = render_report(ReportData(
        title="t", candles=candles, positions=np.ones(400), returns=ret,
        holdout_start=candles.index[300], regimes=regimes))
    assert "Performance per regime" in html and "(regimes shaded)" in html
    assert "<td>unclassified</td><td>50</td><td>0.5</td>" in html  # holdout: 50 of 100 bars
    names = {0: "low volatility, up-trend, momentum", 1: "high volatility, down-trend, random-walk"}
    named = render_report(ReportData(
        title="t", candles=candles, positions=np.ones(400), returns=ret,
        holdout_start=candles.index[300], regimes=regimes, regime_names=names))
    assert "<td>1</td><td>high volatility, down-trend, random-walk</td><td>50</td>" in named
    assert [s["name"] for s in regime_shapes(candles.index, regimes, names)][:2] == [
        "regime 0: low volatility, up-trend, momentum", "regime 1: high volatility, down-trend, random-walk"]
    plain = render_report(ReportData(title="t", candles=candles, positions=np.ones(400),
                                     returns=ret, holdout_start=candles.index[300]))
    assert "Performance per regime" not in plain


def test_no_losing_regime_names_the_regimes_in_words() -> None:
    """The verdict names the worst regime as the explanations and the report do, not "regime k"."""
    from singularity.regimes.classifier import names_of_labels
    from singularity.regimes.settings import RegimeSettings

    candles, inputs = _market()
    v = run_gauntlet(_context(candles, inputs), "a", tests=("no_losing_regime",)).verdicts[0]
    names = names_of_labels(candles.iloc[:1500], regime_ids(inputs.iloc[:1500]), RegimeSettings())
    assert v.figures["names"] == {"0": names[0], "1": names[1]} and names[1].count(",") == 2
    assert f"(worst: 1 ({names[1]}), PnL " in v.detail, v.detail
    assert "regime 1" not in v.detail

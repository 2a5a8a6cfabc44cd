"""Metrics on hand series (arithmetic in the comments) and their always-finite conventions."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from singularity.backtest.metrics import (
    CAGR_CAP,
    METRIC_NAMES,
    PROFIT_FACTOR_CAP,
    compute_metrics,
    drawdown_duration_bars,
)

# 4 bars a "year" so that CAGR = total return and annualising multiplies by sqrt(4) = 2
R = np.array([0.0, 0.1, -0.05, 0.02])
PPY = 4.0


def test_hand_series():
    m = compute_metrics(R, periods_per_year=PPY)
    # equity 1, 1.1, 1.045, 1.0659
    assert m["total_return"] == pytest.approx(0.0659, rel=1e-12)
    assert m["cagr"] == pytest.approx(0.0659, rel=1e-12)
    # mean 0.0175; squared deviations sum 0.011675; sample var 0.011675 / 3
    std = math.sqrt(0.011675 / 3)
    assert m["volatility"] == pytest.approx(std * 2, rel=1e-12)
    assert m["sharpe"] == pytest.approx(0.0175 / std * 2, rel=1e-12)
    # downside deviation sqrt(0.05**2 / 4) = 0.025 -> Sortino 0.0175 / 0.025 * 2 = 1.4
    assert m["sortino"] == pytest.approx(1.4, rel=1e-12)
    # peak 1.1 -> 1.045: 5 %; never regained, so 2 bars (bar 1 to the last bar 3) = 182.5 days
    assert m["max_drawdown"] == pytest.approx(0.05, rel=1e-12)
    assert m["max_drawdown_duration_bars"] == 2
    assert m["max_drawdown_duration_days"] == pytest.approx(182.5)
    assert m["calmar"] == pytest.approx(0.0659 / 0.05, rel=1e-12)
    # without trades: the non-zero bars 0.1, -0.05, 0.02 -> 2/3 winners, PF 0.12 / 0.05
    assert m["win_rate"] == pytest.approx(2 / 3)
    assert m["profit_factor"] == pytest.approx(2.4, rel=1e-12)
    assert m["exposure"] == pytest.approx(0.75)
    assert (m["trade_count"], m["turnover"], m["n_bars"]) == (0, 0.0, 4)
    assert m["skew"] == pytest.approx(stats.skew(R, bias=True), rel=1e-12)
    assert m["kurtosis"] == pytest.approx(stats.kurtosis(R, fisher=True, bias=True), rel=1e-12)
    assert set(m) == set(METRIC_NAMES)


def test_trades_positions_turnover():
    m = compute_metrics(
        R,
        periods_per_year=PPY,
        positions=np.array([0.0, 1.0, -0.5, 0.0]),
        turnover=np.array([0.0, 1.0, 1.5, 0.5]),
        trade_pnl=np.array([1.0, -2.0, 0.5, 3.0]),
    )
    assert m["win_rate"] == 0.75
    assert m["profit_factor"] == pytest.approx(4.5 / 2.0)
    assert m["trade_count"] == 4
    assert m["exposure"] == 0.5
    # 3.0 of equity traded over 4 bars, 4 bars a year
    assert m["turnover"] == pytest.approx(3.0)


def test_profit_factor_conventions():
    def pf(pnl):
        return compute_metrics(R, periods_per_year=PPY, trade_pnl=np.array(pnl))["profit_factor"]

    assert pf([1.0, 2.0]) == PROFIT_FACTOR_CAP  # no loss
    assert pf([-1.0, 0.0]) == 0.0  # no profit
    assert pf([1000.0, -1.0]) == PROFIT_FACTOR_CAP
    assert compute_metrics(R, periods_per_year=PPY, trade_pnl=np.array([]))["win_rate"] == 0.0


def test_degenerate_series_are_finite():
    flat = compute_metrics(np.full(10, 0.01), periods_per_year=8760.0)
    assert (flat["sharpe"], flat["sortino"], flat["skew"], flat["kurtosis"]) == (0, 0, 0, 0)
    assert flat["max_drawdown"] == 0.0 and flat["calmar"] == 0.0
    empty = compute_metrics(np.array([]), periods_per_year=8760.0)
    assert all(v == 0 for v in empty.values()) and isinstance(empty["n_bars"], int)
    ruined = compute_metrics(np.array([0.0, -1.0, 0.0]), periods_per_year=8760.0)
    assert ruined["cagr"] == -1.0 and ruined["max_drawdown"] == 1.0
    rng = np.random.default_rng(0)
    wild = compute_metrics(rng.normal(0, 0.5, 50).clip(-1, None), periods_per_year=525600.0)
    assert all(math.isfinite(v) for v in wild.values())
    # +200 % in 3 hourly bars annualises beyond floats: capped, not an OverflowError
    boom = compute_metrics(np.array([0.0, 1.0, 0.5]), periods_per_year=8760.0)
    assert boom["cagr"] == pytest.approx(CAGR_CAP) and boom["total_return"] == pytest.approx(2.0)
    with_nan = compute_metrics(np.array([0.0, np.nan, 0.1]), periods_per_year=PPY)
    assert with_nan["total_return"] == pytest.approx(0.1)


def test_drawdown_duration():
    # equity 1.1 (peak, bar 0), 0.99, 1.089, 1.1979 (> 1.1 at bar 3): 3 bars underwater
    assert drawdown_duration_bars(np.array([0.1, -0.1, 0.1, 0.1])) == 3
    # a fall from the start without recovery: from the initial equity to the last bar
    assert drawdown_duration_bars(np.array([-0.1, 0.0])) == 2
    assert drawdown_duration_bars(np.array([0.1, 0.1])) == 0

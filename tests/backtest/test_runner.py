"""``singularity.backtest.run``: labelled outputs, trade timestamps, input checks."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from singularity.backtest import TRADE_COLUMNS, BacktestResult, run
from singularity.errors import ConfigError, DataError


def candles(opens, closes, start="2024-01-01", freq="1h") -> pd.DataFrame:
    idx = pd.date_range(start, periods=len(closes), freq=freq, tz="UTC", name="timestamp")
    o, c = np.asarray(opens, float), np.asarray(closes, float)
    return pd.DataFrame(
        {"open": o, "high": np.maximum(o, c), "low": np.minimum(o, c), "close": c, "volume": 1.0},
        index=idx,
    )


C = candles([100, 100, 110, 121, 121], [100, 110, 121, 121, 110])
TARGET = pd.Series([1.0, 1.0, 0.0, 0.0, 0.0], index=C.index)


def test_run_hand_series_with_fees_and_slippage():
    # fee 10 bps + slippage 5 bps: buy at 100.05 with all cash: q = 1/(100.05*1.001);
    # sell at 121*0.9995 = 120.9395, minus 0.1 % fee.
    res = run(C, TARGET, timeframe="1h", fee_bps=10, slippage_bps=5, initial_equity=1000.0)
    assert isinstance(res, BacktestResult)
    q = 1000 / (100.05 * 1.001)
    final = q * 120.9395 * 0.999
    assert res.equity.iloc[-1] == pytest.approx(final, rel=1e-13)
    assert res.equity.iloc[1] == pytest.approx(q * 110, rel=1e-13)
    assert res.returns.index.equals(C.index) and res.returns.iloc[0] == 0.0
    assert res.positions.tolist() == pytest.approx([0, 1, 1, 0, 0])
    assert list(res.trades.columns) == list(TRADE_COLUMNS)
    t = res.trades.iloc[0]
    assert t.entry_time == C.index[1] and t.exit_time == C.index[3]  # open fills: bar open time
    assert (t.side, t.entry_bar, t.exit_bar, bool(t.is_open)) == (1, 1, 3, False)
    assert t.entry_price == pytest.approx(100.05) and t.exit_price == pytest.approx(120.9395)
    assert t.pnl == pytest.approx(final - 1000, rel=1e-12)
    assert t["return"] == pytest.approx((final - 1000) / (q * 100.05), rel=1e-12)
    assert res.fees.sum() == pytest.approx(t.fees, rel=1e-12)
    assert res.metrics["trade_count"] == 1
    assert res.metrics["total_return"] == pytest.approx(final / 1000 - 1, rel=1e-12)
    assert res.metrics["win_rate"] == 1.0


def test_close_fill_trade_times_are_bar_closes():
    res = run(C, TARGET.to_numpy(), timeframe="1h", fee_bps=0, slippage_bps=0, fill="close")
    t = res.trades.iloc[0]
    # filled at close[1] and close[3]: the close time of a 1h bar is its open time + 1h
    assert t.entry_time == C.index[1] + pd.Timedelta("1h")
    assert t.exit_time == C.index[3] + pd.Timedelta("1h")
    assert res.equity.iloc[-1] == pytest.approx(1.1, rel=1e-14)  # 110 -> 121


def test_open_trade_and_funding_series_at_funding_times():
    # 8-hourly funding listed only at its timestamps; other bars pay nothing
    c = candles([100] * 10, [100] * 10)
    funding = pd.Series([0.001], index=[c.index[8]])
    res = run(c, np.ones(10), timeframe="1h", fee_bps=0, slippage_bps=0, funding=funding)
    # long 1 (0.01 coin at 100) pays 0.001 * 1 at bar 8
    assert res.equity.iloc[7] == pytest.approx(1.0) and res.equity.iloc[8] == pytest.approx(0.999)
    t = res.trades.iloc[0]
    assert bool(t.is_open) and t.exit_time == c.index[-1] + pd.Timedelta("1h")
    assert t.funding == pytest.approx(0.001) and t.pnl == pytest.approx(-0.001)


def test_nan_positions_are_flat():
    res = run(C, [np.nan] * 5, timeframe="1h", fee_bps=10, slippage_bps=5)
    assert res.equity.tolist() == [1.0] * 5 and res.trades.empty
    assert res.metrics["sharpe"] == 0.0


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"positions": [1.0] * 4}, DataError, "length 4 but there are 5 candles"),
        ({"positions": [0.0, 1.5, 0, 0, 0]}, DataError, r"\[-1, 1\].*1.5"),
        ({"positions": pd.Series([1.0] * 5)}, DataError, "do not match the 5 candle timestamps"),
        ({"timeframe": "1 hour"}, ConfigError, "unknown timeframe"),
        ({"fee_bps": -1}, ConfigError, "fee_bps must be"),
        ({"fill": "mid"}, ConfigError, "fill must be 'open' or 'close'"),
        ({"initial_equity": 0}, ConfigError, "initial_equity"),
        (
            {"funding": pd.Series([0.1], index=[pd.Timestamp("2030-01-01", tz="UTC")])},
            DataError,
            "not among",
        ),
    ],
)
def test_input_checks(kwargs, error, match):
    args = {"positions": TARGET, "timeframe": "1h", "fee_bps": 10, "slippage_bps": 5} | kwargs
    with pytest.raises(error, match=match):
        run(C, args.pop("positions"), **args)


def test_non_canonical_candles_rejected():
    with pytest.raises(DataError, match="UTC DatetimeIndex"):
        run(C.reset_index(drop=True), TARGET.to_numpy(), timeframe="1h", fee_bps=0, slippage_bps=0)
    with pytest.raises(DataError, match="strictly increasing"):
        run(C.iloc[::-1], TARGET.to_numpy(), timeframe="1h", fee_bps=0, slippage_bps=0)
    with pytest.raises(DataError, match="lack column"):
        run(C.drop(columns="open"), TARGET, timeframe="1h", fee_bps=0, slippage_bps=0)
    bad = C.copy()
    bad.iloc[2, 3] = np.nan
    with pytest.raises(
        DataError, match="non-finite or non-positive open/close at 2024-01-01 02:00"
    ):
        run(bad, TARGET, timeframe="1h", fee_bps=0, slippage_bps=0)


def test_docstring_example_runs():
    import doctest

    from singularity.backtest import runner

    assert doctest.testmod(runner).failed == 0

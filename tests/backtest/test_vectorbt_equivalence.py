"""Our kernel against vectorbt (test-only dependency) on random positions over real BTC candles.

vectorbt is configured to the same accounting: ``from_orders`` with ``size_type='targetpercent'``,
an order only on the bars where the (shifted) target changes, priced and valued at the fill
price, ``fees`` = fee rate, ``slippage`` = slippage rate, ``direction='both'``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from singularity.backtest import bar_returns, count_trades, run

pytestmark = pytest.mark.realdata

vbt = pytest.importorskip("vectorbt")


def random_targets(n: int, seed: int) -> np.ndarray:
    """Levels held for random stretches: longs, shorts, partial sizes, flats and NaN."""
    rng = np.random.default_rng(seed)
    levels = rng.choice([-1.0, -0.6, -0.25, 0.0, 0.3, 0.75, 1.0, np.nan], n)
    return np.repeat(levels, rng.integers(1, 50, n))[:n]


def vectorbt_portfolio(
    candles: pd.DataFrame, target: np.ndarray, fill: str, fee: float, slip: float
):
    wanted = np.concatenate([[0.0], np.nan_to_num(target[:-1])])  # decided at t-1, filled at t
    before = np.concatenate([[0.0], wanted[:-1]])
    size = np.where(wanted != before, wanted, np.nan)  # no order while the target is unchanged
    price = candles[fill]
    return vbt.Portfolio.from_orders(
        close=candles["close"],
        size=size,
        size_type="targetpercent",
        price=price,
        val_price=price,
        fees=fee,
        slippage=slip,
        direction="both",
        init_cash=1.0,
        freq="1h",
    )


@pytest.mark.parametrize(("fill", "seed"), [("open", 1), ("close", 2)])
def test_same_equity_and_trades_as_vectorbt(load_feather, fill, seed):
    candles = load_feather("BTC", "1h", tail=3000)
    target = random_targets(len(candles), seed)
    res = run(candles, target, timeframe="1h", fee_bps=10, slippage_bps=5, fill=fill)
    pf = vectorbt_portfolio(candles, target, fill, 0.001, 0.0005)

    ours = res.equity.to_numpy()
    theirs = pf.value().to_numpy()
    assert np.max(np.abs(ours / theirs - 1)) < 1e-9
    positions = pf.positions.records_readable
    assert len(res.trades) == len(positions) == count_trades(target) > 30
    assert np.allclose(res.trades["pnl"], positions["PnL"], rtol=1e-9, atol=1e-12)
    records = pf.positions.records
    assert res.trades["entry_bar"].tolist() == records["entry_idx"].tolist()
    assert res.trades["exit_bar"].tolist() == records["exit_idx"].tolist()
    # metrics agree with vectorbt's own (365-day year: vectorbt's default year_freq)
    assert res.metrics["sharpe"] == pytest.approx(pf.sharpe_ratio(), rel=1e-9)
    assert res.metrics["max_drawdown"] == pytest.approx(-pf.max_drawdown(), rel=1e-9)


def test_bar_returns_on_real_candles_equals_full_kernel(load_feather):
    candles = load_feather("BTC", "1h", tail=3000)
    target = random_targets(len(candles), 3)
    o, c = candles["open"].to_numpy(), candles["close"].to_numpy()
    for fill in ("open", "close"):
        full = run(candles, target, timeframe="1h", fee_bps=15, slippage_bps=0, fill=fill)
        lean = bar_returns(o, c, target, 0.0015, fill == "open")
        assert np.array_equal(lean, full.returns.to_numpy())

"""The numba kernels on tiny hand-computed series: every expected value is written out."""

from __future__ import annotations

import numpy as np
import pytest

from singularity.backtest.kernel import (
    bar_returns,
    count_trades,
    max_drawdown_from_returns,
    sharpe_from_returns,
    simulate,
)

NO_FUNDING = np.empty(0)
# prices rise 100 -> 110 -> 121 then fall back to 110
OPEN = np.array([100.0, 100.0, 110.0, 121.0, 121.0])
CLOSE = np.array([100.0, 110.0, 121.0, 121.0, 110.0])
LONG_THEN_FLAT = np.array([1.0, 1.0, 0.0, 0.0, 0.0])


def sim(open_, close, target, fee=0.0, slip=0.0, on_open=True, funding=NO_FUNDING, eq0=1.0):
    out = simulate(
        np.asarray(open_, float),
        np.asarray(close, float),
        np.asarray(target, float),
        fee,
        slip,
        on_open,
        np.asarray(funding, float),
        eq0,
    )
    ret, equity, held, turnover, fees, ti, tf, n = out
    return ret, equity, held, turnover, fees, ti[:n], tf[:n]


def test_open_fill_with_fee_exact():
    # fee 10 bps. Bar 1: buy at open 100 with all cash: 1 = q*100*1.001 -> q = 1/100.1,
    # fee = 1 - 1/1.001; close 110 -> equity 1.1/1.001. Bar 2: 1.21/1.001 (+10 %).
    # Bar 3: sell q at open 121: proceeds 1.21/1.001, fee 0.1 % of it -> 1.21*0.999/1.001.
    ret, equity, held, turnover, fees, ti, tf = sim(OPEN, CLOSE, LONG_THEN_FLAT, fee=0.001)
    assert equity == pytest.approx(
        [1.0, 1.1 / 1.001, 1.21 / 1.001, 1.21 * 0.999 / 1.001, 1.21 * 0.999 / 1.001], rel=1e-14
    )
    assert ret == pytest.approx([0.0, 1.1 / 1.001 - 1, 0.1, -0.001, 0.0], rel=1e-12, abs=1e-15)
    # all cash went into the coin, so the held weight at each close is exactly 1
    assert held == pytest.approx([0.0, 1.0, 1.0, 0.0, 0.0])
    assert fees == pytest.approx([0.0, 1 - 1 / 1.001, 0.0, 0.001 * 1.21 / 1.001, 0.0], rel=1e-12)
    # traded notional / equity: (1/1.001)/1 on the buy, all of it on the sell
    assert turnover == pytest.approx([0.0, 1 / 1.001, 0.0, 1.0, 0.0], rel=1e-12)
    assert ti.tolist() == [[1, 3, 1, 0]]  # entry bar, exit bar, long, closed
    size, entry, exit_, pnl, fee_paid, funding = tf[0]
    assert size == pytest.approx(1 / 100.1, rel=1e-14)
    assert (entry, exit_, funding) == (100.0, 121.0, 0.0)
    assert pnl == pytest.approx(1.21 * 0.999 / 1.001 - 1, rel=1e-12)
    assert fee_paid == pytest.approx((1 - 1 / 1.001) + 0.001 * 1.21 / 1.001, rel=1e-12)


def test_close_fill_misses_the_first_move():
    # Fills at close: the target of bar 0 buys at close[1] = 110 (q = 1/(110*1.001)), so the
    # 100 -> 110 move is not earned: bar 1 return is the fee only; bar 2: 121/110 = +10 %;
    # bar 3 sells at close 121: equity 1.1*0.999/1.001.
    ret, equity, _held, _, _, ti, tf = sim(OPEN, CLOSE, LONG_THEN_FLAT, fee=0.001, on_open=False)
    assert equity == pytest.approx(
        [1.0, 1 / 1.001, 1.1 / 1.001, 1.1 * 0.999 / 1.001, 1.1 * 0.999 / 1.001], rel=1e-14
    )
    assert ret[2] == pytest.approx(0.1, rel=1e-12)
    assert ti.tolist() == [[1, 3, 1, 0]]
    assert (tf[0, 1], tf[0, 2]) == (110.0, 121.0)


def test_slippage_moves_fill_prices():
    # slippage 1 %, no fee: buy at 100*1.01 = 101 with all cash -> q = 1/101;
    # sell at 121*0.99 = 119.79 -> equity 119.79/101.
    _ret, equity, _, _, fees, _ti, tf = sim(OPEN, CLOSE, LONG_THEN_FLAT, slip=0.01)
    assert equity[1] == pytest.approx(110 / 101, rel=1e-14)
    assert equity[-1] == pytest.approx(119.79 / 101, rel=1e-14)
    assert fees.sum() == 0.0
    assert tf[0, 1] == pytest.approx(101.0) and tf[0, 2] == pytest.approx(119.79)


def test_costs_always_apply():
    free = sim(OPEN, CLOSE, LONG_THEN_FLAT)[1][-1]
    assert free == pytest.approx(1.21, rel=1e-14)
    assert sim(OPEN, CLOSE, LONG_THEN_FLAT, fee=0.0001)[1][-1] < free
    assert sim(OPEN, CLOSE, LONG_THEN_FLAT, slip=0.0001)[1][-1] < free


def test_short_gains_when_price_falls_and_trade_is_marked_open():
    # short 1 at open 100: sell 0.01 coin -> cash 2, shares -0.01.
    # close 90: equity 2 - 0.9 = 1.1; close 99: 2 - 0.99 = 1.01.
    ret, equity, held, _, _, ti, tf = sim([100, 100, 95], [100, 90, 99], [-1, -1, -1])
    assert equity == pytest.approx([1.0, 1.1, 1.01], rel=1e-14)
    assert ret[2] == pytest.approx(1.01 / 1.1 - 1, rel=1e-12)
    assert held == pytest.approx([0.0, -0.9 / 1.1, -0.99 / 1.01], rel=1e-12)
    assert ti.tolist() == [[1, 2, -1, 1]]  # still open at the end, marked at the last close
    assert tf[0, 2] == 99.0 and tf[0, 3] == pytest.approx(0.01, rel=1e-12)


def test_flip_long_to_short_splits_fee_between_trades():
    # flat prices at 100, fee 10 bps. V = 1/1.001 after the buy.
    # Bar 2 flips to -1: sells 2V/100 coin, proceeds 2V, fee 0.002V -> cash 1.998V,
    # equity 1.998V - V = 0.998V. Bar 3 buys back V/100: cost 1.001V -> equity 0.997V.
    v = 1 / 1.001
    _ret, equity, _, turnover, _, ti, tf = sim([100] * 5, [100] * 5, [1, -1, 0, 0, 0], fee=0.001)
    assert equity == pytest.approx([1, v, 0.998 * v, 0.997 * v, 0.997 * v], rel=1e-13)
    assert turnover[2] == pytest.approx(2.0, rel=1e-12)
    assert ti.tolist() == [[1, 2, 1, 0], [2, 3, -1, 0]]
    # long: paid all the cash (1), got back V less half of the flip fee (0.001V)
    assert tf[0, 3] == pytest.approx(0.999 * v - 1, rel=1e-12)
    assert tf[1, 3] == pytest.approx(-0.002 * v, rel=1e-12)
    assert tf[:, 3].sum() == pytest.approx(equity[-1] - 1, rel=1e-12)


def test_resizing_stays_in_one_trade():
    # 0.5 then 1.0 then flat at flat prices, no costs: one trade, size 0.005 + 0.005 coin
    _, equity, _, _, _, ti, tf = sim([100] * 4, [100] * 4, [0.5, 1.0, 0.0, 0.0])
    assert ti.tolist() == [[1, 3, 1, 0]]
    assert tf[0, 0] == pytest.approx(0.01, rel=1e-14)
    assert equity == pytest.approx([1, 1, 1, 1])


def test_unchanged_target_sends_no_order_and_weight_drifts():
    # long 0.5: 0.005 coin + 0.5 cash. Close 200 -> equity 1.5, weight 1/1.5; no rebalance.
    _, equity, held, turnover, _, _, _ = sim([100, 100, 200], [100, 200, 200], [0.5, 0.5, 0.5])
    assert equity == pytest.approx([1.0, 1.5, 1.5])
    assert held[1:] == pytest.approx([1 / 1.5, 1 / 1.5])
    assert turnover.tolist() == [0.0, 0.5, 0.0]


def test_funding_long_pays_short_receives():
    # long 1 at 100 (0.01 coin, no cash left); funding 1 % at bar 1 costs 0.01*100*0.01 = 0.01,
    # funding -2 % at bar 2 pays the long 0.02.
    _, equity, _, _, _, _, tf = sim([100] * 3, [100] * 3, [1, 1, 1], funding=[0.0, 0.01, -0.02])
    assert equity == pytest.approx([1.0, 0.99, 1.01], rel=1e-14)
    assert tf[0, 5] == pytest.approx(-0.01, abs=1e-15)  # net funding paid: 0.01 - 0.02
    # a short receives a positive rate
    _, equity, _, _, _, _, _ = sim([100] * 3, [100] * 3, [-1, -1, -1], funding=[0.0, 0.01, 0.0])
    assert equity == pytest.approx([1.0, 1.01, 1.01], rel=1e-14)
    # close fills: bar 1's funding falls before the fill (nothing held yet)
    _, equity, _, _, _, _, _ = sim(
        [100] * 3, [100] * 3, [1, 1, 1], on_open=False, funding=[0.0, 0.01, -0.02]
    )
    assert equity == pytest.approx([1.0, 1.0, 1.02], rel=1e-14)


def test_initial_equity_scales_money_not_returns():
    a = sim(OPEN, CLOSE, LONG_THEN_FLAT, fee=0.001)
    b = sim(OPEN, CLOSE, LONG_THEN_FLAT, fee=0.001, eq0=1000.0)
    assert b[0] == pytest.approx(a[0], rel=1e-12, abs=1e-15)
    assert b[1] == pytest.approx(1000 * a[1], rel=1e-12)
    assert b[6][0, 3] == pytest.approx(1000 * a[6][0, 3], rel=1e-12)


def test_ruin_stops_the_account():
    # short 1 at 100, price triples: equity 2 - 3 < 0 -> return -1, flat afterwards
    ret, equity, _, _, _, ti, _ = sim([100, 100, 300, 300], [100, 300, 300, 100], [-1, -1, -1, -1])
    assert ret.tolist() == [0.0, -1.0, 0.0, 0.0]
    assert equity.tolist() == [1.0, 0.0, 0.0, 0.0]
    assert ti.tolist() == [[1, 1, -1, 0]]


def test_bar_returns_matches_hand_values_and_simulate():
    # contract: cost_rate folds fee + slippage into one charge on traded notional
    r = bar_returns(OPEN, CLOSE, LONG_THEN_FLAT, 0.001, True)
    assert r == pytest.approx([0.0, 1.1 / 1.001 - 1, 0.1, -0.001, 0.0], rel=1e-12, abs=1e-15)
    rng = np.random.default_rng(7)
    n = 2000
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    open_ = np.concatenate([[100.0], close[:-1]]) * np.exp(rng.normal(0, 0.002, n))
    # held levels with NaN (flat) and out-of-range values, 10 bars each
    levels = np.round(rng.uniform(-1.3, 1.3, n // 10), 1)
    levels[rng.random(n // 10) < 0.2] = np.nan
    target = np.repeat(levels, 10)
    for on_open in (True, False):
        full = simulate(open_, close, target, 0.0015, 0.0, on_open, NO_FUNDING, 1.0)[0]
        lean = bar_returns(open_, close, target, 0.0015, on_open)
        assert np.array_equal(lean, full)
        assert lean[0] == 0.0 and lean.shape == close.shape


def test_bar_returns_cleans_targets():
    # NaN -> flat, values beyond +-1 clipped
    dirty = np.array([np.nan, 2.0, 1.0, -7.0, np.nan])
    clean = np.array([0.0, 1.0, 1.0, -1.0, 0.0])
    assert np.array_equal(
        bar_returns(OPEN, CLOSE, dirty, 0.002, True), bar_returns(OPEN, CLOSE, clean, 0.002, True)
    )


def test_count_trades():
    # entries at 1 (0 -> 1), 3 (flip), 5 (0 -> 0.5); the last target is never filled
    assert count_trades(np.array([0, 1, 1, -1, 0, 0.5, np.nan, 1.0])) == 3
    assert count_trades(np.array([1.0])) == 0
    rng = np.random.default_rng(3)
    # NaN (flat) runs broken by random levels: flat, resizes, flips
    levels = rng.choice([-1.0, -0.5, 0.0, 0.5, 1.0, np.nan], 100)
    target = np.repeat(levels, 5)
    prices = 100 + np.cumsum(rng.normal(0, 0.5, 500))
    n_sim = simulate(prices, prices, target, 0.001, 0.0, True, NO_FUNDING, 1.0)[7]
    assert count_trades(target) == n_sim > 10


def test_sharpe_and_drawdown_helpers():
    # mean 0.005, sample var (25+225+225+25)e-6/3 -> Sharpe = sqrt(0.15) * sqrt(4) = sqrt(0.6)
    r = np.array([0.01, -0.01, 0.02, 0.0])
    assert sharpe_from_returns(r, 4.0) == pytest.approx(np.sqrt(0.6), rel=1e-12)
    assert sharpe_from_returns(np.full(10, 0.01), 8760.0) == 0.0  # zero volatility
    assert sharpe_from_returns(np.array([0.5]), 8760.0) == 0.0
    # equity 1.1, 0.55, 0.66, 0.99: peak 1.1 -> trough 0.55 = 50 %
    assert max_drawdown_from_returns(np.array([0.1, -0.5, 0.2, 0.5])) == pytest.approx(0.5)
    assert max_drawdown_from_returns(np.array([0.1, 0.2])) == 0.0
    assert max_drawdown_from_returns(np.array([-1.0, 0.0])) == 1.0


@pytest.mark.parametrize("on_open", [True, False])
def test_books_balance_on_random_paths(on_open):
    # every unit of money is accounted for: trade pnls (fees and funding included) add up to
    # the equity change, returns compound to the equity, fees per bar add up to trade fees
    rng = np.random.default_rng(11)
    n = 3000
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    open_ = np.concatenate([[100.0], close[:-1]]) * np.exp(rng.normal(0, 0.003, n))
    target = np.repeat(rng.choice([-1.0, -0.4, 0.0, 0.5, 1.0, np.nan], n // 20), 20)
    funding = np.where(np.arange(n) % 8 == 0, rng.normal(0.0001, 0.0003, n), 0.0)
    ret, equity, held, _, fees, ti, tf = sim(
        open_, close, target, 0.001, 0.0005, on_open, funding, 50.0
    )
    assert tf[:, 3].sum() == pytest.approx(equity[-1] - 50.0, rel=1e-9)
    assert np.cumprod(1 + ret) * 50.0 == pytest.approx(equity, rel=1e-9)
    assert fees.sum() == pytest.approx(tf[:, 4].sum(), rel=1e-9)
    assert (tf[:, 5] != 0).any()
    assert len(ti) == count_trades(target) > 20
    # at the close of bar t the account holds what target[t-1] asked for: nothing when flat
    flat_after = np.concatenate([[0.0], np.nan_to_num(target[:-1])]) == 0.0
    assert np.all(held[flat_after] == 0.0) and np.all(held[~flat_after] != 0.0)


def test_kernels_release_the_gil_and_cache():
    # other modules call these from threads and fuse them into their own njit code
    for fn in (bar_returns, simulate, sharpe_from_returns, max_drawdown_from_returns, count_trades):
        assert fn.targetoptions.get("nogil") is True
        assert fn._cache is not None and type(fn._cache).__name__ == "FunctionCache"


def test_a_flip_every_bar_fits_the_trade_arrays():
    # the trade list is sized by the number of target changes: the worst case is a flip on
    # every bar, n - 1 filled entries (the last target is never filled)
    n = 200
    prices = 100 + np.sin(np.arange(n))
    target = np.where(np.arange(n) % 2 == 0, 1.0, -1.0)
    _, equity, _, _, _, ti, tf = sim(prices, prices, target, fee=0.001)
    assert len(ti) == n - 1 == count_trades(target)
    assert ti[:-1, 3].sum() == 0 and ti[-1, 3] == 1  # all closed but the last
    assert tf[:, 3].sum() == pytest.approx(equity[-1] - 1.0, rel=1e-9)


@pytest.mark.parametrize("on_open", [True, False])
def test_short_charge_matches_simulate_funding(on_open: bool) -> None:
    from singularity.backtest import short_financing

    rng = np.random.default_rng(3)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, 400)))
    open_ = np.r_[100.0, close[:-1]]
    target = rng.choice([-1.0, 0.0, 1.0], 400)
    lean = bar_returns(open_, close, target, 0.0015, on_open, 2e-4)
    full = simulate(open_, close, target, 0.0015, 0.0, on_open, short_financing(target, 2e-4, fill_on_open=on_open), 1.0)[0]
    np.testing.assert_allclose(lean, full, rtol=0, atol=1e-15)
    free = bar_returns(open_, close, target, 0.0015, on_open)
    assert np.prod(1 + lean) < np.prod(1 + free)
    longs = np.abs(target)
    np.testing.assert_array_equal(bar_returns(open_, close, longs, 0.0015, on_open, 2e-4),
                                  bar_returns(open_, close, longs, 0.0015, on_open))

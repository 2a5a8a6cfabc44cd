"""A replay through the whole engine (store feed, strategy worker, risk, replay venue, ledger)
equals ``backtest.run`` on the same candles and the research path's target positions. The
market is spot (the default), so the engine trades the rule long-only, as the forge judged it."""

from __future__ import annotations

import numpy as np
import pandas as pd
from engine_home import EXPRESSION, SYMBOL, make_home

from singularity.backtest import runner
from singularity.backtest.kernel import short_financing
from singularity.engine.assemble import RunOptions, build_replay, run_engine
from singularity.engine.ledger import Ledger, ledger_url
from singularity.engine.report import trades_from_fills
from singularity.evolution.expressions import evaluate_expression
from singularity.features.factory import FeatureFactory


def _reference(home, start):
    """What the research half computes: features over the whole history, the rule's target
    positions, and the backtest of the replayed window."""
    s = home.settings
    fs = FeatureFactory(s.features).build({SYMBOL: home.candles}, progress=False)
    inputs = fs.frames[SYMBOL][fs.feature_names]
    target = evaluate_expression(EXPRESSION, inputs, long_only=True)
    assert (evaluate_expression(EXPRESSION, inputs) < 0).any()  # unconstrained, the rule goes short
    window = home.candles.loc[home.candles.index >= start]
    res = runner.run(window, target.loc[window.index].to_numpy(), timeframe="1h",
                     fee_bps=s.costs.fee_bps, slippage_bps=s.costs.slippage_bps,
                     initial_equity=s.engine.capital)
    return target.loc[window.index], res


def test_replay_equals_backtest_run(btc_home):
    start = btc_home.candles.index[400]
    opts = RunOptions(mode="replay", symbols=(SYMBOL,), timeframe="1h", start=start)
    stats = run_engine(build_replay(btc_home.settings, opts))
    assert stats["candles"] == 2000
    target, res = _reference(btc_home, start)

    led = Ledger(ledger_url(btc_home.settings, "replay"))
    decisions = led.events(kinds=["decision"])
    assert len(decisions) == 2000
    assert [d.payload["candle"] for d in decisions] == [t.isoformat() for t in res.equity.index]
    # the same target positions the research path computes on the full history
    np.testing.assert_array_equal([d.payload["target"] for d in decisions], target.to_numpy())
    assert min(d.payload["target"] for d in decisions) == 0.0  # spot: never short
    # equity at every close within 1e-9 (relative to the 10,000 starting cash)
    equity = np.array([d.payload["equity"] for d in decisions])
    np.testing.assert_allclose(equity / 1e4, res.equity.to_numpy() / 1e4, rtol=0, atol=1e-9)
    # identical trades: the same bars, sides, sizes and prices
    fills = led.events(kinds=["fill"])
    assert len(fills) == int((res.fees > 0).sum()) > 20
    trades = trades_from_fills([f.as_dict() for f in fills], last_close=float(res.equity.index.size and
                               btc_home.candles["close"].iloc[-1]))
    ref = res.trades
    assert len(trades) == len(ref)
    assert list(trades["side"]) == list(ref["side"])
    assert list(trades["entry_time"]) == list(ref["entry_time"])
    assert list(trades["exit_time"].iloc[:-1]) == list(ref["exit_time"].iloc[:-1])
    for col in ("size", "entry_price", "exit_price", "pnl", "fees"):
        np.testing.assert_allclose(trades[col].to_numpy(), ref[col].to_numpy(), rtol=1e-9, atol=1e-9)
    # projections agree with the events, and the final account with the backtest's last equity
    book = led.verify()[SYMBOL]
    assert abs(book.equity() - res.equity.iloc[-1]) < 1e-9 * 1e4
    assert book.last_candle == res.equity.index[-1].isoformat()
    assert isinstance(pd.Timestamp(book.last_candle), pd.Timestamp)


def test_replay_on_a_margin_market_pays_short_financing_as_backtest_run(tmp_path, load_feather):
    """On a margin market the rule goes short and every bar held short pays
    ``costs.short_rate_bps_per_day``: the replay charges it as the kernel does."""
    candles = load_feather("BTC", "1h", tail=1000)
    home = make_home(tmp_path, candles, costs='market = "margin"\nshort_rate_bps_per_day = 30.0\n')
    s = home.settings
    rate = s.costs.short_rate_per_bar("1h")
    assert rate == 30.0 / 1e4 / 24
    start = candles.index[400]
    run_engine(build_replay(s, RunOptions(mode="replay", symbols=(SYMBOL,), timeframe="1h", start=start)))

    fs = FeatureFactory(s.features).build({SYMBOL: candles}, progress=False)
    window = candles.loc[candles.index >= start]
    target = evaluate_expression(EXPRESSION, fs.frames[SYMBOL][fs.feature_names]).loc[window.index].to_numpy()
    res = runner.run(window, target, timeframe="1h", fee_bps=s.costs.fee_bps, slippage_bps=s.costs.slippage_bps,
                     initial_equity=s.engine.capital, funding=short_financing(target, rate))
    free = runner.run(window, target, timeframe="1h", fee_bps=s.costs.fee_bps, slippage_bps=s.costs.slippage_bps,
                      initial_equity=s.engine.capital)

    led = Ledger(ledger_url(s, "replay"))
    decisions = led.events(kinds=["decision"])
    np.testing.assert_array_equal([d.payload["target"] for d in decisions], target)
    short_bars = int((target[:-1] < 0).sum())
    assert short_bars > 100  # the rule holds shorts for much of the window
    charges = [e for e in led.events(kinds=["balance"]) if e.payload.get("reason") == "short financing"]
    assert len(charges) == short_bars
    equity = np.array([d.payload["equity"] for d in decisions])
    np.testing.assert_allclose(equity / 1e4, res.equity.to_numpy() / 1e4, rtol=0, atol=1e-9)
    # the charge matters: without it the equity would differ by far more than the tolerance
    assert abs(free.equity.iloc[-1] - res.equity.iloc[-1]) > 10.0
    fills = led.events(kinds=["fill"])
    assert len(fills) == int((res.fees > 0).sum())
    np.testing.assert_allclose([f.payload["fee"] for f in fills], res.fees[res.fees > 0].to_numpy(), rtol=1e-12)
    book = led.verify()[SYMBOL]
    assert abs(book.equity() - res.equity.iloc[-1]) < 1e-9 * 1e4

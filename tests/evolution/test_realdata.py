"""GP on real Binance candles: a short run trains on the first part only and its champion
re-runs on the later bars it never saw (figures finite, positions in {-1, 0, 1})."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from singularity.evolution import evaluate_expression, evolve, expression_metrics


def _inputs(candles: pd.DataFrame) -> pd.DataFrame:
    """A few causal inputs from the candles alone (values at t use bars <= t)."""
    logret = np.log(candles["close"]).diff()
    return pd.DataFrame(
        {
            "logret_1": logret,
            "logret_24": np.log(candles["close"]).diff(24),
            "rvol_24": logret.rolling(24).std(),
            "range_pct": (candles["high"] - candles["low"]) / candles["close"],
            "volume_z": (candles["volume"] - candles["volume"].rolling(48).mean())
            / candles["volume"].rolling(48).std(),
        },
        index=candles.index,
    )


@pytest.mark.realdata
def test_btc_run_and_its_champion_on_unseen_bars(load_feather) -> None:
    candles = load_feather("BTC", "1h", tail=3000)
    inputs = _inputs(candles)
    train = slice(0, 2000)
    r = evolve(inputs.iloc[train], candles.iloc[train], population=60, generations=2, seed=0)
    assert r.hall_of_fame and all(np.isfinite(h.fitness) for h in r.hall_of_fame)
    best = r.hall_of_fame[0]
    later = slice(2000, 3000)
    m = expression_metrics(best.expression, inputs.iloc[later], candles.iloc[later])
    assert all(np.isfinite(v) for v in (m["fitness"], m["sharpe"], m["max_drawdown"]))
    pos = evaluate_expression(best.expression, inputs.iloc[later])
    assert set(np.unique(pos)) <= {-1.0, 0.0, 1.0}
    # causal: positions computed on a prefix equal the full-data positions on that prefix
    head = evaluate_expression(best.expression, inputs.iloc[2000:2500])
    assert head.equals(pos.iloc[:500])

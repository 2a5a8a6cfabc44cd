"""The gauntlet's trial matrices evaluate hundreds of expressions: ``Positions.many`` does a
batch in one evaluator call and must give each expression's positions exactly as alone."""

from __future__ import annotations

import numpy as np
import pandas as pd

from singularity.forge.champion import Positions, training_returns

EXPRESSIONS = [
    "div(ema(a, w50), lag(sign(ts_zscore(b, w50)), l1))",
    "sub(ema(a, w50), b)",  # shares ema(a, w50) with the first
    "sign(ts_zscore(b, w50))",  # a subtree of the first
    "mul(a, c)",
    "sub(c, c)",  # never trades
]


def test_a_batch_gives_each_expression_its_own_positions() -> None:
    rng = np.random.default_rng(0)
    idx = pd.date_range("2024-01-01", periods=400, freq="1h", tz="UTC")
    inputs = pd.DataFrame(rng.normal(size=(400, 3)), index=idx, columns=["a", "b", "c"])
    inputs.iloc[:30, 1] = np.nan  # a warm-up
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, 400)))
    candles = pd.DataFrame({"open": np.r_[100.0, close[:-1]], "close": close}, index=idx)
    for long_only in (False, True):
        pos = Positions(long_only)
        alone = [pos(e, inputs) for e in EXPRESSIONS]
        assert all(np.array_equal(a, b, equal_nan=True) for a, b in zip(pos.many(EXPRESSIONS, inputs), alone, strict=True))
        one_by_one = np.column_stack([training_returns([e], pos, candles, inputs, 0.001, 0.0) for e in EXPRESSIONS])
        assert np.array_equal(training_returns(EXPRESSIONS, pos, candles, inputs, 0.001, 0.0), one_by_one, equal_nan=True)
    assert (alone[0] != 0).any() and (alone[4] == 0).all()

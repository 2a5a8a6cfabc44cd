"""The analyst explains a regime-conditional rule regime by regime."""

from __future__ import annotations

import numpy as np
import pandas as pd

from singularity.analyst.explain import explain
from singularity.backtest.kernel import sharpe_from_returns
from singularity.backtest.runner import net_returns
from singularity.evolution import evaluate_expression


def test_rule_with_in_regime_is_explained_per_regime() -> None:
    rng = np.random.default_rng(1)
    n = 1200
    regime = (np.arange(n) // 100) % 3  # 0, 1, then 2 = no regime column set (unclassified)
    a = rng.normal(size=n)
    sign = np.where(regime == 1, 1.0, -1.0)
    r = rng.normal(0, 0.004, n)
    r[1:] += 0.004 * sign[:-1] * np.sign(a[:-1])
    close = 100 * np.exp(np.cumsum(r))
    open_ = np.r_[100.0, close[:-1]]
    idx = pd.date_range("2024-01-01", periods=n, freq="1h", tz="UTC", name="timestamp")
    candles = pd.DataFrame({"open": open_, "high": np.maximum(open_, close),
                            "low": np.minimum(open_, close), "close": close, "volume": 1.0},
                           index=idx)
    inputs = pd.DataFrame({"a": a, "regime_0": (regime == 0) * 1.0, "regime_1": (regime == 1) * 1.0},
                          index=idx)
    expr = "if_then_else(in_regime(regime_1), a, neg(a))"
    e = explain(expr, inputs=inputs, candles=candles, positions=evaluate_expression,
                cost_rate=0.0015, periods_per_year=8760, regime_names={1: "calm, up-trend"})
    assert list(e.by_regime) == ["0", "1", "unclassified"]
    assert [e.by_regime[k]["rule"] for k in e.by_regime] == ["-a", "a", "-a"]
    assert [e.by_regime[k]["bars"] for k in e.by_regime] == [400, 400, 400]
    target = evaluate_expression(expr, inputs)
    net = net_returns(candles, np.asarray(target, dtype=np.float64), 0.0015)
    want = float(sharpe_from_returns(np.ascontiguousarray(net[regime == 1]), 8760.0))
    assert e.by_regime["1"]["sharpe"] == round(want, 4) and want > 3
    assert e.by_regime["1"]["name"] == "calm, up-trend" and e.by_regime["0"]["name"] == "regime 0"
    assert "  - 1 (calm, up-trend): a; Sharpe" in e.text
    assert "  - unclassified: -a; Sharpe" in e.text
    # a rule without in_regime gets no regime-by-regime section
    plain = explain("a", inputs=inputs, candles=candles, positions=evaluate_expression,
                    cost_rate=0.0015, periods_per_year=8760)
    assert plain.by_regime == {} and "Regime by regime" not in plain.text

"""The forge's explanation of a regime-conditional rule names each regime in words (from the
training candles' statistics), not "regime k"."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd

from singularity.config import Settings
from singularity.evolution import evaluate_expression
from singularity.forge.champion import record
from singularity.regimes.synthetic import planted_regime_market
from singularity.registry import Registry
from singularity.validation.gauntlet import GauntletContext, GauntletReport
from singularity.validation.settings import GauntletSettings

EXPR = "if_then_else(in_regime(regime_0), a, neg(a))"


def test_explanation_names_the_regimes(tmp_path) -> None:
    universe, truth = planted_regime_market(1, n_bars=3000, seed=1)
    candles = universe["S0/USDT"]
    rng = np.random.default_rng(0)
    inputs = pd.DataFrame({"a": rng.normal(size=len(candles)),
                           **{f"regime_{k}": (truth == k) * 1.0 for k in range(3)}}, index=candles.index)
    split = 2000
    ctx = GauntletContext(
        train_candles=candles.iloc[:split], train_inputs=inputs.iloc[:split],
        holdout_candles=candles.iloc[split:], holdout_inputs=inputs.iloc[split:], timeframe="1h",
        fee_bps=1.0, slippage_bps=0.0, settings=GauntletSettings(), positions=evaluate_expression,
        n_trials=1, trial_sharpe_variance=0.0, trial_returns=np.zeros((split, 2)), seed=0)
    reg = Registry(f"sqlite:///{tmp_path / 'registry.db'}")
    run = reg.start_run(symbol="S0/USDT", timeframe="1h", seed=0, settings={})
    hof = SimpleNamespace(expression=EXPR, infix=EXPR, size=6, fitness=1.0, to_dict=dict)
    ids = record(reg, run, Settings(), SimpleNamespace(symbol="S0/USDT", timeframe="1h"),
                 SimpleNamespace(hall_of_fame=[hof]), [GauntletReport(EXPR, ())], None, ctx,
                 SimpleNamespace(catalogue=[]), parents=[])
    text = reg.strategy(ids[EXPR]).explanation
    reg.close()
    # planted: 0 calm (its one training spell is bars 0-319, mostly feature warm-up: its trend
    # and memory do not show there), 1 normal, 2 turbulent and mean-reverting
    assert "  - 0 (low volatility, range-bound, random-walk): a;" in text, text
    assert "  - 1 (normal volatility, range-bound, random-walk): -a;" in text, text
    assert "  - 2 (high volatility, range-bound, mean-reverting): -a;" in text, text
    assert "(regime " not in text


def test_report_names_the_regimes_of_its_training_window() -> None:
    from singularity.forge.reporting import _regime_names

    universe, truth = planted_regime_market(1, n_bars=3000, seed=1)
    series = universe["S0/USDT"].assign(regime=truth)
    names = _regime_names(series, series.index[2000], Settings())
    assert names == {0: "low volatility, range-bound, random-walk", 1: "normal volatility, range-bound, random-walk",
                     2: "high volatility, range-bound, mean-reverting"}  # as the explanation above
    assert _regime_names(series.drop(columns="regime"), series.index[2000], Settings()) is None

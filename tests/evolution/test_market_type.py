"""Spot markets are long-only; shorts (margin, perpetual) pay a borrow/funding charge per bar in
the GP fitness, the gauntlet and the report, the same charge as the backtest kernel's."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from singularity.backtest import bar_returns, sharpe_from_returns
from singularity.config import CostSettings, Settings
from singularity.evolution.evaluator import codec_for, evaluate_programs, market_arrays
from singularity.evolution.fitness import M_FITNESS, M_SHARPE
from singularity.evolution.settings import EvolutionSettings
from singularity.evolution.synthesizer import eval_config, evolve
from singularity.forge.champion import positions_fn, short_rate_per_bar


def _market(n: int = 600) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(4)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    idx = pd.date_range("2024-01-01", periods=n, freq="1h", tz="UTC", name="timestamp")
    candles = pd.DataFrame({"open": np.r_[100.0, close[:-1]], "close": close}, index=idx)
    return candles, pd.DataFrame({"f0": rng.normal(size=n), "f1": rng.normal(size=n).cumsum()}, index=idx)


def test_spot_is_long_only_by_default_and_margin_pays_per_bar() -> None:
    spot = eval_config(EvolutionSettings(), CostSettings(), "1h")
    assert (spot.long_only, spot.short_rate) == (True, 0.0)
    perp = eval_config(EvolutionSettings(), CostSettings(market="perpetual", short_rate_bps_per_day=24.0), "1h")
    assert perp.long_only is False and perp.short_rate == pytest.approx(1e-4)  # 24 bps/day = 1 bp per hour
    assert CostSettings(market="margin").short_rate_per_bar("4h") == pytest.approx(3e-4 / 6)
    assert short_rate_per_bar(Settings(), "1h") == 0.0


def test_gp_fitness_charges_shorts_as_the_kernel_does() -> None:
    candles, inputs = _market()
    codec = codec_for(list(inputs.columns))
    prog = codec.encode(codec.parse("f0"))  # long when f0 > 0, short when below
    data = market_arrays(inputs, candles)
    cfg = eval_config(EvolutionSettings(), CostSettings(market="margin", short_rate_bps_per_day=240.0), "1h")
    charged = evaluate_programs(data, cfg, [prog])[0][0]
    free = evaluate_programs(data, eval_config(EvolutionSettings(), CostSettings(market="margin",
                                                short_rate_bps_per_day=0.0), "1h"), [prog])[0][0]
    target = np.sign(inputs["f0"].to_numpy())
    r = bar_returns(candles["open"].to_numpy(), candles["close"].to_numpy(), target, cfg.cost_rate, True, 1e-3)
    assert charged[M_SHARPE] == pytest.approx(sharpe_from_returns(r, 8760.0), rel=1e-9)
    assert charged[M_FITNESS] < free[M_FITNESS]


def test_a_spot_search_never_goes_short() -> None:
    candles, inputs = _market()
    evo = evolve(inputs, candles, population=30, generations=1, seed=0, costs=CostSettings())
    pos = positions_fn(Settings())
    assert all((pos(h.expression, inputs) >= 0).all() for h in evo.hall_of_fame)
    assert (positions_fn(Settings(costs=CostSettings(market="perpetual")))("f0", inputs) < 0).any()

"""PBO over the search's own trials, on the matrix the forge builds (``trial_sample_matrix``):
high on noise, low on a planted edge. Small GP runs, in-process: a few seconds."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from singularity.config import CostSettings
from singularity.evolution.expressions import evaluate_expression
from singularity.evolution.synthesizer import evolve
from singularity.forge.champion import trial_sample_matrix
from singularity.validation.settings import GauntletSettings
from singularity.validation.stats import estimate_effective_trials, pbo_cscv

COSTS = CostSettings(fee_bps=2.0, slippage_bps=1.0)


def _market(n: int, seed: int, edge: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A random walk, 8 random inputs and the last return; with ``edge`` input x0 at bar t
    leans on the sign of bar t+1's return."""
    rng = np.random.default_rng(seed)
    r = rng.normal(0, 0.01, n)
    x = rng.normal(size=(n, 8))
    r[1:] += edge * 0.01 * np.sign(x[:-1, 0])
    close = 100 * np.exp(np.cumsum(r))
    open_ = np.r_[100.0, close[:-1]]
    idx = pd.date_range("2024-01-01", periods=n, freq="1h", tz="UTC", name="timestamp")
    candles = pd.DataFrame({"open": open_, "high": np.maximum(open_, close), "low": np.minimum(open_, close),
                            "close": close, "volume": 1.0}, index=idx)
    inputs = pd.DataFrame({f"x{i}": x[:, i] for i in range(8)}, index=idx)
    inputs["ret"] = np.diff(np.log(close), prepend=np.nan)
    return candles, inputs


def _positions(expr: str, inputs: pd.DataFrame) -> np.ndarray:
    return evaluate_expression(expr, inputs).to_numpy(np.float64)


def _pbo(seed: int, edge: float) -> tuple[float, object, np.ndarray]:
    candles, inputs = _market(1500, seed, edge)
    evo = evolve(inputs, candles, population=150, generations=8, seed=seed, costs=COSTS)
    m = trial_sample_matrix(evo, GauntletSettings().pbo_candidates, seed, include=(evo.best.expression,),
                            positions=_positions, candles=candles, inputs=inputs, cost_rate=3e-4, short_rate=0.0)
    return pbo_cscv(m, n_blocks=10).pbo, evo, m


@pytest.mark.slow
def test_pbo_is_high_on_noise_and_low_on_a_planted_edge() -> None:
    noise = [_pbo(seed, 0.0)[0] for seed in range(10)]
    assert np.median(noise) >= 0.3, noise
    planted = [_pbo(seed, 0.3)[0] for seed in range(3)]
    assert max(planted) <= 0.1, planted


def test_the_matrix_is_a_uniform_sample_of_the_trials_with_the_candidate() -> None:
    _, evo, m = _pbo(0, 0.0)
    exprs = evo.sample_trials(128, 0, include=(evo.best.expression,))
    assert m.shape == (1500, 128) and exprs[0] == evo.best.expression and len(set(exprs)) == 128
    assert evo.distinct_trials == len(evo.trial_programs) > 128
    # the same draw again, and a different one for another seed
    assert exprs == evo.sample_trials(128, 0, include=(evo.best.expression,))
    assert exprs[1:] != evo.sample_trials(128, 1, include=(evo.best.expression,))[1:]
    n_eff, info = estimate_effective_trials(m, total=evo.distinct_trials)
    assert 1 <= info["clusters"] <= n_eff <= evo.distinct_trials

"""The noise test's runs recomputed as one batch across the pool give exactly what one run
after another gave: the same noise draws in the same order, the same recomputed inputs (the
pool task equals the in-process recomputation, CEEMDAN serial or pooled)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from forge_candles import random_walk

from singularity.config import load_settings
from singularity.features.factory import FeatureFactory
from singularity.forge.champion import _noise_inputs_task, expression_columns, own_features_from
from singularity.runtime.pool import WorkerPool
from singularity.validation.gauntlet import noise_test


def test_batched_noise_runs_equal_the_serial_runs() -> None:
    import sys

    sys.path.insert(0, str(Path(__file__).parents[1] / "validation"))
    from test_gauntlet import context, market

    candles, inputs = market(800, 3, 0.0)
    seen: list[list[float]] = []

    def recompute(noisy: pd.DataFrame) -> pd.DataFrame:  # inputs that depend on the noisy prices
        seen.append([float(noisy["close"].iloc[-1])])
        x = inputs.copy()
        x["x0"] = np.log(noisy["close"]).diff().fillna(0.0).to_numpy()
        return x

    ctx = context(candles, inputs, noise_scale=3.0)
    ctx.recompute_inputs = recompute
    serial = noise_test(ctx, "x0")
    first, seen[:] = list(seen), []
    ctx = context(candles, inputs, noise_scale=3.0)
    ctx.recompute_inputs_many = lambda runs, expr: [recompute(r) for r in runs]
    batched = noise_test(ctx, "x0")
    assert seen == first  # the same perturbed prices, in the same order
    assert batched == serial


def test_pool_task_equals_the_in_process_recomputation(tmp_path: Path) -> None:
    over: dict[str, Any] = {"data.dir": str(tmp_path), "features.graph.enabled": False,
                            "features.regimes.enabled": False, "features.ceemdan.window": 64,
                            "features.ceemdan.stride": 16, "features.ceemdan.trials": 3}
    s = load_settings(environ={}, cwd=tmp_path, overrides=over).settings
    raw = random_walk(700, 1, sigma=0.01, high=1.002, low=0.998)
    inputs = FeatureFactory(s.features).build({"BTC/USDT": raw}, progress=False).ready("BTC/USDT")
    hold = slice(len(inputs) - 120, len(inputs))
    full = raw.loc[inputs.index]
    noisy = full.copy()
    noisy[["open", "high", "low", "close"]] *= np.exp(np.random.default_rng(5).normal(0, 0.003, (len(full), 1)))
    serial = own_features_from(noisy, raw, inputs, s, None, holdout_rows=hold)
    with WorkerPool(2) as pool:
        pooled = own_features_from(noisy, raw, inputs, s, pool, holdout_rows=hold)
        (task,) = pool.map(_noise_inputs_task, [(noisy, raw, inputs.iloc[hold], s, frozenset())], chunksize=1)
    pd.testing.assert_frame_equal(pooled, serial)
    pd.testing.assert_frame_equal(task, serial)
    assert not serial.equals(inputs.iloc[hold])  # the noise reached the recomputed columns
    # a family whose columns the expression does not read keeps its unperturbed values; the
    # others are exactly the full recomputation's
    only_ce = own_features_from(noisy, raw, inputs, s, None, holdout_rows=hold,
                                skip_families=frozenset({"indicators", "particle_filter"}))
    ce = [c for c in inputs.columns if c.startswith("ceemdan_")]
    rest = [c for c in inputs.columns if c not in ce]
    assert ce and rest
    pd.testing.assert_frame_equal(only_ce[ce], serial[ce])
    pd.testing.assert_frame_equal(only_ce[rest], inputs.iloc[hold][rest])
    assert expression_columns("div(ema(ceemdan_imf4_freq, w50), lag(x, l1))", inputs.columns) == {"ceemdan_imf4_freq"}

"""Reborn without leaks (seeds only from the same market and from data that does not reach the
new holdout; earlier trials on overlapping data counted), deterministic seed order, and a
dataset fingerprint over every asset."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from singularity.forge.cycle import fingerprint
from singularity.forge.reborn import plan_reborn
from singularity.registry import Registry


def _w(exchange: str, train0: str, hold1: str, trials: int = 0) -> dict:
    return {"exchange": exchange, "symbol": "BTC/USDT", "timeframe": "1h", "train": [train0, train0],
            "holdout": [hold1, hold1], "trials": trials}


def _run(reg: Registry, window: dict, fitness: list[float]) -> list[int]:
    rid = reg.start_run(symbol="BTC/USDT", timeframe="1h", seed=0, settings={})
    reg.record_window(rid, window)
    return [reg.add_strategy(run_id=rid, symbol="BTC/USDT", timeframe="1h", expression=f"x{rid}_{i}",
                             readable="", size=1, fitness=f, in_sample={}) for i, f in enumerate(fitness)]


def test_seeds_and_prior_trials(tmp_path: Path) -> None:
    reg = Registry(f"sqlite:///{tmp_path / 'r.db'}")
    old = _run(reg, _w("binance", "2024-01-01", "2024-03-01", trials=500), [1.0, 2.0, 2.0])
    late = _run(reg, _w("binance", "2024-01-01", "2024-06-10", trials=300), [9.0])
    other = _run(reg, _w("kraken", "2024-01-01", "2024-03-01", trials=700), [5.0])
    legacy = reg.start_run(symbol="BTC/USDT", timeframe="1h", seed=0, settings={})  # no window recorded
    reg.add_strategy(run_id=legacy, symbol="BTC/USDT", timeframe="1h", expression="legacy", readable="",
                     size=1, fitness=8.0, in_sample={})
    new = {"exchange": "binance", "symbol": "BTC/USDT", "timeframe": "1h",
           "train": ["2024-02-01", "2024-05-31"], "holdout": ["2024-06-01", "2024-07-01"]}
    plan = plan_reborn(reg, new)
    # the run whose data reaches the new holdout seeds nothing; kraken and legacy runs never do
    assert plan.excluded_runs == [2]
    # the run made before windows were recorded seeds nothing either, and the plan names it
    assert plan.unwindowed_runs == [legacy]
    assert plan.messages() == [
        "no seeds from run(s) 2: their data overlaps this holdout",
        f"no seeds from run(s) {legacy}: they recorded no data window (made before windows were "
        "recorded), so their data may overlap this holdout",
        "3 seed(s); 800 trials of earlier run(s) on overlapping data count in the DSR (runs 1, 2)"]
    # best fitness first; the tie (2.0, 2.0) goes to the newer strategy
    assert [s.id for s in plan.seeds] == [old[2], old[1], old[0]]
    # both binance runs saw data overlapping this cycle's window: their trials count
    assert (plan.prior_trials, plan.prior_runs) == (800, [1, 2])
    assert late and other
    # a later cycle entirely after the old runs' data: every binance run may seed it
    later = {**new, "train": ["2024-07-01", "2024-08-01"], "holdout": ["2024-08-02", "2024-09-01"]}
    plan = plan_reborn(reg, later)
    assert plan.excluded_runs == [] and plan.seeds[0].id == late[0] and plan.prior_trials == 0


def test_fingerprint_covers_every_asset() -> None:
    idx = pd.date_range("2024-01-01", periods=5, freq="1h", tz="UTC")
    a = pd.DataFrame({"close": np.arange(5.0)}, index=idx)
    b = pd.DataFrame({"close": np.arange(5.0) * 2}, index=idx)
    base = fingerprint({"BTC/USDT": a, "ETH/USDT": b})
    assert fingerprint({"BTC/USDT": a, "ETH/USDT": b * 1.0001}) != base
    assert fingerprint({"ETH/USDT": b, "BTC/USDT": a}) == base  # order of the dict does not matter
    assert fingerprint({"BTC/USDT": a}) != base

"""Speed work never changes a result silently: a small fixed-seed forge cycle (every stage:
indicators, particle filter, CEEMDAN, the cross-asset graph with its GNN, the bake-off with the
Transformer, the GP, every gauntlet test with its GP re-runs) gives exactly the JSON recorded
in ``forge_reference.json``.

The reference was recorded from main at 66fca75 (after the gauntlet issue's PBO matrix change and
the long-only bake-off scoring, which changed results on purpose), BEFORE the forge speed work
(issue 15); re-recorded for issue 9's PBO matrix of one column per cluster of trials (only the
PBO verdict changed: 0.59 -> 0.42), then for its DSR default of the effective trial count (only the
DSR verdict changed: N 162 -> 15, DSR 0.62 -> 0.91, still failing). Where
a change alters a result on purpose, re-record it (``SINGULARITY_RECORD_FORGE_REFERENCE=1``)
and say in the commit what changed and why."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from singularity.config import load_settings
from singularity.data.store import CandleStore
from singularity.forge.cycle import ForgeOptions, run_forge

REFERENCE = Path(__file__).with_name("forge_reference.json")

SMALL: dict[str, Any] = {
    "features.ceemdan.window": 128,
    "features.ceemdan.stride": 64,
    "features.ceemdan.trials": 4,
    "features.graph.gnn_epochs": 3,
    "features.graph.gnn_train_window": 200,
    "features.graph.gnn_retrain_every": 600,
    "bakeoff.folds": 2,
    "bakeoff.transformer_epochs": 2,
    "bakeoff.transformer_d_model": 8,
    "bakeoff.transformer_window": 8,
    "gauntlet.noise_runs": 2,
    "gauntlet.permutation_runs": 20,
    "gauntlet.search_null_runs": 2,
    "gauntlet.walk_forward_blocks": 2,
    "gauntlet.pbo_candidates": 16,
    "gauntlet.effective_trials_sample": 16,
    "forge.holdout_fraction": 0.25,
    "costs.market": "perpetual",
}


def _market(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    r = rng.standard_t(4, n) * 0.006
    close = 100 * np.exp(np.cumsum(r))
    open_ = np.concatenate([[100.0], close[:-1]])
    wick = np.abs(rng.normal(0, 0.002, (2, n)))
    idx = pd.date_range("2024-01-01", periods=n, freq="1h", tz="UTC", name="timestamp")
    return pd.DataFrame({"open": open_, "high": np.maximum(open_, close) * (1 + wick[0]),
                         "low": np.minimum(open_, close) * (1 - wick[1]), "close": close,
                         "volume": rng.lognormal(8, 0.3, n)}, index=idx)


def _result(out: Any) -> dict[str, Any]:
    """The cycle's results, without wall times, run ids, paths or the time-dependent fields."""
    j = json.loads(json.dumps(out.to_json_dict(), default=str))
    for key in ("run_id", "report", "seconds", "stage_seconds"):
        j.pop(key)
    for who in ("champion", "best_candidate"):
        if j[who] is not None:
            j[who].pop("id")
    for m in j["bakeoff"]["models"]:
        m.pop("fit_seconds")
    return j


def forge_small(tmp: Path) -> dict[str, Any]:
    s = load_settings(environ={}, cwd=tmp, overrides={"data.dir": str(tmp / "data"), **SMALL}).settings
    store = CandleStore(s.data.dir)
    for i, sym in enumerate(("BTC/USDT", "ETH/USDT", "SOL/USDT")):
        store.write("synthetic", sym, "1h", _market(1600, 40 + i))
    opts = ForgeOptions(symbol="BTC/USDT", timeframe="1h", population=60, generations=3, seed=3,
                        workers=2, exchange="synthetic", progress=False)
    return _result(run_forge(s, opts, say=lambda _m: None))


def test_fixed_seed_forge_cycle_matches_the_reference(tmp_path: Path) -> None:
    got = forge_small(tmp_path)
    if os.environ.get("SINGULARITY_RECORD_FORGE_REFERENCE") == "1":
        REFERENCE.write_text(json.dumps(got, indent=1, sort_keys=True) + "\n")
    want = json.loads(REFERENCE.read_text())
    # the parts a reader checks first, then everything (gauntlet figures, bake-off scores)
    assert (got["best_candidate"] or {}).get("expression") == (want["best_candidate"] or {}).get("expression")
    assert got["gauntlet"] == want["gauntlet"]
    assert got == want

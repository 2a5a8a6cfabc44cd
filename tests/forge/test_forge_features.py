"""A forge cycle computes the per-asset feature families (CEEMDAN above all) for the forged
symbol only: the other assets feed the cross-asset graph through their candles, nothing else."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from forge_candles import random_walk

from singularity.config import load_settings
from singularity.data.store import CandleStore
from singularity.forge.cycle import ForgeOptions, run_forge

SMALL = {"features.ceemdan.window": 128, "features.ceemdan.stride": 64,
         "features.ceemdan.trials": 4, "features.graph.gnn_enabled": False}


class _Stop(Exception):
    """Raised where the cycle splits the featured candles: the features are what this test
    looks at."""


def test_forge_computes_ceemdan_of_the_forged_symbol_only(tmp_path: Path, monkeypatch) -> None:
    import singularity.features.ceemdan as ceemdan
    import singularity.forge.cycle as cycle

    s = load_settings(environ={}, cwd=tmp_path,
                      overrides={"data.dir": str(tmp_path / "data"), **SMALL}).settings
    store = CandleStore(s.data.dir)
    markets = {sym: random_walk(700, 7 + i, sigma=0.006, high=1.001, low=0.999)
               for i, sym in enumerate(("BTC/USDT", "ETH/USDT", "SOL/USDT"))}
    for sym, candles in markets.items():
        store.write("synthetic", sym, "1h", candles)
    closes: list[pd.Series] = []
    real = ceemdan.ceemdan_features

    def counted(close, *args, **kwargs):
        closes.append(close)
        return real(close, *args, **kwargs)

    def stop(*_a, **_k):
        raise _Stop

    monkeypatch.setattr(ceemdan, "ceemdan_features", counted)
    monkeypatch.setattr(cycle, "time_split", stop)
    opts = ForgeOptions(symbol="BTC/USDT", timeframe="1h", population=20, generations=1, seed=1,
                        workers=1, exchange="synthetic", progress=False)
    with pytest.raises(_Stop):
        run_forge(s, opts, say=lambda _m: None)
    assert len(closes) == 1
    np.testing.assert_array_equal(closes[0].to_numpy(), markets["BTC/USDT"]["close"].to_numpy())
    # the cache entry says so: every asset's candles, BTC's features alone, under its own key
    (manifest,) = [json.loads(p.read_text()) for p in (tmp_path / "data" / "features").glob("*/manifest.json")]
    assert manifest["targets"] == ["BTC/USDT"]
    assert sorted(manifest["assets"]) == ["BTC/USDT", "ETH/USDT", "SOL/USDT"]
    assert [sym for sym, a in manifest["assets"].items() if "file" in a] == ["BTC/USDT"]

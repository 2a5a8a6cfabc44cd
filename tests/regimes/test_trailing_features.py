"""The regime features are window-local: on a trailing slice of the candles (every asset cut
at the same time) they equal, bit for bit, the whole history's at every row whose windows the
slice holds. The engine's regime worker computes only a new candle's row this way."""

from __future__ import annotations

import numpy as np
from small_regimes import SMALL

from singularity.regimes.features import symbol_regime_features
from singularity.regimes.synthetic import planted_regime_market


def test_trailing_slice_features_equal_the_full_history_bit_for_bit() -> None:
    universe, _ = planted_regime_market(3, n_bars=900, seed=5, min_spell=100, max_spell=250)
    # gaps: S1 misses a run of candles (the union index then holds rows S0 lacks and vice versa)
    universe["S1/USDT"] = universe["S1/USDT"].drop(universe["S1/USDT"].index[400:430])
    universe["S0/USDT"] = universe["S0/USDT"].drop(universe["S0/USDT"].index[610:615])
    sym = "S0/USDT"
    full, _ = symbol_regime_features(universe, sym, SMALL)
    assert full.notna().all(axis=1).sum() > 500
    tail = SMALL.warmup_bars + 2  # rows of the slice before the first row compared
    index = universe[sym].index
    for cut in range(60, len(index) - tail, 37):
        start = index[cut]
        part = {s: df.loc[df.index >= start] for s, df in universe.items()}
        sliced, _ = symbol_regime_features(part, sym, SMALL, validate=False)  # as the worker does
        a = full.to_numpy()[cut + tail:]
        b = sliced.to_numpy()[tail:]
        assert a.shape == b.shape and list(sliced.columns) == list(full.columns)
        assert np.array_equal(a, b, equal_nan=True), (cut, np.nanmax(np.abs(a - b)))

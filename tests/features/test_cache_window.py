"""Rolling windows (forge --bars N one candle later) reuse the cache; the cache stays bounded."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from small_features import SMALL, SYMBOLS

from singularity.data.synthetic import regime_switching_market
from singularity.features.cache import FeatureCache
from singularity.features.factory import WARMUP_COLUMN, FeatureFactory
from singularity.features.settings import IndicatorSettings

N = 300


@pytest.fixture(scope="module")
def universe() -> dict[str, pd.DataFrame]:
    return regime_switching_market(SYMBOLS, n_bars=N + 2, seed=9)


def _window(u: dict[str, pd.DataFrame], start: int) -> dict[str, pd.DataFrame]:
    return {s: d.iloc[start : start + N] for s, d in u.items()}


def test_a_window_one_candle_later_hits_the_cache(universe, tmp_path: Path) -> None:
    f = FeatureFactory(SMALL, cache_dir=tmp_path)
    f.build(_window(universe, 0), progress=False)
    assert f.last_cache_relation == "miss"
    second = f.build(_window(universe, 1), progress=False)
    assert f.last_cache_relation == "window+extend"  # the stored rows plus one new candle
    assert len([p for p in tmp_path.iterdir() if p.is_dir()]) == 1  # no new entry
    # values: those of a build on the longer history, cut to the window (exactly)
    longer = FeatureFactory(SMALL).build({s: d.iloc[: N + 1] for s, d in universe.items()},
                                         progress=False)
    fresh = FeatureFactory(SMALL).build(_window(universe, 1), progress=False)
    for sym in SYMBOLS:
        got = second.frames[sym]
        want = longer.frames[sym].loc[got.index].drop(columns=WARMUP_COLUMN)
        pd.testing.assert_frame_equal(got.drop(columns=WARMUP_COLUMN), want, check_freq=False)
        # the same rows are ready as in a fresh build of the window alone
        np.testing.assert_array_equal(got[WARMUP_COLUMN].to_numpy(),
                                      fresh.frames[sym][WARMUP_COLUMN].to_numpy())
        assert second.ready(sym).index.equals(fresh.ready(sym).index)
    third = f.build(_window(universe, 1), progress=False)
    assert f.last_cache_relation == "window"  # now a plain hit through the window
    for sym in SYMBOLS:
        pd.testing.assert_frame_equal(third.frames[sym], second.frames[sym], check_freq=False)


def test_the_cache_stays_under_its_size_limit(universe, tmp_path: Path) -> None:
    one = FeatureFactory(SMALL, cache_dir=tmp_path)
    one.build(_window(universe, 0), progress=False)
    entry_bytes = sum(e.bytes for e in FeatureCache(tmp_path).entries())
    limit = int(entry_bytes * 2.5)  # room for two entries, not three
    for i, period in enumerate((7, 9, 11)):
        settings = SMALL.model_copy(update={"indicators": IndicatorSettings(
            rsi_period=period, ma_periods=(10, 30), vol_horizons=(24,))})
        f = FeatureFactory(settings, cache_dir=tmp_path, cache_max_bytes=limit)
        f.build(_window(universe, 0), progress=False)
        entries = FeatureCache(tmp_path).entries()
        assert sum(e.bytes for e in entries) <= limit, i
        assert f.cache_dir is not None and len(entries) <= 2
    # the most recently used entries are the ones kept
    cache = FeatureCache(tmp_path)
    assert len(cache.entries()) == 2
    assert cache.evict(max_age_s=0.0) and cache.entries() == []

"""FeatureFactory: every family assembled per asset, causal as a whole, bad input refused."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd
import pytest
from small_features import SMALL, SYMBOLS

from singularity.data.synthetic import regime_switching_market
from singularity.errors import DataError
from singularity.features.causality import assert_causal
from singularity.features.factory import WARMUP_COLUMN, FeatureFactory, feature_catalogue
from singularity.features.settings import (
    CeemdanSettings,
    FeatureSettings,
    GraphSettings,
)


class SerialPool:
    """A pool with the WorkerPool interface that runs in-process and records its calls."""

    def __init__(self) -> None:
        self.calls: list[int] = []

    def map(self, fn: Callable[[Any], Any], items: Sequence[Any]) -> list[Any]:
        self.calls.append(len(items))
        return [fn(x) for x in items]


@pytest.fixture(scope="module")
def universe() -> dict[str, pd.DataFrame]:
    return regime_switching_market(SYMBOLS, n_bars=360, seed=5)


def _build(settings: FeatureSettings = SMALL) -> Callable[[dict[str, pd.DataFrame]], Any]:
    return lambda u: FeatureFactory(settings).build(u, progress=False).frames


def test_frames_are_aligned_and_match_the_catalogue(universe: dict[str, pd.DataFrame]) -> None:
    pool = SerialPool()
    fs = FeatureFactory(SMALL, pool=pool).build(universe, progress=False)
    assert list(fs.frames) == SYMBOLS
    assert pool.calls[0] == 3  # one task per asset for the per-asset families
    families = {s.family for s in fs.catalogue}
    assert {"indicators", "particle_filter"} <= families
    warm = max(s.warmup for s in fs.catalogue)
    for sym, frame in fs.frames.items():
        assert frame.index.equals(universe[sym].index)
        assert list(frame.columns) == [*fs.feature_names, WARMUP_COLUMN]
        assert frame[WARMUP_COLUMN].sum() == warm  # marked ...
        assert frame[WARMUP_COLUMN].iloc[:warm].all() and not frame[WARMUP_COLUMN].iloc[warm:].any()
        ready = fs.ready(sym)
        assert len(ready) == len(frame) - warm
        # a subset waits only for its own warm-up
        assert len(fs.ready(sym, ["body", "rsi_14"])) == len(frame) - 42
        assert not fs.ready(sym, ["rsi_14"]).isna().any().any()
    specs, _ = feature_catalogue(SMALL)
    assert [s.name for s in specs if s.family in families] == fs.feature_names


def test_whole_factory_is_causal(universe: dict[str, pd.DataFrame]) -> None:
    assert_causal(_build(), universe, points=3, min_rows=200, seed=1, rtol=1e-7, atol=1e-9)


def test_a_leak_in_any_asset_is_caught(universe: dict[str, pd.DataFrame]) -> None:
    def leaky(u: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
        frames = _build(FeatureSettings(indicators=SMALL.indicators,
                                        ceemdan=CeemdanSettings(enabled=False),
                                        graph=GraphSettings(enabled=False)))(u)
        f = frames["BBB/USDT"]
        f["rsi_14"] = f["rsi_14"] - f["rsi_14"].mean()  # full-series demeaning
        return frames

    with pytest.raises(AssertionError, match=r"'rsi_14' \[BBB/USDT\] is not causal"):
        assert_causal(leaky, universe, points=[250])


def test_gaps_stay_gaps(universe: dict[str, pd.DataFrame]) -> None:
    u = dict(universe)
    u["BBB/USDT"] = u["BBB/USDT"].drop(u["BBB/USDT"].index[200:210])
    fs = FeatureFactory(SMALL).build(u, progress=False)
    assert len(fs.frames["BBB/USDT"]) == 350  # no rows invented for the missing candles
    assert fs.frames["BBB/USDT"].index.equals(u["BBB/USDT"].index)


def test_families_can_be_disabled(universe: dict[str, pd.DataFrame]) -> None:
    s = FeatureSettings(particle_filter=SMALL.particle_filter.model_copy(update={"enabled": False}),
                        indicators=SMALL.indicators, ceemdan=CeemdanSettings(enabled=False),
                        graph=GraphSettings(enabled=False))
    fs = FeatureFactory(s).build(universe, progress=False)
    assert {x.family for x in fs.catalogue} == {"indicators"}


def _with(u: dict[str, pd.DataFrame], sym: str, frame: pd.DataFrame) -> dict[str, pd.DataFrame]:
    return {**u, sym: frame}


def test_bad_input_gives_one_line_errors(universe: dict[str, pd.DataFrame]) -> None:
    f = FeatureFactory(SMALL)
    nan = universe["AAA/USDT"].copy()
    nan.iloc[100, 3] = np.nan
    late = universe["CCC/USDT"].copy()
    late.index = late.index + pd.Timedelta(days=400)
    cases = [
        (_with(universe, "AAA/USDT", nan), r"^AAA/USDT: 1 candle\(s\) with NaN or infinite"),
        (_with(universe, "CCC/USDT", late), r"^the assets do not overlap in time: AAA/USDT"),
        ({s: d.iloc[:50] for s, d in universe.items()},
         r"^AAA/USDT: 50 candles, the features need more than \d+ \(warm-up\)$"),
        ({}, "no assets"),
        (_with(universe, "AAA/USDT", universe["AAA/USDT"].iloc[::-1]), "strictly increasing"),
    ]
    for u, pattern in cases:
        with pytest.raises(DataError, match=pattern) as info:
            f.build(u, progress=False)
        assert "\n" not in str(info.value)


def test_single_asset_skips_graph_with_a_note(universe: dict[str, pd.DataFrame]) -> None:
    fs = FeatureFactory(SMALL).build({"AAA/USDT": universe["AAA/USDT"]}, progress=False)
    assert "graph" not in {s.family for s in fs.catalogue}
    assert any("graph family skipped" in n for n in fs.notes)

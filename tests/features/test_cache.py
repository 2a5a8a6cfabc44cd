"""Feature cache: a hit equals a fresh build; appended candles equal a full recomputation."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from small_features import SMALL, SYMBOLS

from singularity.data.synthetic import regime_switching_market
from singularity.features.cache import FeatureCache, code_version, data_fingerprint
from singularity.features.factory import FeatureFactory
from singularity.features.settings import (
    FeatureSettings,
    IndicatorSettings,
)


@pytest.fixture(scope="module")
def universe() -> dict[str, pd.DataFrame]:
    return regime_switching_market(SYMBOLS, n_bars=330, seed=9)


@pytest.fixture(scope="module")
def fresh(universe: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    return FeatureFactory(SMALL).build(universe, progress=False).frames


def _equal(a: dict[str, pd.DataFrame], b: dict[str, pd.DataFrame], **tol: float) -> None:
    assert list(a) == list(b)
    for sym in a:
        pd.testing.assert_frame_equal(a[sym], b[sym], check_freq=False, **tol)


def test_hit_equals_fresh_build(universe, fresh, tmp_path: Path) -> None:
    f = FeatureFactory(SMALL, cache_dir=tmp_path)
    first = f.build(universe, progress=False)
    assert f.last_cache_relation == "miss"
    _equal(first.frames, fresh)
    again = f.build(universe, progress=False)
    assert f.last_cache_relation == "hit"
    _equal(again.frames, fresh)
    assert again.catalogue == first.catalogue
    # other settings: another entry, not a stale hit
    other = SMALL.model_copy(update={"indicators": IndicatorSettings(rsi_period=7,
                                                                     ma_periods=(10, 30))})
    g = FeatureFactory(other, cache_dir=tmp_path)
    assert "rsi_7" in g.build(universe, progress=False).feature_names
    assert g.last_cache_relation == "miss"


def test_extension_equals_full_recompute(universe, fresh, tmp_path: Path) -> None:
    f = FeatureFactory(SMALL, cache_dir=tmp_path)
    f.build({s: d.iloc[:-7] for s, d in universe.items()}, progress=False)
    grown = f.build({s: d.iloc[:-1] for s, d in universe.items()}, progress=False)
    assert f.last_cache_relation == "extend"
    assert not any("disagreed" in n for n in grown.notes), grown.notes
    one_more = f.build(universe, progress=False)
    assert f.last_cache_relation == "extend"
    _equal(one_more.frames, fresh)
    # the particle filter's state is carried along for the next extension
    assert all(int(one_more.resume[s]["rows"][0]) == 330 for s in SYMBOLS)
    # only the newest entry's files are kept: features, candles, filter state per asset
    folder = next(p for p in tmp_path.iterdir() if p.is_dir())
    assert len(list(folder.glob("*.parquet"))) == 2 * len(SYMBOLS)
    assert len(list(folder.glob("*.resume.npz"))) == len(SYMBOLS)


def test_shorter_request_is_served_from_the_cache(universe, tmp_path: Path) -> None:
    f = FeatureFactory(SMALL, cache_dir=tmp_path)
    f.build(universe, progress=False)
    short = {s: d.iloc[:-20] for s, d in universe.items()}
    served = f.build(short, progress=False)
    assert f.last_cache_relation == "prefix"
    # equal to a fresh build on the shorter data because every feature is causal
    _equal(served.frames, FeatureFactory(SMALL).build(short, progress=False).frames,
           rtol=1e-7, atol=1e-9)
    # a changed candle inside the range is not a prefix: rebuilt
    changed = {s: d.copy() for s, d in short.items()}
    changed["AAA/USDT"].iloc[5, 3] *= 1.01
    f.build(changed, progress=False)
    assert f.last_cache_relation == "miss"


def test_corrupt_manifest_is_a_miss(universe, tmp_path: Path) -> None:
    f = FeatureFactory(SMALL, cache_dir=tmp_path)
    f.build(universe, progress=False)
    folder = FeatureCache(tmp_path).entry_dir(SMALL, universe)
    (folder / "manifest.json").write_text("{not json")
    f.build(universe, progress=False)
    assert f.last_cache_relation == "miss"
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["code_version"] == code_version()
    assert manifest["assets"]["AAA/USDT"]["fingerprint"] == data_fingerprint(universe["AAA/USDT"])


def test_fingerprint_sees_every_value(universe) -> None:
    a = universe["AAA/USDT"]
    b = a.copy()
    b.iloc[-1, 4] += 1e-9
    assert data_fingerprint(a) == data_fingerprint(a.copy())
    assert data_fingerprint(a) != data_fingerprint(b)
    assert FeatureSettings() != SMALL


def test_a_cached_prefix_still_needs_the_warm_up(universe, tmp_path: Path) -> None:
    from singularity.errors import DataError

    f = FeatureFactory(SMALL, cache_dir=tmp_path)
    f.build(universe, progress=False)
    with pytest.raises(DataError, match=r"candles, the features need more than \d+ \(warm-up\)"):
        f.build({s: d.iloc[:90] for s, d in universe.items()}, progress=False)


def test_a_prefix_must_cut_every_asset_at_one_time(universe, tmp_path: Path) -> None:
    f = FeatureFactory(SMALL, cache_dir=tmp_path)
    f.build(universe, progress=False)
    # one asset shortened, the others whole: its absence changes the others' graph features
    ragged = {**universe, "BBB/USDT": universe["BBB/USDT"].iloc[:-20]}
    f.build(ragged, progress=False)
    assert f.last_cache_relation == "miss"


def test_a_targeted_build_has_its_own_entry(universe, fresh, tmp_path: Path) -> None:
    """Frames of the targets only, equal to a full build's; the entry names its targets, holds
    no feature file of the other assets, and is never served to a full build (nor the reverse)."""
    f = FeatureFactory(SMALL, cache_dir=tmp_path)
    short = {s: d.iloc[:-7] for s, d in universe.items()}
    f.build(short, progress=False, targets=["BBB/USDT"])
    assert f.last_cache_relation == "miss"
    folder = next(p for p in tmp_path.iterdir() if p.is_dir())
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["targets"] == ["BBB/USDT"]
    assert list(manifest["assets"]) == SYMBOLS  # every asset's candles: the graph reads them
    assert [s for s, a in manifest["assets"].items() if "file" in a] == ["BBB/USDT"]
    grown = f.build(universe, progress=False, targets=["BBB/USDT"])
    assert f.last_cache_relation == "extend"
    assert list(grown.frames) == ["BBB/USDT"]
    _equal(grown.frames, {"BBB/USDT": fresh["BBB/USDT"]})
    full = f.build(universe, progress=False)
    assert f.last_cache_relation == "miss"
    _equal(full.frames, fresh)
    again = f.build(universe, progress=False, targets=["BBB/USDT"])
    assert f.last_cache_relation == "hit"
    _equal(again.frames, {"BBB/USDT": fresh["BBB/USDT"]})
    # a target set that is the whole universe is the full build (its entry, a hit)
    f.build(universe, progress=False, targets=list(reversed(SYMBOLS)))
    assert f.last_cache_relation == "hit"

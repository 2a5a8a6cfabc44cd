"""The regime family in the FeatureFactory: one-hot and probability columns in the catalogue
and in every asset's frame, marked as warm-up until the first fit."""

from __future__ import annotations

import numpy as np
from small_regimes import SMALL

from singularity.features.factory import FeatureFactory, feature_catalogue
from singularity.features.settings import FeatureSettings, IndicatorSettings
from singularity.regimes.synthetic import planted_regime_market

SETTINGS = FeatureSettings(
    indicators=IndicatorSettings(ma_periods=(10, 30), vol_horizons=(24,)),
    ceemdan={"enabled": False}, particle_filter={"enabled": False}, graph={"enabled": False},
    regimes=SMALL.model_copy(update={"enabled": True}),
)


def test_catalogue_lists_the_regime_columns() -> None:
    specs, notes = feature_catalogue(SETTINGS)
    names = [s.name for s in specs if s.family == "regime"]
    k = SMALL.max_regimes
    assert names == [f"regime_{i}" for i in range(k)] + [f"regime_p_{i}" for i in range(k)]
    assert {s.warmup for s in specs if s.family == "regime"} == {SMALL.warmup_bars + SMALL.window}
    assert notes == []
    off, _ = feature_catalogue(FeatureSettings())
    assert not [s for s in off if s.family == "regime"]  # off by default


def test_factory_builds_regime_columns() -> None:
    universe, _ = planted_regime_market(2, n_bars=800, seed=3, min_spell=100, max_spell=250)
    fs = FeatureFactory(SETTINGS).build(universe, progress=False)
    k = SMALL.max_regimes
    for sym, frame in fs.frames.items():
        one_hot = frame[[f"regime_{i}" for i in range(k)]].to_numpy()
        proba = frame[[f"regime_p_{i}" for i in range(k)]].to_numpy()
        warm = frame["warmup"].to_numpy()
        assert warm.sum() == SMALL.warmup_bars + SMALL.window
        assert set(np.unique(one_hot)) <= {0.0, 1.0} and (one_hot.sum(axis=1) <= 1).all()
        assert one_hot[~warm].sum() > 0.5 * (~warm).sum(), sym
        assert np.allclose(proba[~warm].sum(axis=1), 1.0)
        assert np.isnan(proba[:SMALL.window]).all()
    assert "regimes" in dict(fs.timings)

"""Bake-off sample weights: the average uniqueness of overlapping triple-barrier labels (AFML
ch. 4), used in every model's fit."""

from __future__ import annotations

import numpy as np
import pytest
from planted import planted_market

from singularity.config import CostSettings
from singularity.labels import average_uniqueness, triple_barrier
from singularity.models.bakeoff import _valid_samples, design_matrix, run_bakeoff
from singularity.models.baseline import LogisticBaseline
from singularity.models.lgbm import LightGBMClassifier
from singularity.models.settings import BakeoffSettings, LabelSettings
from singularity.models.transformer import TransformerClassifier


def test_average_uniqueness_exact() -> None:
    # label 0 spans bars 1-2, label 1 bars 2-4, label 2 bar 3 only... (returns of i+1 .. end)
    end = np.array([2, 4, 3, 6, -1, -1, -1])
    # concurrency: bar1 1, bar2 2, bar3 2 (labels 1, 2), bar4 2 (labels 1, 3), bar5 1, bar6 1
    u = average_uniqueness(end)
    np.testing.assert_allclose(u, [(1 + 1 / 2) / 2, (1 / 2 + 1 / 2 + 1 / 2) / 3, 1 / 2, (1 / 2 + 1 + 1) / 3])
    # only the given rows count: alone, a label is fully unique
    np.testing.assert_allclose(average_uniqueness(end, np.array([1])), [1.0])
    with pytest.raises(ValueError, match="end after"):
        average_uniqueness(np.array([0]))


@pytest.mark.parametrize("make", [LogisticBaseline, lambda: LightGBMClassifier(n_estimators=20),
                                  lambda: TransformerClassifier(window=1, d_model=8, n_heads=2, n_layers=1,
                                                                epochs=1, device="cpu")])
def test_every_model_fits_with_weights(make) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 3))
    y = np.where(X[:, 0] + rng.normal(size=300) > 0, 1.0, -1.0)
    Xm = X[:, None, :] if isinstance(make(), TransformerClassifier) else X
    w = np.r_[np.ones(200), np.zeros(100)]
    dropped = make().fit(Xm, y, sample_weight=w).predict_proba(Xm)
    cut = make().fit(Xm[:200], y[:200]).predict_proba(Xm)
    np.testing.assert_allclose(dropped, cut, atol=1e-6)  # weight 0 = not fitted on
    skew = make().fit(Xm, y, sample_weight=rng.uniform(0.05, 2.0, 300)).predict_proba(Xm)
    assert not np.allclose(skew, make().fit(Xm, y).predict_proba(Xm))


def test_the_bakeoff_fits_with_uniqueness_weights() -> None:
    candles, feats = planted_market(1200)
    labels_s = LabelSettings(vol_window=24, upper_k=2.0, lower_k=2.0, horizon=12)
    res = run_bakeoff(feats, candles, labels_settings=labels_s, costs=CostSettings(), timeframe="1h",
                      bakeoff_settings=BakeoffSettings(models=("logistic",), folds=3, threads=1, device="cpu"))
    lab = triple_barrier(candles["close"], vol_window=24, upper_k=2.0, lower_k=2.0, horizon=12)
    F = feats.to_numpy()
    rows = np.flatnonzero(_valid_samples(F, lab, BakeoffSettings().transformer_window))  # the bake-off's rows
    w = average_uniqueness(lab["end"].to_numpy(), rows)
    assert 0 < w.min() < 0.5 < w.max() <= 1  # 12-bar labels overlap: weights differ
    X = design_matrix(F, "logistic", 1)
    manual = LogisticBaseline().fit(X[rows], lab["label"].to_numpy()[rows], sample_weight=w)
    got = res.fitted["logistic"].pipeline_[-1].coef_
    np.testing.assert_allclose(got, manual.pipeline_[-1].coef_, rtol=1e-6)
    plain = LogisticBaseline().fit(X[rows], lab["label"].to_numpy()[rows])
    assert not np.allclose(got, plain.pipeline_[-1].coef_, rtol=1e-3)

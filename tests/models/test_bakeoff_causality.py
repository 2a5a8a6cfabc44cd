"""The out-of-fold signal is causal: changing every bar after t (prices and features) leaves
the signal before t alone. The test can fail: with a plain K-fold, whose folds train on the
future, it does."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from planted import planted_market
from sklearn.model_selection import KFold

from singularity.config import CostSettings
from singularity.models.bakeoff import run_bakeoff
from singularity.models.settings import BakeoffSettings, LabelSettings

LABELS = LabelSettings(vol_window=24, upper_k=2.0, lower_k=2.0, horizon=12)
BAKEOFF = BakeoffSettings(models=("logistic",), folds=3, embargo_bars=12, threads=1, device="cpu")
CUT = 1000


def _future_changed(candles: pd.DataFrame, feats: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(99)
    c, f = candles.copy(), feats.copy()
    scale = np.exp(np.cumsum(rng.normal(0, 0.02, len(c) - CUT)))
    for col in ("open", "high", "low", "close"):
        c.iloc[CUT:, c.columns.get_loc(col)] *= scale
    f.iloc[CUT:] = rng.normal(size=(len(f) - CUT, f.shape[1]))
    return c, f


def _oof_before_cut_unchanged(cv: object | None) -> None:
    candles, feats = planted_market(1400)
    changed_c, changed_f = _future_changed(candles, feats)
    kw = {"labels_settings": LABELS, "bakeoff_settings": BAKEOFF, "costs": CostSettings(), "timeframe": "1h"}
    a = run_bakeoff(feats, candles, cv=cv, **kw).oof_signal
    b = run_bakeoff(changed_f, changed_c, cv=cv, **kw).oof_signal
    assert a.iloc[CUT:].notna().any()  # the signal exists on both sides of the cut
    np.testing.assert_array_equal(a.iloc[:CUT].to_numpy(), b.iloc[:CUT].to_numpy())


def test_oof_signal_before_t_ignores_every_bar_after_t() -> None:
    _oof_before_cut_unchanged(None)


def test_the_causality_test_fails_when_folds_train_on_the_future() -> None:
    with pytest.raises(AssertionError):
        _oof_before_cut_unchanged(KFold(4))

"""The regime feature family: per asset, the regime id one-hot (after the persistence filter)
and the EnvironmentClassifier's probability of every stable regime id.

Columns ``regime_0 .. regime_{K-1}`` (1.0 while the bar's regime is k, else 0.0; all 0.0 when
unclassified) and ``regime_p_0 .. regime_p_{K-1}``, K = ``max_regimes``. The GP reads the
one-hot columns through its typed ``in_regime`` primitive (``evolution/primitives.py``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from singularity.features.catalogue import FeatureSpec
from singularity.regimes.settings import RegimeSettings

FAMILY = "regime"
ONE_HOT = re.compile(r"^regime_(\d+)$")


def one_hot_name(k: int) -> str:
    return f"regime_{k}"


def regime_catalogue(settings: RegimeSettings) -> list[FeatureSpec]:
    warm = settings.warmup_bars + settings.window
    params = {"window": settings.window, "refit_every": settings.refit_every,
              "min_cluster_size": settings.min_cluster_size, "persistence": settings.persistence}
    specs = [
        FeatureSpec(one_hot_name(k), FAMILY, {**params, "regime": k}, warm,
                    f"1 while the bar's market regime (walk-forward HDBSCAN, stable id) is {k}, else 0")
        for k in range(settings.max_regimes)
    ]
    specs += [
        FeatureSpec(f"regime_p_{k}", FAMILY, {**params, "regime": k}, warm,
                    f"Probability of regime {k} from the walk-forward environment classifier")
        for k in range(settings.max_regimes)
    ]
    return specs


def regime_feature_frames(
    universe: Mapping[str, pd.DataFrame], settings: RegimeSettings, *, pool: Any = None,
    symbols: Sequence[str] | None = None,
) -> tuple[dict[str, pd.DataFrame], list[FeatureSpec], list[str]]:
    """The family's frame per asset (index = that asset's candles), its catalogue, notes.
    Assets are labelled one after the other; each asset's refits go to ``pool``. With
    ``symbols``, only those assets are labelled (the others still feed the cross-asset level)."""
    from singularity.regimes.features import symbol_regime_features
    from singularity.regimes.model import DynamicRegimeModel

    specs = regime_catalogue(settings)
    k_max = settings.max_regimes
    frames: dict[str, pd.DataFrame] = {}
    notes: list[str] = []
    for sym in (universe if symbols is None else symbols):
        candles = universe[sym]
        feats, sym_notes = symbol_regime_features(universe, sym, settings)
        notes += sym_notes
        res = DynamicRegimeModel(settings).label_history(
            feats.to_numpy(), columns=list(feats.columns), pool=pool, name=sym)
        one_hot = (res.labels[:, None] == np.arange(k_max)[None, :]).astype("float64")
        data = np.hstack([one_hot, res.proba])
        frames[sym] = pd.DataFrame(data, index=candles.index, columns=[s.name for s in specs])
    return frames, specs, notes

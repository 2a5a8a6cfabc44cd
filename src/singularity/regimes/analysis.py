"""One symbol's regimes, end to end: features -> walk-forward labels -> names, statistics,
timeline and transition matrix (what ``singularity regimes`` prints and the feature family
stores)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from singularity.errors import DataError
from singularity.regimes.classifier import regime_name, regime_stats
from singularity.regimes.features import symbol_regime_features
from singularity.regimes.model import DynamicRegimeModel, RegimeLabels
from singularity.regimes.settings import RegimeSettings


@dataclass(frozen=True)
class RegimeAnalysis:
    symbol: str
    features: pd.DataFrame
    result: RegimeLabels
    stats: dict[int, dict[str, float]]
    names: dict[int, str]
    notes: tuple[str, ...]

    @property
    def index(self) -> pd.DatetimeIndex:
        return pd.DatetimeIndex(self.features.index)

    def labels(self) -> pd.Series:
        """Stable regime id per bar; NaN where unclassified or warming up."""
        lab = self.result.labels.astype("float64")
        lab[lab < 0] = np.nan
        return pd.Series(lab, index=self.index, name="regime")

    def probability(self) -> pd.Series:
        """The classifier's probability of the bar's regime (NaN where it has none, and where
        the regime came from an older fit's centre that the bar's classifier, trained on a
        window without that regime, does not know)."""
        lab = self.result.labels
        p = np.full(len(lab), np.nan)
        rows = np.flatnonzero(lab >= 0)
        known = self.result.known
        if known is not None:
            rows = rows[known[rows, lab[rows]]]
        p[rows] = self.result.proba[rows, lab[rows]]
        return pd.Series(p, index=self.index, name="probability")

    def transitions(self) -> dict[str, dict[str, float]]:
        """P(next bar's regime | this bar's regime) over labelled consecutive bars."""
        lab = self.result.labels
        a, b = lab[:-1], lab[1:]
        keep = (a >= 0) & (b >= 0)
        ids = sorted(self.stats)
        out: dict[str, dict[str, float]] = {}
        for i in ids:
            rows = keep & (a == i)
            total = int(rows.sum())
            out[str(i)] = {str(j): (round(float((b[rows] == j).sum()) / total, 4) if total else 0.0)
                           for j in ids}
        return out

    def to_json(self, timeframe: str) -> dict[str, Any]:
        labels, prob = self.labels(), self.probability()
        timeline = [
            {"time": ts.isoformat(),
             "regime": None if np.isnan(r) else int(r),
             "probability": None if np.isnan(p) else round(float(p), 4)}
            for ts, r, p in zip(self.index, labels.to_numpy(), prob.to_numpy(), strict=True)
        ]
        return {
            "symbol": self.symbol,
            "timeframe": timeframe,
            "regimes": [{"id": k, "name": self.names[k], "bars": int(v["bars"]),
                         "stats": {n: round(x, 6) for n, x in v.items() if n != "bars"}}
                        for k, v in self.stats.items()],
            "timeline": timeline,
            "transitions": self.transitions(),
            "cross_asset": "cross_corr" in self.features.columns,
            "notes": list(self.notes),
        }


def check_history(symbol: str, bars: int, settings: RegimeSettings) -> None:
    """DataError while ``bars`` are too few for the first regime fit."""
    if bars <= settings.warmup_bars + settings.window:
        raise DataError(
            f"{symbol}: {bars} bars; regimes need more than "
            f"{settings.warmup_bars + settings.window} (feature warm-up {settings.warmup_bars} "
            f"+ window {settings.window})"
        )


def analyse_symbol(
    universe: Mapping[str, pd.DataFrame], symbol: str, settings: RegimeSettings, *,
    pool: Any = None,
) -> RegimeAnalysis:
    """Regimes of ``symbol``; the other assets of ``universe`` feed the cross-asset level."""
    if symbol not in universe:
        raise DataError(f"{symbol}: not in the given assets ({', '.join(universe)})")
    check_history(symbol, len(universe[symbol]), settings)
    feats, notes = symbol_regime_features(universe, symbol, settings)
    result = DynamicRegimeModel(settings).label_history(
        feats.to_numpy(), columns=list(feats.columns), pool=pool, name=symbol)
    if result.fallback_blocks:
        notes.append(f"{symbol}: {result.fallback_blocks} refit(s) found no cluster; "
                     "the previous classifier labelled their bars")
    stats = regime_stats(feats, result.labels)
    names = {k: regime_name(v) for k, v in stats.items()}
    return RegimeAnalysis(symbol, feats, result, stats, names, tuple(notes))

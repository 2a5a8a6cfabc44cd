"""EnvironmentClassifier: regime probabilities from the regime features, and regime names.

The probability model is a small multinomial logistic regression (scikit-learn, L2), fitted
on one HDBSCAN window's standardised features and that fit's labels, then applied to the
bars after the window (walk-forward: never to the bars it learnt from). Its learnt state is
plain arrays (``params``), so it crosses process boundaries and predicts with one matrix
product. It is also the fallback: where a refit finds no cluster (too little history or
structure), the previous classifier labels the bars.

Names come from each regime's statistics relative to the symbol's own history, e.g.
"high volatility, down-trend, mean-reverting".
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class ClassifierParams:
    """Standardisation and softmax weights; ``classes`` are the fit's local cluster ids."""

    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray  # (k, d)
    intercept: np.ndarray  # (k,)
    classes: np.ndarray  # (k,) int


class EnvironmentClassifier:
    """``fit(X, labels)`` then ``predict_proba(X_new)``; labels < 0 (noise) are ignored."""

    def __init__(self, *, c: float = 1.0) -> None:
        self.c = c
        self.params_: ClassifierParams | None = None

    def fit(self, x: np.ndarray, labels: np.ndarray) -> EnvironmentClassifier:
        keep = labels >= 0
        if not keep.any():
            raise ValueError("EnvironmentClassifier.fit: every label is noise (nothing to learn)")
        x, y = x[keep], labels[keep]
        classes = np.unique(y)
        mean = x.mean(axis=0)
        scale = x.std(axis=0)
        scale = np.where(scale > 0, scale, 1.0)
        d = x.shape[1]
        if len(classes) == 1:
            coef, intercept = np.zeros((1, d)), np.zeros(1)
        else:
            from sklearn.linear_model import LogisticRegression
            from threadpoolctl import threadpool_limits

            model = LogisticRegression(C=self.c, max_iter=300)
            with threadpool_limits(1):  # a tiny problem: BLAS threads only add contention
                model.fit((x - mean) / scale, y)
            coef, intercept = model.coef_, model.intercept_
            if len(classes) == 2:  # sklearn's binary form: one row; as a 2-class softmax
                coef = np.vstack([-coef[0] / 2, coef[0] / 2])
                intercept = np.array([-intercept[0] / 2, intercept[0] / 2])
        self.params_ = ClassifierParams(mean, scale, coef, intercept, classes.astype(np.int64))
        return self

    @staticmethod
    def proba(params: ClassifierParams, x: np.ndarray) -> np.ndarray:
        """(n, k) probabilities over ``params.classes``; NaN rows where ``x`` has a NaN."""
        z = ((x - params.mean) / params.scale) @ params.coef.T + params.intercept
        z -= z.max(axis=1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=1, keepdims=True)

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        if self.params_ is None:
            raise RuntimeError("EnvironmentClassifier.predict_proba before fit")
        return self.proba(self.params_, x)


# ----------------------------------------------------------------------------- names


STAT_COLUMNS = {
    "volatility": "log_vol_short",
    "trend": "trend",
    "autocorr": "autocorr",
    "drawdown": "drawdown",
    "efficiency": "efficiency",
}


_MEAN_COLUMNS = ("trend", "efficiency", "autocorr", "drawdown")


def _per_regime(bars: np.ndarray, mean_vol: np.ndarray, median_vol: float,
                means: Mapping[str, np.ndarray]) -> dict[int, dict[str, float]]:
    """``regime_stats``' dict from the per-regime bar counts and means."""
    return {
        int(r): {"bars": int(bars[r]), "volatility": float(mean_vol[r]),
                 "relative_volatility": float(mean_vol[r] / median_vol),
                 **{c: float(means[c][r]) for c in _MEAN_COLUMNS}}
        for r in np.flatnonzero(bars)
    }


def regime_stats(features: pd.DataFrame | Mapping[str, np.ndarray],
                 labels: np.ndarray) -> dict[int, dict[str, float]]:
    """Per regime id: bars, mean per-bar volatility (its realised volatility relative to the
    symbol's median, and absolute), mean trend strength, efficiency, autocorrelation and
    drawdown over the bars labelled with it (NaN values skipped). ``features``: the regime
    feature frame, or its columns as arrays."""
    labels = np.asarray(labels)
    lab = labels >= 0
    if not lab.any():
        return {}
    ids = labels[lab]
    k = int(ids.max()) + 1
    bars = np.bincount(ids, minlength=k)

    def means(v: np.ndarray) -> np.ndarray:
        # per regime, NaN skipped: one pass (bincount sums in row order), not a pass per regime
        v = v[lab]
        nan = np.isnan(v)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.bincount(ids, weights=np.where(nan, 0.0, v), minlength=k) / np.bincount(
                ids, weights=~nan, minlength=k)

    vol = np.exp(np.asarray(features["log_vol_short"], dtype=np.float64))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # every value NaN: NaN
        median_vol = float(np.nanmedian(vol[lab]))
    mean_vol = means(vol)
    return _per_regime(bars, mean_vol, median_vol,
                       {c: means(np.asarray(features[c], dtype=np.float64)) for c in _MEAN_COLUMNS})


class RunningRegimeStats:
    """``regime_stats`` of a growing history at a cost per call that does not grow with it:
    the rows whose labels are final are folded once into kept per-regime sums (and a sorted
    copy of their volatilities for the median); each call adds only the rows after them.

    Exact: ``np.bincount`` adds each row's weight to its bin's one float64 accumulator in row
    order, starting from 0.0. Bins seeded with the kept sums (a leading row per bin weighing
    that sum: 0.0 + s == s, and a kept sum is never -0.0) then fed the later rows in order
    are the accumulators of a bincount over the whole history, bit for bit; the median is
    picked from the merged order as ``np.median`` picks it, ``(a + b) / 2`` for an even
    count. A folded row's label or features must never change afterwards."""

    def __init__(self, columns: list[str]) -> None:
        self.col = {c: columns.index(c) for c in ("log_vol_short", *_MEAN_COLUMNS)}
        self.folded = 0
        """Rows folded into the sums."""
        self.bars = np.zeros(0, dtype=np.int64)
        self.sums: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        """Per column: (sum of the non-NaN values, count of them) per regime id."""
        self.sorted_vol = np.empty(0)
        """Volatilities (not NaN) of the labelled folded rows, sorted."""

    def _add(self, x: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, dict[str, tuple[np.ndarray, np.ndarray]], np.ndarray]:
        lab = labels >= 0
        ids = labels[lab]
        k = max(len(self.bars), int(ids.max()) + 1 if len(ids) else 0)
        bars = np.bincount(ids, minlength=k)
        bars[:len(self.bars)] += self.bars
        seed_ids = np.arange(len(self.bars))
        all_ids = np.concatenate([seed_ids, ids])
        sums = {}
        vol = None
        for c, i in self.col.items():
            v = x[lab, i]
            if c == "log_vol_short":
                v = vol = np.exp(v)
            nan = np.isnan(v)
            s0, n0 = self.sums.get(c, (np.zeros(0), np.zeros(0)))
            sums[c] = (np.bincount(all_ids, weights=np.concatenate([s0, np.where(nan, 0.0, v)]), minlength=k),
                       np.bincount(all_ids, weights=np.concatenate([n0, ~nan]), minlength=k))
        assert vol is not None
        return bars, sums, vol[~np.isnan(vol)]

    def fold(self, x: np.ndarray, labels: np.ndarray) -> None:
        """Fold the next rows (feature rows ``x``, their final ``labels``) into the sums."""
        if not len(labels):
            return
        self.bars, self.sums, vol = self._add(x, labels)
        self.sorted_vol = np.sort(np.concatenate([self.sorted_vol, vol]))
        self.folded += len(labels)

    def stats(self, x: np.ndarray, labels: np.ndarray) -> dict[int, dict[str, float]]:
        """``regime_stats`` of the folded rows followed by these (rows not yet final)."""
        bars, sums, vol = self._add(x, labels)
        if not bars.any():
            return {}
        with np.errstate(invalid="ignore", divide="ignore"):
            means = {c: s / n for c, (s, n) in sums.items()}
        median_vol = _merged_median(self.sorted_vol, np.sort(vol))
        return _per_regime(bars, means["log_vol_short"], median_vol, means)


def _merged_median(a: np.ndarray, b: np.ndarray) -> float:
    """``np.median`` of the union of two sorted arrays (NaN when both are empty), picking
    from the merged order: O(len(b) log len(a)), not a pass over ``a``."""
    n = len(a) + len(b)
    if n == 0:
        return float("nan")
    at_b = np.searchsorted(a, b) + np.arange(len(b))  # merged ranks of b's values

    def kth(r: int) -> float:
        j = int(np.searchsorted(at_b, r))
        return float(b[j]) if j < len(b) and at_b[j] == r else float(a[r - j])

    h = n // 2
    return kth(h) if n % 2 else (kth(h - 1) + kth(h)) / 2


def regime_name(stats: dict[str, float]) -> str:
    """Words for one regime's statistics (thresholds in the units of ``regime_stats``)."""
    rv = stats["relative_volatility"]
    vol = "high volatility" if rv >= 1.25 else "low volatility" if rv <= 0.8 else "normal volatility"
    tr = stats["trend"]
    trend = "up-trend" if tr >= 0.3 else "down-trend" if tr <= -0.3 else "range-bound"
    ac = stats["autocorr"]
    memory = "momentum" if ac >= 0.05 else "mean-reverting" if ac <= -0.05 else "random-walk"
    return f"{vol}, {trend}, {memory}"


def names_of_labels(candles: pd.DataFrame, labels: np.ndarray, settings: object) -> dict[int, str]:
    """Names of the regimes in ``labels`` (a stable id per bar of ``candles``, -1 none) from the
    statistics of ``candles``' own regime features over those bars (``settings``: the
    ``RegimeSettings`` the labels came from). What the forge's explanations call each regime."""
    from singularity.regimes.features import regime_features

    feats = regime_features(candles, settings)  # type: ignore[arg-type]
    return {k: regime_name(v) for k, v in regime_stats(feats, np.asarray(labels)).items()}

"""What the three bake-off classifiers share: explicit handling of warm-up (non-finite) rows.

Rows with any non-finite feature are warm-up rows. ``fit`` drops them (with their labels);
``predict_proba`` returns NaN probabilities for them, so a missing prediction stays visible
instead of being silently imputed.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike
from sklearn.base import BaseEstimator, ClassifierMixin


def finite_rows(X: np.ndarray, chunk: int = 4096) -> np.ndarray:
    """Boolean mask of samples whose every feature (any trailing dims) is finite (in chunks of
    samples: a Transformer's windows would need a boolean copy of all of them at once)."""
    out = np.empty(X.shape[0], dtype=bool)
    for i in range(0, X.shape[0], chunk):
        out[i : i + chunk] = np.isfinite(X[i : i + chunk].reshape(len(X[i : i + chunk]), -1)).all(axis=1)
    return out


def _rows(X: np.ndarray, ok: np.ndarray) -> np.ndarray:
    """``X[ok]``, without the copy when every row is kept (windows are large)."""
    return X if ok.all() else X[ok]


class WarmupAwareClassifier(ClassifierMixin, BaseEstimator):
    """Subclasses implement ``_fit(X, y, w)`` (finite rows only, y encoded 0..k-1, ``w`` the
    sample weights, mean 1) and ``_proba(X)`` (finite rows only) and set nothing else in
    ``fit``."""

    def _fit(self, X: np.ndarray, y: np.ndarray, w: np.ndarray) -> None:
        raise NotImplementedError

    def _proba(self, X: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _as_array(self, X: ArrayLike) -> np.ndarray:
        return np.asarray(X, dtype=np.float64)

    def fit(self, X: ArrayLike, y: ArrayLike, sample_weight: ArrayLike | None = None) -> WarmupAwareClassifier:
        """``sample_weight``: e.g. the labels' average uniqueness (``labels.average_uniqueness``);
        rescaled to mean 1 over the rows fitted; rows of weight 0 are left out."""
        Xa = self._as_array(X)
        ya = np.asarray(y)
        if Xa.shape[0] != ya.shape[0]:
            raise ValueError(f"X has {Xa.shape[0]} rows but y has {ya.shape[0]}")
        w = np.ones(Xa.shape[0]) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
        if w.shape != (Xa.shape[0],) or not np.isfinite(w).all() or (w < 0).any():
            raise ValueError("sample_weight must hold one finite weight >= 0 per row")
        ok = finite_rows(Xa) & np.isfinite(ya.astype(np.float64)) & (w > 0)
        if not ok.any():
            raise ValueError("no row with finite features and label to fit on")
        self.classes_, encoded = np.unique(ya[ok], return_inverse=True)
        self.n_features_in_ = int(np.prod(Xa.shape[1:]))
        # one class only (tiny folds): predict it with certainty rather than crash the learner
        self.single_class_ = len(self.classes_) == 1
        if not self.single_class_:
            self._fit(_rows(Xa, ok), encoded, w[ok] / w[ok].mean())
        return self

    def predict_proba(self, X: ArrayLike) -> np.ndarray:
        Xa = self._as_array(X)
        out = np.full((Xa.shape[0], len(self.classes_)), np.nan)
        ok = finite_rows(Xa)
        if ok.any():
            out[ok] = 1.0 if self.single_class_ else self._proba(_rows(Xa, ok))
        return out

    def predict(self, X: ArrayLike) -> np.ndarray:
        proba = self.predict_proba(X)
        labels = self.classes_[np.argmax(np.nan_to_num(proba, nan=-1.0), axis=1)].astype(np.float64)
        labels[~np.isfinite(proba).all(axis=1)] = np.nan
        return labels

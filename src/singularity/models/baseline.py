"""The baseline: multinomial logistic regression on standardised features."""

from __future__ import annotations

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from singularity.models.base import WarmupAwareClassifier


class LogisticBaseline(WarmupAwareClassifier):
    """StandardScaler + LogisticRegression (lbfgs), fitted on finite rows only."""

    def __init__(self, C: float = 0.01, max_iter: int = 1000) -> None:
        self.C = C
        self.max_iter = max_iter

    def _fit(self, X: np.ndarray, y: np.ndarray, w: np.ndarray) -> None:
        self.pipeline_: Pipeline = make_pipeline(
            StandardScaler(), LogisticRegression(C=self.C, max_iter=self.max_iter)
        )
        self.pipeline_.fit(X.reshape(X.shape[0], -1), y, logisticregression__sample_weight=w)

    def _proba(self, X: np.ndarray) -> np.ndarray:
        return self.pipeline_.predict_proba(X.reshape(X.shape[0], -1))

    def to_dict(self) -> dict[str, object]:
        """The fitted parameters as plain JSON-able data (the saved artifact)."""
        scaler: StandardScaler = self.pipeline_[0]
        lr: LogisticRegression = self.pipeline_[-1]
        return {
            "classes": self.classes_.tolist(),
            "mean": scaler.mean_.tolist(),
            "scale": scaler.scale_.tolist(),
            "coef": lr.coef_.tolist(),
            "intercept": lr.intercept_.tolist(),
        }

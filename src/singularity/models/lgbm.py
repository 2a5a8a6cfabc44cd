"""Gradient-boosted trees through LightGBM's scikit-learn API."""

from __future__ import annotations

import numpy as np

from singularity.models.base import WarmupAwareClassifier


class LightGBMClassifier(WarmupAwareClassifier):
    """A ``lightgbm.LGBMClassifier`` fitted on finite rows only; deterministic for a seed.
    ``n_jobs=1`` inside pool workers (one core each), -1 = every core when alone."""

    def __init__(
        self,
        n_estimators: int = 100,
        learning_rate: float = 0.02,
        num_leaves: int = 7,
        min_child_samples: int = 50,
        subsample: float = 0.8,
        colsample_bytree: float = 0.8,
        reg_lambda: float = 1.0,
        n_jobs: int = -1,
        random_state: int = 0,
    ) -> None:
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.num_leaves = num_leaves
        self.min_child_samples = min_child_samples
        self.subsample = subsample
        self.colsample_bytree = colsample_bytree
        self.reg_lambda = reg_lambda
        self.n_jobs = n_jobs
        self.random_state = random_state

    def _fit(self, X: np.ndarray, y: np.ndarray, w: np.ndarray) -> None:
        import lightgbm as lgb

        self.model_ = lgb.LGBMClassifier(
            n_estimators=self.n_estimators,
            learning_rate=self.learning_rate,
            num_leaves=self.num_leaves,
            min_child_samples=self.min_child_samples,
            subsample=self.subsample,
            subsample_freq=1 if self.subsample < 1 else 0,
            colsample_bytree=self.colsample_bytree,
            reg_lambda=self.reg_lambda,
            n_jobs=self.n_jobs,
            random_state=self.random_state,
            deterministic=True,
            force_row_wise=True,
            verbose=-1,
        )
        self.model_.fit(X.reshape(X.shape[0], -1), y, sample_weight=w)

    def _proba(self, X: np.ndarray) -> np.ndarray:
        return self.model_.predict_proba(X.reshape(X.shape[0], -1))

    def model_text(self) -> str:
        """The booster as LightGBM's text model format (the saved artifact)."""
        return self.model_.booster_.model_to_string()

"""The model bake-off: every model through the same purged walk-forward splits of the
training window, scored out of fold, the winner refitted on the whole window.

Samples: every bar with a complete triple-barrier label whose feature window (the last
``transformer_window`` rows, which the Transformer reads) is finite. All models are fitted and
scored on exactly these samples and splits, so their figures compare like with like.

Scores, out of fold (OOF):
* log-loss over the classes (-1, 0, +1), probabilities clipped at 1e-7 and renormalised;
* balanced accuracy of the most probable class;
* the trading result of the signal d_t = P(+1) - P(-1): target sign(d_t) where
  |d_t| >= ``signal_threshold`` else flat (on a spot market, ``costs.long_only``, a negative
  sign is flat: a spot account cannot be short), decided at the close of bar t, filled at the
  next bar through ``singularity.backtest.kernel.bar_returns`` with fees + slippage and, on
  margin or perpetual markets, the short charge per bar; Sharpe etc. over the bars from the
  first OOF prediction to the end of the window.

Winner rule: among the models whose OOF Sharpe is not below the logistic baseline's (the
baseline always qualifies), the lowest OOF log-loss wins; exact ties go to the simpler model
(order: logistic, lightgbm, transformer). Without the baseline in the line-up every model
qualifies.

The winner's OOF d_t is ``oof_signal``: at bar t it comes from a model fitted only on samples
whose labels ended before t's test fold began (purged, with an embargo gap), so it is causal
and can be handed to the GP as a feature. ``predict_walk_forward`` extends it past the
training window with the refitted winner, which saw none of those bars.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import balanced_accuracy_score

from singularity.config import CostSettings
from singularity.errors import DataError
from singularity.labels import triple_barrier
from singularity.models.cv import PurgedWalkForward
from singularity.models.settings import MODEL_NAMES, BakeoffSettings, LabelSettings
from singularity.timeframes import periods_per_year

CLASSES = np.array([-1.0, 0.0, 1.0])
_PROB_FLOOR = 1e-7


@dataclass(frozen=True)
class ModelScore:
    name: str
    log_loss: float
    balanced_accuracy: float
    sharpe: float
    total_return: float
    max_drawdown: float
    trades: int
    exposure: float
    """Fraction of scored bars with a non-flat target."""
    oof_samples: int
    fit_seconds: float
    """Wall seconds of all of this model's fold fits and predictions (summed over tasks)."""

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


@dataclass
class BakeoffResult:
    scores: list[ModelScore]
    winner: str
    folds: int
    embargo: int
    oof_proba: dict[str, pd.DataFrame]
    """Per model: OOF probabilities, columns -1/0/1, on the input index (NaN without one)."""
    oof_signal: pd.Series
    """The winner's OOF P(up) - P(down) on the input index, NaN where none exists."""
    fitted: dict[str, Any]
    """Every model refitted on all samples of the training window."""
    labels: pd.DataFrame
    feature_columns: list[str]
    window: int
    fingerprint: str
    prior_log_loss: float = float("nan")
    """Reference: OOF log-loss of predicting each fold's training class frequencies."""
    settings: dict[str, Any] = field(default_factory=dict)
    wall_seconds: float = 0.0

    def score(self, name: str) -> ModelScore:
        return next(s for s in self.scores if s.name == name)

    def to_json_dict(self) -> dict[str, Any]:
        """``{"models": [...], "winner": NAME, "folds": N, "embargo": BARS}``."""
        return {
            "models": [s.to_dict() for s in self.scores],
            "winner": self.winner,
            "folds": self.folds,
            "embargo": self.embargo,
        }

    def predict_walk_forward(self, features: pd.DataFrame) -> pd.Series:
        """Signal over ``features`` (the training window and later bars, same columns): the
        OOF signal up to the window's last bar, then the refitted winner's P(up) - P(down),
        from a model that saw only the training window."""
        missing = [c for c in self.feature_columns if c not in features.columns]
        if missing:
            raise DataError(f"features lack the bake-off's columns {missing[:5]}")
        out = self.oof_signal.reindex(features.index)
        later = features.index > self.oof_signal.index[-1]
        if later.any():
            X = design_matrix(features[self.feature_columns], self.winner, self.window)
            rows = np.flatnonzero(later)
            proba = _full_proba(self.fitted[self.winner], X[rows])
            out.iloc[rows] = proba[:, 2] - proba[:, 0]
        return out.rename("oof_signal")


# ----------------------------------------------------------------------------- models


def make_model(name: str, bakeoff: BakeoffSettings, *, n_jobs: int | None, label_horizon: int = 0) -> Any:
    """A fresh estimator for ``name`` configured from the settings; ``label_horizon`` rows
    separate the Transformer's early-stopping hold-out from the rows it trains on."""
    if name == "logistic":
        from singularity.models.baseline import LogisticBaseline

        return LogisticBaseline(C=bakeoff.logistic_c)
    if name == "lightgbm":
        from singularity.models.lgbm import LightGBMClassifier

        return LightGBMClassifier(
            n_estimators=bakeoff.lgbm_n_estimators,
            learning_rate=bakeoff.lgbm_learning_rate,
            num_leaves=bakeoff.lgbm_num_leaves,
            n_jobs=-1 if n_jobs is None else n_jobs,
            random_state=bakeoff.seed,
        )
    if name == "transformer":
        from singularity.models.transformer import TransformerClassifier

        return TransformerClassifier(
            window=bakeoff.transformer_window,
            d_model=bakeoff.transformer_d_model,
            n_heads=bakeoff.transformer_heads,
            n_layers=bakeoff.transformer_layers,
            dim_feedforward=2 * bakeoff.transformer_d_model,
            epochs=bakeoff.transformer_epochs,
            batch_size=bakeoff.transformer_batch_size,
            lr=bakeoff.transformer_lr,
            device=bakeoff.device,
            n_jobs=n_jobs,
            random_state=bakeoff.seed,
            validation_fraction=bakeoff.transformer_validation_fraction,
            validation_gap=label_horizon,
            patience=bakeoff.transformer_patience,
        )
    raise ValueError(f"unknown model {name!r}: expected one of {MODEL_NAMES}")


def design_matrix(features: pd.DataFrame | np.ndarray, name: str, window: int) -> np.ndarray:
    """Model input for every bar: the feature rows, or for the Transformer the windows of the
    last ``window`` rows ending at each bar."""
    F = np.asarray(features, dtype=np.float64)
    if name == "transformer":
        from singularity.models.transformer import past_windows

        return past_windows(F, window)
    return F


def _full_proba(model: Any, X: np.ndarray) -> np.ndarray:
    """predict_proba mapped onto the columns (-1, 0, +1); a class the model never saw gets 0."""
    p = model.predict_proba(X)
    out = np.zeros((X.shape[0], 3))
    for j, c in enumerate(model.classes_):
        out[:, int(np.searchsorted(CLASSES, c))] = p[:, j]
    out[~np.isfinite(p).all(axis=1)] = np.nan
    return out


def _fit_task(task: tuple[Any, ...]) -> tuple[np.ndarray | None, Any, float]:
    """Pool task (module-level, plain data): fit one model on ``train`` rows, predict ``test``
    rows (or return the fitted model when ``test`` is None)."""
    from singularity.labels import average_uniqueness

    handle, name, bakeoff, window, n_jobs, horizon, train, test = task
    arrays = handle.load()
    t0 = time.perf_counter()
    X = design_matrix(arrays["features"], name, window)
    model = make_model(name, bakeoff, n_jobs=n_jobs, label_horizon=horizon)
    # overlapping labels share their information: each weighs its average uniqueness among
    # the fold's training labels (AFML ch. 4)
    weights = average_uniqueness(np.asarray(arrays["label_end"]), train)
    model.fit(X[train], arrays["labels"][train], sample_weight=weights)
    if test is None:
        return None, model, time.perf_counter() - t0
    return _full_proba(model, X[test]), None, time.perf_counter() - t0


def costliest_first(tasks: list[tuple[Any, ...]]) -> list[int]:
    """Positions of ``_fit_task`` tasks, the (likely) longest first: the Transformer before
    LightGBM before the logistic baseline, and within a model the most training rows first.
    Handed to the workers in this order, the short fits fill in at the end instead of one
    worker finishing the last long Transformer fit alone (run in the given order, the whole-
    window refit, the longest, started last)."""
    rank = {n: i for i, n in enumerate(MODEL_NAMES)}  # simplest (cheapest) first
    return sorted(range(len(tasks)), key=lambda i: (-rank.get(tasks[i][1], len(rank)), -len(tasks[i][6])))


# ----------------------------------------------------------------------------- scoring


def oof_log_loss(y: np.ndarray, proba: np.ndarray) -> float:
    p = np.clip(proba, _PROB_FLOOR, 1.0)
    p /= p.sum(axis=1, keepdims=True)
    cols = np.searchsorted(CLASSES, y)
    return float(-np.mean(np.log(p[np.arange(len(y)), cols])))


def signal_target(signal: np.ndarray, threshold: float) -> np.ndarray:
    """sign(d) where |d| >= threshold, else 0; NaN (no prediction) stays NaN = flat."""
    target = np.where(np.abs(signal) >= threshold, np.sign(signal), 0.0)
    target[~np.isfinite(signal)] = np.nan
    return target


def _trading(
    candles: pd.DataFrame, signal: np.ndarray, start: int, *, threshold: float,
    cost_rate: float, fill_on_open: bool, timeframe: str, long_only: bool = False,
    short_rate: float = 0.0,
) -> dict[str, float]:
    from singularity.backtest.kernel import (
        bar_returns,
        count_trades,
        max_drawdown_from_returns,
        sharpe_from_returns,
    )

    target = signal_target(signal, threshold)[start:]
    if long_only:  # NaN (no prediction) stays NaN = flat
        target = np.where(target < 0, 0.0, target)
    r = bar_returns(
        candles["open"].to_numpy(np.float64)[start:], candles["close"].to_numpy(np.float64)[start:],
        np.ascontiguousarray(target), cost_rate, fill_on_open, short_rate,
    )
    return {
        "sharpe": float(sharpe_from_returns(r, periods_per_year(timeframe))),
        "total_return": float(np.prod(1.0 + r) - 1.0),
        "max_drawdown": float(max_drawdown_from_returns(r)),
        "trades": int(count_trades(np.ascontiguousarray(target))),
        "exposure": float(np.mean(np.nan_to_num(target) != 0)),
    }


def choose_winner(scores: list[ModelScore], baseline: str = "logistic") -> str:
    """The documented rule (module docstring)."""
    base = next((s for s in scores if s.name == baseline), None)
    eligible = [s for s in scores if base is None or s is base or s.sharpe >= base.sharpe]
    rank = {n: i for i, n in enumerate(MODEL_NAMES)}
    return min(eligible, key=lambda s: (s.log_loss, rank.get(s.name, len(rank)))).name


# ----------------------------------------------------------------------------- the bake-off


def _valid_samples(F: np.ndarray, labels: pd.DataFrame, window: int) -> np.ndarray:
    finite = np.isfinite(F).all(axis=1).astype(np.int64)
    c = np.concatenate(([0], np.cumsum(finite)))
    idx = np.arange(F.shape[0])
    lo = np.maximum(idx - window + 1, 0)
    window_ok = (c[idx + 1] - c[lo] == window) & (idx >= window - 1)
    return window_ok & labels["complete"].to_numpy()


def run_bakeoff(
    features: pd.DataFrame,
    candles: pd.DataFrame,
    *,
    labels_settings: LabelSettings,
    bakeoff_settings: BakeoffSettings,
    costs: CostSettings,
    timeframe: str,
    pool: Any = None,
    artifacts_dir: Path | None = None,
    cv: Any = None,
) -> BakeoffResult:
    """Hold the bake-off on the TRAINING window (the caller cuts the holdout off first).

    ``features``: causal features on ``candles``' index (non-numeric columns are ignored;
    NaN rows are warm-up). ``pool``: a ``singularity.runtime.pool.WorkerPool`` (models run
    single-threaded in its workers) or None (serial, models may use every core).
    ``artifacts_dir``: where to save every model's artifact (see ``models.artifacts``).
    ``cv``: the splitter (``split(X)`` yielding train and test positions); default the purged,
    embargoed walk-forward of the settings. Tests pass a plain K-fold to show that the
    causality test catches folds that train on the future.
    """
    from singularity.models.artifacts import data_fingerprint, save_artifacts
    from singularity.runtime.pool import share_arrays

    t_start = time.perf_counter()
    if not features.index.equals(candles.index):
        raise DataError("features and candles must share one index (the candles' timestamps)")
    feats = features.select_dtypes(include=["number"]).astype(np.float64)
    feats = feats.loc[:, feats.notna().any()]
    if feats.shape[1] == 0:
        raise DataError("no numeric feature column with any value")
    F = feats.to_numpy()
    n = len(F)
    bo = bakeoff_settings
    window = bo.transformer_window
    labels = triple_barrier(
        candles["close"], vol_window=labels_settings.vol_window, upper_k=labels_settings.upper_k,
        lower_k=labels_settings.lower_k, horizon=labels_settings.horizon,
    )
    valid = _valid_samples(F, labels, window)
    if valid.sum() < 20 * (bo.folds + 1):
        raise DataError(
            f"only {int(valid.sum())} labelled samples after warm-up: too few for {bo.folds} "
            f"walk-forward folds (need {20 * (bo.folds + 1)}); give the bake-off more candles"
        )
    y = labels["label"].to_numpy()
    if cv is None:
        cv = PurgedWalkForward(bo.folds, embargo=bo.embargo_bars, label_end=labels["end"].to_numpy())
    splits = []
    for train, test in cv.split(F):
        train, test = train[valid[train]], test[valid[test]]
        if len(train) == 0 or len(test) == 0:
            raise DataError("a walk-forward fold has no labelled sample: give the bake-off more candles")
        splits.append((train, test))
    full_train = np.flatnonzero(valid)

    n_jobs = (bo.threads or None) if pool is None else 1
    handle = share_arrays({"features": F, "labels": y, "label_end": labels["end"].to_numpy(np.int64)}, pool)
    tasks = [
        (handle, name, bo, window, n_jobs, labels_settings.horizon, train, test)
        for name in bo.models
        for train, test in [*splits, (full_train, None)]
    ]
    results: list[Any]
    if pool is None:
        results = [_fit_task(t) for t in tasks]
    else:  # each task is independent and seeded: the order they run in changes no result
        order = costliest_first(tasks)
        results = [None] * len(tasks)
        for i, r in zip(order, pool.map(_fit_task, [tasks[i] for i in order], chunksize=1), strict=True):
            results[i] = r

    scores: list[ModelScore] = []
    oof_proba: dict[str, pd.DataFrame] = {}
    fitted: dict[str, Any] = {}
    per_model = len(splits) + 1
    first_oof = int(min(test[0] for _, test in splits))
    cost_rate = (costs.fee_bps + costs.slippage_bps) / 1e4
    for m, name in enumerate(bo.models):
        chunk = results[m * per_model : (m + 1) * per_model]
        P = np.full((n, 3), np.nan)
        for (_, test), (proba, _, _) in zip(splits, chunk[:-1], strict=True):
            P[test] = proba
        fitted[name] = chunk[-1][1]
        has = np.isfinite(P).all(axis=1)
        pred = CLASSES[np.argmax(np.nan_to_num(P[has], nan=-1.0), axis=1)]
        trade = _trading(
            candles, P[:, 2] - P[:, 0], first_oof, threshold=bo.signal_threshold,
            cost_rate=cost_rate, fill_on_open=bo.fill_on_open, timeframe=timeframe,
            long_only=costs.long_only, short_rate=costs.short_rate_per_bar(timeframe),
        )
        scores.append(
            ModelScore(
                name=name,
                log_loss=oof_log_loss(y[has], P[has]),
                balanced_accuracy=float(balanced_accuracy_score(y[has], pred)),
                oof_samples=int(has.sum()),
                fit_seconds=float(sum(c[2] for c in chunk[:-1])),
                **trade,
            )
        )
        oof_proba[name] = pd.DataFrame(P, index=features.index, columns=[-1, 0, 1])
    winner = choose_winner(scores)
    win = oof_proba[winner]
    prior = np.full((n, 3), np.nan)
    for train, test in splits:
        prior[test] = [np.mean(y[train] == c) for c in CLASSES]
    has_prior = np.isfinite(prior).all(axis=1)
    result = BakeoffResult(
        scores=scores,
        winner=winner,
        folds=len(splits),
        embargo=bo.embargo_bars,
        oof_proba=oof_proba,
        oof_signal=(win[1] - win[-1]).rename("oof_signal"),
        fitted=fitted,
        labels=labels,
        feature_columns=list(feats.columns),
        window=window,
        fingerprint=data_fingerprint(candles, feats),
        prior_log_loss=oof_log_loss(y[has_prior], prior[has_prior]),
        settings={
            "labels": labels_settings.model_dump(mode="json"),
            "bakeoff": bo.model_dump(mode="json"),
            "costs": costs.model_dump(mode="json"),
            "timeframe": timeframe,
            "train_start": str(candles.index[0]),
            "train_end": str(candles.index[-1]),
        },
    )
    result.wall_seconds = time.perf_counter() - t_start
    if artifacts_dir is not None:
        save_artifacts(result, artifacts_dir)
    return result

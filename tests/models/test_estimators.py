"""The scikit-learn estimator contract of the three bake-off models, warm-up rows, and the
Transformer's causality."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import clone

from singularity.models.baseline import LogisticBaseline
from singularity.models.lgbm import LightGBMClassifier
from singularity.models.transformer import TransformerClassifier, past_windows, resolve_device

WINDOW = 6


def data(n: int = 400, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    F = rng.normal(size=(n, 3))
    y = np.where(F[:, 0] > 0.4, 1.0, np.where(F[:, 0] < -0.4, -1.0, 0.0))
    F[:3] = np.nan  # warm-up rows
    return F, y


def small_models() -> list[tuple[object, bool]]:
    """(estimator, takes windows)."""
    return [
        (LogisticBaseline(), False),
        (LightGBMClassifier(n_estimators=20, n_jobs=1), False),
        (TransformerClassifier(window=WINDOW, d_model=8, n_heads=2, n_layers=1, dim_feedforward=16,
                               epochs=3, batch_size=32, lr=3e-3, device="cpu", n_jobs=1), True),
    ]


@pytest.mark.parametrize("model,windows", small_models(), ids=["logistic", "lightgbm", "transformer"])
def test_estimator_contract(model: object, windows: bool) -> None:
    F, y = data()
    X = past_windows(F, WINDOW) if windows else F
    unfitted = clone(model)
    assert unfitted.get_params() == model.get_params()  # type: ignore[attr-defined]
    fitted = unfitted.fit(X, y)  # type: ignore[attr-defined]
    assert fitted is unfitted
    assert not hasattr(model, "classes_")  # clone left the original untouched
    assert fitted.classes_.tolist() == [-1.0, 0.0, 1.0]
    proba = fitted.predict_proba(X)
    first_ok = WINDOW + 2 if windows else 3  # windows need WINDOW finite rows
    assert np.isnan(proba[:first_ok]).all()
    np.testing.assert_allclose(proba[first_ok:].sum(axis=1), 1.0, atol=1e-6)
    pred = fitted.predict(X)
    assert np.isnan(pred[:first_ok]).all()
    # the planted rule is easy: every model beats chance (about 0.34) by far
    assert np.mean(pred[first_ok:] == y[first_ok:]) > 0.6
    # a clone of a fitted model is unfitted, with the same parameters
    assert not hasattr(clone(fitted), "classes_")


@pytest.mark.parametrize("model,windows", small_models(), ids=["logistic", "lightgbm", "transformer"])
def test_same_seed_same_predictions(model: object, windows: bool) -> None:
    F, y = data()
    X = past_windows(F, WINDOW) if windows else F
    a = clone(model).fit(X, y).predict_proba(X)  # type: ignore[attr-defined]
    b = clone(model).fit(X, y).predict_proba(X)  # type: ignore[attr-defined]
    np.testing.assert_array_equal(a, b)


def test_single_class_training_predicts_it() -> None:
    F, _ = data(50)
    m = LightGBMClassifier(n_estimators=5).fit(F, np.ones(50))
    assert m.classes_.tolist() == [1.0]
    assert np.all(m.predict_proba(F[3:]) == 1.0)


def test_windows_hold_only_the_past() -> None:
    F = np.arange(12, dtype=float).reshape(6, 2)
    W = past_windows(F, 3)
    assert W.shape == (6, 3, 2)
    assert np.isnan(W[1, 0]).all() and W[1, 1:].tolist() == [[0, 1], [2, 3]]
    assert W[5].tolist() == [[6, 7], [8, 9], [10, 11]]


def test_transformer_prediction_at_t_ignores_later_rows() -> None:
    F, y = data(300)
    model = TransformerClassifier(window=WINDOW, d_model=8, n_heads=2, n_layers=1,
                                  dim_feedforward=16, epochs=1, device="cpu", n_jobs=1)
    model.fit(past_windows(F, WINDOW), y)
    t = 150
    changed = F.copy()
    changed[t + 1 :] = np.random.default_rng(9).normal(size=changed[t + 1 :].shape) * 50
    before = model.predict_proba(past_windows(F, WINDOW))
    after = model.predict_proba(past_windows(changed, WINDOW))
    np.testing.assert_array_equal(before[: t + 1], after[: t + 1])
    assert not np.allclose(before[t + 1 :], after[t + 1 :])


def test_transformer_accepts_flattened_windows_and_rejects_bad_shapes() -> None:
    F, y = data(120)
    W = past_windows(F, WINDOW)
    m = TransformerClassifier(window=WINDOW, d_model=8, n_heads=2, n_layers=1, epochs=1,
                              device="cpu", n_jobs=1).fit(W, y)
    np.testing.assert_array_equal(m.predict_proba(W), m.predict_proba(W.reshape(len(W), -1)))
    with pytest.raises(ValueError, match="window"):
        m.predict_proba(np.zeros((4, 7)))
    assert resolve_device("cpu") == "cpu"
    with pytest.raises(ValueError, match="device"):
        resolve_device("tpu")


def test_artifact_payloads() -> None:
    F, y = data(200)
    lgbm = LightGBMClassifier(n_estimators=5, n_jobs=1).fit(F, y)
    assert lgbm.model_text().startswith("tree")
    logit = LogisticBaseline().fit(F, y).to_dict()
    assert len(logit["coef"]) == 3 and len(logit["mean"]) == 3


def test_transformer_early_stopping_keeps_the_best_epoch() -> None:
    F, _ = data(300)
    y = np.random.default_rng(2).choice([-1.0, 0.0, 1.0], size=300)  # nothing to learn: overfits fast
    W = past_windows(F, WINDOW)
    kw = {"window": WINDOW, "d_model": 8, "n_heads": 2, "n_layers": 1, "dim_feedforward": 16,
          "batch_size": 32, "lr": 1e-2, "device": "cpu", "n_jobs": 1, "validation_fraction": 0.3,
          "validation_gap": 5}
    long = TransformerClassifier(epochs=8, patience=2, **kw).fit(W, y)
    b = long.best_epoch_
    assert b == int(np.argmin(long.val_loss_)) + 1
    # stopped after 2 epochs without improvement
    assert b < 6 and len(long.val_loss_) == b + 2
    # the kept weights are exactly those after epoch b: a run of b epochs predicts the same
    short = TransformerClassifier(epochs=b, patience=99, **kw).fit(W, y)
    np.testing.assert_array_equal(long.predict_proba(W), short.predict_proba(W))


def test_transformer_runs_deterministic_algorithms_on_cuda() -> None:
    import os

    import torch

    from singularity.models.transformer import deterministic_on

    before = torch.are_deterministic_algorithms_enabled()
    with deterministic_on("cpu"):
        assert torch.are_deterministic_algorithms_enabled() == before
    with deterministic_on("cuda"):  # sets the flags; needs no GPU to do so
        assert torch.are_deterministic_algorithms_enabled()
        assert torch.backends.cudnn.deterministic and not torch.backends.cudnn.benchmark
        assert os.environ["CUBLAS_WORKSPACE_CONFIG"] in (":4096:8", ":16:8")
    assert torch.are_deterministic_algorithms_enabled() == before

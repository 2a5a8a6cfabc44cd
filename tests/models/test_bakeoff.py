"""The bake-off end to end on a synthetic market with a planted signal, the winner rule, the
scoring helpers and the artifacts."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from planted import planted_market

from singularity.config import CostSettings
from singularity.errors import DataError
from singularity.models.bakeoff import (
    BakeoffResult,
    ModelScore,
    choose_winner,
    oof_log_loss,
    run_bakeoff,
    signal_target,
)
from singularity.models.settings import BakeoffSettings, LabelSettings

LABELS = LabelSettings(vol_window=24, upper_k=2.0, lower_k=2.0, horizon=12)
BAKEOFF = BakeoffSettings(
    folds=3, embargo_bars=12, transformer_window=8, transformer_epochs=2, transformer_d_model=16,
    transformer_heads=2, transformer_layers=1, transformer_batch_size=32, transformer_lr=3e-3,
    lgbm_n_estimators=40, threads=1, device="cpu",
)


@pytest.fixture(scope="module")
def outcome(tmp_path_factory: pytest.TempPathFactory) -> tuple[BakeoffResult, pd.DataFrame, pd.DataFrame, Path]:
    candles, feats = planted_market()
    art = tmp_path_factory.mktemp("art")
    res = run_bakeoff(feats.iloc[:1400], candles.iloc[:1400], labels_settings=LABELS,
                      bakeoff_settings=BAKEOFF, costs=CostSettings(), timeframe="1h", artifacts_dir=art)
    return res, candles, feats, art


def test_every_model_finds_the_planted_signal(outcome: tuple) -> None:
    res, _, feats, _ = outcome
    assert [s.name for s in res.scores] == ["logistic", "lightgbm", "transformer"]
    for s in res.scores:
        # three classes: chance is about 1/3 balanced accuracy and log(3) = 1.0986 log-loss
        assert s.balanced_accuracy > 0.40, s
        assert s.log_loss < res.prior_log_loss - 0.05, s  # beats the class frequencies
        assert s.sharpe > 1.0, s  # after fees and slippage
        assert s.oof_samples == res.scores[0].oof_samples
    assert res.winner in {"logistic", "lightgbm", "transformer"}
    assert res.winner == choose_winner(res.scores)
    sig = res.oof_signal.dropna()
    assert np.corrcoef(sig, feats["x"].loc[sig.index])[0, 1] > 0.5


def test_json_shape(outcome: tuple) -> None:
    res = outcome[0]
    d = json.loads(json.dumps(res.to_json_dict()))
    assert set(d) == {"models", "winner", "folds", "embargo"}
    assert (d["folds"], d["embargo"]) == (3, 12)
    assert {"name", "log_loss", "balanced_accuracy", "sharpe"} <= set(d["models"][0])


def test_oof_signal_is_causal_and_only_out_of_fold(outcome: tuple) -> None:
    res, _, feats, _ = outcome
    sig = res.oof_signal
    assert sig.index.equals(feats.index[:1400])
    # 3 walk-forward folds of 1400 // 4 = 350 bars: nothing before the first test fold
    assert sig.iloc[:350].isna().all()
    assert sig.iloc[350:].notna().mean() > 0.95  # only incomplete labels at the end lack one
    assert sig.dropna().between(-1, 1).all()


def test_walk_forward_prediction_past_the_window(outcome: tuple) -> None:
    res, _, feats, _ = outcome
    wf = res.predict_walk_forward(feats)
    np.testing.assert_array_equal(wf.iloc[:1400].to_numpy(), res.oof_signal.to_numpy())
    later = wf.iloc[1400:]
    assert later.notna().all()
    # the refitted winner saw none of these bars and still tracks the planted feature
    assert np.corrcoef(later, feats["x"].iloc[1400:])[0, 1] > 0.5
    # causal: changing bars after t leaves the prediction at t alone
    changed = feats.copy()
    changed.iloc[1500:] = 0.0
    np.testing.assert_array_equal(res.predict_walk_forward(changed).iloc[:1500], wf.iloc[:1500])


def test_artifacts_on_disk(outcome: tuple) -> None:
    res, _, _, art = outcome
    summary = json.loads((art / "bakeoff.json").read_text())
    assert summary["winner"] == res.winner and len(summary["fingerprint"]) == 64
    assert (art / "lightgbm" / "model.txt").read_text().startswith("tree")
    state = torch.load(art / "transformer" / "model.pt", weights_only=True)
    assert "state_dict" in state and state["mean"].shape == (2,)
    logit = json.loads((art / "logistic" / "model.json").read_text())
    assert len(logit["coef"]) == 3
    for name in ("logistic", "lightgbm", "transformer"):
        s = json.loads((art / name / "settings.json").read_text())
        assert s["fingerprint"] == res.fingerprint and s["feature_columns"] == ["x", "noise"]
    assert not list(art.rglob("*.tmp"))


def score(name: str, log_loss: float, sharpe: float) -> ModelScore:
    return ModelScore(name, log_loss, 0.5, sharpe, 0.0, 0.0, 0, 0.0, 10, 0.0)


def test_winner_rule() -> None:
    # the transformer has the best log-loss but a worse Sharpe than the baseline: excluded
    scores = [score("logistic", 1.00, 0.5), score("lightgbm", 0.99, 0.6), score("transformer", 0.90, 0.4)]
    assert choose_winner(scores) == "lightgbm"
    # a tie on log-loss goes to the simpler model
    scores = [score("logistic", 0.95, 0.5), score("lightgbm", 0.95, 0.9)]
    assert choose_winner(scores) == "logistic"
    # nobody beats the baseline's Sharpe: the baseline wins
    assert choose_winner([score("logistic", 1.0, 2.0), score("lightgbm", 0.5, 1.0)]) == "logistic"
    # without the baseline, the best log-loss
    assert choose_winner([score("lightgbm", 0.8, -1.0), score("transformer", 0.9, 3.0)]) == "lightgbm"


def test_scoring_helpers() -> None:
    y = np.array([-1.0, 0.0, 1.0])
    p = np.array([[0.5, 0.25, 0.25], [0.25, 0.5, 0.25], [0.0, 0.0, 1.0]])
    # -(ln .5 + ln .5 + ln 1) / 3; the zeros are floored at 1e-7 before renormalising
    assert oof_log_loss(y, p) == pytest.approx(2 * np.log(2) / 3, abs=1e-6)
    t = signal_target(np.array([0.3, -0.05, -0.2, np.nan, 0.1]), 0.1)
    np.testing.assert_array_equal(t, [1.0, 0.0, -1.0, np.nan, 1.0])


def test_bad_inputs() -> None:
    candles, feats = planted_market(300)
    kw = {"labels_settings": LABELS, "bakeoff_settings": BAKEOFF, "costs": CostSettings(), "timeframe": "1h"}
    with pytest.raises(DataError, match="one index"):
        run_bakeoff(feats.iloc[1:], candles, **kw)
    with pytest.raises(DataError, match="too few"):
        run_bakeoff(feats.iloc[:100], candles.iloc[:100], **kw)
    with pytest.raises(DataError, match="numeric feature"):
        run_bakeoff(feats * np.nan, candles, **kw)


def test_no_edge_no_skill() -> None:
    # features unrelated to the market: out-of-fold skill stays near chance
    candles, feats = planted_market(seed=1)
    noise = pd.DataFrame(np.random.default_rng(5).normal(size=(len(feats), 2)), index=feats.index,
                         columns=["a", "b"])
    quick = BAKEOFF.model_copy(update={"models": ("logistic", "lightgbm")})
    res = run_bakeoff(noise, candles, labels_settings=LABELS, bakeoff_settings=quick,
                      costs=CostSettings(), timeframe="1h")
    for s in res.scores:
        assert 0.28 < s.balanced_accuracy < 0.39, s


@pytest.mark.slow
def test_pool_gives_the_serial_result() -> None:
    # models fitted in single-threaded loky workers: the same figures as in-process
    from singularity.runtime.pool import WorkerPool

    candles, feats = planted_market(900)
    quick = BAKEOFF.model_copy(update={"models": ("logistic", "lightgbm")})
    kw = {"labels_settings": LABELS, "bakeoff_settings": quick, "costs": CostSettings(), "timeframe": "1h"}
    serial = run_bakeoff(feats, candles, **kw)
    with WorkerPool(2) as pool:
        pooled = run_bakeoff(feats, candles, pool=pool, **kw)
    assert [s.log_loss for s in pooled.scores] == [s.log_loss for s in serial.scores]
    pd.testing.assert_series_equal(pooled.oof_signal, serial.oof_signal)


def test_trading_score_is_long_only_on_spot(outcome: tuple) -> None:
    """A spot account cannot be short: the bake-off scores the signal long-only there (the
    fixture's costs are the default spot market), as the kernel, the GP and the gauntlet do."""
    from singularity.backtest.kernel import count_trades
    from singularity.backtest.runner import net_returns
    from singularity.models.bakeoff import _trading

    res, candles, _, _ = outcome
    c = candles.iloc[:1400]
    cost = (CostSettings().fee_bps + CostSettings().slippage_bps) / 1e4
    for s in res.scores:
        p = res.oof_proba[s.name].to_numpy()
        start = int(np.flatnonzero(np.isfinite(p).all(axis=1))[0])
        target = signal_target(p[:, 2] - p[:, 0], BAKEOFF.signal_threshold)[start:]
        assert (target < 0).any()  # the models do call for shorts
        long_only = np.where(target < 0, 0.0, target)
        assert s.exposure == pytest.approx(float(np.mean(np.nan_to_num(long_only) != 0)), abs=1e-12)
        assert s.trades == count_trades(np.ascontiguousarray(long_only))
        r = net_returns(c.iloc[start:], long_only, cost)
        assert s.total_return == pytest.approx(float(np.prod(1.0 + r) - 1.0), abs=1e-12)
    # on a margin market the shorts stay and pay the short charge per bar
    margin = CostSettings(market="margin", short_rate_bps_per_day=240.0)
    sig = np.full(len(c), -1.0)
    got = _trading(c, sig, 10, threshold=0.1, cost_rate=cost, fill_on_open=True, timeframe="1h",
                   long_only=margin.long_only, short_rate=margin.short_rate_per_bar("1h"))
    r = net_returns(c.iloc[10:], sig[10:], cost, short_rate=1e-3)
    assert got["total_return"] == pytest.approx(float(np.prod(1.0 + r) - 1.0), abs=1e-12)
    assert got["exposure"] == 1.0


def test_pooled_fits_go_out_costliest_first() -> None:
    # run in line-up order, the Transformer's whole-window refit (the longest fit) started last
    # and one worker finished it alone; results are put back in line-up order whatever this is
    from singularity.models.bakeoff import costliest_first

    tasks = [(None, name, None, 8, 1, 24, np.arange(n), None if n == 30 else np.arange(3))
             for name in ("logistic", "lightgbm", "transformer") for n in (10, 20, 30)]
    assert [(tasks[i][1], len(tasks[i][6])) for i in costliest_first(tasks)] == [
        ("transformer", 30), ("transformer", 20), ("transformer", 10), ("lightgbm", 30), ("lightgbm", 20),
        ("lightgbm", 10), ("logistic", 30), ("logistic", 20), ("logistic", 10)]

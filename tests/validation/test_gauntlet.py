"""The gauntlet on a toy rule family (position = sign of one input column) whose search
simply picks the best column: noise must be rejected, a planted edge must pass."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from singularity.validation.gauntlet import (
    GauntletContext,
    holdout_summary,
    permute_bars,
    run_gauntlet,
    run_holdout_looks,
    summary,
    trade,
)
from singularity.validation.settings import GauntletSettings
from singularity.validation.stats import per_period_sharpe

COST = 0.0005  # 5 bps total per side: fee 3 + slippage 2


def positions(expr: str, inputs: pd.DataFrame) -> np.ndarray:
    """``xN``: sign of input N; ``maW:xN``: sign of its trailing W-bar mean (NaN, flat, until
    W bars are seen: a rule with memory, as the GP's rolling operators)."""
    if expr.startswith("ma"):
        w, col = expr[2:].split(":")
        return np.nan_to_num(np.sign(inputs[col].rolling(int(w)).mean().to_numpy()))
    return np.sign(inputs[expr].to_numpy())


def search(candles: pd.DataFrame, inputs: pd.DataFrame, seed: int) -> tuple[str, float]:
    scores = {c: per_period_sharpe(trade(candles, positions(c, inputs), COST)) for c in inputs.columns}
    best = max(sorted(scores), key=scores.__getitem__)
    return best, scores[best]


def market(n: int, seed: int, edge: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Random-walk candles and 12 random inputs; with ``edge`` > 0 input ``x0`` at bar t
    predicts the sign of bar t+1's return (bars move from open to close; open = prev close)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 12))
    r = rng.normal(0.0, 0.01, n)
    r[1:] += edge * 0.01 * np.sign(x[:-1, 0])
    close = 100 * np.exp(np.cumsum(r))
    open_ = np.concatenate([[100.0], close[:-1]])
    idx = pd.date_range("2024-01-01", periods=n, freq="1h", tz="UTC", name="timestamp")
    candles = pd.DataFrame({"open": open_, "high": np.maximum(open_, close) * 1.001,
                            "low": np.minimum(open_, close) * 0.999, "close": close,
                            "volume": 1.0}, index=idx)
    return candles, pd.DataFrame(x, index=idx, columns=[f"x{i}" for i in range(12)])


def context(candles: pd.DataFrame, inputs: pd.DataFrame, **over) -> GauntletContext:
    split = int(len(candles) * 0.75)
    tc, tx = candles.iloc[:split], inputs.iloc[:split]
    trials = np.array([per_period_sharpe(trade(tc, positions(c, tx), COST)) for c in inputs.columns])
    top = np.column_stack([trade(tc, positions(c, tx), COST) for c in inputs.columns])
    settings = GauntletSettings(permutation_runs=100, noise_runs=5, search_null_runs=3, **over)
    return GauntletContext(
        train_candles=tc, train_inputs=tx, holdout_candles=candles.iloc[split:],
        holdout_inputs=inputs.iloc[split:], timeframe="1h", fee_bps=3.0, slippage_bps=2.0,
        settings=settings, positions=positions, n_trials=len(inputs.columns),
        trial_sharpe_variance=float(np.var(trials, ddof=1)), trial_returns=top, search=search, seed=1)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_noise_is_rejected(seed: int) -> None:
    candles, inputs = market(4000, seed, edge=0.0)
    ctx = context(candles, inputs)
    best, _ = search(ctx.train_candles, ctx.train_inputs, 0)
    report = run_gauntlet(ctx, best)
    assert not report.passed
    assert {v.test for v in report.verdicts} == set(GauntletSettings().tests)
    # which gates fail, not only that one does: every test of skill rejects a noise winner
    failed = {v.test for v in report.failures}
    assert {"holdout", "walk_forward", "permutation", "deflated_sharpe", "cost_stress"} <= failed, failed
    by = {v.test: v.figures for v in report.verdicts}
    assert by["deflated_sharpe"]["dsr"] < 0.95 and by["holdout"]["sharpe"] < 0.5


def test_planted_edge_passes_every_test() -> None:
    candles, inputs = market(4000, 7, edge=0.3)
    ctx = context(candles, inputs)
    best, _ = search(ctx.train_candles, ctx.train_inputs, 0)
    assert best == "x0"
    report = run_gauntlet(ctx, best)
    assert report.passed, [v.detail for v in report.failures]
    by = {v.test: v for v in report.verdicts}
    assert by["holdout"].figures["sharpe"] > 5
    dsr = by["deflated_sharpe"].figures
    assert dsr["trials"] == 12 and dsr["variance"] == "null"
    assert dsr["sr_variance"] == pytest.approx(1 / (len(ctx.train_candles) - 1))
    assert 0.0 <= dsr["dsr_trials_variance"] <= 1.0  # reported beside the deciding one
    assert by["permutation"].figures["p_positions"] == pytest.approx(1 / 101, abs=1e-4)


def test_cost_stress_fails_when_costs_eat_the_edge() -> None:
    candles, inputs = market(4000, 7, edge=0.3)
    ctx = context(candles, inputs, cost_multipliers=(200.0,))
    v = run_gauntlet(ctx, "x0", tests=("cost_stress",)).verdicts[0]
    assert not v.passed and v.figures["sharpe_x200"] < 0


def test_unknown_test_name() -> None:
    candles, inputs = market(500, 0, edge=0.0)
    with pytest.raises(ValueError, match="unknown gauntlet tests"):
        run_gauntlet(context(candles, inputs), "x0", tests=("astrology",))


def test_permute_bars_keeps_bar_shapes() -> None:
    candles, _ = market(300, 3, edge=0.0)
    p = permute_bars(candles, np.random.default_rng(0))
    assert (p["high"] >= p[["open", "close"]].max(axis=1) - 1e-9).all()
    assert (p["low"] <= p[["open", "close"]].min(axis=1) + 1e-9).all()
    np.testing.assert_allclose(np.sort(p["close"] / p["open"]), np.sort(candles["close"] / candles["open"]))


def test_holdout_figures_are_one_causal_run_sliced() -> None:
    """The holdout is the last part of ONE run over the whole window: a rule with a 200-bar
    memory trades from the holdout's first bar, with the position it already held."""
    candles, inputs = market(4000, 7, edge=0.3)
    ctx = context(candles, inputs)
    n = len(ctx.holdout_candles)
    full_target = positions("ma200:x0", inputs)
    expected = summary(trade(candles, full_target, COST)[-n:], full_target[-n:], 1.0 * 24 * 365)
    got = run_gauntlet(ctx, "ma200:x0", tests=("holdout",)).verdicts[0].figures
    assert got == expected == holdout_summary(ctx, "ma200:x0")
    restarted = positions("ma200:x0", ctx.holdout_inputs)
    assert (restarted[:199] == 0).all() and (full_target[-n:][:199] != 0).any()
    assert got != summary(trade(ctx.holdout_candles, restarted, COST), restarted, 24 * 365)


def test_k_holdout_looks_are_holm_corrected_and_counted_as_trials() -> None:
    candles, inputs = market(4000, 7, edge=0.3)
    one = run_holdout_looks(context(candles, inputs), ["x0"])[0]
    ctx = context(candles, inputs)
    reps = run_holdout_looks(ctx, ["x0", "x3", "x5"])
    assert ctx.holdout_looks == 3
    raw = [next(v for v in r.verdicts if v.test == "permutation").figures["p_positions_raw"] for r in reps]
    adj = [next(v for v in r.verdicts if v.test == "permutation").figures["p_positions"] for r in reps]
    order = np.argsort(raw, kind="stable")
    expect = np.maximum.accumulate([min(1.0, (3 - i) * raw[j]) for i, j in enumerate(order)])
    np.testing.assert_allclose(np.asarray(adj)[order], expect, atol=1e-4)
    dsr1 = next(v for v in one.verdicts if v.test == "deflated_sharpe").figures
    dsr3 = next(v for v in reps[0].verdicts if v.test == "deflated_sharpe").figures
    assert (dsr1["trials_used"], dsr3["trials_used"], dsr3["holdout_looks"]) == (12, 14, 3)
    assert dsr3["dsr"] <= dsr1["dsr"]


def test_the_gauntlet_charges_shorts_per_bar() -> None:
    candles, inputs = market(4000, 7, edge=0.3)
    free = run_gauntlet(context(candles, inputs), "x0", tests=("holdout",)).verdicts[0].figures
    ctx = context(candles, inputs)
    ctx.short_rate = 2e-4
    charged = run_gauntlet(ctx, "x0", tests=("holdout",)).verdicts[0].figures
    n = len(ctx.holdout_candles)
    target = positions("x0", inputs)
    r = trade(candles, target, COST, 2e-4)[-n:]
    assert charged == summary(r, target[-n:], 24 * 365) and charged["sharpe"] < free["sharpe"]


def test_the_dsr_decides_with_the_effective_trial_count_by_default() -> None:
    """The default N (decided from the power curve, README): the estimated independent trials;
    the raw count is still reported and can decide (``dsr_trials = 'raw'``)."""
    candles, inputs = market(2000, 7, edge=0.1)
    for mode, used in (("effective", 40), ("raw", 5000)):
        ctx = context(candles, inputs, **({} if mode == "effective" else {"dsr_trials": "raw"}))
        ctx.n_trials, ctx.effective_trials = 5000, 40
        v = run_gauntlet(ctx, "x0", tests=("deflated_sharpe",)).verdicts[0]
        f = v.figures
        assert (f["trials_mode"], f["trials_used"], f["trials"], f["effective_trials"]) == (mode, used, 5000, 40)
        assert f["dsr"] == f["dsr_effective" if mode == "effective" else "dsr_raw_trials"]
        assert f["dsr_effective"] > f["dsr_raw_trials"]

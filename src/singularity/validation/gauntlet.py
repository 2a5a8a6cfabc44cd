"""The validation gauntlet. Each test is a function ``(ctx, expression) -> Verdict``.

The gauntlet is the only code that opens the holdout. It reaches the strategy and the search
only through two callables in the context, so it works for any kind of rule:

* ``positions(expression, inputs) -> target array`` re-runs a frozen rule on new inputs;
* ``search(candles, inputs, seed) -> (expression, fitness)`` re-runs the search at a small
  budget (walk-forward and the whole-search permutation null).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from singularity.backtest.kernel import count_trades, max_drawdown_from_returns, sharpe_from_returns
from singularity.backtest.runner import net_returns as trade
from singularity.timeframes import periods_per_year
from singularity.validation.settings import GauntletSettings
from singularity.validation.stats import (
    block_permutation_pvalue,
    deflated_sharpe,
    effective_trials,
    pbo_cscv,
)

PositionsFn = Callable[[str, pd.DataFrame], np.ndarray]
SearchFn = Callable[[pd.DataFrame, pd.DataFrame, int], tuple[str, float]]
InputsFn = Callable[[pd.DataFrame], pd.DataFrame]


@dataclass(frozen=True)
class Verdict:
    test: str
    passed: bool
    figures: dict[str, Any]
    detail: str
    """One line: what was measured against what threshold."""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class GauntletContext:
    train_candles: pd.DataFrame
    train_inputs: pd.DataFrame
    holdout_candles: pd.DataFrame
    holdout_inputs: pd.DataFrame
    timeframe: str
    fee_bps: float
    slippage_bps: float
    settings: GauntletSettings
    positions: PositionsFn
    n_trials: int
    """Distinct trees evaluated by the search that produced the candidate."""
    trial_sharpe_variance: float
    """Variance of the trials' PER-PERIOD Sharpe ratios (it sets the deflation benchmark)."""
    top_returns: np.ndarray
    """Training-window per-bar returns of the top candidates, bars × candidates (for PBO)."""
    search: SearchFn | None = None
    recompute_inputs: InputsFn | None = None
    """Inputs from perturbed ``full_candles``; None = the noise test keeps the inputs."""
    full_candles: pd.DataFrame | None = None
    """Contiguous candles from the training start to the holdout end (embargo included);
    None = training and holdout candles joined."""
    seed: int = 0
    _cache: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def cost_rate(self) -> float:
        return (self.fee_bps + self.slippage_bps) / 1e4

    @property
    def ppy(self) -> float:
        return periods_per_year(self.timeframe)


def annual_sharpe(r: np.ndarray, ppy: float) -> float:
    return float(sharpe_from_returns(np.asarray(r, dtype=np.float64), ppy))


def summary(r: np.ndarray, target: np.ndarray, ppy: float) -> dict[str, float]:
    return {
        "sharpe": round(annual_sharpe(r, ppy), 4),
        "total_return": round(float(np.prod(1.0 + r) - 1.0), 6),
        "max_drawdown": round(float(max_drawdown_from_returns(r)), 6),
        "trades": int(count_trades(np.nan_to_num(np.asarray(target, dtype=np.float64)))),
        "bars": int(r.size),
    }


def _holdout_target(ctx: GauntletContext, expr: str) -> np.ndarray:
    key = f"holdout:{expr}"
    if key not in ctx._cache:
        ctx._cache[key] = np.asarray(ctx.positions(expr, ctx.holdout_inputs), dtype=np.float64)
    return ctx._cache[key]


def holdout_test(ctx: GauntletContext, expr: str) -> Verdict:
    target = _holdout_target(ctx, expr)
    r = trade(ctx.holdout_candles, target, ctx.cost_rate)
    fig = summary(r, target, ctx.ppy)
    ok = fig["sharpe"] >= ctx.settings.min_holdout_sharpe
    return Verdict("holdout", ok, fig,
                   f"holdout Sharpe {fig['sharpe']:.2f} {'≥' if ok else '<'} {ctx.settings.min_holdout_sharpe:.2f} net of costs")


def trades_drawdown_test(ctx: GauntletContext, expr: str) -> Verdict:
    target = _holdout_target(ctx, expr)
    fig = summary(trade(ctx.holdout_candles, target, ctx.cost_rate), target, ctx.ppy)
    s = ctx.settings
    ok_t, ok_d = fig["trades"] >= s.min_trades, fig["max_drawdown"] <= s.max_drawdown
    return Verdict("trades_drawdown", ok_t and ok_d,
                   {"trades": fig["trades"], "max_drawdown": fig["max_drawdown"]},
                   f"{fig['trades']} trades (min {s.min_trades}), max drawdown "
                   f"{fig['max_drawdown']:.1%} (limit {s.max_drawdown:.0%})")


def cost_stress_test(ctx: GauntletContext, expr: str) -> Verdict:
    target = _holdout_target(ctx, expr)
    fig: dict[str, Any] = {}
    for m in ctx.settings.cost_multipliers:
        fig[f"sharpe_x{m:g}"] = round(annual_sharpe(trade(ctx.holdout_candles, target, ctx.cost_rate * m), ctx.ppy), 4)
    first = ctx.settings.cost_multipliers[0]
    ok = fig[f"sharpe_x{first:g}"] > ctx.settings.min_stressed_sharpe
    parts = ", ".join(f"×{k.split('_x')[1]}: {v:.2f}" for k, v in fig.items())
    return Verdict("cost_stress", ok, fig, f"holdout Sharpe with costs {parts} (×{first:g} must stay > "
                   f"{ctx.settings.min_stressed_sharpe:g})")


def permutation_test(ctx: GauntletContext, expr: str) -> Verdict:
    s = ctx.settings
    target = _holdout_target(ctx, expr)
    c = ctx.holdout_candles
    # Returns each decision earns: target[t] is held over bar t+1 (open fill), so pair them.
    fwd = np.zeros(len(c))
    fwd[:-1] = c["close"].to_numpy()[1:] / c["open"].to_numpy()[1:] - 1.0
    _, p = block_permutation_pvalue(target, fwd, n_permutations=s.permutation_runs,
                                      block=s.permutation_block, seed=ctx.seed)
    fig: dict[str, Any] = {"p_positions": round(p, 4)}
    ok = p <= s.max_p_value
    if ctx.search is not None and s.search_null_runs > 0:
        real_best, null_best = _search_null(ctx)
        p_search = (1 + sum(b >= real_best for b in null_best)) / (1 + len(null_best))
        fig.update(p_search=round(p_search, 4), search_best=round(real_best, 4),
                   null_best=[round(b, 4) for b in null_best])
        # With few null runs the smallest attainable p is 1/(n+1): require the real search to
        # beat every null run.
        ok = ok and all(real_best > b for b in null_best)
    return Verdict("permutation", ok, fig,
                   f"positions vs block-permuted returns p={p:.3f} (max {s.max_p_value:g})"
                   + (f"; search beat {sum(real_best > b for b in null_best)}/{len(null_best)} permuted-bar searches"
                      if "p_search" in fig else ""))


def _search_null(ctx: GauntletContext) -> tuple[float, list[float]]:
    """Best fitness of the search on the real training bars and on bar-permuted copies (the
    same for every candidate of a run: computed once)."""
    if "search_null" not in ctx._cache:
        search = ctx.search
        assert search is not None
        _, real_best = search(ctx.train_candles, ctx.train_inputs, ctx.seed)
        rng = np.random.default_rng(ctx.seed + 1)
        null_best = [search(permute_bars(ctx.train_candles, rng), ctx.train_inputs, ctx.seed + 1 + i)[1]
                     for i in range(ctx.settings.search_null_runs)]
        ctx._cache["search_null"] = (real_best, null_best)
    return ctx._cache["search_null"]


def permute_bars(candles: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    """Candles rebuilt from the same bars in a random order: each bar keeps its shape
    relative to the previous close, the path (and any edge in its order) is destroyed."""
    c = candles
    prev_close = np.concatenate([[c["open"].iloc[0]], c["close"].to_numpy()[:-1]])
    rel = c[["open", "high", "low", "close"]].to_numpy() / prev_close[:, None]
    order = rng.permutation(len(c))
    rel = rel[order]
    closes = c["open"].iloc[0] * np.cumprod(rel[:, 3])
    prev = np.concatenate([[c["open"].iloc[0]], closes[:-1]])
    out = pd.DataFrame(rel * prev[:, None], index=c.index, columns=["open", "high", "low", "close"])
    out["volume"] = c["volume"].to_numpy()[order]
    return out


def noise_test(ctx: GauntletContext, expr: str) -> Verdict:
    s = ctx.settings
    rng = np.random.default_rng(ctx.seed + 7)
    full = ctx.full_candles if ctx.full_candles is not None else pd.concat([ctx.train_candles, ctx.holdout_candles])
    logret = np.diff(np.log(full["close"].to_numpy()), prepend=np.nan)
    vol = pd.Series(logret).rolling(24, min_periods=2).std().bfill().fillna(0.0).to_numpy()
    n_hold = len(ctx.holdout_candles)
    profitable = 0
    for _ in range(s.noise_runs):
        mult = np.exp(rng.normal(0.0, 1.0, len(full)) * s.noise_scale * vol)
        noisy = full.copy()
        for col in ("open", "high", "low", "close"):
            noisy[col] = full[col].to_numpy() * mult
        inputs = (ctx.recompute_inputs(noisy).iloc[-n_hold:] if ctx.recompute_inputs is not None
                  else ctx.holdout_inputs)
        target = np.asarray(ctx.positions(expr, inputs), dtype=np.float64)
        r = trade(noisy.iloc[-n_hold:], target, ctx.cost_rate)
        profitable += float(np.prod(1.0 + r)) > 1.0
    share_noise = profitable / s.noise_runs
    # Block bootstrap of the candidate's own holdout returns: is the edge spread over time?
    target = _holdout_target(ctx, expr)
    r = trade(ctx.holdout_candles, target, ctx.cost_rate)
    blocks = max(1, math.ceil(r.size / s.bootstrap_block))
    starts = rng.integers(0, max(1, r.size - s.bootstrap_block + 1), (200, blocks))
    idx = (starts[:, :, None] + np.arange(s.bootstrap_block)).reshape(200, -1)[:, : r.size]
    share_boot = float(np.mean(np.prod(1.0 + r[np.minimum(idx, r.size - 1)], axis=1) > 1.0))
    ok = share_noise >= s.min_profitable_share and share_boot >= s.min_profitable_share
    return Verdict("noise", ok, {"share_profitable_noise": round(share_noise, 4),
                                 "share_profitable_bootstrap": round(share_boot, 4)},
                   f"profitable in {share_noise:.0%} of noisy-price runs and {share_boot:.0%} of "
                   f"block bootstraps (min {s.min_profitable_share:.0%})")


def deflated_sharpe_test(ctx: GauntletContext, expr: str) -> Verdict:
    target = np.asarray(ctx.positions(expr, ctx.train_inputs), dtype=np.float64)
    r = trade(ctx.train_candles, target, ctx.cost_rate)
    null_var = 1.0 / max(1, r.size - 1)
    var = null_var if ctx.settings.dsr_variance == "null" else ctx.trial_sharpe_variance
    d = deflated_sharpe(r, n_trials=max(1, ctx.n_trials), trial_sr_variance=var)
    n_eff = effective_trials(ctx.top_returns) if ctx.top_returns.size else 1
    d_eff = deflated_sharpe(r, n_trials=max(1, n_eff), trial_sr_variance=var)
    other = "trials" if ctx.settings.dsr_variance == "null" else "null"
    d_other = deflated_sharpe(r, n_trials=max(1, ctx.n_trials),
                              trial_sr_variance=ctx.trial_sharpe_variance if other == "trials" else null_var)
    ok = d.dsr >= ctx.settings.min_dsr
    fig = {"dsr": round(d.dsr, 4), "sr_per_period": round(d.sr, 6), "sr0_per_period": round(d.sr0, 6),
           "trials": ctx.n_trials, "effective_trials": n_eff, "dsr_effective": round(d_eff.dsr, 4),
           "variance": ctx.settings.dsr_variance, "sr_variance": var, f"dsr_{other}_variance": round(d_other.dsr, 4),
           "skew": round(d.skew, 4), "kurtosis_pearson": round(d.kurtosis, 4), "bars": d.n_obs}
    return Verdict("deflated_sharpe", ok, fig,
                   f"DSR {d.dsr:.3f} over {ctx.n_trials} trials (effective {n_eff}: {d_eff.dsr:.3f}; "
                   f"with the {other} variance: {d_other.dsr:.3f}); min {ctx.settings.min_dsr:g}")


def pbo_test(ctx: GauntletContext, expr: str) -> Verdict:
    m = ctx.top_returns
    if m.ndim != 2 or m.shape[1] < 2:
        return Verdict("pbo", False, {"candidates": int(m.shape[1]) if m.ndim == 2 else 0},
                       "PBO needs at least two candidates")
    res = pbo_cscv(m, n_blocks=ctx.settings.pbo_blocks)
    ok = res.pbo <= ctx.settings.max_pbo
    fig = {"pbo": round(res.pbo, 4), "splits": res.n_splits, "candidates": res.n_candidates,
           "logit_median": round(float(np.median(res.logits)), 4),
           "logits": [round(float(x), 4) for x in res.logits]}
    return Verdict("pbo", ok, fig, f"PBO {res.pbo:.2f} over {res.n_splits} CSCV splits of "
                   f"{res.n_candidates} candidates (max {ctx.settings.max_pbo:g})")


def walk_forward_test(ctx: GauntletContext, expr: str) -> Verdict:
    """Tests the search, not the candidate: the verdict is computed once per context."""
    if ctx.search is None:
        return Verdict("walk_forward", False, {}, "no search function to re-run")
    if "walk_forward" not in ctx._cache:
        ctx._cache["walk_forward"] = _walk_forward(ctx)
    return ctx._cache["walk_forward"]


def _walk_forward(ctx: GauntletContext) -> Verdict:
    assert ctx.search is not None
    k = ctx.settings.walk_forward_blocks
    # k + 1 equal blocks: the search fits block i - 1 and its frozen winner trades block i.
    edges = np.linspace(0, len(ctx.train_candles), k + 2).astype(int)
    oos: list[np.ndarray] = []
    winners: list[str] = []
    for i in range(1, k + 1):
        lo, mid, hi = edges[i - 1], edges[i], edges[i + 1]
        win, _ = ctx.search(ctx.train_candles.iloc[lo:mid], ctx.train_inputs.iloc[lo:mid], ctx.seed + 100 + i)
        winners.append(win)
        target = np.asarray(ctx.positions(win, ctx.train_inputs.iloc[mid:hi]), dtype=np.float64)
        oos.append(trade(ctx.train_candles.iloc[mid:hi], target, ctx.cost_rate))
    curve = np.concatenate(oos)
    sr = annual_sharpe(curve, ctx.ppy)
    ok = sr > ctx.settings.walk_forward_min_sharpe
    return Verdict("walk_forward", ok, {"oos_sharpe": round(sr, 4), "blocks": k,
                                        "oos_total_return": round(float(np.prod(1 + curve) - 1), 6),
                                        "block_sharpes": [round(annual_sharpe(o, ctx.ppy), 4) for o in oos],
                                        "winners": winners},
                   f"re-run search, out-of-sample Sharpe {sr:.2f} over {k} blocks (min > {ctx.settings.walk_forward_min_sharpe:g})")


TESTS: dict[str, Callable[[GauntletContext, str], Verdict]] = {
    "holdout": holdout_test,
    "walk_forward": walk_forward_test,
    "permutation": permutation_test,
    "noise": noise_test,
    "cost_stress": cost_stress_test,
    "deflated_sharpe": deflated_sharpe_test,
    "pbo": pbo_test,
    "trades_drawdown": trades_drawdown_test,
}


@dataclass(frozen=True)
class GauntletReport:
    expression: str
    verdicts: tuple[Verdict, ...]

    @property
    def passed(self) -> bool:
        return bool(self.verdicts) and all(v.passed for v in self.verdicts)

    @property
    def failures(self) -> list[Verdict]:
        return [v for v in self.verdicts if not v.passed]

    def as_list(self) -> list[dict[str, Any]]:
        return [v.as_dict() for v in self.verdicts]


def run_gauntlet(ctx: GauntletContext, expr: str, *, tests: tuple[str, ...] | None = None,
                 stop_early: bool = False,
                 on_verdict: Callable[[Verdict], None] | None = None) -> GauntletReport:
    """Run the enabled tests in order. ``stop_early`` skips the costly tests after the
    first failure (the verdicts list then says which ran); ``on_verdict`` sees each verdict
    as it is reached (progress for long runs)."""
    names = tests if tests is not None else ctx.settings.tests
    unknown = [t for t in names if t not in TESTS]
    if unknown:
        raise ValueError(f"unknown gauntlet tests {unknown}: expected some of {list(TESTS)}")
    verdicts: list[Verdict] = []
    for name in names:
        v = TESTS[name](ctx, expr)
        verdicts.append(v)
        if on_verdict is not None:
            on_verdict(v)
        if stop_early and not v.passed:
            break
    return GauntletReport(expr, tuple(verdicts))

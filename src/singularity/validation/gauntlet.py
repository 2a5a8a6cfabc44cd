"""The validation gauntlet. Each test is a function ``(ctx, expression) -> Verdict``.

The gauntlet is the only code that opens the holdout. It reaches the strategy and the search
only through two callables in the context, so it works for any kind of rule:

* ``positions(expression, inputs) -> target array`` re-runs a frozen rule on new inputs;
* ``search(candles, inputs, seed) -> (expression, fitness)`` re-runs the search at a small
  budget (walk-forward and the whole-search permutation null).

One holdout, one set of figures: a rule's positions come from ONE causal run over the whole
window (training start to holdout end, embargo included) and its returns from one backtest of
that window; the holdout figures are the holdout's slice of it (``holdout_returns``), exactly
what the registry stores and the HTML report shows. Restarting the rule at the holdout's first
bar would give its rolling windows no history and the report another set of numbers.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from singularity.backtest.kernel import count_trades, max_drawdown_from_returns, sharpe_from_returns
from singularity.backtest.runner import net_returns
from singularity.timeframes import periods_per_year
from singularity.validation.regimes import regime_ids, regime_performance
from singularity.validation.settings import GauntletSettings
from singularity.validation.stats import (
    block_permutation_pvalue,
    deflated_sharpe,
    holm_adjust,
    pbo_cscv,
)

PositionsFn = Callable[[str, pd.DataFrame], np.ndarray]
SearchFn = Callable[[pd.DataFrame, pd.DataFrame, int], tuple[str, float]]
InputsFn = Callable[[pd.DataFrame], pd.DataFrame]
ManyInputsFn = Callable[[list[pd.DataFrame], str], list[pd.DataFrame]]


@dataclass(frozen=True)
class Verdict:
    test: str
    passed: bool
    figures: dict[str, Any]
    detail: str
    """One line: what was measured against what threshold."""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def trade(candles: pd.DataFrame, target: np.ndarray | pd.Series, cost_rate: float,
          short_rate: float = 0.0) -> np.ndarray:
    """Net per-bar returns of ``target`` on ``candles`` (fees, slippage and, for shorts, the
    borrow/funding charge per bar)."""
    return net_returns(candles, target, cost_rate, short_rate=short_rate)


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
    """Distinct trees evaluated by the search that produced the candidate (plus the trials of
    earlier cycles on overlapping data)."""
    trial_sharpe_variance: float
    """Variance of the trials' PER-PERIOD Sharpe ratios (it sets the deflation benchmark)."""
    trial_returns: np.ndarray
    """CSCV matrix: training-window per-bar net returns of the candidate and one trial per
    cluster of the search's competitive distinct trials (``forge.champion.pbo_matrix``),
    bars × columns."""
    effective_trials: int | None = None
    """Estimated independent trials among ``n_trials`` (None: not estimated)."""
    holdout_looks: int = 1
    """Candidates whose holdout was opened this cycle: each look is one more trial."""
    short_rate: float = 0.0
    """Borrow/funding charge per bar on a short position (0 on a long-only market)."""
    full_inputs: pd.DataFrame | None = None
    """Inputs of ``full_candles``' rows; None = training and holdout inputs joined."""
    search: SearchFn | None = None
    recompute_inputs: InputsFn | None = None
    """Inputs from perturbed ``full_candles``; None = the noise test keeps the inputs."""
    recompute_inputs_many: ManyInputsFn | None = None
    """``recompute_inputs`` for every noise run of an expression at once (across a worker
    pool), in the order of the runs; the columns the expression reads are exactly those
    ``recompute_inputs`` gives (others may keep their unperturbed values). None = one run
    after another."""
    full_candles: pd.DataFrame | None = None
    """Contiguous candles from the training start to the holdout end (embargo included);
    None = training and holdout candles joined."""
    seed: int = 0
    regime_settings: Any = None
    """The ``RegimeSettings`` the regime inputs came from (their feature windows name each
    regime); None = the defaults."""
    _cache: dict[str, Any] = field(default_factory=dict, repr=False)

    def regime_names(self) -> dict[int, str]:
        """Each regime of the training inputs in words ("high volatility, down-trend,
        mean-reverting"), from the training candles' statistics, as the explanations and the
        report name them; empty without regime inputs."""
        if "regime_names" not in self._cache:
            from singularity.regimes.classifier import names_of_labels
            from singularity.regimes.settings import RegimeSettings

            ids = regime_ids(self.train_inputs)
            self._cache["regime_names"] = {} if ids is None else names_of_labels(
                self.train_candles, ids, self.regime_settings or RegimeSettings())
        return self._cache["regime_names"]  # type: ignore[no-any-return]

    @property
    def cost_rate(self) -> float:
        return (self.fee_bps + self.slippage_bps) / 1e4

    @property
    def ppy(self) -> float:
        return periods_per_year(self.timeframe)

    def full_window(self) -> tuple[pd.DataFrame, pd.DataFrame]:
        """(candles, inputs) from the training start to the holdout end."""
        c = self.full_candles if self.full_candles is not None else pd.concat(
            [self.train_candles, self.holdout_candles])
        x = self.full_inputs if self.full_inputs is not None else pd.concat(
            [self.train_inputs, self.holdout_inputs])
        if len(c) != len(x) or not c.index.equals(x.index):
            raise ValueError("full_candles and full_inputs must share one index")
        if not c.index[-len(self.holdout_candles):].equals(self.holdout_candles.index):
            raise ValueError("the full window must end with the holdout")
        return c, x

    def trade(self, candles: pd.DataFrame, target: np.ndarray, cost_multiplier: float = 1.0) -> np.ndarray:
        return trade(candles, target, self.cost_rate * cost_multiplier, self.short_rate)


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


def _full_target(ctx: GauntletContext, expr: str) -> np.ndarray:
    key = f"full:{expr}"
    if key not in ctx._cache:
        _, x = ctx.full_window()
        ctx._cache[key] = np.asarray(ctx.positions(expr, x), dtype=np.float64)
    return ctx._cache[key]


def _holdout_target(ctx: GauntletContext, expr: str) -> np.ndarray:
    """The holdout's slice of the rule's one causal run over the whole window."""
    return _full_target(ctx, expr)[-len(ctx.holdout_candles):]


def holdout_returns(ctx: GauntletContext, expr: str, cost_multiplier: float = 1.0) -> np.ndarray:
    """The holdout's slice of one backtest over the whole window (the position held into the
    holdout stays held: no restart at its first bar)."""
    key = f"returns:{expr}:{cost_multiplier!r}"
    if key not in ctx._cache:
        c, _ = ctx.full_window()
        r = ctx.trade(c, _full_target(ctx, expr), cost_multiplier)
        ctx._cache[key] = r[-len(ctx.holdout_candles):]
    return ctx._cache[key]


def holdout_summary(ctx: GauntletContext, expr: str) -> dict[str, float]:
    """The holdout figures of ``expr``: the holdout verdict's, the registry's and the report's."""
    return summary(holdout_returns(ctx, expr), _holdout_target(ctx, expr), ctx.ppy)


def holdout_regime_table(ctx: GauntletContext, expr: str) -> list[dict[str, Any]] | None:
    """The holdout per market regime (bars, Sharpe, share of PnL), from the regime one-hot
    inputs; None when the inputs carry no regime columns."""
    regimes = regime_ids(ctx.holdout_inputs)
    if regimes is None:
        return None
    return regime_performance(holdout_returns(ctx, expr), regimes, ctx.ppy)


def holdout_test(ctx: GauntletContext, expr: str) -> Verdict:
    fig: dict[str, Any] = dict(holdout_summary(ctx, expr))
    table = holdout_regime_table(ctx, expr)
    if table is not None:
        fig["per_regime"] = table
    ok = fig["sharpe"] >= ctx.settings.min_holdout_sharpe
    return Verdict("holdout", ok, fig,
                   f"holdout Sharpe {fig['sharpe']:.2f} {'≥' if ok else '<'} {ctx.settings.min_holdout_sharpe:.2f} net of costs")


def no_losing_regime_test(ctx: GauntletContext, expr: str) -> Verdict:
    """Optional: no regime holding more than ``regime_min_share`` of the holdout loses money."""
    table = holdout_regime_table(ctx, expr)
    share = ctx.settings.regime_min_share
    if table is None:
        return Verdict("no_losing_regime", False, {},
                       "no regime inputs: enable [features.regimes] to run this test")
    big = [row for row in table if row["regime"] != "unclassified" and row["bar_share"] > share]
    losing = [row for row in big if row["pnl"] < 0]
    fig = {"regimes_checked": [row["regime"] for row in big],
           "losing": [row["regime"] for row in losing], "per_regime": table}
    worst = min(big, key=lambda row: row["pnl"]) if big else None
    names = ctx.regime_names()
    if names:
        fig["names"] = {str(k): v for k, v in names.items()}
    if worst:
        k = worst["regime"]
        worst_text = f" (worst: {k}" + (f" ({names[k]})" if k in names else "") + f", PnL {worst['pnl']:+.2%})"
    detail = (f"{len(losing)} of {len(big)} regimes above {share:.0%} of the holdout lose money"
              + (worst_text if worst else ""))
    return Verdict("no_losing_regime", bool(big) and not losing, fig, detail)


def trades_drawdown_test(ctx: GauntletContext, expr: str) -> Verdict:
    fig = holdout_summary(ctx, expr)
    s = ctx.settings
    ok_t, ok_d = fig["trades"] >= s.min_trades, fig["max_drawdown"] <= s.max_drawdown
    return Verdict("trades_drawdown", ok_t and ok_d,
                   {"trades": fig["trades"], "max_drawdown": fig["max_drawdown"]},
                   f"{fig['trades']} trades (min {s.min_trades}), max drawdown "
                   f"{fig['max_drawdown']:.1%} (limit {s.max_drawdown:.0%})")


def cost_stress_test(ctx: GauntletContext, expr: str) -> Verdict:
    fig: dict[str, Any] = {}
    for m in ctx.settings.cost_multipliers:
        fig[f"sharpe_x{m:g}"] = round(annual_sharpe(holdout_returns(ctx, expr, m), ctx.ppy), 4)
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
    full, full_x = ctx.full_window()
    logret = np.diff(np.log(full["close"].to_numpy()), prepend=np.nan)
    vol = pd.Series(logret).rolling(24, min_periods=2).std().bfill().fillna(0.0).to_numpy()
    n_hold = len(ctx.holdout_candles)
    profitable = 0
    runs = []
    for _ in range(s.noise_runs):  # every run's noise drawn first, in the order of the runs
        mult = np.exp(rng.normal(0.0, 1.0, len(full)) * s.noise_scale * vol)
        noisy = full.copy()
        for col in ("open", "high", "low", "close"):
            noisy[col] = full[col].to_numpy() * mult
        runs.append(noisy)
    # the holdout rows' inputs from the perturbed prices: the costly part, one batch
    if ctx.recompute_inputs_many is not None:
        recomputed: list[pd.DataFrame | None] = list(ctx.recompute_inputs_many(runs, expr))
    elif ctx.recompute_inputs is not None:
        recomputed = [ctx.recompute_inputs(noisy) for noisy in runs]
    else:
        recomputed = [None] * len(runs)
    for noisy, fresh in zip(runs, recomputed, strict=True):
        inputs = full_x
        if fresh is not None:
            inputs = full_x.copy()
            inputs.iloc[-n_hold:] = fresh.iloc[-n_hold:].to_numpy()
        target = np.asarray(ctx.positions(expr, inputs), dtype=np.float64)
        r = ctx.trade(noisy, target)[-n_hold:]
        profitable += float(np.prod(1.0 + r)) > 1.0
    share_noise = profitable / s.noise_runs
    # Block bootstrap of the candidate's own holdout returns: is the edge spread over time?
    r = holdout_returns(ctx, expr)
    blocks = max(1, math.ceil(r.size / s.bootstrap_block))
    starts = rng.integers(0, max(1, r.size - s.bootstrap_block + 1), (200, blocks))
    idx = (starts[:, :, None] + np.arange(s.bootstrap_block)).reshape(200, -1)[:, : r.size]
    share_boot = float(np.mean(np.prod(1.0 + r[np.minimum(idx, r.size - 1)], axis=1) > 1.0))
    ok = share_noise >= s.min_profitable_share and share_boot >= s.min_profitable_share
    return Verdict("noise", ok, {"share_profitable_noise": round(share_noise, 4),
                                 "share_profitable_bootstrap": round(share_boot, 4)},
                   f"profitable in {share_noise:.0%} of noisy-price runs and {share_boot:.0%} of "
                   f"block bootstraps (min {s.min_profitable_share:.0%})")


def dsr_trials(ctx: GauntletContext) -> tuple[int, int | None, int]:
    """(raw N, effective N or None, the N the gate uses): the search's distinct trials plus
    those of earlier cycles on overlapping data, plus one per extra holdout look (the first
    look's candidate is already one of the trials)."""
    extra = max(0, ctx.holdout_looks - 1)
    raw = max(1, ctx.n_trials) + extra
    eff = None if ctx.effective_trials is None else max(1, ctx.effective_trials) + extra
    use = eff if ctx.settings.dsr_trials == "effective" and eff is not None else raw
    return raw, eff, use


def deflated_sharpe_test(ctx: GauntletContext, expr: str) -> Verdict:
    target = np.asarray(ctx.positions(expr, ctx.train_inputs), dtype=np.float64)
    r = ctx.trade(ctx.train_candles, target)
    null_var = 1.0 / max(1, r.size - 1)
    var = null_var if ctx.settings.dsr_variance == "null" else ctx.trial_sharpe_variance
    raw, eff, n = dsr_trials(ctx)
    d = deflated_sharpe(r, n_trials=n, trial_sr_variance=var)
    d_raw = deflated_sharpe(r, n_trials=raw, trial_sr_variance=var)
    d_eff = deflated_sharpe(r, n_trials=eff, trial_sr_variance=var) if eff is not None else None
    other = "trials" if ctx.settings.dsr_variance == "null" else "null"
    d_other = deflated_sharpe(r, n_trials=n,
                              trial_sr_variance=ctx.trial_sharpe_variance if other == "trials" else null_var)
    ok = d.dsr >= ctx.settings.min_dsr
    fig = {"dsr": round(d.dsr, 4), "sr_per_period": round(d.sr, 6), "sr0_per_period": round(d.sr0, 6),
           "trials": raw, "effective_trials": eff, "trials_used": n, "trials_mode": ctx.settings.dsr_trials,
           "holdout_looks": ctx.holdout_looks, "dsr_raw_trials": round(d_raw.dsr, 4),
           "dsr_effective": round(d_eff.dsr, 4) if d_eff is not None else None,
           "variance": ctx.settings.dsr_variance, "sr_variance": var, f"dsr_{other}_variance": round(d_other.dsr, 4),
           "skew": round(d.skew, 4), "kurtosis_pearson": round(d.kurtosis, 4), "bars": d.n_obs}
    eff_s = f"{eff} effective" if eff is not None else "effective not estimated"
    return Verdict("deflated_sharpe", ok, fig,
                   f"DSR {d.dsr:.3f} with N={n} ({ctx.settings.dsr_trials}; {raw} raw, {eff_s}; "
                   f"with the {other} variance: {d_other.dsr:.3f}); min {ctx.settings.min_dsr:g}")


def pbo_test(ctx: GauntletContext, expr: str) -> Verdict:
    m = ctx.trial_returns
    if m.ndim != 2 or m.shape[1] < 2:
        return Verdict("pbo", False, {"candidates": int(m.shape[1]) if m.ndim == 2 else 0},
                       "PBO needs at least two sampled trials")
    res = pbo_cscv(m, n_blocks=ctx.settings.pbo_blocks)
    ok = res.pbo <= ctx.settings.max_pbo
    fig = {"pbo": round(res.pbo, 4), "splits": res.n_splits, "candidates": res.n_candidates,
           "logit_median": round(float(np.median(res.logits)), 4),
           "logits": [round(float(x), 4) for x in res.logits]}
    return Verdict("pbo", ok, fig, f"PBO {res.pbo:.2f} over {res.n_splits} CSCV splits of "
                   f"{res.n_candidates} columns, one per cluster of correlated trials among the search's competitive "
                   f"ones (top {ctx.settings.pbo_top_share:.0%} by in-sample Sharpe; max {ctx.settings.max_pbo:g})")


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
        oos.append(ctx.trade(ctx.train_candles.iloc[mid:hi], target))
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
    "no_losing_regime": no_losing_regime_test,
}
"""``no_losing_regime`` is optional: not in the default ``tests`` setting."""


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


def run_holdout_looks(ctx: GauntletContext, exprs: list[str], *,
                      on_verdict: Callable[[int, Verdict], None] | None = None) -> list[GauntletReport]:
    """The gauntlet for the candidates chosen without the holdout, in that order: usually one.
    With k > 1 looks each holdout permutation p-value is Holm-corrected for the k looks (and
    the DSR counts them: ``ctx.holdout_looks``); verdicts reach ``on_verdict`` once final."""
    if not exprs:
        return []
    ctx.holdout_looks = len(exprs)
    k = len(exprs)
    reports = [run_gauntlet(ctx, e, on_verdict=(None if k > 1 or on_verdict is None
                                                else (lambda v: on_verdict(1, v))))
               for e in exprs]
    if k > 1:
        reports = _holm_permutation(ctx, reports)
        if on_verdict is not None:
            for i, rep in enumerate(reports, 1):
                for v in rep.verdicts:
                    on_verdict(i, v)
    return reports


def _holm_permutation(ctx: GauntletContext, reports: list[GauntletReport]) -> list[GauntletReport]:
    raw = [next((v.figures["p_positions"] for v in r.verdicts if v.test == "permutation"), None) for r in reports]
    have = [i for i, p in enumerate(raw) if p is not None]
    adj = holm_adjust([float(raw[i]) for i in have])  # type: ignore[arg-type]
    adjusted = dict(zip(have, adj, strict=True))
    out = []
    for i, rep in enumerate(reports):
        verdicts = []
        for v in rep.verdicts:
            if v.test == "permutation" and i in adjusted:
                p = adjusted[i]
                fig = {**v.figures, "p_positions_raw": v.figures["p_positions"], "p_positions": round(p, 4),
                       "holm_looks": len(reports)}
                search_ok = "p_search" not in fig or all(fig["search_best"] > b for b in fig["null_best"])
                ok = p <= ctx.settings.max_p_value and search_ok
                v = Verdict(v.test, ok, fig, v.detail + f"; Holm-corrected for {len(reports)} holdout looks: p={p:.3f}")
            verdicts.append(v)
        out.append(GauntletReport(rep.expression, tuple(verdicts)))
    return out

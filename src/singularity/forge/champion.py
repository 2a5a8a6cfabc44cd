"""The GP, gauntlet and registry stages of a forge cycle."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from singularity.config import Settings
from singularity.forge.market import long_only, short_rate_per_bar
from singularity.forge.split import Split
from singularity.registry import Registry
from singularity.timeframes import periods_per_year
from singularity.validation.gauntlet import (
    GauntletContext,
    GauntletReport,
    holdout_summary,
    run_holdout_looks,
    trade,
)

# The whole-search tests (walk-forward, search null) re-run the GP at this share of the budget.
SEARCH_BUDGET_SHARE = 0.25
PBO_MIN_COLUMNS = 16
"""The fewest columns of the PBO matrix (CSCV ranks are too coarse with fewer)."""
PBO_SAMPLE_FACTOR = 4
"""Competitive trials sampled per PBO column to find the clusters (× ``pbo_candidates``)."""
PBO_CLUSTER_CORRELATION = 0.7
"""Trials whose returns correlate above this are one idea (as in the effective-N estimate)."""


def evolve_training(settings: Settings, opts: Any, inputs: pd.DataFrame, candles: pd.DataFrame,
                    pool: Any, *, reborn: list[str], stats_path: Any = None,
                    population: int | None = None, generations: int | None = None,
                    seed: int | None = None, progress: bool | None = None) -> Any:
    """The GP on the training window. Reborn expressions that name inputs this run lacks are
    skipped by the synthesizer (with a warning), so seeds from older feature sets are safe."""
    from singularity.evolution.synthesizer import evolve

    return evolve(inputs, candles, settings=settings.evolution,
                  population=population or opts.population, generations=generations or opts.generations,
                  seed=opts.seed if seed is None else seed, costs=settings.costs, timeframe=opts.timeframe,
                  pool=pool, reborn=reborn, progress=opts.progress if progress is None else progress,
                  stats_path=stats_path)



class Positions:
    """Target positions of an expression over inputs, as the GP decides them; ``many`` gives
    those of a batch of expressions from ONE evaluator call (the input arrays built once, not
    once per expression: the PBO and effective-trials matrices evaluate hundreds of trials,
    serially in the forge's parent). Each tree's output is computed as it is alone (shared
    subtrees are computed once, by the same kernels), so the positions are the same."""

    def __init__(self, long_only: bool) -> None:
        self.long_only = long_only

    def __call__(self, expr: str, inputs: pd.DataFrame) -> np.ndarray:
        from singularity.evolution.expressions import evaluate_expression

        return evaluate_expression(expr, inputs, long_only=self.long_only).to_numpy(np.float64)

    def many(self, exprs: list[str], inputs: pd.DataFrame) -> list[np.ndarray]:
        from singularity.evolution.expressions import expressions_positions

        return expressions_positions(exprs, inputs, long_only=self.long_only)


def positions_fn(settings: Settings) -> Positions:
    return Positions(long_only(settings))


def trial_statistics(evo: Any, ppy: float) -> tuple[int, float]:
    """(distinct valid trees the search evaluated, variance of their per-period Sharpe ratios):
    the deflated Sharpe ratio's N and V[SR]. The GP reports annualised Sharpe ratios, so the
    variance is divided by the periods per year."""
    return max(1, int(evo.distinct_trials)), float(evo.trial_sharpe_variance) / ppy


def choose_candidates(evo: Any, looks: int) -> list[str]:
    """The candidates whose holdout will be opened, chosen WITHOUT the holdout: the hall of
    fame's best ``looks`` by in-sample fitness net of costs (ties: the smaller tree), as the
    search ranked them. The search itself is judged on the training window (walk-forward)
    before the holdout is opened. Usually one look: every extra one is a trial."""
    return [h.expression for h in evo.hall_of_fame[: max(1, looks)]]


def training_returns(exprs: list[str], positions: Any, candles: pd.DataFrame, inputs: pd.DataFrame,
                     cost_rate: float, short_rate: float) -> np.ndarray:
    """Per-bar training-window returns net of costs, bars × expressions (as the GP scored them)."""
    if not exprs:
        return np.empty((len(candles), 0))
    many = getattr(positions, "many", None)
    targets = many(exprs, inputs) if many is not None else [positions(e, inputs) for e in exprs]
    return np.column_stack([trade(candles, t, cost_rate, short_rate) for t in targets])


def trial_sample_matrix(evo: Any, n: int, seed: int, *, include: tuple[str, ...], positions: Any,
                        candles: pd.DataFrame, inputs: pd.DataFrame, cost_rate: float,
                        short_rate: float) -> np.ndarray:
    """Training-window returns of a uniform sample of the search's distinct trials (``include``
    first): the effective-trials estimate's matrix (the PBO gate's is ``pbo_matrix``)."""
    return training_returns(evo.sample_trials(n, seed, include=include), positions, candles, inputs,
                            cost_rate, short_rate)


def pbo_matrix(evo: Any, g: Any, seed: int, *, candidate: tuple[str, ...], positions: Any,
               candles: pd.DataFrame, inputs: pd.DataFrame, cost_rate: float, short_rate: float) -> np.ndarray:
    """The CSCV matrix of the PBO gate: training-window returns net of costs, ONE column per
    cluster of correlated trials among the search's competitive ones (in-sample Sharpe in the
    top ``g.pbo_top_share``), the chosen candidate first, standing for its own cluster.

    How: up to ``PBO_SAMPLE_FACTOR`` × ``g.pbo_candidates`` distinct, trading return series
    are drawn uniformly (seeded) among the competitive trials and clustered as the effective-N
    estimate clusters them (``cluster_labels``: average linkage on 1 − ρ, cut at ρ = 0.7); each
    cluster other than the candidate's is represented by its first member in the seeded draw
    order (a uniform draw within the cluster that never looks at performance: its in-sample
    best would flatter the cluster), at most ``g.pbo_candidates`` columns. When fewer than
    ``PBO_MIN_COLUMNS`` clusters turn up, the remaining competitive trials (draw order) and
    then the rest by in-sample Sharpe (best first: the strongest rivals, which can only make
    the gate harder to pass) fill in, each only if it correlates at most 0.7 with every column
    already taken (a cluster of its own).

    Why clusters: the competitive trials are mostly variants of the few families the search
    found. Sampled as they come (one column per trial), a real edge's family fills the matrix
    and its members' in-sample ranks among themselves are luck, so PBO read high on planted
    edges (median 0.79 at net Sharpe 3); one column per family asks the CSCV question of
    the distinct ideas: does the in-sample best idea stay above the median idea out of sample?
    Why competitive: drawn from every trial the columns are mostly cost-ruined, never-trading
    or market-exposed strawmen that rank low in both halves of every split, and PBO read low
    on pure noise (forge cycles on shuffled real BTC: median 0.16)."""
    from singularity.validation.stats import cluster_labels

    width = g.pbo_candidates
    first = len(candidate)
    seen: set[bytes] = set()

    def series(exprs: list[str], offset: int) -> list[np.ndarray]:
        """Distinct trading series of ``exprs`` (the candidate's kept even when flat)."""
        out: list[np.ndarray] = []
        for lo in range(0, len(exprs), width):
            block = training_returns(exprs[lo: lo + width], positions, candles, inputs, cost_rate, short_rate)
            for j in range(block.shape[1]):
                col = block[:, j]
                key = np.round(col, 12).tobytes()
                if key in seen or (offset + lo + j >= first and not col.std() > 0):
                    continue
                seen.add(key)
                out.append(col)
        return out

    pool = evo.sample_trials(len(evo.trial_programs) + first, seed, include=candidate,
                             top_share=g.pbo_top_share)
    cap = PBO_SAMPLE_FACTOR * width
    sample: list[np.ndarray] = []
    used = 0
    while used < len(pool) and len(sample) < cap:
        take = pool[used: used + cap - len(sample)]
        sample += series(take, used)
        used += len(take)
    if not sample:
        return np.empty((len(candles), 0))
    labels = cluster_labels(np.column_stack(sample), max_correlation=PBO_CLUSTER_CORRELATION)
    cols: list[np.ndarray] = []
    taken: set[int] = set()
    for col, lab in zip(sample, labels.tolist(), strict=True):
        if lab not in taken:
            taken.add(lab)
            cols.append(col)
            if len(cols) >= width:
                break
    if len(cols) < PBO_MIN_COLUMNS:  # too few distinct ideas among the sample: new clusters fill in
        pooled = set(pool)
        rest = pool[used:] + [e for e in evo.trials_by_sharpe() if e not in pooled]
        for lo in range(0, len(rest), width):
            for col in series(rest[lo: lo + width], first):
                if _max_corr(col, cols) <= PBO_CLUSTER_CORRELATION:
                    cols.append(col)
                    if len(cols) >= PBO_MIN_COLUMNS:
                        return np.column_stack(cols)
    return np.column_stack(cols)


def _max_corr(col: np.ndarray, cols: list[np.ndarray]) -> float:
    """The largest correlation of ``col`` with any of ``cols`` (flat series: 0)."""
    if not cols or not col.std() > 0:
        return 0.0
    m = np.column_stack(cols)
    live = m.std(axis=0) > 0
    if not live.any():
        return 0.0
    c = (col - col.mean()) / col.std()
    z = (m[:, live] - m[:, live].mean(axis=0)) / m[:, live].std(axis=0)
    return float(np.max(c @ z / col.size))


def search_fn(settings: Settings, opts: Any, pool: Any) -> Any:
    """The search re-run by the walk-forward and search-null tests: the same GP at
    ``SEARCH_BUDGET_SHARE`` of the budget, no Reborn seeds, no progress bar."""
    small_pop = max(20, int(opts.population * SEARCH_BUDGET_SHARE))
    small_gen = max(2, int(opts.generations * SEARCH_BUDGET_SHARE))

    def search(c: pd.DataFrame, x: pd.DataFrame, seed: int) -> tuple[str, float]:
        res = evolve_training(settings, opts, x, c, pool, reborn=[], population=small_pop,
                              generations=small_gen, seed=seed, progress=False)
        return res.best.expression, float(res.best.fitness)

    return search


def gauntlet_context(settings: Settings, opts: Any, evo: Any, candles: pd.DataFrame, inputs: pd.DataFrame,
                     split: Split, universe: dict[str, pd.DataFrame], fs: Any, bake: Any,
                     pool: Any, *, candidates: list[str], prior_trials: int = 0) -> GauntletContext:
    """Everything the gauntlet needs, built from the training window only (the holdout rows
    are handed over but not read here). ``prior_trials``: distinct trials of earlier cycles on
    overlapping data, added to this search's in the DSR's N."""
    from singularity.validation.stats import estimate_effective_trials

    ppy = periods_per_year(opts.timeframe)
    positions = positions_fn(settings)
    train_c, train_x = candles.iloc[split.train], inputs.iloc[split.train]
    cost = (settings.costs.fee_bps + settings.costs.slippage_bps) / 1e4
    short = short_rate_per_bar(settings, opts.timeframe)
    g = settings.gauntlet
    common = dict(positions=positions, candles=train_c, inputs=train_x, cost_rate=cost, short_rate=short)
    cscv = pbo_matrix(evo, g, opts.seed, candidate=tuple(candidates[:1]), **common)
    n_trials, trial_var = trial_statistics(evo, ppy)
    eff_matrix = trial_sample_matrix(evo, g.effective_trials_sample, opts.seed + 1, include=(), **common)
    n_eff, _ = estimate_effective_trials(eff_matrix, total=n_trials)
    window = slice(split.train.start, split.holdout.stop)
    sym = opts.symbol

    def recompute_inputs(noisy: pd.DataFrame) -> pd.DataFrame:
        return own_features_from(noisy, universe[sym], inputs, settings, pool, holdout_rows=split.holdout)

    families: dict[str, set[str]] = {}
    for spec in fs.catalogue:
        families.setdefault(spec.family, set()).add(spec.name)

    def recompute_inputs_many(runs: list[pd.DataFrame], expr: str) -> list[pd.DataFrame]:
        # one noise run per task (each its own CEEMDAN, serially in its worker): the runs are
        # independent, and a run's CEEMDAN alone is too little work to spread over the pool.
        # Only the families whose columns the expression reads are recomputed: its positions
        # read nothing else, so they are exactly those of a full recomputation.
        reads = expression_columns(expr, inputs.columns)
        skip = frozenset(f for f, names in families.items() if not names & reads)
        hold = inputs.iloc[split.holdout]
        tasks = [(noisy, universe[sym], hold, settings, skip) for noisy in runs]
        return list(pool.map(_noise_inputs_task, tasks, chunksize=1))

    return GauntletContext(
        train_candles=train_c, train_inputs=train_x, holdout_candles=candles.iloc[split.holdout],
        holdout_inputs=inputs.iloc[split.holdout], timeframe=opts.timeframe,
        fee_bps=settings.costs.fee_bps, slippage_bps=settings.costs.slippage_bps, settings=g,
        positions=positions, n_trials=n_trials + prior_trials, trial_sharpe_variance=trial_var,
        # earlier cycles' trials are not re-sampled: they count at face value in both Ns
        trial_returns=cscv, effective_trials=n_eff + prior_trials,
        holdout_looks=len(candidates), short_rate=short, search=search_fn(settings, opts, pool),
        recompute_inputs=recompute_inputs,
        recompute_inputs_many=recompute_inputs_many if pool is not None and pool.workers > 1 else None,
        full_candles=candles.iloc[window], full_inputs=inputs.iloc[window],
        seed=opts.seed, regime_settings=settings.features.regimes)


def run_candidates(ctx: GauntletContext, candidates: list[str],
                   say: Callable[[str], None] | None = None) -> tuple[GauntletReport | None, list[GauntletReport]]:
    """Open the holdout for the candidates chosen without it (usually one); the first, in
    in-sample order, that passes every test is the champion."""
    def tell(i: int, v: Any) -> None:
        if say is not None:
            who = f"candidate {i}" if len(candidates) > 1 else "candidate"
            say(f"  {who}: {v.test} {'PASS' if v.passed else 'FAIL'} — {v.detail}")

    reports = run_holdout_looks(ctx, candidates, on_verdict=tell)
    picked = next((r for r in reports if r.passed), None)
    return picked, reports


def record(registry: Registry, run_id: int, settings: Settings, opts: Any, evo: Any,
           reports: list[GauntletReport], picked: GauntletReport | None, ctx: GauntletContext,
           fs: Any, *, parents: list[int]) -> dict[str, int]:
    """Every hall-of-fame entry enters the registry as a candidate (those that ran the gauntlet
    with holdout figures and verdicts); the champion is promoted. Returns expression -> id."""
    from singularity.analyst.explain import explain

    by_expr = {r.expression: r for r in reports}
    descriptions = {s.name: s.description for s in fs.catalogue}
    descriptions["model_signal"] = "the bake-off winner's P(up) − P(down), out of fold"
    ppy = periods_per_year(opts.timeframe)
    ids: dict[str, int] = {}
    regime_names = ctx.regime_names() or None  # as the gauntlet's regime test named them
    for h in evo.hall_of_fame:
        rep = by_expr.get(h.expression)
        holdout: dict[str, Any] = {}
        explanation, readable = "", h.infix
        if rep is not None:
            holdout = holdout_summary(ctx, h.expression)
            e = explain(h.expression, inputs=ctx.train_inputs, candles=ctx.train_candles, positions=ctx.positions,
                        cost_rate=ctx.cost_rate, periods_per_year=ppy, descriptions=descriptions,
                        long_only=long_only(settings), short_rate=ctx.short_rate,
                        regime_names=regime_names)
            explanation, readable = e.text, e.readable
        ids[h.expression] = registry.add_strategy(
            run_id=run_id, symbol=opts.symbol, timeframe=opts.timeframe, expression=h.expression,
            readable=readable, size=h.size, fitness=h.fitness, in_sample=h.to_dict(), holdout=holdout,
            gauntlet=rep.as_list() if rep else [], explanation=explanation, parents=parents)
    if picked is not None:
        registry.promote(ids[picked.expression])
    return ids


def strategy_summary(registry: Registry, strategy_id: int) -> dict[str, Any]:
    st = registry.strategy(strategy_id)
    return {"id": st.id, "expression": st.expression, "readable": st.readable, "status": st.status,
            "fitness": st.fitness, "in_sample": {k: st.in_sample.get(k) for k in
                                                 ("sharpe", "trades", "max_drawdown", "total_return")},
            "holdout": st.holdout}


def expression_columns(expr: str, columns: Any) -> set[str]:
    """The input columns an expression reads (its terminals that are columns, as the analyst
    finds them)."""
    from singularity.analyst.simplify import inputs_used, parse

    return set(inputs_used(parse(expr), {str(c) for c in columns}))


def _noise_inputs_task(task: tuple[Any, ...]) -> pd.DataFrame:
    """Pool task: ``own_features_from`` for one noise run, given only the holdout's input rows."""
    noisy, raw, hold_inputs, settings, skip = task
    return own_features_from(noisy, raw, hold_inputs, settings, None, holdout_rows=slice(0, len(hold_inputs)),
                             skip_families=skip)


def own_features_from(noisy: pd.DataFrame, raw: pd.DataFrame, inputs: pd.DataFrame, settings: Settings,
                      pool: Any, *, holdout_rows: slice, skip_families: frozenset[str] = frozenset()) -> pd.DataFrame:
    """Inputs for the noise test: the asset's own features (TA-Lib, particle filter, CEEMDAN)
    recomputed from perturbed candles; cross-asset and model-signal columns keep their
    unperturbed values (recomputing the GNN and the bake-off per run would cost minutes).

    CEEMDAN windows are anchored to the epoch, so decomposing only the holdout's windows
    (one window plus one stride of context) gives exactly the values a full pass would.
    ``skip_families`` (feature family names) keep their unperturbed values."""
    from singularity.features.indicators import indicator_features
    from singularity.features.particle_filter import particle_filter_features

    fs = settings.features
    full = raw.copy()
    cols = ["open", "high", "low", "close"]
    full.loc[noisy.index, cols] = noisy[cols].to_numpy()
    full["high"] = full[["open", "high", "close"]].max(axis=1)
    full["low"] = full[["open", "low", "close"]].min(axis=1)
    hold_idx = inputs.index[holdout_rows]
    out = inputs.loc[hold_idx].copy()
    # family names as in each family's FAMILY (not imported here: CEEMDAN is optional)
    families = [(fs.indicators.enabled and "indicators" not in skip_families, indicator_features, fs.indicators),
                (fs.particle_filter.enabled and "particle_filter" not in skip_families,
                 particle_filter_features, fs.particle_filter)]
    for enabled, family, sub in families:
        if enabled:
            own, _ = family(full, sub)
            shared = [c for c in own.columns if c in out.columns]
            out[shared] = own.loc[hold_idx, shared].to_numpy()
    if fs.ceemdan.enabled and "ceemdan" not in skip_families:
        from singularity.features.ceemdan import ceemdan_features

        start = full.index.get_loc(hold_idx[0]) - fs.ceemdan.window - fs.ceemdan.stride
        frame, _ = ceemdan_features(full["close"].iloc[max(0, start):], fs.ceemdan, pool=pool)
        ce = [c for c in frame.columns if c in out.columns]
        out[ce] = frame.loc[hold_idx, ce].to_numpy()
    return out

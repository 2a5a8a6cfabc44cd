"""The GP loop: ramped half-and-half start (plus "Reborn" seeds), tournament selection,
crossover and mutations, size/height limits, parsimony, elitism, hall of fame, stagnation stop,
optional islands with ring migration.

Children are built and scored where the work is (``evaluator.breed`` in the pool's workers),
from seeds drawn here in the parent: a run is a pure function of (data, settings, seed),
whatever the number of workers or the backend.
"""

from __future__ import annotations

import itertools
import logging
import pickle
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from singularity.config import CostSettings
from singularity.errors import ConfigError
from singularity.evolution.evaluator import (
    BreedResult,
    BreedTask,
    EvalConfig,
    breed,
    breed_pickled,
    cached_metrics_packed,
    codec_for,
    market_arrays,
    split_seeds,
)
from singularity.evolution.fitness import (
    M_FITNESS,
    M_MAXDD,
    M_RETURN,
    M_SHARPE,
    M_TRADES,
    M_VALID,
)
from singularity.evolution.packed import Packed, TrialSet, concat, gather, gather2
from singularity.evolution.packed import program as packed_program
from singularity.evolution.program import (
    Codec,
    InvalidExpressionError,
    Program,
    pack,
    program_key,
)
from singularity.evolution.progress import CpuMeter, GenerationProgress, StatsLog
from singularity.evolution.result import EvolutionResult, GenerationStats, HallOfFameEntry
from singularity.evolution.settings import EvolutionSettings
from singularity.evolution.variation import VariationParams
from singularity.runtime.pool import Pool, SharedArrays, run_map, share_arrays
from singularity.timeframes import periods_per_year

log = logging.getLogger(__name__)
_SEED_MAX = 2**62
TASKS_PER_WORKER = 1
"""Breeding tasks per worker and generation. One: each task costs the parent a dispatch and
a collection on the serial path, and its worker a share of fixed costs (the population's
fitness list, the parents' DEAP trees, a plan); a batch shares subtrees only within itself.
Measured (benchmarks/scaling.py): one task per worker spends less CPU per evaluation than
two, in the workers and in the parent."""
SHARE_POPULATION_ABOVE = 8
"""Above this many tasks per generation the previous generation goes to the workers once
(shared arrays) instead of inside every task (measured: inline is cheaper for 4 tasks)."""


@dataclass
class _Population:
    packed: Packed
    """The programs, packed (``program.pack``): the parent never holds one object per tree."""
    metrics: np.ndarray  # [n, N_METRICS]
    fresh: np.ndarray | None = None
    """True where the individual is a new child of this generation (None: all are)."""

    @property
    def sizes(self) -> np.ndarray:
        return np.diff(self.packed[2])

    def program(self, i: int) -> Program:
        return packed_program(self.packed, i)

    def selection_fitness(self, parsimony: float) -> np.ndarray:
        return self.metrics[:, M_FITNESS] - parsimony * self.sizes


def eval_config(
    settings: EvolutionSettings, costs: CostSettings, timeframe: str, *, fill_on_open: bool = True
) -> EvalConfig:
    long_only = settings.long_only or costs.long_only  # a spot market cannot be short
    return EvalConfig(
        cost_rate=(costs.fee_bps + costs.slippage_bps) / 1e4,
        periods_per_year=periods_per_year(timeframe),
        fill_on_open=fill_on_open,
        long_only=long_only,
        short_rate=0.0 if long_only else costs.short_rate_per_bar(timeframe),
        objective=settings.objective,
        min_trades=settings.min_trades,
        max_drawdown=settings.max_drawdown_penalty,
    )


def variation_params(settings: EvolutionSettings) -> VariationParams:
    return VariationParams(
        crossover_prob=settings.crossover_prob,
        mutation_prob=settings.mutation_prob,
        tournament_size=settings.tournament_size,
        max_height=settings.max_height,
        max_size=settings.max_size,
        init_min_depth=settings.init_min_depth,
        init_max_depth=max(settings.init_max_depth, settings.init_min_depth),
    )


def island_bounds(population: int, islands: int) -> list[tuple[int, int]]:
    edges = np.linspace(0, population, islands + 1).round().astype(int)
    return [(int(a), int(b)) for a, b in itertools.pairwise(edges)]


def evolve(
    inputs: pd.DataFrame,
    candles: pd.DataFrame,
    *,
    settings: EvolutionSettings | None = None,
    population: int = 500,
    generations: int = 20,
    seed: int = 42,
    costs: CostSettings | None = None,
    timeframe: str = "1h",
    pool: Pool | None = None,
    reborn: Iterable[str] = (),
    progress: bool = False,
    stats_path: str | Path | None = None,
    fill_on_open: bool = True,
) -> EvolutionResult:
    """Evolve trees over the columns of ``inputs`` (causal features aligned with ``candles``)
    on this training data only. ``generations`` counts breeding rounds after the initial
    population. ``reborn`` expressions (earlier champions) seed the first population.
    """
    settings = settings or EvolutionSettings()
    costs = costs or CostSettings()
    t_start = time.perf_counter()
    columns = tuple(str(c) for c in inputs.columns)
    codec = codec_for(columns)
    cfg = eval_config(settings, costs, timeframe, fill_on_open=fill_on_open)
    params = variation_params(settings)
    islands = island_bounds(population, settings.islands)
    if any(b - a < 2 for a, b in islands):
        raise ConfigError(
            f"population {population} is too small for {len(islands)} islands (>= 2 each)"
        )
    data = market_arrays(inputs, candles)
    handle = share_arrays(data, pool)
    workers = pool.workers if pool is not None else 1
    n_tasks = workers * TASKS_PER_WORKER
    if settings.batch_size > 0:  # explicit batch size: about that many children per task
        n_tasks = max(1, -(-population // settings.batch_size))
    timeout = settings.batch_timeout_s
    master = np.random.default_rng(seed)
    meter = CpuMeter(workers)
    stats_log = StatsLog(stats_path)
    hof: dict[bytes, _Fame] = {}
    history: list[GenerationStats] = []
    total_evals = 0
    best_so_far = -np.inf
    stale = 0
    stopped_early = False
    trials = TrialLog()

    in_pool = [0.0]  # wall seconds inside the pool's map, this generation
    overlapped = [0.0]  # parent CPU seconds of bookkeeping done while workers bred
    # The pool's map runs in a helper thread, so the parent's per-generation bookkeeping
    # (hall of fame, trial log, statistics) happens while the workers breed the next
    # generation instead of between generations, when they would wait (Amdahl's serial part).
    # Serial without a pool: nothing to overlap with.
    mapper = ThreadPoolExecutor(1, thread_name_prefix="gp-map") if pool is not None else None

    def timed_map(tasks: list[BreedTask]) -> list[BreedResult]:
        t0 = time.perf_counter()
        try:
            if pool is None:
                return [breed(t) for t in tasks]
            blobs = [pickle.dumps(t, protocol=pickle.HIGHEST_PROTOCOL) for t in tasks]
            out = run_map(pool, breed_pickled, blobs, timeout=timeout, chunksize=1)
            return [pickle.loads(b) for b in out]
        finally:
            in_pool[0] += time.perf_counter() - t0

    def submit_tasks(tasks: list[BreedTask]) -> Callable[[], list[BreedResult]]:
        if mapper is None:
            results = timed_map(tasks)
            return lambda: results
        fut = mapper.submit(timed_map, tasks)
        return fut.result

    def run_tasks(tasks: list[BreedTask]) -> list[BreedResult]:
        return submit_tasks(tasks)()

    finish: Callable[[], tuple[_Population, int, int, int, int]] | None = None
    try:
        with GenerationProgress(generations + 1, enabled=progress) as bar:
            pop, evals, computed, nodes, tree_nodes = _first_generation(
                codec, reborn, population, master, handle, data, columns, cfg, params,
                n_tasks, run_tasks,
            )

            for gen in range(generations + 1):
                if gen > 0:
                    assert finish is not None
                    pop, evals, computed, nodes, tree_nodes = finish()
                    finish = None
                    if len(islands) > 1 and gen % settings.migration_every == 0:
                        _migrate(pop, islands, settings)
                total_evals += evals
                wall, cpu = meter.lap()
                parent_s, in_pool[0] = max(wall - in_pool[0], 0.0), 0.0
                fit = pop.metrics[:, M_FITNESS]
                best_i = int(np.argmax(fit))
                best = float(fit[best_i])
                if best > best_so_far + 1e-12:
                    best_so_far, stale = best, 0
                else:
                    stale += 1
                stop = stale >= settings.stagnation_generations and gen < generations
                if gen < generations and not stop:  # breed gen + 1 while we book gen
                    finish = _next_generation(
                        pop, islands, settings, master, handle, columns, cfg, params, n_tasks,
                        submit_tasks, pool,
                    )
                c0 = time.thread_time()
                meter.refresh()
                _update_hof(hof, pop, gen, settings.hall_of_fame)
                trials.add(pop)
                stats = GenerationStats(
                    generation=gen,
                    best=best,
                    median=float(np.median(fit)),
                    mean_size=float(pop.sizes.mean()),
                    evaluations=evals,
                    computed=computed,
                    invalid=int((pop.metrics[:, M_VALID] == 0).sum()),
                    seconds=round(wall, 4),
                    evals_per_s=evals / wall if wall > 0 else 0.0,
                    cpu_utilisation=round(cpu, 4),
                    nodes=nodes,
                    tree_nodes=tree_nodes,
                    best_expression=codec.to_string(pop.program(best_i)),
                    parent_seconds=round(parent_s, 4),
                    parent_overlapped_cpu=round(overlapped[0], 5),
                )
                history.append(stats)
                stats_log.write(stats, seed=seed, workers=workers)
                bar.update(stats)
                log.info(
                    "generation %d: best %.4f median %.4f, %d evaluations in %.2fs",
                    gen, stats.best, stats.median, evals, wall,
                )
                # Booked in the next generation's figures (this one's are written already).
                overlapped[0] = time.thread_time() - c0 if finish is not None else 0.0
                if stop:
                    stopped_early = True
                    log.info("stopping: no improvement in %d generations", stale)
                    break
    finally:
        if mapper is not None:
            # After an error or Ctrl-C a map may still be in flight: do not wait for it (the
            # pool's owner kills the workers, which ends it).
            mapper.shutdown(wait=finish is None, cancel_futures=True)
        if pool is not None:
            pool.release(handle)

    return EvolutionResult(
        hall_of_fame=_entries(hof, codec, settings.hall_of_fame),
        generations=tuple(history),
        evaluations=total_evals,
        columns=columns,
        seed=seed,
        stopped_early=stopped_early,
        seconds=time.perf_counter() - t_start,
        distinct_trials=trials.count,
        trial_sharpe_variance=trials.variance(),
        trial_programs=trials.programs(),
        trial_sharpes=trials.sharpes(),
    )


class TrialLog:
    """Distinct valid trees seen by the search and their in-sample Sharpe ratios: the trial
    count and the Sharpe dispersion a deflated Sharpe ratio needs."""

    def __init__(self) -> None:
        self._set = TrialSet()

    def add(self, pop: _Population) -> None:
        # Only new children can be new trials: elites, copies and migrants were met before
        # (same insertion order as a scan of the whole population, a fraction of the work).
        valid = pop.metrics[:, M_VALID] != 0
        keep = valid if pop.fresh is None else valid & pop.fresh
        self._set.add(pop.packed, np.flatnonzero(keep), pop.metrics[:, M_SHARPE])

    def programs(self) -> Sequence[Program]:
        """The distinct valid trees in the order first met (PBO and effective-N samples)."""
        return self._set.programs()

    def sharpes(self) -> tuple[float, ...]:
        """Their annualised in-sample Sharpe ratios, in the same order as ``programs``."""
        return tuple(self._set.sharpe().tolist())

    @property
    def count(self) -> int:
        return self._set.n

    def variance(self) -> float:
        """Sample variance of the annualised Sharpe ratios (0 with fewer than two trials)."""
        v = self._set.sharpe()
        return float(v.var(ddof=1)) if v.size > 1 else 0.0


def _first_generation(
    codec: Codec,
    reborn: Iterable[str],
    population: int,
    master: np.random.Generator,
    handle: SharedArrays,
    data: dict[str, np.ndarray],
    columns: tuple[str, ...],
    cfg: EvalConfig,
    params: VariationParams,
    n_tasks: int,
    run_tasks: Callable[[list[BreedTask]], list[BreedResult]],
) -> tuple[_Population, int, int, int, int]:
    """Reborn seeds first (scored here), then ramped half-and-half trees built by the pool."""
    seeded = _reborn_programs(codec, reborn, population)
    n_random = population - len(seeded)
    seeds = master.integers(0, _SEED_MAX, n_random)
    empty = np.zeros(0, dtype=np.int64)
    results = run_tasks([
        BreedTask(handle, columns, cfg, params, seeds[s], empty, empty)
        for s in split_seeds(n_random, n_tasks)
    ])
    seeded_packed = pack(seeded)
    seeded_metrics, computed, nodes = cached_metrics_packed(handle.key, data, cfg, seeded_packed)
    metrics = [seeded_metrics] + [res.metrics for res in results]
    computed += sum(res.computed for res in results)
    nodes += sum(res.nodes for res in results)
    packed = concat([seeded_packed] + [res.children for res in results])
    sizes = int(packed[2][-1])
    return _Population(packed, np.concatenate(metrics)), len(packed[2]) - 1, computed, nodes, sizes


def _reborn_programs(codec: Codec, reborn: Iterable[str], population: int) -> list[Program]:
    out: list[Program] = []
    seen: set[bytes] = set()
    for expr in reborn:
        try:
            prog = codec.encode(codec.parse(expr))
        except InvalidExpressionError as e:
            log.warning("skipping a Reborn expression that does not fit these inputs: %s", e)
            continue
        k = program_key(prog)
        if k not in seen and len(out) < population:
            seen.add(k)
            out.append(prog)
    return out


def _next_generation(
    pop: _Population,
    islands: Sequence[tuple[int, int]],
    settings: EvolutionSettings,
    master: np.random.Generator,
    handle: SharedArrays,
    columns: tuple[str, ...],
    cfg: EvalConfig,
    params: VariationParams,
    n_tasks: int,
    submit_tasks: Callable[[list[BreedTask]], Callable[[], list[BreedResult]]],
    pool: Pool | None,
) -> Callable[[], tuple[_Population, int, int, int, int]]:
    """Select and send the next generation's breeding to the pool; returns the function that
    waits for it and assembles the population (the caller works in between)."""
    sel = pop.selection_fitness(settings.parsimony)
    elites: list[np.ndarray] = []
    spans: list[int] = []
    for a, b in islands:
        k = min(settings.elitism, b - a - 1)
        elites.append(a + _best(sel[a:b], k))
        spans.append(b - a - k)
    lo_a = np.repeat(np.array([a for a, _ in islands], dtype=np.int64), spans)
    hi_a = np.repeat(np.array([b for _, b in islands], dtype=np.int64), spans)
    n_children = len(lo_a)
    seeds = master.integers(0, _SEED_MAX, n_children)
    code, vals, offsets = pop.packed
    # Few tasks: pickling the population into each is cheapest. Many: write it once.
    via = pool if n_tasks > SHARE_POPULATION_ABOVE else None
    shared = share_arrays({"code": code, "vals": vals, "offsets": offsets, "fitness": sel}, via)
    tasks = [
        BreedTask(handle, columns, cfg, params, seeds[s], lo_a[s], hi_a[s], shared)
        for s in split_seeds(n_children, n_tasks)
    ]
    try:
        wait = submit_tasks(tasks)
    except BaseException:
        if pool is not None:
            pool.release(shared)
        raise

    def finish() -> tuple[_Population, int, int, int, int]:
        try:
            results = wait()
        finally:
            if pool is not None:
                pool.release(shared)
        return _assemble(pop, islands, elites, results)

    return finish


def _best(sel: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` best of ``sel``, best first, ties by index: the head of a full
    stable sort, from the candidates at or above the k-th best value only (serial work
    between generations: a sort of the whole population is several times slower)."""
    if k <= 0:
        return np.zeros(0, dtype=np.int64)
    neg = -sel
    if k >= len(sel) or not np.isfinite(neg).all():
        return np.lexsort((np.arange(len(sel)), neg))[:k].astype(np.int64)
    kth = np.partition(neg, k - 1)[k - 1]
    cand = np.flatnonzero(neg <= kth)  # every value that can be among the k best, ties too
    return cand[np.lexsort((cand, neg[cand]))][:k].astype(np.int64)


def _assemble(
    pop: _Population,
    islands: Sequence[tuple[int, int]],
    elites: list[np.ndarray],
    results: list[BreedResult],
) -> tuple[_Population, int, int, int, int]:
    """The new generation: each island's elites, then its children in order."""
    offsets = pop.packed[2]
    # Every child in order: a copy of individual copy_of (>= 0), or the next new program.
    copy_of = np.concatenate([res.copy_of for res in results])
    is_new = copy_of < 0
    evals = int(is_new.sum())
    computed = sum(res.computed for res in results)
    nodes = sum(res.nodes for res in results)
    n = len(offsets) - 1
    # One index space for the gather: the old population, then the new programs.
    src = copy_of.copy()
    src[is_new] = n + np.arange(evals)
    new_metrics = np.concatenate([res.metrics for res in results]) if evals else np.zeros(
        (0, pop.metrics.shape[1]))
    order: list[np.ndarray] = []
    c = 0
    for (a, b), el in zip(islands, elites, strict=True):
        k = b - a - len(el)
        order += [el, src[c : c + k]]
        c += k
    idx = np.concatenate(order)
    children = concat([res.children for res in results])
    all_metrics = np.concatenate([pop.metrics, new_metrics])
    new = _Population(gather2(pop.packed, children, idx), all_metrics[idx], idx >= n)
    return new, evals, computed, nodes, sum(res.sizes for res in results)


def _migrate(
    pop: _Population, islands: Sequence[tuple[int, int]], settings: EvolutionSettings
) -> None:
    """Ring migration: each island's best replace the next island's worst."""
    sel = pop.selection_fitness(settings.parsimony)
    moves = []
    for i, (a, b) in enumerate(islands):
        na, nb = islands[(i + 1) % len(islands)]
        k = min(settings.migration_size, (b - a) // 2, (nb - na) // 2)
        best = a + np.lexsort((np.arange(b - a), -sel[a:b]))[:k]
        worst = na + np.lexsort((np.arange(nb - na), sel[na:nb]))[:k]
        moves.append((best.tolist(), worst.tolist()))
    src = np.arange(len(pop.metrics))
    for best, worst in moves:
        src[worst] = best  # from a snapshot: every move reads the population before any
    pop.packed = gather(pop.packed, src)
    pop.metrics = pop.metrics[src]
    if pop.fresh is not None:
        pop.fresh = pop.fresh[src]  # a trial first met at its copy's place


@dataclass(frozen=True)
class _Fame:
    """A hall-of-fame member before formatting (strings are built once, at the end)."""

    rank: tuple[float, int, bytes]
    program: Program
    metrics: np.ndarray
    generation: int


def _behaviour(m: np.ndarray) -> tuple[float, ...]:
    """Trees with equal figures trade the same positions (in practice): one of them is enough."""
    return (float(m[M_FITNESS]), float(m[M_TRADES]), float(m[M_MAXDD]), float(m[M_RETURN]))


def _update_hof(hof: dict[bytes, _Fame], pop: _Population, gen: int, size: int) -> None:
    """Keep the best ``size`` distinct behaviours, each by its best-ranked (smallest) tree."""
    fit = pop.metrics[:, M_FITNESS]
    order = np.lexsort((pop.sizes, -fit))
    by_behaviour = {_behaviour(f.metrics): k for k, f in hof.items()}
    worst = sorted(f.rank for f in hof.values())[size - 1] if len(hof) >= size else None
    cand = order[: size * 4]
    # Only valid trees that can rank above the current worst get the per-tree work (the
    # rank comparison below skips the rest anyway; order is by fitness, best first).
    keep = pop.metrics[cand, M_VALID] != 0
    if worst is not None:
        keep &= -fit[cand] <= worst[0]
    for i in cand[keep].tolist():
        m = pop.metrics[i]
        prog = pop.program(i)
        k = program_key(prog)
        rank = (-float(m[M_FITNESS]), len(prog[0]), k)
        if k in hof or (worst is not None and rank >= worst):
            continue
        twin = by_behaviour.get(_behaviour(m))
        if twin is not None:
            if hof[twin].rank <= rank:
                continue
            del hof[twin]  # the same behaviour by a smaller tree
        hof[k] = _Fame(rank, prog, m.copy(), gen)
        by_behaviour[_behaviour(m)] = k
    if len(hof) > size:
        for k, _f in sorted(hof.items(), key=lambda kv: kv[1].rank)[size:]:
            del hof[k]


def _entries(hof: dict[bytes, _Fame], codec: Codec, size: int) -> tuple[HallOfFameEntry, ...]:
    out = []
    for f in sorted(hof.values(), key=lambda f: f.rank)[:size]:
        m = f.metrics
        out.append(HallOfFameEntry(
            expression=codec.to_string(f.program),
            infix=codec.infix(f.program),
            fitness=float(m[M_FITNESS]),
            sharpe=float(m[M_SHARPE]),
            trades=int(m[M_TRADES]),
            max_drawdown=float(m[M_MAXDD]),
            total_return=float(m[M_RETURN]),
            size=len(f.program[0]),
            generation=f.generation,
        ))
    return tuple(out)

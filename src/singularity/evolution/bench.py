"""GP throughput measurement (``singularity bench gp``, ``benchmarks/gp.py``)."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pandas as pd

from singularity.evolution.progress import process_tree_cpu_seconds
from singularity.evolution.settings import EvolutionSettings
from singularity.evolution.synthesizer import evolve
from singularity.runtime.pool import WorkerPool, resolve_workers


def synthetic_market(bars: int, features: int, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The peer's data: a random-walk close and random-walk feature columns."""
    rng = np.random.default_rng(seed)
    idx = pd.date_range("2024-01-01", periods=bars, freq="1h", tz="UTC", name="timestamp")
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, bars)))
    open_ = np.r_[close[0], close[:-1]]
    candles = pd.DataFrame(
        {"open": open_, "high": np.maximum(open_, close), "low": np.minimum(open_, close),
         "close": close, "volume": 1.0},
        index=idx,
    )
    inputs = pd.DataFrame(
        {f"f{i}": rng.normal(0, 1, bars).cumsum() for i in range(features)}, index=idx
    )
    return inputs, candles


def run_gp_bench(
    *, bars: int, features: int, population: int, generations: int, workers: int, seed: int
) -> dict[str, Any]:
    inputs, candles = synthetic_market(bars, features, seed)
    n_workers = resolve_workers(workers)
    # Run every generation: the benchmark measures throughput, not convergence.
    settings = EvolutionSettings(stagnation_generations=10_000)
    with WorkerPool(n_workers) as pool:
        # Warm-up (the peer warms its workers too): spawn, imports, numba cache loads.
        evolve(inputs.iloc[:200], candles.iloc[:200], population=4 * n_workers,
               generations=1, seed=seed, pool=pool, settings=settings)
        t0, c0 = time.perf_counter(), process_tree_cpu_seconds()
        result = evolve(inputs, candles, population=population, generations=generations,
                        seed=seed, pool=pool, settings=settings)
        wall, cpu = time.perf_counter() - t0, process_tree_cpu_seconds() - c0
    gens = result.generations
    nodes = sum(g.nodes for g in gens)  # computed by the interpreter (no cache hits)
    tree_nodes = sum(g.tree_nodes for g in gens)
    evaluated = sum(g.evaluations for g in gens)
    return {
        "design": "token programs + numba DAG interpreter, seeded breeding in workers",
        "bars": bars,
        "features": features,
        "workers": n_workers,
        "population": population,
        "generations": generations,
        "evaluations": result.evaluations,
        "computed_evaluations": sum(g.computed for g in gens),
        "seconds": round(wall, 3),
        "evals_per_s": round(result.evaluations / wall, 1),
        "computed_evals_per_s": round(sum(g.computed for g in gens) / wall, 1),
        "cpu_utilisation": round(cpu / (wall * n_workers), 3),
        # CPU of the whole process tree per evaluation: the figure to compare between runs
        # on a shared machine (it does not count waits for a core).
        "cpu_us_per_evaluation": round(cpu / max(result.evaluations, 1) * 1e6, 2),
        "mean_tree_size": round(tree_nodes / max(evaluated, 1), 2),
        # Only nodes actually computed (each distinct subtree of a batch once; trees served
        # by the cache count nothing): the interpreter's real work.
        "computed_nodes": nodes,
        "node_evals_per_s": round(nodes * bars / wall, 1),
        "node_evals_per_cpu_s": round(nodes * bars / max(cpu, 1e-9), 1),
        "best_fitness": round(result.best.fitness, 4) if result.hall_of_fame else None,
    }

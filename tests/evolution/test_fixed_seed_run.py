"""Speed work never changes a result: a fixed-seed GP run gives exactly the figures the code
gave before the fused evaluator and the compiled crossover (recorded from commit 092463a)."""

from __future__ import annotations

from gp_data import random_market

from singularity.config import CostSettings
from singularity.evolution.settings import EvolutionSettings
from singularity.evolution.synthesizer import evolve

BEFORE = {
    "hof": [
        ("diff(ts_max(add(f2, f3), w10), l10)", 8.621114100893228, 40, 0.09895643605138627),
        ("diff(ts_max(add(f2, add(f2, f3)), w10), l10)", 8.56587818099373, 36, 0.09309643156875391),
        ("diff(ts_max(add(f2, add(f2, f3)), w5), l10)", 8.237335687596518, 43, 0.10060043275665753),
    ],
    "evaluations": 481,
    "trials": 271,
    "variance": 11.799946303096988,
    "best": [7.572993567539264, 7.572993567539264] + [8.621114100893228] * 4,
}


def test_fixed_seed_run_is_unchanged_by_the_speed_work() -> None:
    inputs, candles = random_market(700, 5, 4)
    r = evolve(inputs, candles, population=90, generations=5, seed=11,
               settings=EvolutionSettings(stagnation_generations=100),
               # recorded long/short without a short charge (before spot became long-only)
               costs=CostSettings(market="perpetual", short_rate_bps_per_day=0.0))
    got = [(h.expression, h.fitness, h.trades, h.max_drawdown) for h in r.hall_of_fame[:3]]
    assert got == BEFORE["hof"]
    assert r.evaluations == BEFORE["evaluations"]
    assert r.distinct_trials == BEFORE["trials"]
    assert r.trial_sharpe_variance == BEFORE["variance"]
    assert [g.best for g in r.generations] == BEFORE["best"]


def _trial_digest(programs) -> str:  # type: ignore[no-untyped-def]
    import hashlib

    h = hashlib.sha256()
    for code, vals in programs:
        h.update(code.tobytes() + vals.tobytes() + b"|")
    return h.hexdigest()[:16]


def test_trial_log_with_islands_and_migration_is_unchanged() -> None:
    """The trial log scans only new children; migrants keep the order a full scan gives
    (recorded from the full-scan code: 216 trials, their Sharpe variance and their order)."""
    inputs, candles = random_market(700, 5, 4)
    r = evolve(inputs, candles, population=90, generations=5, seed=11,
               settings=EvolutionSettings(stagnation_generations=100, islands=3, migration_every=1),
               costs=CostSettings(market="perpetual", short_rate_bps_per_day=0.0))
    assert r.distinct_trials == 216
    assert r.trial_sharpe_variance == 12.682386124962441
    assert _trial_digest(r.trial_programs) == "5ed12555f3e6b3d2"


def test_fixed_seed_run_through_a_pool_is_unchanged() -> None:
    """The pooled path (packed population, breeding overlapped with the parent's bookkeeping)
    gives the recorded figures too."""
    from singularity.runtime.pool import WorkerPool

    inputs, candles = random_market(700, 5, 4)
    with WorkerPool(2) as pool:
        r = evolve(inputs, candles, population=90, generations=5, seed=11, pool=pool,
                   settings=EvolutionSettings(stagnation_generations=100),
                   costs=CostSettings(market="perpetual", short_rate_bps_per_day=0.0))
    got = [(h.expression, h.fitness, h.trades, h.max_drawdown) for h in r.hall_of_fame[:3]]
    assert got == BEFORE["hof"]
    assert (r.evaluations, r.distinct_trials) == (BEFORE["evaluations"], BEFORE["trials"])
    assert r.trial_sharpe_variance == BEFORE["variance"]
    assert [g.best for g in r.generations] == BEFORE["best"]

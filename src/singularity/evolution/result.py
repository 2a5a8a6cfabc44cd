"""What a GP run returns: the hall of fame and per-generation statistics (plain data)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class HallOfFameEntry:
    expression: str
    """DEAP prefix form; ``evaluate_expression`` re-runs it on new data with the same columns."""
    infix: str
    """Readable form."""
    fitness: float
    """Objective net of costs, after trade/drawdown penalties (no parsimony)."""
    sharpe: float
    trades: int
    max_drawdown: float
    total_return: float
    size: int
    generation: int
    """Generation in which it was first found."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class GenerationStats:
    generation: int
    best: float
    median: float
    mean_size: float
    evaluations: int
    """Individuals of this generation that needed a fitness (new children)."""
    computed: int
    """Of those, evaluated by the interpreter (the rest came from caches or duplicates)."""
    invalid: int
    seconds: float
    evals_per_s: float
    cpu_utilisation: float
    nodes: int
    """Tree nodes the interpreter computed for this generation (x bars = node evaluations):
    each distinct subtree of a batch once, nothing for trees served by a cache."""
    best_expression: str
    parent_seconds: float = 0.0
    """Wall seconds of the generation spent in the parent outside the pool's map (selection,
    packing, sharing, bookkeeping): the serial share that bounds scaling (Amdahl)."""
    tree_nodes: int = 0
    """Total size of the trees evaluated (new children), cached or computed."""
    parent_overlapped_cpu: float = 0.0
    """Parent CPU seconds of the previous generation's bookkeeping (hall of fame, trial log,
    statistics) done while the workers bred this one: parent work that is not serial."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class EvolutionResult:
    hall_of_fame: tuple[HallOfFameEntry, ...]
    generations: tuple[GenerationStats, ...]
    evaluations: int
    """Every fitness evaluation of the run: the trial count for a deflated Sharpe."""
    columns: tuple[str, ...]
    seed: int
    stopped_early: bool
    seconds: float
    distinct_trials: int = 0
    """Distinct valid trees evaluated (the deflated Sharpe ratio's number of trials)."""
    trial_sharpe_variance: float = 0.0
    """Sample variance of those trees' annualised in-sample Sharpe ratios."""
    trial_programs: Sequence[Any] = field(default=(), repr=False, compare=False)
    """Every distinct valid tree evaluated, in the order first met (token programs)."""
    trial_sharpes: tuple[float, ...] = field(default=(), repr=False, compare=False)
    """Their annualised in-sample Sharpe ratios, in the same order."""

    @property
    def best(self) -> HallOfFameEntry:
        return self.hall_of_fame[0]

    def sample_trials(self, n: int, seed: int, *, include: tuple[str, ...] = (),
                      top_share: float = 1.0) -> list[str]:
        """``n`` distinct trials drawn uniformly (without replacement) from every tree the
        search evaluated, as expressions; ``include`` (e.g. the chosen candidate) first.
        ``top_share`` < 1 draws only among the trials whose in-sample Sharpe ratio is in that
        top share of all trials (ties at the cut included)."""
        from singularity.evolution.evaluator import codec_for

        codec = codec_for(self.columns)
        out = list(dict.fromkeys(include))
        pool = np.arange(len(self.trial_programs))
        if top_share < 1.0 and len(self.trial_sharpes) == pool.size and pool.size:
            sr = np.nan_to_num(np.asarray(self.trial_sharpes, dtype=np.float64), nan=-np.inf)
            pool = np.flatnonzero(sr >= np.quantile(sr, 1.0 - top_share))
        rng = np.random.default_rng(seed)
        for i in pool[rng.permutation(pool.size)].tolist():
            if len(out) >= n:
                break
            expr = codec.to_string(self.trial_programs[i])
            if expr not in out:
                out.append(expr)
        return out

    def trials_by_sharpe(self) -> list[str]:
        """Every distinct trial as an expression, best in-sample Sharpe first (ties: first met)."""
        from singularity.evolution.evaluator import codec_for

        codec = codec_for(self.columns)
        sr = np.nan_to_num(np.asarray(self.trial_sharpes, dtype=np.float64), nan=-np.inf)
        order = np.argsort(-sr, kind="stable") if sr.size == len(self.trial_programs) else \
            np.arange(len(self.trial_programs))
        return [codec.to_string(self.trial_programs[i]) for i in order.tolist()]

    def to_dict(self) -> dict[str, Any]:
        return {
            "hall_of_fame": [h.to_dict() for h in self.hall_of_fame],
            "generations": [g.to_dict() for g in self.generations],
            "evaluations": self.evaluations,
            "columns": list(self.columns),
            "seed": self.seed,
            "stopped_early": self.stopped_early,
            "seconds": self.seconds,
            "distinct_trials": self.distinct_trials,
            "trial_sharpe_variance": self.trial_sharpe_variance,
        }

"""What a GP run returns: the hall of fame and per-generation statistics (plain data)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


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
    """Tree nodes of the evaluated individuals (x bars = node evaluations)."""
    best_expression: str

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

    @property
    def best(self) -> HallOfFameEntry:
        return self.hall_of_fame[0]

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

"""GP settings (section ``[evolution]``). Light module: no heavy imports here."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from singularity.settings_base import FrozenModel


class EvolutionSettings(FrozenModel):
    tournament_size: int = Field(default=5, ge=2)
    crossover_prob: float = Field(default=0.6, ge=0, le=1)
    mutation_prob: float = Field(default=0.3, ge=0, le=1)
    max_height: int = Field(default=10, ge=2)
    max_size: int = Field(default=60, ge=3)
    init_min_depth: int = Field(default=2, ge=1)
    init_max_depth: int = Field(default=5, ge=1)
    parsimony: float = Field(default=0.002, ge=0)
    elitism: int = Field(default=5, ge=0)
    hall_of_fame: int = Field(default=10, ge=1)
    stagnation_generations: int = Field(default=8, ge=1)
    islands: int = Field(default=1, ge=1)
    migration_every: int = Field(default=5, ge=1)
    migration_size: int = Field(default=3, ge=1)
    long_only: bool = False
    objective: Literal["sharpe", "sortino", "calmar"] = "sharpe"
    min_trades: int = Field(default=10, ge=0)
    max_drawdown_penalty: float = Field(default=0.5, ge=0)
    """Drawdowns deeper than this fraction are penalised."""
    batch_size: int = Field(default=0, ge=0)
    """Individuals per dispatched task; 0 = split each generation evenly over the workers."""
    batch_timeout_s: float = Field(default=300.0, gt=0)

"""Gauntlet thresholds (section ``[gauntlet]``). Light module: no heavy imports here."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from singularity.settings_base import FrozenModel


class GauntletSettings(FrozenModel):
    tests: tuple[str, ...] = (
        "holdout", "walk_forward", "permutation", "noise", "cost_stress",
        "deflated_sharpe", "pbo", "trades_drawdown",
    )
    """Enabled tests; a champion must pass every one of them."""
    min_holdout_sharpe: float = 0.5
    """Annualised, net of costs."""
    walk_forward_blocks: int = Field(default=4, ge=2)
    walk_forward_min_sharpe: float = 0.0
    permutation_runs: int = Field(default=200, ge=10)
    permutation_block: int = Field(default=24, ge=1)
    search_null_runs: int = Field(default=4, ge=0)
    """Whole-search bar-permutation nulls (0 = skip that half of the permutation test)."""
    max_p_value: float = Field(default=0.05, gt=0, lt=1)
    noise_runs: int = Field(default=20, ge=1)
    noise_scale: float = Field(default=0.25, gt=0)
    """Gaussian price noise, in units of each bar's trailing return volatility."""
    bootstrap_block: int = Field(default=48, ge=1)
    min_profitable_share: float = Field(default=0.6, ge=0, le=1)
    cost_multipliers: tuple[float, ...] = (2.0, 3.0)
    min_stressed_sharpe: float = 0.0
    """Annualised Sharpe the holdout must keep with costs doubled (the first multiplier)."""
    min_dsr: float = Field(default=0.95, ge=0, le=1)
    dsr_variance: Literal["null", "trials"] = "null"
    """V[SR] behind the DSR benchmark: 'null' = the Sharpe estimator's variance when no trial
    has skill, 1/(T-1) per period (a test of 'every trial is luck'); 'trials' = the
    cross-sectional variance of the search's trial Sharpes, which real skill spread over many
    related trees inflates. Both DSRs are reported; this one decides."""
    max_pbo: float = Field(default=0.5, ge=0, le=1)
    pbo_blocks: int = Field(default=10, ge=2)
    pbo_candidates: int = Field(default=16, ge=2)
    min_trades: int = Field(default=10, ge=0)
    max_drawdown: float = Field(default=0.35, gt=0, le=1)

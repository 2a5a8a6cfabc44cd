"""Reborn without leaks: which earlier strategies may seed a cycle, and which earlier trials
count against it.

A seed is an earlier cycle's strategy; it was chosen by looking at that cycle's data. It may
seed a new cycle only if it comes from the same exchange, symbol and timeframe and none of the
data it was chosen on (its training window, warm-up included, and its holdout) overlaps the new
cycle's holdout: otherwise the holdout would judge a rule picked with the holdout in view. The
searches of earlier cycles on overlapping data are trials of the same experiment, so their
distinct trees count in the new cycle's deflated Sharpe ratio.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from singularity.forge.split import Split
from singularity.registry import Registry


def data_window(exchange: str, symbol: str, timeframe: str, first: pd.Timestamp, index: pd.DatetimeIndex,
                split: Split) -> dict[str, Any]:
    """What a run records about its data: ``train`` runs from the first candle read (feature
    warm-up included) to the last training bar, ``holdout`` over the holdout's bars."""
    return {"exchange": exchange, "symbol": symbol, "timeframe": timeframe,
            "train": [first.isoformat(), index[split.train][-1].isoformat()],
            "holdout": [index[split.holdout][0].isoformat(), index[split.holdout][-1].isoformat()]}


def _span(window: dict[str, Any]) -> tuple[pd.Timestamp, pd.Timestamp]:
    return pd.Timestamp(window["train"][0]), pd.Timestamp(window["holdout"][1])


def overlaps(a: tuple[pd.Timestamp, pd.Timestamp], b: tuple[pd.Timestamp, pd.Timestamp]) -> bool:
    return a[0] <= b[1] and b[0] <= a[1]


@dataclass(frozen=True)
class RebornPlan:
    seeds: list[Any]
    """Registry strategies that may seed the population (champions first)."""
    excluded_runs: list[int]
    """Earlier runs on this market whose data overlaps the new holdout: no seeds from them."""
    prior_trials: int
    """Distinct trees searched by earlier runs on overlapping data."""
    prior_runs: list[int]


def plan_reborn(registry: Registry, window: dict[str, Any], *, limit: int = 10) -> RebornPlan:
    """Seeds and prior trials for a cycle on ``window`` (see the module docstring). Runs that
    recorded no window (older runs) are never used as seed sources."""
    runs = registry.run_windows(exchange=window["exchange"], symbol=window["symbol"],
                                timeframe=window["timeframe"])
    hold = (pd.Timestamp(window["holdout"][0]), pd.Timestamp(window["holdout"][1]))
    whole = _span(window)
    excluded = sorted(rid for rid, w in runs.items() if overlaps(_span(w), hold))
    eligible = sorted(set(runs) - set(excluded))
    seeds = registry.reborn_seeds(window["symbol"], window["timeframe"], run_ids=eligible, limit=limit) \
        if eligible else []
    prior = sorted(rid for rid, w in runs.items() if overlaps(_span(w), whole))
    trials = sum(int(runs[rid].get("trials", 0)) for rid in prior)
    return RebornPlan(seeds=seeds, excluded_runs=excluded, prior_trials=trials, prior_runs=prior)

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

from dataclasses import dataclass, field
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
    unwindowed_runs: list[int] = field(default_factory=list)
    """Earlier runs on this symbol and timeframe that recorded no data window (made before
    windows were recorded): their data may overlap the new holdout, so no seeds from them."""

    def messages(self) -> list[str]:
        """What the cycle's log says about its seeds: which runs seed nothing and why, how
        many seeds, and the earlier trials counted in the DSR."""
        out = []
        if self.excluded_runs:
            out.append(f"no seeds from run(s) {', '.join(map(str, self.excluded_runs))}: their data overlaps "
                       "this holdout")
        if self.unwindowed_runs:
            out.append(f"no seeds from run(s) {', '.join(map(str, self.unwindowed_runs))}: they recorded no data "
                       "window (made before windows were recorded), so their data may overlap this holdout")
        out.append(f"{len(self.seeds)} seed(s); {self.prior_trials} trials of earlier run(s) on overlapping data "
                   "count in the DSR" + (f" (runs {', '.join(map(str, self.prior_runs))})" if self.prior_runs else ""))
        return out


def plan_reborn(registry: Registry, window: dict[str, Any], *, limit: int = 10) -> RebornPlan:
    """Seeds and prior trials for a cycle on ``window`` (see the module docstring). Runs that
    recorded no window (older runs) are never used as seed sources: ``unwindowed_runs`` names
    them, for the log."""
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
    legacy = registry.runs_without_window(symbol=window["symbol"], timeframe=window["timeframe"])
    return RebornPlan(seeds=seeds, excluded_runs=excluded, prior_trials=trials, prior_runs=prior,
                      unwindowed_runs=legacy)

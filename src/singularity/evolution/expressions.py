"""Re-running a frozen expression on new data (the gauntlet's entry point)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from singularity.config import CostSettings
from singularity.evolution.evaluator import EvalConfig, codec_for, evaluate_programs, market_arrays
from singularity.evolution.fitness import (
    M_FITNESS,
    M_MAXDD,
    M_RETURN,
    M_SHARPE,
    M_TRADES,
    M_VALID,
    positions_from_output,
)
from singularity.timeframes import periods_per_year


def _run_many(exprs: list[str], inputs: pd.DataFrame, candles: pd.DataFrame | None,
              cfg: EvalConfig) -> tuple[np.ndarray, np.ndarray]:
    """Metrics and outputs of the trees ``exprs`` from one evaluator call (shared subtrees are
    computed once, by the same kernels: each tree's output is as it is alone)."""
    codec = codec_for([str(c) for c in inputs.columns])
    progs = [codec.encode(codec.parse(e)) for e in exprs]
    if candles is None:  # positions only: prices are not read before scoring
        ones = pd.DataFrame({"open": 1.0, "close": 1.0}, index=inputs.index)
        data = market_arrays(inputs, ones)
    else:
        data = market_arrays(inputs, candles)
    metrics, outputs, _ = evaluate_programs(data, cfg, progs, keep_outputs=True)
    return metrics, outputs


def _run(expr: str, inputs: pd.DataFrame, candles: pd.DataFrame | None, cfg: EvalConfig):  # type: ignore[no-untyped-def]
    metrics, outputs = _run_many([expr], inputs, candles, cfg)
    return metrics[0], outputs[0]


def evaluate_expression(
    expr: str,
    inputs: pd.DataFrame,
    candles: pd.DataFrame | None = None,
    *,
    long_only: bool = False,
) -> pd.Series:
    """Target positions in {-1, 0, 1} (decided at each bar's close) of the tree ``expr`` over
    ``inputs`` (same column names as when it was evolved)."""
    cfg = EvalConfig(cost_rate=0.0, periods_per_year=1.0, long_only=long_only)
    _, out = _run(expr, inputs, candles, cfg)
    target = np.empty(len(out))
    positions_from_output(out, long_only, target)
    return pd.Series(target, index=inputs.index, name="position")


def expressions_positions(exprs: list[str], inputs: pd.DataFrame, *, long_only: bool = False) -> list[np.ndarray]:
    """``evaluate_expression``'s positions (as arrays) of each of ``exprs``, from ONE evaluator
    call: the input arrays are built once, not once per expression."""
    if not exprs:
        return []
    cfg = EvalConfig(cost_rate=0.0, periods_per_year=1.0, long_only=long_only)
    _, outputs = _run_many(exprs, inputs, None, cfg)
    out = []
    for row in outputs:
        target = np.empty(len(row))
        positions_from_output(row, long_only, target)
        out.append(target)
    return out


def expression_metrics(
    expr: str,
    inputs: pd.DataFrame,
    candles: pd.DataFrame,
    *,
    costs: CostSettings | None = None,
    timeframe: str = "1h",
    long_only: bool = False,
    objective: str = "sharpe",
    min_trades: int = 10,
    max_drawdown: float = 0.5,
    fill_on_open: bool = True,
) -> dict[str, Any]:
    """The in-sample figures the GP reports, for ``expr`` on any data, net of costs."""
    costs = costs or CostSettings()
    cfg = EvalConfig(
        cost_rate=(costs.fee_bps + costs.slippage_bps) / 1e4,
        periods_per_year=periods_per_year(timeframe), fill_on_open=fill_on_open,
        long_only=long_only, objective=objective, min_trades=min_trades,
        max_drawdown=max_drawdown,
    )
    m, _ = _run(expr, inputs, candles, cfg)
    return {
        "fitness": float(m[M_FITNESS]),
        "sharpe": float(m[M_SHARPE]),
        "trades": int(m[M_TRADES]),
        "max_drawdown": float(m[M_MAXDD]),
        "total_return": float(m[M_RETURN]),
        "valid": bool(m[M_VALID]),
    }

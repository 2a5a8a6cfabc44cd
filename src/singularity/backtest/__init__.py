"""Backtesting: numba kernels on arrays (``kernel``), metrics, and the pandas-facing ``run``."""

from singularity.backtest.kernel import (
    bar_returns,
    count_trades,
    max_drawdown_from_returns,
    sharpe_from_returns,
    simulate,
)

__all__ = [
    "bar_returns",
    "count_trades",
    "max_drawdown_from_returns",
    "sharpe_from_returns",
    "simulate",
]

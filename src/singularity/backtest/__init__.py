"""Backtesting: numba kernels on arrays (``kernel``), ``metrics``, and the pandas-facing ``run``.

Accounting, fills, fees, slippage and funding are documented in ``singularity.backtest.kernel``;
metric conventions in ``singularity.backtest.metrics``.
"""

from singularity.backtest.kernel import (
    bar_returns,
    count_trades,
    max_drawdown_from_returns,
    sharpe_from_returns,
    short_financing,
    simulate,
)
from singularity.backtest.metrics import compute_metrics
from singularity.backtest.runner import TRADE_COLUMNS, BacktestResult, net_returns, run

__all__ = [
    "TRADE_COLUMNS",
    "BacktestResult",
    "bar_returns",
    "compute_metrics",
    "count_trades",
    "max_drawdown_from_returns",
    "net_returns",
    "run",
    "sharpe_from_returns",
    "short_financing",
    "simulate",
]

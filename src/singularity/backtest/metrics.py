"""Performance metrics from net per-bar returns. Every figure is a finite float.

Conventions (risk-free rate 0, 365-day calendar through ``periods_per_year``):

* ``total_return`` = prod(1 + r) - 1; ``cagr`` = (1 + total_return) ** (periods_per_year / n) - 1
  with n = len(r) bars (-1 when equity ends at or below zero; capped at ``CAGR_CAP`` = 1e6,
  which only a short window of large gains reaches).
* ``volatility`` = sample std (ddof=1) * sqrt(periods_per_year).
* ``sharpe`` = mean / sample std * sqrt(periods_per_year); 0 when the std is 0.
* ``sortino`` = mean / downside deviation * sqrt(periods_per_year), downside deviation =
  sqrt(mean(min(r, 0) ** 2)) over all bars; 0 when there is no losing bar.
* ``max_drawdown`` is a POSITIVE fraction (0.25 = equity fell 25 % from its peak);
  ``max_drawdown_duration_bars`` is the longest stretch from a peak to the bar that regains it
  (or to the last bar if it never does); ``max_drawdown_duration_days`` is that in days.
* ``calmar`` = cagr / max_drawdown; 0 when there is no drawdown.
* ``win_rate`` and ``profit_factor`` use trade pnls when given, else the non-zero per-bar
  returns. ``profit_factor`` = gross profit / gross loss, capped at ``PROFIT_FACTOR_CAP``
  (also when there is profit but no loss); 0 when there is no profit.
* ``exposure`` = share of bars ending with a non-zero position (without positions: share of
  bars with a non-zero return). ``turnover`` = traded notional / equity, summed and
  annualised (2.0 = the equity is bought and sold once a year); 0 without turnover data.
* ``skew`` and ``kurtosis`` (excess) are the population moments of the per-bar returns
  (scipy's ``skew(bias=True)``, ``kurtosis(fisher=True, bias=True)``); 0 when the std is 0.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from singularity.backtest.kernel import max_drawdown_from_returns, sharpe_from_returns

PROFIT_FACTOR_CAP = 100.0
CAGR_CAP = 1e6
_LOG_CAGR_CAP = math.log1p(CAGR_CAP)

METRIC_NAMES = (
    "total_return",
    "cagr",
    "volatility",
    "sharpe",
    "sortino",
    "max_drawdown",
    "max_drawdown_duration_bars",
    "max_drawdown_duration_days",
    "calmar",
    "win_rate",
    "profit_factor",
    "trade_count",
    "exposure",
    "turnover",
    "skew",
    "kurtosis",
    "n_bars",
)


_COUNTS = ("max_drawdown_duration_bars", "trade_count", "n_bars")


@njit(cache=True, nogil=True)
def drawdown_duration_bars(returns: np.ndarray) -> int:
    """Longest number of bars from an equity peak to the bar that regains it (or the end)."""
    longest = 0
    equity = 1.0
    peak = 1.0
    peak_bar = -1  # the starting equity of 1.0 is the peak "before" bar 0
    n = returns.shape[0]
    for i in range(n):
        equity *= 1.0 + returns[i]
        if equity >= peak:
            if peak_bar < i - 1:  # a drawdown ends at this bar: it lasted from peak to here
                longest = max(longest, i - peak_bar)
            peak = equity
            peak_bar = i
    return max(longest, n - 1 - peak_bar)  # one still open at the end


def _moments(r: np.ndarray) -> tuple[float, float]:
    centred = r - r.mean()
    m2 = float(np.mean(centred**2))
    if m2 <= 1e-30:
        return 0.0, 0.0
    skew = float(np.mean(centred**3)) / m2**1.5
    kurt = float(np.mean(centred**4)) / m2**2 - 3.0
    return skew, kurt


def _profit_factor(gains: np.ndarray) -> float:
    profit = float(gains[gains > 0].sum())
    loss = float(-gains[gains < 0].sum())
    if profit <= 0.0:
        return 0.0
    if loss <= 0.0:
        return PROFIT_FACTOR_CAP
    return min(profit / loss, PROFIT_FACTOR_CAP)


def compute_metrics(
    returns: np.ndarray,
    *,
    periods_per_year: float,
    positions: np.ndarray | None = None,
    turnover: np.ndarray | None = None,
    trade_pnl: np.ndarray | None = None,
) -> dict[str, float]:
    """All metrics of the module docstring; NaN returns count as 0."""
    r = np.nan_to_num(np.asarray(returns, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    n = r.shape[0]
    ppy = float(periods_per_year)
    out = dict.fromkeys(METRIC_NAMES, 0.0)
    out["n_bars"] = n
    if n == 0:
        return _finite(out)

    growth = float(np.prod(1.0 + r))
    out["total_return"] = growth - 1.0
    # in logs: a short window's gain raised to thousands of bars a year overflows floats
    out["cagr"] = (
        -1.0 if growth <= 0.0 else math.expm1(min(math.log(growth) * ppy / n, _LOG_CAGR_CAP))
    )
    out["volatility"] = float(r.std(ddof=1) * np.sqrt(ppy)) if n > 1 else 0.0
    out["sharpe"] = float(sharpe_from_returns(r, ppy))
    downside = float(np.sqrt(np.mean(np.minimum(r, 0.0) ** 2)))
    out["sortino"] = float(r.mean() / downside * np.sqrt(ppy)) if downside > 1e-15 else 0.0
    mdd = float(max_drawdown_from_returns(r))
    out["max_drawdown"] = mdd
    bars = int(drawdown_duration_bars(r))
    out["max_drawdown_duration_bars"] = float(bars)
    out["max_drawdown_duration_days"] = bars * 365.0 / ppy
    out["calmar"] = out["cagr"] / mdd if mdd > 0.0 else 0.0

    gains = r[r != 0.0] if trade_pnl is None else np.asarray(trade_pnl, dtype=np.float64)
    if gains.size:
        out["win_rate"] = float(np.mean(gains > 0.0))
        out["profit_factor"] = _profit_factor(gains)
    out["trade_count"] = float(0 if trade_pnl is None else len(trade_pnl))
    if positions is not None:
        out["exposure"] = float(np.mean(np.nan_to_num(np.asarray(positions)) != 0.0))
    else:
        out["exposure"] = float(np.mean(r != 0.0))
    if turnover is not None:
        out["turnover"] = float(np.nansum(turnover) / n * ppy)
    out["skew"], out["kurtosis"] = _moments(r)
    return _finite(out)


def _finite(out: dict[str, float]) -> dict[str, float]:
    """A last guard (no inf/NaN downstream); counts as ints."""
    clean = {k: (float(v) if np.isfinite(v) else 0.0) for k, v in out.items()}
    for k in _COUNTS:
        clean[k] = int(clean[k])
    return clean

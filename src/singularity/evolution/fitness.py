"""Fitness of a position series on the training data, net of fees and slippage (numba).

Objective (default annualised Sharpe; Sortino or Calmar as options) minus penalties for too few
trades and for drawdowns deeper than a limit. Always finite: clipped to +-FITNESS_CAP, and a
tree whose output is NaN everywhere or constant gets WORST, below every real score.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from singularity.backtest.kernel import (
    _order,
    bar_returns,
    count_trades,
    max_drawdown_from_returns,
    sharpe_from_returns,
)

WORST = -100.0
FITNESS_CAP = 50.0
OBJECTIVES = {"sharpe": 0, "sortino": 1, "calmar": 2}
# Columns of the metrics rows returned for every evaluated tree.
M_FITNESS, M_SHARPE, M_TRADES, M_MAXDD, M_RETURN, M_VALID = range(6)
N_METRICS = 6
TRADE_PENALTY = 2.0
"""Fitness lost at zero trades; linear up to ``min_trades``."""
DRAWDOWN_PENALTY = 5.0
"""Fitness lost per unit of drawdown beyond the limit."""


@njit(cache=True, nogil=True)
def sortino_from_returns(r: np.ndarray, periods_per_year: float) -> float:
    n = r.shape[0]
    if n < 2:
        return 0.0
    mean = r.mean()
    down = 0.0
    for i in range(n):
        if r[i] < 0.0:
            down += r[i] * r[i]
    dd = np.sqrt(down / n)
    if not dd > 1e-15:
        return 0.0
    return mean / dd * np.sqrt(periods_per_year)


@njit(cache=True, nogil=True)
def calmar_from_returns(r: np.ndarray, periods_per_year: float, mdd: float) -> float:
    n = r.shape[0]
    if n < 2:
        return 0.0
    growth = 1.0
    for i in range(n):
        growth *= 1.0 + r[i]
    if growth <= 0.0:
        return -FITNESS_CAP
    annual = growth ** (periods_per_year / n) - 1.0
    return annual / max(mdd, 0.01)


@njit(cache=True, nogil=True)
def positions_from_output(out: np.ndarray, long_only: bool, target: np.ndarray) -> bool:
    """Sign of the output (NaN = flat) into ``target``; False when the output is invalid
    (NaN everywhere or one constant value)."""
    lo = np.inf
    hi = -np.inf
    for t in range(out.shape[0]):
        x = out[t]
        if np.isnan(x):
            target[t] = 0.0
            continue
        if x < lo:
            lo = x
        if x > hi:
            hi = x
        s = 1.0 if x > 0 else (-1.0 if x < 0 else 0.0)
        target[t] = max(s, 0.0) if long_only else s
    return hi > lo


@njit(cache=True, nogil=True)
def score(
    out: np.ndarray,
    open_: np.ndarray,
    close: np.ndarray,
    target: np.ndarray,
    cost_rate: float,
    fill_on_open: bool,
    long_only: bool,
    periods_per_year: float,
    objective: int,
    min_trades: int,
    dd_limit: float,
    metrics: np.ndarray,
    short_rate: float = 0.0,
) -> None:
    """Score one tree output into ``metrics`` (a row of N_METRICS); ``target`` is scratch.
    ``short_rate``: borrow/funding charge per bar on short notional (see the kernel)."""
    valid = positions_from_output(out, long_only, target)
    if not valid:  # scored WORST whatever it would trade: skip the backtest
        metrics[:] = 0.0
        metrics[M_FITNESS] = WORST
        return
    r = bar_returns(open_, close, target, cost_rate, fill_on_open, short_rate)
    trades = count_trades(target)
    mdd = max_drawdown_from_returns(r)
    sharpe = sharpe_from_returns(r, periods_per_year)
    growth = 1.0
    for i in range(r.shape[0]):
        growth *= 1.0 + r[i]
    metrics[M_SHARPE] = sharpe
    metrics[M_TRADES] = trades
    metrics[M_MAXDD] = mdd
    metrics[M_RETURN] = growth - 1.0
    metrics[M_VALID] = 1.0
    if objective == 1:
        f = sortino_from_returns(r, periods_per_year)
    elif objective == 2:
        f = calmar_from_returns(r, periods_per_year, mdd)
    else:
        f = sharpe
    if min_trades > 0 and trades < min_trades:
        f -= TRADE_PENALTY * (min_trades - trades) / min_trades
    if mdd > dd_limit:
        f -= DRAWDOWN_PENALTY * (mdd - dd_limit)
    if not np.isfinite(f):
        f = WORST
    metrics[M_FITNESS] = min(max(f, -FITNESS_CAP), FITNESS_CAP)


@njit(cache=True, nogil=True)
def positions(out: np.ndarray, long_only: bool, w: np.ndarray) -> bool:
    """The position a tree output asks for, bar by bar (``positions_from_output``'s signs as
    int8: NaN is flat), into ``w[: n - 1]`` (the output at t - 1 is traded at t; the rest of
    ``w`` is zeroed). Returns whether the output is valid (not NaN everywhere, not one
    constant value)."""
    n = out.shape[0]
    if long_only:  # branch-free loops: they vectorise
        for t in range(n):
            w[t] = np.int8(out[t] > 0)  # a NaN compares false: flat, as in score
    else:
        for t in range(n):
            x = out[t]
            w[t] = np.int8(x > 0) - np.int8(x < 0)
    w[max(n - 1, 0) :] = 0
    # Valid (score's hi > lo over the non-NaN values) when two of them differ: the first
    # one against the rest, stopping at the first that differs (early, for most outputs).
    first = 0
    while first < n and np.isnan(out[first]):
        first += 1
    for t in range(first + 1, n):
        x = out[t]
        if x != out[first] and not np.isnan(x):
            return True
    return False


@njit(cache=True, nogil=True)
def score_fused(
    out: np.ndarray,
    open_: np.ndarray,
    close: np.ndarray,
    r: np.ndarray,
    cost_rate: float,
    fill_on_open: bool,
    long_only: bool,
    periods_per_year: float,
    objective: int,
    min_trades: int,
    dd_limit: float,
    metrics: np.ndarray,
    short_rate: float = 0.0,
) -> None:
    """``score`` as ``positions`` then ``score_positions``: every figure is computed with the
    same operations in the same order as ``score``, so the two agree bit for bit (the tests
    hold them to it)."""
    n = out.shape[0]
    w = np.zeros(n + 8, dtype=np.int8)
    if not positions(out, long_only, w):  # scored WORST whatever it would trade
        metrics[:] = 0.0
        metrics[M_FITNESS] = WORST
        return
    score_positions(w, n, open_, close, r, cost_rate, fill_on_open, periods_per_year,
                    objective, min_trades, dd_limit, metrics, short_rate)


@njit(cache=True, nogil=True)
def score_positions(
    w: np.ndarray,
    n: int,
    open_: np.ndarray,
    close: np.ndarray,
    r: np.ndarray,
    cost_rate: float,
    fill_on_open: bool,
    periods_per_year: float,
    objective: int,
    min_trades: int,
    dd_limit: float,
    metrics: np.ndarray,
    short_rate: float = 0.0,
) -> None:
    """``score`` of a valid output from its ``positions`` ``w`` (n bars) in one pass: the
    backtest (``bar_returns``), trade count, drawdown, growth and the Sharpe mean together;
    only the Sharpe's squared deviations take a second pass, over ``r`` (scratch of n
    floats, small enough to stay in cache). The figures depend on the output only through
    ``w``: trees that ask for the same positions score the same."""
    cash = 1.0
    shares = 0.0
    prev_equity = 1.0
    prev_want = 0.0
    ruined = False
    trades = 0
    prev_pos = 0.0
    total = 0.0
    eq = 1.0
    peak = 1.0
    trough = 1.0  # lowest equity since the last peak
    mdd = 0.0
    if n > 0:
        r[0] = 0.0
    for t in range(1, n):
        want = float(w[t - 1])
        # count_trades: an entry when leaving flat or flipping side
        if want != 0.0 and (prev_pos == 0.0 or (want > 0.0) != (prev_pos > 0.0)):
            trades += 1
        prev_pos = want
        # A bar that cannot move equity (ruined, or flat with no order: equity = cash =
        # prev_equity, so rt = 1 - 1 = +0.0) adds +0.0 to ``total`` (never -0.0), multiplies
        # ``eq`` by 1 and leaves peak and trough alone: skipping it changes no bit, and
        # saves the division on the bars a long-only tree sits out (most of them, in a GP).
        if ruined or (shares == 0.0 and want == prev_want and cash == prev_equity
                      and abs(close[t]) < np.inf):
            r[t] = 0.0
            continue
        rt = 0.0
        # bar_returns, step t (the short charge included)
        if want != prev_want:
            price = open_[t] if fill_on_open else close[t]
            if not fill_on_open and shares < 0.0:
                cash += short_rate * shares * close[t]
            cash, shares, _d, _p, _f = _order(cash, shares, want, price, cost_rate, 0.0)
            prev_want = want
            if fill_on_open and shares < 0.0:
                cash += short_rate * shares * close[t]
        elif shares < 0.0:
            cash += short_rate * shares * close[t]
        equity = cash + shares * close[t]
        if equity <= 0.0:
            rt = -1.0
            ruined = True
        else:
            rt = equity / prev_equity - 1.0
            prev_equity = equity
        r[t] = rt
        total += rt
        eq *= 1.0 + rt
        # The drawdown 1 - eq / peak is computed only at a new low since the last peak: with
        # the peak fixed, rounded division and subtraction are monotone in eq, so the
        # segment's deepest drawdown is at its lowest equity and the maximum is the same, bit
        # for bit, as computing it at every bar (a division per bar saved).
        if eq > peak:
            peak = eq
            trough = eq
        elif eq < trough:
            trough = eq
            dd = 1.0 - eq / peak
            if dd > mdd:
                mdd = dd
    mdd = min(mdd, 1.0)
    sharpe = 0.0
    if n >= 2:  # sharpe_from_returns with the mean already summed
        mean = total / n
        ss = 0.0
        for i in range(n):
            ss += (r[i] - mean) ** 2
        std = np.sqrt(ss / (n - 1))
        if std > 1e-15 and np.isfinite(std):
            sharpe = mean / std * np.sqrt(periods_per_year)
    metrics[M_SHARPE] = sharpe
    metrics[M_TRADES] = trades
    metrics[M_MAXDD] = mdd
    metrics[M_RETURN] = eq - 1.0
    metrics[M_VALID] = 1.0
    if objective == 1:
        f = sortino_from_returns(r[:n], periods_per_year)
    elif objective == 2:
        f = calmar_from_returns(r[:n], periods_per_year, mdd)
    else:
        f = sharpe
    if min_trades > 0 and trades < min_trades:
        f -= TRADE_PENALTY * (min_trades - trades) / min_trades
    if mdd > dd_limit:
        f -= DRAWDOWN_PENALTY * (mdd - dd_limit)
    if not np.isfinite(f):
        f = WORST
    metrics[M_FITNESS] = min(max(f, -FITNESS_CAP), FITNESS_CAP)

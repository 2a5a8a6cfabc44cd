"""Numba backtest kernels: pure functions on float64 arrays, no pandas.

Accounting (the standard shares-and-cash one, identical to vectorbt's ``from_orders`` with
``size_type='targetpercent'``, ``direction='both'``, ``val_price=price``):

* ``target[t]`` is the wanted position, as a fraction of equity in [-1, 1], decided at the CLOSE
  of bar t (NaN means flat, values outside [-1, 1] are clipped). It is filled at bar t+1, at
  ``open[t+1]`` (``fill_on_open``) or ``close[t+1]``. The last target is never filled.
* An order is sent only when the target CHANGES (the first target is compared with flat).
  Between changes the account keeps its shares, so the held weight drifts with the price, as a
  real account that does not rebalance every bar.
* At a fill price ``P`` the account is valued ``V = cash + shares * P``; the order moves the
  holding to ``target * V / P`` shares. Buys fill at ``P * (1 + slippage)``, sells at
  ``P * (1 - slippage)``; the fee is ``fee_rate`` times the filled notional (at the slipped
  price) and is paid in cash. A buy can spend at most the cash on hand (fees included): a long
  target of 1.0 therefore holds ``1 / ((1 + slippage) * (1 + fee))`` of equity, as on a spot
  account. Short sales credit their proceeds to cash (no margin limit).
* Equity at the close of bar t is ``cash + shares * close[t]``; the net per-bar return is
  ``equity[t] / equity[t-1] - 1`` and ``returns[0] = 0``.
* Funding (perpetual futures, optional): ``funding[t]`` is a rate charged at the close of bar t
  on the notional ``shares * close[t]`` held over that bar (after an open fill, before a close
  fill): a long pays a positive rate, a short receives it.
* Ruin: if equity reaches zero or below, the bar's return is -1 and the account stays flat.

``bar_returns`` is the lean version for fitness loops: it folds fees and slippage into one
``cost_rate`` charged on the traded notional (no price slippage), so it equals ``simulate`` run
with ``fee_rate=cost_rate, slippage_rate=0`` (a test holds it to that). Its traded notional is
``|target - drifted weight| * equity`` at the fill price. ``short_rate`` (optional) is a
borrow or funding charge per bar on a short: at the close of bar t a short pays
``short_rate * |shares| * close[t]``, exactly what ``simulate`` charges when its ``funding``
array is ``short_financing(target, short_rate)`` (a spot account cannot short for free).
"""

from __future__ import annotations

import numpy as np
from numba import njit

# vectorbt's tolerance for "this buy just fits the cash": same figure so that the two agree.
_REL_TOL = 1e-9
_ABS_TOL = 1e-12


@njit(cache=True, nogil=True, inline="always")
def _clean_target(x: float) -> float:
    if np.isnan(x):
        return 0.0
    if x > 1.0:
        return 1.0
    if x < -1.0:
        return -1.0
    return x


@njit(cache=True, nogil=True, inline="always")
def _close_enough(a: float, b: float) -> bool:
    return a == b or abs(a - b) <= max(_REL_TOL * max(abs(a), abs(b)), _ABS_TOL)


@njit(cache=True, nogil=True)
def _order(
    cash: float, shares: float, want: float, price: float, fee_rate: float, slippage_rate: float
) -> tuple[float, float, float, float, float]:
    """Move ``shares`` to ``want`` of equity at ``price``.

    Returns (new cash, new shares, signed filled shares, fill price incl. slippage, fee paid).
    """
    value = cash + shares * price
    if value <= 0.0:
        return cash, shares, 0.0, price, 0.0
    delta = want * value / price - shares
    if delta > 0.0:
        fill = price * (1.0 + slippage_rate)
        req = delta * fill
        fee = req * fee_rate
        if not (req + fee <= cash or _close_enough(req + fee, cash)):
            # Not enough cash: buy what the cash covers, fees included.
            if cash <= 0.0:
                return cash, shares, 0.0, fill, 0.0
            req = cash / (1.0 + fee_rate)
            delta = req / fill
            fee = cash - req
        new_cash = cash - req - fee
        if _close_enough(cash, req + fee):
            new_cash = 0.0
        return new_cash, shares + delta, delta, fill, fee
    if delta < 0.0:
        fill = price * (1.0 - slippage_rate)
        acq = -delta * fill
        fee = acq * fee_rate
        return cash + acq - fee, shares + delta, delta, fill, fee
    return cash, shares, 0.0, price, 0.0


@njit(cache=True, nogil=True)
def bar_returns(
    open_: np.ndarray, close: np.ndarray, target: np.ndarray, cost_rate: float, fill_on_open: bool,
    short_rate: float = 0.0,
) -> np.ndarray:
    """Net per-bar simple returns of equity for ``target`` (see the module docstring).

    ``cost_rate = (fee_bps + slippage_bps) / 1e4`` of traded notional; ``short_rate`` is
    charged per bar on short notional; ``out[0] = 0``.
    """
    n = close.shape[0]
    out = np.zeros(n)
    cash = 1.0
    shares = 0.0
    prev_equity = 1.0
    prev_want = 0.0
    ruined = False
    for t in range(1, n):
        if ruined:
            continue
        want = _clean_target(target[t - 1])
        if want != prev_want:
            price = open_[t] if fill_on_open else close[t]
            if not fill_on_open and shares < 0.0:
                cash += short_rate * shares * close[t]  # held short over the bar, then fill
            cash, shares, _d, _p, _f = _order(cash, shares, want, price, cost_rate, 0.0)
            prev_want = want
            if fill_on_open and shares < 0.0:
                cash += short_rate * shares * close[t]
        elif shares < 0.0:
            cash += short_rate * shares * close[t]
        equity = cash + shares * close[t]
        if equity <= 0.0:
            out[t] = -1.0
            ruined = True
            continue
        out[t] = equity / prev_equity - 1.0
        prev_equity = equity
    return out


@njit(cache=True, nogil=True)
def simulate(
    open_: np.ndarray,
    close: np.ndarray,
    target: np.ndarray,
    fee_rate: float,
    slippage_rate: float,
    fill_on_open: bool,
    funding: np.ndarray,
    initial_equity: float,
) -> tuple:
    """Full simulation with a trade list; ``funding`` may be empty (no funding).

    Returns ``(returns, equity, positions, turnover, fees, trades_i, trades_f, n_trades)``:
    per-bar net returns, equity at each close, the weight actually held at each close
    (``shares * close / equity``), traded notional / equity before the trade, fees paid (in
    currency); ``trades_i[k] = (entry_bar, exit_bar, side, is_open)`` and
    ``trades_f[k] = (size, entry_price, exit_price, pnl, fees, funding)`` for ``k < n_trades``.
    Entry/exit prices are size-weighted fills incl. slippage; an open trade is marked at the
    last close (no exit fee). A trade runs from leaving flat (or a side flip) to flat/flip;
    resizing on the same side stays in the trade.
    """
    n = close.shape[0]
    has_funding = funding.shape[0] > 0
    returns = np.zeros(n)
    equity = np.empty(n)
    positions = np.zeros(n)
    turnover = np.zeros(n)
    fees = np.zeros(n)
    # a trade opens only on an order, an order only on a change of target: a safe capacity
    # far below n for real strategies (the arrays of a 1M-bar run would otherwise be 80 MB)
    capacity = 1
    last = 0.0
    for t in range(n - 1):
        x = _clean_target(target[t])
        if x != last:
            capacity += 1
            last = x
    trades_i = np.zeros((capacity, 4), dtype=np.int64)
    trades_f = np.zeros((capacity, 6))
    n_trades = 0
    if n == 0:
        return returns, equity, positions, turnover, fees, trades_i, trades_f, n_trades

    cash = initial_equity
    shares = 0.0
    equity[0] = initial_equity
    prev_want = 0.0
    ruined = False
    # open trade book-keeping
    side = 0
    entry_qty = 0.0
    entry_val = 0.0
    exit_qty = 0.0
    exit_val = 0.0
    flows = 0.0
    t_fees = 0.0
    t_funding = 0.0

    for t in range(1, n):
        if ruined:
            equity[t] = 0.0
            continue
        want = _clean_target(target[t - 1])
        for step in range(2):
            # step 0: an open fill, then funding; step 1: funding, then a close fill.
            is_fill_step = (step == 0) == fill_on_open
            if not is_fill_step:
                if has_funding and shares != 0.0:
                    pay = funding[t] * shares * close[t]
                    cash -= pay
                    flows -= pay
                    t_funding += pay
                continue
            if want == prev_want:
                continue
            prev_want = want
            price = open_[t] if fill_on_open else close[t]
            value_before = cash + shares * price
            old = shares
            cash, shares, d, fill, fee = _order(cash, shares, want, price, fee_rate, slippage_rate)
            if d == 0.0:
                continue
            fees[t] += fee
            turnover[t] = abs(d) * price / value_before
            # split the order into the part that closes (or shrinks) the open trade and the
            # part that opens a new one; the fee is split in proportion to size.
            if old != 0.0 and (shares == 0.0 or (shares > 0.0) != (old > 0.0)):
                close_qty = abs(old)
            elif old != 0.0 and abs(shares) < abs(old):
                close_qty = abs(d)
            else:
                close_qty = 0.0
            open_qty = abs(d) - close_qty
            if close_qty > 0.0:
                f_part = fee * close_qty / abs(d)
                exit_qty += close_qty
                exit_val += close_qty * fill
                t_fees += f_part
                flows += side * close_qty * fill - f_part
                if shares == 0.0 or (shares > 0.0) != (old > 0.0):
                    trades_i[n_trades, 1] = t
                    trades_i[n_trades, 2] = side
                    trades_i[n_trades, 3] = 0
                    trades_f[n_trades, 0] = entry_qty
                    trades_f[n_trades, 1] = entry_val / entry_qty
                    trades_f[n_trades, 2] = exit_val / exit_qty
                    trades_f[n_trades, 3] = flows
                    trades_f[n_trades, 4] = t_fees
                    trades_f[n_trades, 5] = t_funding
                    n_trades += 1
                    side = 0
            if open_qty > 0.0:
                f_part = fee * open_qty / abs(d)
                if side == 0:
                    side = 1 if shares > 0.0 else -1
                    trades_i[n_trades, 0] = t
                    entry_qty = 0.0
                    entry_val = 0.0
                    exit_qty = 0.0
                    exit_val = 0.0
                    flows = 0.0
                    t_fees = 0.0
                    t_funding = 0.0
                entry_qty += open_qty
                entry_val += open_qty * fill
                t_fees += f_part
                flows -= side * open_qty * fill + f_part
        eq = cash + shares * close[t]
        if eq <= 0.0:
            returns[t] = -1.0
            equity[t] = 0.0
            ruined = True
            if side != 0:
                # the trade ends in ruin: book it closed at this bar's close
                exit_qty += abs(shares)
                exit_val += abs(shares) * close[t]
                flows += shares * close[t]
                trades_i[n_trades, 1] = t
                trades_i[n_trades, 2] = side
                trades_f[n_trades, 0] = entry_qty
                trades_f[n_trades, 1] = entry_val / entry_qty
                trades_f[n_trades, 2] = exit_val / exit_qty
                trades_f[n_trades, 3] = flows
                trades_f[n_trades, 4] = t_fees
                trades_f[n_trades, 5] = t_funding
                n_trades += 1
                side = 0
            shares = 0.0
            cash = 0.0
            continue
        returns[t] = eq / equity[t - 1] - 1.0
        equity[t] = eq
        positions[t] = shares * close[t] / eq

    if side != 0:
        # still open at the end: mark the remaining shares at the last close
        rem = abs(shares)
        trades_i[n_trades, 1] = n - 1
        trades_i[n_trades, 2] = side
        trades_i[n_trades, 3] = 1
        trades_f[n_trades, 0] = entry_qty
        trades_f[n_trades, 1] = entry_val / entry_qty
        trades_f[n_trades, 2] = (exit_val + rem * close[n - 1]) / (exit_qty + rem)
        trades_f[n_trades, 3] = flows + shares * close[n - 1]
        trades_f[n_trades, 4] = t_fees
        trades_f[n_trades, 5] = t_funding
        n_trades += 1
    return returns, equity, positions, turnover, fees, trades_i, trades_f, n_trades


def short_financing(target: np.ndarray, short_rate: float, *, fill_on_open: bool = True) -> np.ndarray:
    """``simulate``'s funding array for a borrow charge on shorts only: ``-short_rate`` on the
    bars a short is held when the charge falls (open fills: the target of the previous close;
    close fills: the one before, since the charge precedes the fill), 0 elsewhere."""
    t = np.nan_to_num(np.asarray(target, dtype=np.float64))
    out = np.zeros(t.shape[0])
    lag = 1 if fill_on_open else 2
    if t.shape[0] > lag:
        out[lag:] = np.where(t[:-lag] < 0.0, -float(short_rate), 0.0)
    return out


@njit(cache=True, nogil=True)
def sharpe_from_returns(r: np.ndarray, periods_per_year: float) -> float:
    """Annualised Sharpe ratio (risk-free 0): mean / sample std (ddof=1) * sqrt(periods).

    0.0 when there are fewer than two returns or the std is 0 (always finite).
    """
    n = r.shape[0]
    if n < 2:
        return 0.0
    mean = 0.0
    for i in range(n):
        mean += r[i]
    mean /= n
    ss = 0.0
    for i in range(n):
        ss += (r[i] - mean) ** 2
    std = np.sqrt(ss / (n - 1))
    if not std > 1e-15 or not np.isfinite(std):
        return 0.0
    return mean / std * np.sqrt(periods_per_year)


@njit(cache=True, nogil=True)
def max_drawdown_from_returns(r: np.ndarray) -> float:
    """Largest peak-to-trough fall of the compounded equity, as a POSITIVE fraction in [0, 1]."""
    eq = 1.0
    peak = 1.0
    mdd = 0.0
    for i in range(r.shape[0]):
        eq *= 1.0 + r[i]
        if eq > peak:
            peak = eq
        dd = 1.0 - eq / peak
        if dd > mdd:
            mdd = dd
    return min(mdd, 1.0)


@njit(cache=True, nogil=True)
def count_trades(target: np.ndarray) -> int:
    """Number of entries the kernel fills: leaving flat or flipping side.

    Looks at ``target[:-1]`` only (the last target is decided at the final close and never
    filled); NaN counts as flat, as in the kernel.
    """
    count = 0
    prev = 0.0
    for i in range(target.shape[0] - 1):
        x = _clean_target(target[i])
        if x != 0.0 and (prev == 0.0 or (x > 0.0) != (prev > 0.0)):
            count += 1
        prev = x
    return count

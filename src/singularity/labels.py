"""Triple-barrier labels (López de Prado, AFML ch. 3).

For every event bar t with a known volatility sigma_t (sample standard deviation of the last
``vol_window`` one-bar log returns, ending at t: causal), the path of log returns
r_j = log(price_{t+j} / close_t), j = 1..horizon, is checked against

* the upper barrier  +upper_k * sigma_t   -> label +1
* the lower barrier  -lower_k * sigma_t   -> label -1
* the vertical barrier at t + horizon      -> label  0

whichever comes first. Without ``high``/``low`` the path is the closes; with them the upper
barrier is tested on the highs and the lower on the lows (intrabar touches).

Tie rule: when one bar touches both barriers (possible with high/low, or with sigma_t = 0) the
order inside the bar is unknown, so the label is 0 ("ambiguous"), ended at that bar.

Events whose vertical barrier lies past the last bar (the last ``horizon`` bars) and events
without a volatility estimate (the first ``vol_window`` bars) get no label: ``complete`` is
False, ``label`` and ``ret`` are NaN, ``end`` is -1. No label is ever completed with data that
does not exist, and an early touch near the end does not count either (that would bias the last
labels towards ±1).

The realised return ``ret`` is the close-to-close log return from t to the end bar.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from numba import njit

LABEL_COLUMNS = ("label", "end", "end_time", "ret", "upper", "lower", "vol", "complete")


@njit(cache=True)
def _barrier_kernel(
    close: np.ndarray,
    up_path: np.ndarray,
    down_path: np.ndarray,
    sigma: np.ndarray,
    upper_k: float,
    lower_k: float,
    horizon: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n = close.shape[0]
    label = np.full(n, np.nan)
    end = np.full(n, -1, dtype=np.int64)
    ret = np.full(n, np.nan)
    for t in range(n - horizon):
        s = sigma[t]
        if not np.isfinite(s):
            continue
        c0 = close[t]
        up = upper_k * s
        lo = -lower_k * s
        lab = 0.0
        stop = t + horizon
        for j in range(t + 1, t + horizon + 1):
            hit_up = np.log(up_path[j] / c0) >= up
            hit_lo = np.log(down_path[j] / c0) <= lo
            if hit_up or hit_lo:
                lab = 0.0 if (hit_up and hit_lo) else (1.0 if hit_up else -1.0)
                stop = j
                break
        label[t] = lab
        end[t] = stop
        ret[t] = np.log(close[stop] / c0)
    return label, end, ret


def trailing_volatility(close: pd.Series, window: int) -> pd.Series:
    """Sample std (ddof=1) of the last ``window`` one-bar log returns, ending at each bar."""
    logret = np.log(close).diff()
    return logret.rolling(window, min_periods=window).std()


def triple_barrier(
    close: pd.Series,
    *,
    vol_window: int,
    upper_k: float,
    lower_k: float,
    horizon: int,
    high: pd.Series | None = None,
    low: pd.Series | None = None,
) -> pd.DataFrame:
    """Label every bar of ``close``; see the module docstring for the rules.

    Returns a frame on ``close.index`` with columns ``label`` (float −1/0/+1, NaN when
    incomplete), ``end`` (position of the bar that ended the label, −1 when incomplete),
    ``end_time`` (its timestamp), ``ret`` (log return t -> end), ``upper``/``lower`` (barrier
    price levels), ``vol`` (sigma_t) and ``complete`` (bool).
    """
    if vol_window < 2 or horizon < 1 or upper_k <= 0 or lower_k <= 0:
        raise ValueError(
            f"triple_barrier needs vol_window >= 2, horizon >= 1 and positive k; got "
            f"vol_window={vol_window}, horizon={horizon}, upper_k={upper_k}, lower_k={lower_k}"
        )
    c = close.to_numpy(dtype=np.float64)
    if not np.all(np.isfinite(c)) or np.any(c <= 0):
        raise ValueError("triple_barrier needs finite, positive prices")
    hi = c if high is None else high.reindex(close.index).to_numpy(dtype=np.float64)
    lo = c if low is None else low.reindex(close.index).to_numpy(dtype=np.float64)
    sigma = trailing_volatility(close.astype(np.float64), vol_window).to_numpy()
    label, end, ret = _barrier_kernel(c, hi, lo, sigma, float(upper_k), float(lower_k), int(horizon))
    complete = end >= 0
    end_time = pd.Series(close.index[np.where(complete, end, 0)], index=close.index)
    end_time = end_time.where(complete)
    return pd.DataFrame(
        {
            "label": label,
            "end": end,
            "end_time": end_time,
            "ret": ret,
            "upper": c * np.exp(upper_k * sigma),
            "lower": c * np.exp(-lower_k * sigma),
            "vol": sigma,
            "complete": complete,
        },
        index=close.index,
    )


def average_uniqueness(end: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
    """Average uniqueness of overlapping labels (López de Prado, Advances in Financial Machine
    Learning, ch. 4), one weight per entry of ``rows`` (default: every complete label).

    Label i is realised over the returns of bars i+1 .. end[i]. The concurrency c_t of bar t
    is the number of labels among ``rows`` whose span contains t; label i's uniqueness is the
    mean of 1/c_t over its span. A label that shares every bar with three others weighs 1/4;
    one alone weighs 1. Only ``rows`` count, so a training fold's weights never depend on
    labels outside it."""
    end = np.asarray(end, dtype=np.int64)
    idx = np.flatnonzero(end >= 0) if rows is None else np.asarray(rows, dtype=np.int64)
    if idx.size == 0:
        return np.zeros(0)
    if (end[idx] <= idx).any():
        raise ValueError("a label must end after the bar it is set on (end[i] > i)")
    n = int(end[idx].max()) + 2
    diff = np.zeros(n + 1)
    np.add.at(diff, idx + 1, 1.0)
    np.add.at(diff, end[idx] + 1, -1.0)
    conc = np.cumsum(diff)[:n]
    inv = np.where(conc > 0, 1.0 / np.where(conc > 0, conc, 1.0), 0.0)
    csum = np.concatenate(([0.0], np.cumsum(inv)))
    return (csum[end[idx] + 1] - csum[idx + 1]) / (end[idx] - idx)
